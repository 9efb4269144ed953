"""Note texts: sandboxed Jinja2 templates, compiled once and test-rendered at load with StrictUndefined."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .conditions import first_line

NOTE_ROOTS = ("comment", "decision", "event", "policy", "rule", "sla", "ticket")

# Notes are plain text for the platform's note field (escaping is the adapter's job). Immutable: a template
# cannot change the data the next note or rule sees.
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

# What rendering can raise besides Jinja's own errors (a filter given the wrong type, a bad index …).
RENDER_ERRORS = (TemplateError, TypeError, ValueError, LookupError, ArithmeticError)


def compile_note(source: str, sample: Mapping[str, Any]) -> tuple[Template | None, str | None]:
    """The compiled template, or why it cannot be used (syntax, unknown variable, fails on the sample)."""
    try:
        template = _ENV.from_string(source)
        unknown = sorted(meta.find_undeclared_variables(_ENV.parse(source)) - set(NOTE_ROOTS))
    except TemplateSyntaxError as exc:
        return None, f"note template syntax error (line {exc.lineno} of the note): {exc.message}"
    if unknown:
        return None, f"note template uses unknown variable '{unknown[0]}' (known: {', '.join(NOTE_ROOTS)})"
    try:
        template.render(sample)
    except RENDER_ERRORS as exc:
        return None, f"note template cannot be rendered: {first_line(exc)}"
    return template, None


def render_note(template: Template, context: Mapping[str, Any]) -> str:
    """The note text; raises one of RENDER_ERRORS when the data does not fit the template."""
    return template.render(context)
