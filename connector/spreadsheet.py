"""CSV cells a spreadsheet shows as text.

Escalator's CSVs (the console's reports, `escalator audit export --format csv`) are opened in
spreadsheets, and a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read there as
a formula: a label or an error message written by someone else, such as `=HYPERLINK("https://evil…")`,
would run on the compliance officer's machine. Such a text cell gets a leading apostrophe, as OWASP
advises (the spreadsheet hides it); numbers, and text that begins otherwise, are written as they are.
The JSON exports are the data as recorded.
"""

from __future__ import annotations

from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """`value` for a CSV cell: a text a spreadsheet would read as a formula, kept as text."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
