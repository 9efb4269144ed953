"""Note templates render as Jinja's own sandbox renders them; each template's globals are a flat dict."""

from __future__ import annotations

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from policies.templates import _ENV, compile_note, render_note
from policies.variables import zero_sample

SAMPLE = {**zero_sample(()), "decision": {"tier": "L2"}, "rule": {"name": "r"}, "policy": {"name": "p"}}


def test_a_note_renders_as_in_a_stock_sandbox() -> None:
    stock = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    source = (
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
        "{{ ns.n }} {{ dict(a=1) | length }} {{ decision.tier }} {{ ticket['status'] or 'none' }}\n"
    )
    template, error = compile_note(source, SAMPLE)
    assert error is None and template is not None
    assert render_note(template, SAMPLE) == stock.from_string(source).render(SAMPLE) == "3 1 L2 none\n"


def test_each_template_keeps_its_own_copy_of_the_globals() -> None:
    first, _ = compile_note("{{ range(1) | list }}", SAMPLE)
    second, _ = compile_note("{{ range(2) | list }}", SAMPLE)
    assert first is not None and second is not None
    assert type(first.globals) is dict and first.globals == dict(_ENV.globals)
    safe_range = _ENV.globals["range"]  # the sandbox's bounded range
    first.globals["range"] = None  # what one template's globals hold reaches no other template
    assert second.globals["range"] is safe_range and _ENV.globals["range"] is safe_range
    assert render_note(second, SAMPLE) == "[0, 1]"


def test_the_sandbox_still_refuses_internals() -> None:
    _, error = compile_note("{{ ticket.__class__.__mro__ }}", SAMPLE)
    assert error is not None and "cannot be rendered" in error
