"""What a policy check reports: one `Problem` per mistake, all of them at once in a `PolicyError`.

A problem is an error (the file must not be used) or a warning (it loads, but probably does not do what its
author meant: e.g. an SLA pause that can never end). `policy check` prints both and fails only on errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    """One mistake in a policy file, located by file and line (line 0: the file itself)."""

    path: str
    line: int
    message: str
    severity: str = ERROR  # ERROR or WARNING

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        label = "warning: " if self.severity == WARNING else ""
        where = f"{self.path}:{self.line}" if self.line else self.path  # line 0: the file itself
        return f"{where}: {label}{self.message}"


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """Only the problems that stop a policy from loading."""
    return [p for p in problems if p.is_error]


class PolicyError(Exception):
    """A policy file that must not be used; `problems` lists every mistake found (warnings included)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
