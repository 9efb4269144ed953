"""CEL conditions: compiled once at load, checked against the variable schema, tested on zero values.

The `cel` library exposes no AST (only `Program.variables()`, the root names), so a small token scanner
below finds dotted paths like `ticket.fields.revenue_impact` to check each segment; that is what turns a
misspelt field into a load error instead of a condition that is silently false.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cel

from .cel_hints import hints
from .closed_sets import check_comparisons
from .variables import MAP, UNAVAILABLE

# What evaluating a CEL program raises on bad data (missing key, bad index, type mismatch, bad regex …).
CEL_RUNTIME_ERRORS = (LookupError, ArithmeticError, TypeError, ValueError, RuntimeError)


@dataclass(frozen=True, eq=False)
class Condition:
    """A compiled CEL condition and where it came from (for reasons and errors)."""

    source: str
    where: str
    program: cel.Program

    def test(self, context: cel.Context | Mapping[str, Any], reasons: list[str]) -> bool:
        """True when the condition holds; a runtime error or a non-bool counts as no match, with a reason."""
        try:
            result = self.program.execute(context)
        except CEL_RUNTIME_ERRORS as exc:
            reasons.append(
                f"{self.where}: condition {self.source!r} could not be evaluated "
                f"({first_line(exc)}); treated as no match"
            )
            return False
        if not isinstance(result, bool):
            reasons.append(
                f"{self.where}: condition {self.source!r} gave {result!r}, not true/false; no match"
            )
            return False
        return result


def compile_condition(
    source: str,
    where: str,
    roots: Iterable[str],
    schema: Mapping[str, Any],
    sample: Mapping[str, Any],
    closed: Mapping[str, Sequence[str]] | None = None,
) -> tuple[Condition | None, list[str]]:
    """Compile and check one condition; the messages say what is wrong (empty when it is fine).

    `closed` names the variables whose values are known (closed_sets.closed_sets): a comparison with
    a value outside the set, or of another type, is an error too."""
    condition, errors = _compile_condition(source, where, roots, schema, sample, closed or {})
    if errors:
        tips = hints(source, _tokenize(source), schema)
        if tips:
            errors[0] += " (hint: " + "; ".join(tips) + ")"
    return condition, errors


def _compile_condition(
    source: str,
    where: str,
    roots: Iterable[str],
    schema: Mapping[str, Any],
    sample: Mapping[str, Any],
    closed: Mapping[str, Sequence[str]],
) -> tuple[Condition | None, list[str]]:
    try:
        program = cel.compile(source)
    except ValueError as exc:
        return None, [f"{where}: CEL syntax error in {source!r}: {_parser_message(exc)}"]
    allowed = set(roots)
    known = set(schema) | set(UNAVAILABLE)
    scan = scan_expression(source)
    errors: list[str] = []
    for name in sorted(set(program.variables()) - scan.bound - _NOT_VARIABLES):
        if name in known and name not in allowed:
            why = UNAVAILABLE.get(name, "")
            errors.append(f"{where}: '{name}' is not available here" + (f": {why}" if why else ""))
        elif name not in allowed:
            errors.append(f"{where}: unknown variable '{name}' (known: {', '.join(sorted(allowed))})")
    for path in scan.paths:
        if path[0] in allowed and path[0] not in scan.bound:
            problem = check_path(path, schema)
            if problem:
                errors.append(f"{where}: {problem}")
    if not errors:
        visible = {k: v for k, v in schema.items() if k in allowed and k not in scan.bound}
        errors += [f"{where}: {p}" for p in check_comparisons(_tokenize(source), visible, closed)]
    if errors:
        return None, list(dict.fromkeys(errors))
    condition = Condition(source, where, program)
    try:
        result = program.execute(dict(sample))
    except CEL_RUNTIME_ERRORS as exc:
        hint = (
            " (guard data that may be absent, e.g. '\"status\" in event.changes && …')"
            if isinstance(exc, KeyError)
            else ""
        )
        return None, [
            f"{where}: condition {source!r} fails on a ticket with empty values: {first_line(exc)}{hint}"
        ]
    if not isinstance(result, bool):
        kind = _CEL_TYPE_NAMES.get(type(result), type(result).__name__)
        return None, [f"{where}: condition {source!r} must give true or false, but gives a {kind}"]
    return condition, []


def check_path(path: tuple[str, ...], schema: Mapping[str, Any]) -> str | None:
    """Why `path` (e.g. ticket.foo) does not exist in the variable schema, or None when it does."""
    node: Any = schema[path[0]]
    seen = path[0]
    for segment in path[1:]:
        if node == MAP:
            return None  # keys are data (e.g. event.changes.<field>), not schema
        if not isinstance(node, Mapping):
            return f"{seen} is a {node} and has no field '{segment}'"
        if segment not in node:
            if seen == "ticket.fields":
                declared = ", ".join(sorted(node)) or "none"
                return (
                    f"ticket.fields has no field '{segment}' (declared: {declared}); "
                    "declare it under the top-level 'fields:'"
                )
            return f"{seen} has no field '{segment}' (known: {', '.join(sorted(node))})"
        node, seen = node[segment], f"{seen}.{segment}"
    return None


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (CEL's messages run to several)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _parser_message(exc: ValueError) -> str:
    # "Failed to parse expression '…': ERROR: <input>:1:17: Syntax error: … \n| source \n| ..^" → one line.
    text = str(exc)
    match = re.search(r"<input>:(\d+):(\d+): (?:Syntax error: )?([^\n]*)", text)
    if match:
        return f"{match.group(3)} (line {match.group(1)}, column {match.group(2)} of the expression)"
    return text.splitlines()[0] if text else "cannot parse"


_CEL_TYPE_NAMES = {str: "string", int: "int", float: "number", list: "list", dict: "map", bytes: "bytes"}


# --- the scanner ---------------------------------------------------------------------------------

_STRING = re.compile(
    r"""(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
)
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|\d+\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?[uU]?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MACROS = frozenset(
    {"all", "exists", "exists_one", "existsOne", "map", "filter", "transformList", "transformMap"}
)
# Literals, `in`, and type names that may appear as identifiers without being variables.
_NOT_VARIABLES = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "int",
        "uint",
        "double",
        "bool",
        "string",
        "bytes",
        "list",
        "map",
        "type",
        "null_type",
        "dyn",
        "timestamp",
        "duration",
    }
)


