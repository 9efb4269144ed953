"""Comparisons that can never hold: a condition comparing a variable with a value outside its closed set
(`ticket.tier == "l1"` when the tiers are L1…, `ticket.priority == "P9"`, a status or event kind that does
not exist) or with a value of another type (`ticket.fields.revenue_impact == "yes"` on a bool field).

CEL accepts both and simply gives false forever, so `policy check` would say OK to a rule that never
fires. The checks read the expression's tokens (`conditions.scan_expression`'s tokenizer): a variable
path next to `==`, `!=` or `in [..]` and a literal on the other side. Anything more involved is left alone.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from connector.model import EventKind, Priority, Status

from .variables import BOOL, INT, LIST, MAP, NUMBER, STRING

PRIORITIES = tuple(p.value for p in Priority)
STATUSES = tuple(s.value for s in Status)
EVENT_KIND_VALUES = tuple(k.value for k in EventKind)
PRIORITY_SOURCES = ("matrix", "rule", "person", "platform")  # decision.priority_from (variables.py)

_NO_VALUE: Any = object()


def closed_sets(tiers: Sequence[str] | None, metrics: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The variables whose values are known in advance, and those values. "" (no value) is always allowed."""
    sets = {
        "ticket.priority": PRIORITIES,
        "decision.priority": PRIORITIES,
        "decision.priority_from": PRIORITY_SOURCES,
        "ticket.status": STATUSES,
        "event.kind": EVENT_KIND_VALUES,
        "sla.metric": tuple(metrics),
    }
    if tiers:
        sets["ticket.tier"] = tuple(tiers)
    return sets


def check_comparisons(
    tokens: Sequence[tuple[str, str]], schema: Mapping[str, Any], sets: Mapping[str, Sequence[str]]
) -> list[str]:
    """Why comparisons in the expression (as tokens) can never hold; empty when none is found."""
    problems: list[str] = []
    for start, end, path in _paths(tokens):
        name = ".".join(path)
        kind = type_of(path, schema)
        if kind is None and name not in sets:
            continue
        for values, how in _compared_values(tokens, start, end):
            for value in values:
                problem = _problem(name, kind, value, how, sets.get(name))
                if problem and problem not in problems:
                    problems.append(problem)
    return problems


def _problem(name: str, kind: str | None, value: Any, how: str, allowed: Sequence[str] | None) -> str | None:
    field = name.startswith("ticket.fields.")
    declared = " (declared under fields:)" if field else ""
    shown = _cel(value)
    if kind == LIST and how == "==":
        return f"{name} is a list: {name} == {shown} never holds; write {shown} in {name}"
    if kind == BOOL and not isinstance(value, bool):
        return f"{name} is true or false{declared}, never {shown}: write {name} or !{name}"
    if kind in (INT, NUMBER) and (isinstance(value, str) or isinstance(value, bool)):
        number = f" (write {value} without quotes)" if isinstance(value, str) and _is_number(value) else ""
        return f"{name} is a number{declared}, never the {_type_name(value)} {shown}{number}"
    if kind == STRING and not isinstance(value, str):
        return f'{name} is a string{declared}, never the {_type_name(value)} {shown}: quote it, "{value}"'
    if allowed is not None and isinstance(value, str) and value and value not in allowed:
        close = [a for a in allowed if a.lower() == value.lower()] or difflib.get_close_matches(
            value, allowed, n=1, cutoff=0.6
        )
        hint = f" (did you mean {_cel(close[0])}?)" if close else ""
        return f"{name} is never {shown}{hint}: it is one of {', '.join(allowed)}"
    return None


def _paths(tokens: Sequence[tuple[str, str]]):
    """(start, end, path) of each dotted variable path that is not a method call."""
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind != "id" or _op(tokens, i - 1) == ".":
            i += 1
            continue
        path, j = [text], i
        while _op(tokens, j + 1) == "." and _kind(tokens, j + 2) == "id":
            path.append(tokens[j + 2][1])
            j += 2
        if _op(tokens, j + 1) != "(" and len(path) > 1:
            yield i, j, tuple(path)
        i = j + 1


