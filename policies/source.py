"""Reading a policy file: YAML with line numbers, and pydantic errors translated to FILE:LINE problems."""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .problems import Problem

Loc = tuple[str | int, ...]
LineOf = Callable[[Loc], int]
M = TypeVar("M", bound=BaseModel)


class _Constructor(RoundTripConstructor):
    """Round-trip constructor that keeps timestamps as the text they are written as: the policy reads dates
    itself (SLA closed days) and so reports `2026-12-32` at its line instead of failing to build a date."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)


def parse_yaml(text: str, path: str) -> tuple[Any, list[Problem]]:
    """The round-trip YAML tree (it remembers lines), or the syntax error as a problem."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    try:
        return yaml.load(text), []
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if "could not find expected ':'" in str(exc.problem) and exc.context_mark is not None:
            mark = exc.context_mark  # the line that lacks the ':', not the one after it
        line = mark.line + 1 if mark is not None else 0
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        column = f"column {mark.column + 1}: " if mark is not None else ""
        return None, [Problem(path, line, f"YAML syntax error: {column}{plain_yaml_error(what)} ({what})")]
    except YAMLError as exc:  # errors without a position (rare: e.g. a bad encoding)
        return None, [Problem(path, 0, f"YAML error: {exc}")]


# What the YAML parser's messages mean, in the words of someone editing the file.
_PLAIN = (
    ("found character '\\t'", "a tab: YAML indents with spaces only"),
    ("duplicate key", "a key appears twice in the same mapping: keep one"),
    ("mapping values are not allowed here",
     "a ':' where no new key can start: this line is indented wrongly, or a value contains ': ' "
     "(put it in quotes)"),
    ("expected <block end>",
     "the indentation does not match the lines above: a key or '- ' item is indented more or less "
     "than the ones beside it"),
    ("could not find expected ':'",
     "a line that is not 'key: value' inside a mapping (a missing ':', or a text that runs over lines "
     "without quotes)"),
    ("while scanning a quoted scalar", "a quote is opened and never closed"),
    ("while parsing a flow sequence", "a '[' list is not closed with ']' (or an item in it needs quotes)"),
    ("while parsing a flow mapping", "a '{' mapping is not closed with '}' (or a value in it needs quotes)"),
    ("found undefined alias", "a '*name' with no '&name' before it: put the value in quotes"),
    ("found unexpected end of stream", "the file ends inside a quote or bracket"),
)  # fmt: skip


def plain_yaml_error(message: str) -> str:
    """The parser's message in plain words (the parser's own text is kept beside it)."""
    for needle, plain in _PLAIN:
        if needle in message:
            return plain
    return "not valid YAML here"


def to_plain(node: Any) -> Any:
    """ruamel's containers and scalar subclasses as plain Python values (strict validation needs them)."""
    if isinstance(node, dict):
        return {to_plain(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, date):
        return node.isoformat()  # an unquoted date; strict schemas then report it as the string it looks like
    return node


def line_finder(root: Any) -> LineOf:
    """A function giving the 1-based line of the deepest node that exists along a location."""

    def line_of(loc: Loc) -> int:
        node, line = root, 1
        for part in loc:
            if isinstance(node, CommentedMap) and not isinstance(part, int) and part in node:
                line = node.lc.key(part)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
            else:
                break
            node = node[part]
        return line

    return line_of


def render_loc(loc: Sequence[str | int]) -> str:
    """("then", 0, "note") → "then[0].note"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


def validate(
    model: type[M] | TypeAdapter[Any],
    data: Any,
    *,
    path: str,
    line_of: LineOf,
    prefix: Loc,
    label: str = "",
    shown: Loc = (),
) -> tuple[Any, list[Problem]]:
    """Validate one section (a model, or an adapter for plain types); each error is a problem at its line.

    Messages start with `label` (e.g. "rule 'x'") and the location below it, `shown` first; without a label,
    with the full location from the top of the file.
    """
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data, strict=True), []
        return model.model_validate(data), []
    except ValidationError as exc:
        problems = [_problem(model, err, path, line_of, prefix, label, shown) for err in exc.errors()]
        return None, list(dict.fromkeys(problems))


def _problem(
    model: type[BaseModel] | TypeAdapter[Any],
    err: Any,
    path: str,
    line_of: LineOf,
    prefix: Loc,
    label: str,
    shown: Loc,
) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        where, key = loc[:-1], loc[-1]
        known = _known_keys(model, where)
        hint = f" (known: {', '.join(known)})" if known else ""
        message, line = f"unknown key '{key}'{hint}", line_of(prefix + loc)
    elif kind == "missing":
        where = loc[:-1]
        message, line = f"missing required key '{loc[-1]}'", line_of(prefix + where)
    else:
        where = loc
        message, line = _describe(err), line_of(prefix + loc)
    parts = [label, render_loc(shown + where)] if label else [render_loc(prefix + where)]
    return Problem(path, line, ": ".join([*(p for p in parts if p), message]))


def _describe(err: Any) -> str:
    msg: str = err["msg"]
    if err["type"] == "value_error":
        return msg.removeprefix("Value error, ")
    if err["type"] in ("too_short", "string_too_short"):
        return "must not be empty"
    msg = msg[:1].lower() + msg[1:]
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and len(repr(value)) <= 60:
        msg += f" (got {value!r})"
    return msg


def _known_keys(model: type[BaseModel] | TypeAdapter[Any], loc: Loc) -> list[str] | None:
    """The keys allowed at `loc` inside `model`, for the 'unknown key' hint."""
    if isinstance(model, TypeAdapter):
        return None
    tp: Any = model
    for part in loc:
        tp = _descend(tp, part)
        if tp is None:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(f.alias or n for n, f in tp.model_fields.items())
    return None


def _descend(tp: Any, part: str | int) -> Any:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return next((f.annotation for n, f in tp.model_fields.items() if part in (n, f.alias)), None)
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and isinstance(part, int):
        return args[0]
    if origin is dict and isinstance(part, str):
        return args[1]
    return None


def _unwrap(tp: Any) -> Any:
    """Optional[X] / Annotated[X, …] → X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp
