"""Hints for the CEL slips people make coming from Python, JavaScript or SQL, added to the error that
the slip causes: `ticket.labels.contains("x")` gets CEL's "undeclared function", plus the way to write it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .closed_sets import type_of
from .variables import LIST, STRING

_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"
_MEMBER_CALL = re.compile(rf"({_PATH})\.(contains|includes|has|indexOf)\(([^()]*)\)")
_SIZE_FIELD = re.compile(rf"({_PATH})\.(length|size|count)\b(?!\s*\()")
_CASE_CALL = re.compile(rf"({_PATH})\.(lower|upper|casefold|toLowerCase|toUpperCase)\(\s*\)")
_WORDS = {"and": "&&", "or": "||", "not": "!"}
_CONSTANTS = {"True": "true", "False": "false", "None": "null", "nil": "null", "undefined": "null"}


def hints(source: str, tokens: Sequence[tuple[str, str]], schema: Mapping[str, Any]) -> list[str]:
    """Ways to write what the expression probably means, for the slips found in it."""
    out: list[str] = []
    for match in _MEMBER_CALL.finditer(source):
        path, method, arg = match.groups()
        if type_of(tuple(path.split(".")), schema) == LIST:
            out.append(f"a list has no .{method}(): write {arg.strip()} in {path}")
    for match in _SIZE_FIELD.finditer(source):
        out.append(f"write size({match.group(1)}) for the number of items or characters")
    for match in _CASE_CALL.finditer(source):
        out.append(f'for a case-insensitive test write {match.group(1)}.matches("(?i)text")')
    for i, (kind, text) in enumerate(tokens):
        if kind == "id" and text in _WORDS and _op(tokens, i - 1) != ".":
            out.append(f"CEL writes {_WORDS[text]} for '{text}'")
        elif kind == "id" and text in _CONSTANTS and _op(tokens, i - 1) != ".":
            out.append(f"CEL writes {_CONSTANTS[text]} for '{text}'")
        elif kind == "id" and text == "len" and _op(tokens, i + 1) == "(":
            out.append("CEL writes size(x) for len(x)")
        elif kind == "op" and text == "=" and _lone_equals(tokens, i):
            out.append("compare with ==, not =")
        elif kind == "id" and text == "in" and i + 1 < len(tokens):
            path = _path_at(tokens, i + 1)
            if path and type_of(path, schema) == STRING:
                left = tokens[i - 1][1] if i > 0 else "…"
                out.append(f"'in' needs a list: write {'.'.join(path)}.contains({left}) for a substring")
    return list(dict.fromkeys(out))


def _lone_equals(tokens, i: int) -> bool:
    before, after = _op(tokens, i - 1), _op(tokens, i + 1)
    return before not in ("=", "!", "<", ">") and after != "="


def _path_at(tokens, i: int) -> tuple[str, ...] | None:
    if i >= len(tokens) or tokens[i][0] != "id":
        return None
    path, j = [tokens[i][1]], i
    while _op(tokens, j + 1) == "." and j + 2 < len(tokens) and tokens[j + 2][0] == "id":
        path.append(tokens[j + 2][1])
        j += 2
    return None if _op(tokens, j + 1) == "(" else tuple(path)


def _op(tokens, i: int) -> str:
    return tokens[i][1] if 0 <= i < len(tokens) and tokens[i][0] == "op" else ""
