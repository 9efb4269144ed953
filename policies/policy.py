"""A loaded policy: compiled conditions and templates, ready for `evaluate`. Immutable."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from jinja2 import Template

from connector.model import AddLabel, AssignGroup, AssignUser, EventKind, Priority, RemoveLabel, SetPriority

from .activation import PolicyReads
from .calendars import Calendar
from .conditions import Condition, scan_expression
from .mapping import PlatformMapping
from .problems import Problem
from .templates import template_reads
from .variables import FieldDef, zero_sample

# The event kinds a rule may name in `on:`. Derived from the model so SLA kinds (sla.warning, sla.breached,
# update.due) become valid as soon as the model declares them.
EVENT_KINDS: frozenset[str] = frozenset(kind.value for kind in EventKind)
MODES = ("raise_only", "enforce")
NEXT_TIER = "next"
TICKET_NOTE = "note"  # as a report target: an internal note on the ticket itself
# The SLA clocks, in the order timers are listed. update_every has no warnings and no breach: it reminds.
METRICS = ("first_response", "next_response", "update_every", "resolution")
# When a ticket's clocks start: when Escalator first sees it (default), or at its creation.
START_FIRST_SEEN, START_CREATED = "first_seen", "created"


@dataclass(frozen=True)
class Escalate:
    """Move the ticket up to `tier` (or `next`: one above the current); never down."""

    tier: str


@dataclass(frozen=True, eq=False)
class NoteTemplate:
    """An AddNote whose text is rendered at evaluation; `translations` holds one template per language
    (the default language's is `template`) when the policy gives several."""

    source: str
    template: Template
    internal: bool = True
    translations: Mapping[str, Template] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class NotifyTemplate:
    """A message to `channel`, one template per language; kind `report`: the post-incident report
    (its text, if any, is the introduction above it)."""

    channel: str
    translations: Mapping[str, Template]
    kind: str = "notice"


Step = (
    SetPriority | Escalate | AddLabel | RemoveLabel | AssignUser | AssignGroup | NoteTemplate | NotifyTemplate
)


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
class SlaTarget:
    """How long one clock may run for one priority, on `calendar` (None: the ticket's calendar)."""

    metric: str
    duration: timedelta
    calendar: str | None = None


@dataclass(frozen=True)
class CalendarChoice:
    """One `pick_calendar` entry: `calendar` when `when` holds (no condition: the default)."""

    calendar: str
    when: Condition | None = None


@dataclass(frozen=True)
class SlaPolicy:
    """The `sla` section: calendars, how a ticket's calendar is picked, targets, warnings, pauses."""

    calendars: Mapping[str, Calendar]
    pick: tuple[CalendarChoice, ...]
    targets: Mapping[Priority, Mapping[str, SlaTarget]]
    warn_at: tuple[int, ...] = ()
    pause_when: Condition | None = None
    start: str = START_FIRST_SEEN

    def target(self, priority: Priority | None, metric: str) -> SlaTarget | None:
        """The target of `metric` for `priority`; None when that priority has none."""
        return self.targets.get(priority, {}).get(metric) if priority is not None else None

    @property
    def default_calendar(self) -> str:
        """The calendar of the last `pick_calendar` entry (the one without a condition)."""
        return self.pick[-1].calendar

    def calendar(self, name: str) -> Calendar:
        """The calendar called `name`; the default one when `name` is unknown (e.g. after a reload)."""
        return self.calendars.get(name) or self.calendars[self.default_calendar]

    def calendar_of(self, target: SlaTarget, ticket_calendar: str) -> Calendar:
        """The calendar a target's clock runs on: its own, or the ticket's."""
        return self.calendar(target.calendar or ticket_calendar)


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
    warnings: tuple[Problem, ...] = ()  # what `policy check` warns about; the policy loads anyway
    sla: SlaPolicy | None = None  # None: the file has no `sla` section (no clocks, no timers)
    scope: Condition | None = None  # None: every ticket is governed
    default_language: str = "en"
    languages: tuple[str, ...] = ("en",)  # every language a text is given in (the default first)
    channels: Mapping[str, int] = field(default_factory=dict)  # each channel a rule notifies → its first line
    source: str = field(default="", repr=False, compare=False)  # the text that was loaded (its hash: sha256)
    # What the conditions of each place read: each converts only that to CEL (policies/activation.py).
    reads: PolicyReads = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", self._reads())

    def _reads(self) -> PolicyReads:
        """What each place that runs conditions reads: an event's evaluation runs the priority's
        conditions, pick_calendar's (the zone of its texts) and those of the rules `on` its kind."""
        sample = {
            **zero_sample(self.fields),
            "decision": {"priority": "", "impact": "", "urgency": "", "priority_from": ""},
        }
        always = self._priority_conditions() + self._calendar_conditions()
        kinds = {
            kind: always + [rule.when for rule in self.rules if kind in rule.on and rule.when is not None]
            for kind in EVENT_KINDS
        }
        scope = [self.scope] if self.scope is not None else []
        return PolicyReads.of(kinds, scope, self._clock_conditions(), sample)

    def kinds_reading(self, root: str) -> frozenset[str]:
        """The event kinds whose decision may read variable `root` (e.g. `last_reply`, which the
        worker remembers and a replay does not): in a rule's condition or texts, or anywhere in
        the priority conditions (every kind)."""
        if any(_reads(c, root) for c in self._priority_conditions()):
            return EVENT_KINDS
        kinds: set[str] = set()
        for rule in self.rules:
            texts = [t for step in rule.then for t in _templates(step)]
            if (rule.when is not None and _reads(rule.when, root)) or any(
                template_reads(t, root) for t in texts
            ):
                kinds |= rule.on
        return frozenset(kinds)

    def conditions(self) -> list[Condition]:
        """Every condition of the policy, wherever it sits."""
        found = self._priority_conditions() + [rule.when for rule in self.rules if rule.when is not None]
        found += self._clock_conditions()
        return found + ([self.scope] if self.scope is not None else [])

    def _priority_conditions(self) -> list[Condition]:
        """The conditions of the impact and urgency levels and of the raises, in that order."""
        prio = self.priority
        return [e.when for e in (*prio.impact, *prio.urgency, *prio.raises) if e.when is not None]

    def _calendar_conditions(self) -> list[Condition]:
        """The conditions of `pick_calendar`."""
        pick = self.sla.pick if self.sla is not None else ()
        return [choice.when for choice in pick if choice.when is not None]

    def _clock_conditions(self) -> list[Condition]:
        """What the SLA clocks run: `pick_calendar`'s conditions and the pause condition."""
        pause = self.sla.pause_when if self.sla is not None else None
        return self._calendar_conditions() + ([pause] if pause is not None else [])

    def channel_problems(self, configured: Collection[str]) -> list[Problem]:
        """The channels this policy notifies that the config does not have (FILE:LINE each)."""
        known = ", ".join(sorted(configured)) or "none configured"
        return [
            Problem(self.path, line, f"notify: channel '{name}' is not in the config's "
                    f"notifications.channels (configured: {known})")
            for name, line in self.channels.items() if name not in configured
        ]  # fmt: skip

    def summary(self) -> str:
        """One line for logs and `policy check`: name, version, sizes, platforms, SLA calendars."""
        platforms = ", ".join(self.platforms) or "none"
        sla = f", sla calendars: {', '.join(self.sla.calendars)}" if self.sla is not None else ""
        return (
            f"policy {self.name} v{self.version}: {len(self.rules)} rules, {len(self.tiers)} tiers, "
            f"platforms: {platforms}{sla}"
        )


def _reads(condition: Condition, root: str) -> bool:
    return any(path[0] == root for path in scan_expression(condition.source).paths)


def _templates(step: Step) -> list[Template]:
    if isinstance(step, NoteTemplate):
        return [step.template, *step.translations.values()]
    if isinstance(step, NotifyTemplate):
        return list(step.translations.values())
    return []
