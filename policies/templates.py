"""Note texts: sandboxed Jinja2 templates, compiled once and test-rendered at load with StrictUndefined."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .conditions import first_line
from .durations import parse_duration

NOTE_ROOTS = ("comment", "decision", "event", "last_reply", "policy", "rule", "sla", "ticket")


class _NoteEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's sandbox, with each template's globals in a plain dict."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # Jinja keeps them as a ChainMap over the environment's, and every render copies them into its
        # context: a KeyError per name from the template's own (empty) map, ~20 µs a render. Ours are
        # set at import and never change, so a snapshot is the same.
        return {**self.globals, **(d or {})}


# Hidden context keys: the reader's language and the calendar's time zone, for `localtime`.
LANGUAGE, TIMEZONE = "_language", "_timezone"
# How the values a template writes are kept literal in the text's destination (policies/markup.py):
# set for one render (a context variable: read per value, it costs less than a context lookup).
_ESCAPE: ContextVar[Callable[[str], str] | None] = ContextVar("note_escape", default=None)


def _literal(value: Any) -> Any:
    """Each `{{ … }}` a template writes, escaped for the note's platform when it has markup: a value
    comes from the ticket (its title, a reply), the template's own text from the policy's author."""
    escape = _ESCAPE.get()
    return escape(value) if escape is not None and isinstance(value, str) else value


# Notes and messages are plain text, but for the markup of a platform's note field (escaped in the
# values, above); a channel escapes a message's whole text for its own. Immutable: a template cannot
# change the data the next note or rule sees.
_ENV = _NoteEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_literal
)


@pass_context
def _localtime(context: Any, value: Any, add: str | None = None) -> str:
    """`{{ sla.due | localtime }}`: an instant in the reader's language and the calendar's time zone
    (Babel); `add="1h"` shifts it first (the next update due). An empty value stays empty."""
    if value in ("", None):
        return ""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    # No format Babel writes holds a fraction of a second: instants within one second are one entry.
    at = at.replace(microsecond=0)
    return _local(at, add or "", context.get(TIMEZONE) or "UTC", context.get(LANGUAGE) or "en")


@functools.lru_cache(maxsize=4096)
def _local(at: datetime, add: str, timezone: str, locale: str) -> str:
    """Babel's formatting costs ~0.1 ms; a decision's notes and messages (one per channel and
    language) and a replay's two policies write the same instant again and again."""
    if add:
        at += parse_duration(add)
    zone = ZoneInfo(timezone)
    zone_name = format_datetime(at, "zzz", tzinfo=zone, locale=locale)
    return f"{format_datetime(at, 'medium', tzinfo=zone, locale=locale)} {zone_name}"


_ENV.filters["localtime"] = _localtime


@functools.lru_cache(maxsize=256)
def known_locale(language: str) -> bool:
    """True when Babel knows the language (`en`, `id`, `pt_BR`, `de-AT`)."""
    try:
        Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


@functools.cache
def _language_names() -> dict[str, str]:
    """English and native language names → codes ("Indonesian", "Bahasa Indonesia" → id)."""
    names = {name.casefold(): code for code, name in Locale("en").languages.items() if "_" not in code}
    for code in ("id", "ms", "de", "fr", "es", "pt", "it", "nl", "ja", "zh", "ko", "th", "vi", "tr", "pl"):
        native = Locale.parse(code)
        names.setdefault((native.display_name or "").casefold(), code)
        names.setdefault(f"bahasa {native.display_name}".casefold() if code in ("id", "ms") else "", code)
    names.pop("", None)
    return names


@functools.lru_cache(maxsize=256)
def language_code(value: str | None) -> str:
    """A requester's language as a locale code: platforms send codes (`id`, `pt-BR`) or, from
    Zendesk trigger placeholders, names (`Indonesian`, `English`). Unknown: ''."""
    text = (value or "").strip()
    if not text:
        return ""
    if known_locale(text):
        return text.replace("-", "_")
    return _language_names().get(text.casefold(), "")


def pick_language(wanted: str | None, available: Any, default: str) -> str:
    """The reader's language if there is a text in it (or in its base: `id-ID` → `id`), else `default`."""
    wanted = language_code(wanted)
    for language in (wanted, (wanted or "").replace("-", "_").split("_")[0]):
        if language and language in available:
            return language
    return default


# What rendering can raise besides Jinja's own errors (a filter given the wrong type, a bad index …).
RENDER_ERRORS = (TemplateError, TypeError, ValueError, LookupError, ArithmeticError)


def compile_note(source: str, sample: Mapping[str, Any]) -> tuple[Template | None, str | None]:
    """The compiled template, or why it cannot be used (syntax, unknown variable, fails on the sample)."""
    try:
        template = _ENV.from_string(source)
        roots = frozenset(meta.find_undeclared_variables(_ENV.parse(source)))
        unknown = sorted(roots - set(NOTE_ROOTS))
    except TemplateSyntaxError as exc:
        return None, f"note template syntax error (line {exc.lineno} of the note): {exc.message}"
    if unknown:
        return None, f"note template uses unknown variable '{unknown[0]}' (known: {', '.join(NOTE_ROOTS)})"
    try:
        template.render(sample)
    except RENDER_ERRORS as exc:
        return None, f"note template cannot be rendered: {first_line(exc)}"
    template.roots = roots  # type: ignore[attr-defined]  # what it reads: see template_reads
    return template, None


def template_reads(template: Template, root: str) -> bool:
    """Whether `template` reads variable `root` (True when it cannot tell: not compiled here)."""
    return root in getattr(template, "roots", (root,))


def render_note(template: Template, context: Mapping[str, Any], *, language: str = "en",
                timezone: str = "UTC", escape: Callable[[str], str] | None = None) -> str:  # fmt: skip
    """The note text in `language` (dates in `timezone`), each value it writes through `escape` (the
    note's platform's, policies/markup.py); raises one of RENDER_ERRORS when the data does not fit."""
    if escape is None:
        return template.render({**context, LANGUAGE: language, TIMEZONE: timezone})
    token = _ESCAPE.set(escape)
    try:
        return template.render({**context, LANGUAGE: language, TIMEZONE: timezone})
    finally:
        _ESCAPE.reset(token)