@dataclass(frozen=True)
class Scan:
    paths: tuple[tuple[str, ...], ...]  # dotted paths starting at an identifier, calls removed
    bound: frozenset[str]  # names bound by comprehension macros


def scan_expression(source: str) -> Scan:
    """Dotted variable paths and comprehension-bound names in a CEL expression (strings skipped)."""
    tokens = _tokenize(source)
    bound: set[str] = set()
    paths: list[tuple[str, ...]] = []
    for i, (kind, text) in enumerate(tokens):
        if kind == "id" and text in _MACROS and _at(tokens, i - 1) == "." and _at(tokens, i + 1) == "(":
            # .all(x, …) binds x; two-variable forms .all(k, v, …) bind both
            if _kind(tokens, i + 2) == "id" and _at(tokens, i + 3) == ",":
                bound.add(tokens[i + 2][1])
                if _kind(tokens, i + 4) == "id" and _at(tokens, i + 5) == ",":
                    bound.add(tokens[i + 4][1])
        if kind != "id" or _at(tokens, i - 1) == "." or text in _NOT_VARIABLES:
            continue
        path, j = [text], i
        while _at(tokens, j + 1) == "." and _kind(tokens, j + 2) == "id":
            path.append(tokens[j + 2][1])
            j += 2
        if _at(tokens, j + 1) == "(":
            path.pop()  # the last segment is a function or method name
        if path:
            paths.append(tuple(path))
    return Scan(tuple(paths), frozenset(bound))


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(source):
        if source[i].isspace():
            i += 1
            continue
        for kind, pattern in (("str", _STRING), ("num", _NUMBER), ("id", _IDENT)):
            match = pattern.match(source, i)
            if match:
                tokens.append((kind, match.group()))
                i = match.end()
                break
        else:
            tokens.append(("op", source[i]))
            i += 1
    return tokens


def _at(tokens: list[tuple[str, str]], i: int) -> str:
    """The operator text at i ('' when out of range or not an operator)."""
    return tokens[i][1] if 0 <= i < len(tokens) and tokens[i][0] == "op" else ""


def _kind(tokens: list[tuple[str, str]], i: int) -> str:
    return tokens[i][0] if 0 <= i < len(tokens) else ""
