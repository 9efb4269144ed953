"""A loaded policy: compiled conditions and templates, ready for `evaluate`. Immutable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import Template

from connector.model import AddLabel, AssignGroup, AssignUser, EventKind, Priority, RemoveLabel, SetPriority

from .conditions import Condition
from .mapping import PlatformMapping
from .variables import FieldDef

# The event kinds a rule may name in `on:`. Derived from the model so SLA kinds (sla.warning, sla.breached,
# update.due) become valid as soon as the model declares them.
EVENT_KINDS: frozenset[str] = frozenset(kind.value for kind in EventKind)
MODES = ("raise_only", "enforce")
NEXT_TIER = "next"


@dataclass(frozen=True)
class Escalate:
    """Move the ticket up to `tier` (or `next`: one above the current); never down."""

    tier: str


@dataclass(frozen=True, eq=False)
class NoteTemplate:
    """An AddNote whose text is rendered at evaluation."""

    source: str
    template: Template
    internal: bool = True


Step = SetPriority | Escalate | AddLabel | RemoveLabel | AssignUser | AssignGroup | NoteTemplate


@dataclass(frozen=True)
class Level:
    """One impact / urgency entry: `level` when `when` holds (no condition: the default)."""

    level: str
    when: Condition | None


@dataclass(frozen=True)
class Raise:
    when: Condition
    by: int
    why: str


@dataclass(frozen=True)
class PriorityRules:
    matrix: Mapping[str, Mapping[str, Priority]]
    impact: tuple[Level, ...]
    urgency: tuple[Level, ...]
    raises: tuple[Raise, ...]


@dataclass(frozen=True)
class Rule:
    name: str
    on: frozenset[str]
    when: Condition | None
    then: tuple[Step, ...]
    stop: bool = False
    description: str = ""


@dataclass(frozen=True)
class Policy:
    """A policy file that loaded without problems."""

    name: str
    version: int | str
    sha256: str
    path: str
    tiers: tuple[str, ...]
    mode: str
    priority: PriorityRules
    rules: tuple[Rule, ...]
    platforms: Mapping[str, PlatformMapping]
    fields: tuple[FieldDef, ...] = ()
    description: str = ""

    def summary(self) -> str:
        """One line for logs and `policy check`: name, version, sizes, platforms."""
        platforms = ", ".join(self.platforms) or "none"
        return (
            f"policy {self.name} v{self.version}: {len(self.rules)} rules, {len(self.tiers)} tiers, "
            f"platforms: {platforms}"
        )