def _compared_values(tokens: Sequence[tuple[str, str]], start: int, end: int):
    """The literal values the path at tokens[start..end] is compared with, and how (== or in)."""
    after = _operator_at(tokens, end + 1)
    if after is not None:
        op, at = after
        if op in ("==", "!="):
            value, stop = _literal(tokens, at)
            if value is not _NO_VALUE and not _continues(tokens, stop):
                yield [value], "=="
        elif op == "in":
            values = _list_literal(tokens, at)
            if values is not None:
                yield values, "in"
    value = _left_literal(tokens, start)
    if value is not _NO_VALUE:
        yield [value], "=="


def _operator_at(tokens, i: int) -> tuple[str, int] | None:
    if _op(tokens, i) == "=" and _op(tokens, i + 1) == "=":
        return "==", i + 2
    if _op(tokens, i) == "!" and _op(tokens, i + 1) == "=":
        return "!=", i + 2
    if _kind(tokens, i) == "id" and tokens[i][1] == "in":
        return "in", i + 1
    return None


def _left_literal(tokens, start: int) -> Any:
    """The literal in `LITERAL == path` / `LITERAL != path` ending before tokens[start], or _NO_VALUE."""
    if not (_op(tokens, start - 1) == "=" and _op(tokens, start - 2) in ("=", "!")):
        return _NO_VALUE
    at = start - 3
    if _kind(tokens, at) == "num" and _op(tokens, at - 1) == "-":
        at -= 1
    value, stop = _literal(tokens, at)
    if stop != start - 2 or _continues_back(tokens, at):
        return _NO_VALUE
    return value


def _literal(tokens, i: int) -> tuple[Any, int]:
    """The literal value at tokens[i] and the index after it, or _NO_VALUE."""
    negative = _op(tokens, i) == "-"
    if negative:
        i += 1
    kind = _kind(tokens, i)
    if kind == "str":
        try:
            value = ast.literal_eval(tokens[i][1])
        except (ValueError, SyntaxError):
            return _NO_VALUE, i + 1
        return (value if isinstance(value, str) else _NO_VALUE), i + 1
    if kind == "num":
        text = tokens[i][1].rstrip("uU")
        try:
            value = (
                int(text, 0) if not any(c in text for c in ".eE") or text.startswith("0x") else float(text)
            )
        except ValueError:
            return _NO_VALUE, i + 1
        return (-value if negative else value), i + 1
    if kind == "id" and tokens[i][1] in ("true", "false") and not negative:
        return tokens[i][1] == "true", i + 1
    return _NO_VALUE, i + 1


def _list_literal(tokens, i: int) -> list[Any] | None:
    """`[lit, lit, …]` at tokens[i] (nothing else in it), or None."""
    if _op(tokens, i) != "[":
        return None
    values, i = [], i + 1
    while True:
        if _op(tokens, i) == "]":
            return values
        value, i = _literal(tokens, i)
        if value is _NO_VALUE:
            return None
        values.append(value)
        if _op(tokens, i) == ",":
            i += 1
        elif _op(tokens, i) != "]":
            return None


def _continues(tokens, i: int) -> bool:
    """The literal is part of a larger expression (`"P" + x`, `"a".size()`): not a plain comparison."""
    return _op(tokens, i) in ("+", "-", "*", "/", "%", ".", "[", "(", "?")


def _continues_back(tokens, i: int) -> bool:
    return _op(tokens, i - 1) in ("+", "-", "*", "/", "%", ".", "]", ")", "?", ":")


def type_of(path: tuple[str, ...], schema: Mapping[str, Any]) -> str | None:
    node: Any = schema.get(path[0])
    for segment in path[1:]:
        if not isinstance(node, Mapping) or segment not in node:
            return None
        node = node[segment]
    return node if isinstance(node, str) and node != MAP else None


def _op(tokens, i: int) -> str:
    return tokens[i][1] if 0 <= i < len(tokens) and tokens[i][0] == "op" else ""


def _kind(tokens, i: int) -> str:
    return tokens[i][0] if 0 <= i < len(tokens) else ""


def _cel(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _type_name(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "string"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
