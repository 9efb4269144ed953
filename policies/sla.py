"""SLA clock bookkeeping, pure: (policy, state, event, priority, now) → the next state; state → timers.

The state keeps facts, not deadlines: when each clock started, stopped, warned or breached, and when the
ticket was paused. Targets come from the policy each time timers are computed, so a priority change (or a
new policy) re-targets every running clock from its own start, as the platforms do: a P3 raised to P1 is
measured against the P1 target from the ticket's start, and may be breached at once.

Clocks all start at the ticket's start: the moment Escalator first saw the ticket (its first event), or,
with `sla.start: created`, the ticket's creation (`Ticket.created_at`, when the payload gives it). A ticket
first seen years after it was opened is measured from go-live, not from its birth. A public reply by
someone other than the requester that the first payload already shows (`Ticket.first_reply_at`) has
given the first response.
- `first_response` stops at the first public comment not written by the requester.
- `next_response` starts at a requester comment once the first response was given (a later requester
  comment keeps the earlier start) and stops at the next public agent reply.
- `update_every` restarts at every public agent reply and every reminder it fires (`update.due`).
- `resolution` stops when the ticket is resolved or closed; reopened, it resumes with the time it had left.
A resolved or closed ticket stops every clock. While `pause_when` holds (and while a ticket is resolved),
no clock runs; a clock resumes with the time it had left.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import cel

from connector.model import EventKind, Priority, Reply, Status, TicketEvent

from .calendars import Pause, due_at, utc
from .policy import METRICS, START_CREATED, Policy, SlaPolicy
from .variables import excerpt, ticket_variables

__all__ = ["METRICS", "Clock", "Reply", "SlaState", "Timer", "advance", "current_timer", "excerpt", "timers"]

_FINAL = (Status.RESOLVED, Status.CLOSED)
BREACH = 100


@dataclass(frozen=True)
class Timer:
    """One timer that should be armed for a ticket."""

    metric: str
    kind: EventKind  # SLA_WARNING | SLA_BREACHED | UPDATE_DUE
    percent: int  # the warn_at share for a warning, 100 for a breach or an update reminder
    due: datetime  # aware UTC
    target: timedelta
    calendar: str

    @property
    def key(self) -> str:
        """Stable per ticket: the same timer re-armed with another due instant keeps its key."""
        return timer_key(self.metric, self.kind, self.percent)


@functools.lru_cache(maxsize=256)  # a policy has a handful (metrics × warnings); a decision asks often
def timer_key(metric: str, kind: EventKind, percent: int) -> str:
    return f"{metric}:{kind.value}:{percent}"


@dataclass(frozen=True)
class Clock:
    """One SLA clock of one ticket: facts only (targets come from the policy)."""

    started_at: datetime
    stopped_at: datetime | None = None
    breached: bool = False
    warned: frozenset[int] = frozenset()  # warn_at percentages already fired (or passed when re-targeted)
    due: datetime | None = None  # a breached clock: the instant it breached (the SLA board sorts by it)

    @property
    def running(self) -> bool:
        return self.stopped_at is None and not self.breached

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
            "breached": self.breached,
            "warned": sorted(self.warned),
            **({"due": _iso(self.due)} if self.due is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Clock:
        return cls(
            started_at=_at(data["started_at"]),
            stopped_at=_at(data.get("stopped_at")),
            breached=bool(data.get("breached", False)),
            warned=frozenset(int(p) for p in data.get("warned", ())),
            due=_at(data.get("due")),
        )


@dataclass(frozen=True)
class SlaState:
    """Everything remembered about one ticket's clocks between events; `to_json` / `from_json` round-trip."""

    started_at: datetime | None = None  # the ticket's start; None: no event seen yet
    priority: Priority | None = None  # the priority the clocks are measured against
    calendar: str = ""  # the calendar `pick_calendar` chose for the ticket
    clocks: Mapping[str, Clock] = field(default_factory=lambda: MappingProxyType({}))
    pauses: tuple[tuple[datetime, datetime], ...] = ()  # ended pauses, in time order
    paused_since: datetime | None = None  # paused now (pause_when holds)
    resolved_at: datetime | None = None  # resolved or closed now
    seen_at: datetime | None = None  # the last event's instant: time never runs backwards
    last_reply: Reply | None = None  # the last public comment (a handover's note summarises it)

    @property
    def paused(self) -> bool:
        return self.paused_since is not None or self.resolved_at is not None

    def all_pauses(self) -> tuple[Pause, ...]:
        """Ended pauses, then the current one (resolved counts as paused) with no end."""
        since = self.paused_since or self.resolved_at
        return (*self.pauses, (since, None)) if since is not None else self.pauses

    def to_json(self) -> dict[str, Any]:
        if self.started_at is None:
            return {}
        return {
            "started_at": _iso(self.started_at),
            "priority": self.priority.value if self.priority else None,
            "calendar": self.calendar,
            "clocks": {m: c.to_json() for m, c in self.clocks.items()},
            "pauses": [[_iso(a), _iso(b)] for a, b in self.pauses],
            "paused_since": _iso(self.paused_since),
            "resolved_at": _iso(self.resolved_at),
            "seen_at": _iso(self.seen_at),
            **({"last_reply": self.last_reply.to_json()} if self.last_reply is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SlaState:
        """None, {} or no start (a ticket no event has started clocks for, whose stored state may
        still carry the armed timers' digest beside) → the empty state."""
        if not data or data.get("started_at") is None:
            return cls()
        return cls(
            started_at=_at(data["started_at"]),
            priority=Priority(data["priority"]) if data.get("priority") else None,
            calendar=data.get("calendar", ""),
            clocks=MappingProxyType({m: Clock.from_json(c) for m, c in data.get("clocks", {}).items()}),
            pauses=tuple((_at(a), _at(b)) for a, b in data.get("pauses", ())),
            paused_since=_at(data.get("paused_since")),
            resolved_at=_at(data.get("resolved_at")),
            seen_at=_at(data.get("seen_at")),
            last_reply=Reply.from_json(data.get("last_reply")),
        )


def advance(
    policy: Policy, state: SlaState, event: TicketEvent, priority: Priority | None, now: datetime
) -> SlaState:
    """The clocks after `event`; `priority` is the ticket's priority after the policy's decision."""
    sla = policy.sla
    if sla is None:
        return state
    now = utc(now)
    at = min(utc(event.occurred_at), now) if event.occurred_at is not None else now
    if state.seen_at is not None:
        at = max(at, state.seen_at)
    ticket = event.ticket
    before = state
    if state.started_at is None:
        start = at
        if sla.start == START_CREATED and ticket.created_at is not None:
            start = min(utc(ticket.created_at), at)
        first = Clock(start)
        if ticket.first_reply_at is not None:  # answered before Escalator saw it
            first = replace(first, stopped_at=max(start, min(utc(ticket.first_reply_at), at)))
        state = SlaState(
            started_at=start,
            clocks=MappingProxyType(
                {"first_response": first, "update_every": Clock(start), "resolution": Clock(start)}
            ),
        )
    clocks = dict(state.clocks)
    variables = _clock_variables(policy, event)

    # time events: what fired is remembered, so it is not armed again
    signal = event.sla
    if signal is not None and signal.metric in clocks:
        clock = clocks[signal.metric]
        if event.kind is EventKind.SLA_WARNING:
            clocks[signal.metric] = replace(clock, warned=clock.warned | {signal.percent})
        elif event.kind is EventKind.SLA_BREACHED:
            clocks[signal.metric] = replace(clock, breached=True, due=utc(signal.due))
        elif event.kind is EventKind.UPDATE_DUE and clock.running:
            clocks["update_every"] = Clock(_next_reminder_start(sla, state, signal.due, now))

    # resolution stops every clock; reopening resumes resolution and restarts the update reminders
    resolved_at = state.resolved_at
    pauses = list(state.pauses)
    if ticket.status in _FINAL and resolved_at is None:
        resolved_at = at
        clocks = {m: c if c.stopped_at else replace(c, stopped_at=at) for m, c in clocks.items()}
    elif ticket.status not in _FINAL and resolved_at is not None:
        pauses.append((resolved_at, at))
        if "resolution" in clocks:
            clocks["resolution"] = replace(clocks["resolution"], stopped_at=None)
        clocks["update_every"] = Clock(at)
        resolved_at = None

    # comments
    comment = event.comment
    last_reply = state.last_reply
    if comment is not None and comment.public:
        last_reply = Reply(at, comment.by_requester, comment.author.name, excerpt(comment.text))
    if comment is not None and resolved_at is None:
        if comment.public and not comment.by_requester:
            for metric in ("first_response", "next_response"):
                if metric in clocks and clocks[metric].stopped_at is None:
                    clocks[metric] = replace(clocks[metric], stopped_at=at)
            clocks["update_every"] = Clock(at)
        elif comment.by_requester:
            first, nxt = clocks.get("first_response"), clocks.get("next_response")
            if (first is None or first.stopped_at is not None) and (
                nxt is None or nxt.stopped_at is not None
            ):
                clocks["next_response"] = Clock(at)

    # pauses: pause_when on the ticket as it is now (a resolved ticket is stopped, not paused)
    paused_since = state.paused_since
    pause = resolved_at is None and sla.pause_when is not None and _holds(sla.pause_when.program, variables)
    if pause and paused_since is None:
        paused_since = at
    elif not pause and paused_since is not None:
        pauses.append((paused_since, at))
        paused_since = None

    calendar = _pick_calendar(sla, variables)
    after = SlaState(
        started_at=state.started_at,
        priority=priority,
        calendar=calendar,
        clocks=MappingProxyType(dict(sorted(clocks.items(), key=lambda item: _order(item[0])))),
        pauses=tuple((a, b) for a, b in pauses if b > a),
        paused_since=paused_since,
        resolved_at=resolved_at,
        seen_at=at,
        last_reply=last_reply,
    )
    if (before.priority, before.calendar) != (priority, calendar):
        after = _skip_passed_warnings(sla, after, now)
    return after


def timers(policy: Policy, state: SlaState) -> tuple[Timer, ...]:
    """Every timer that should be armed now, past-due ones included; none for stopped, paused or breached
    clocks (a warning or breach already due before a pause began stays armed). Sorted by due, then key."""
    sla = policy.sla
    if sla is None or state.started_at is None:
        return ()
    pauses = state.all_pauses()
    out: list[Timer] = []
    for metric in METRICS:
        clock = state.clocks.get(metric)
        target = sla.target(state.priority, metric)
        if clock is None or target is None or not clock.running:
            continue
        calendar = sla.calendar_of(target, state.calendar)
        shares: list[tuple[EventKind, int]]
        if metric == "update_every":
            shares = [(EventKind.UPDATE_DUE, BREACH)]
        else:
            warnings = [(EventKind.SLA_WARNING, p) for p in sla.warn_at if p not in clock.warned]
            shares = [*warnings, (EventKind.SLA_BREACHED, BREACH)]
        for kind, percent in shares:
            due = due_at(calendar, clock.started_at, share(target.duration, percent), pauses)
            if due is not None:
                out.append(Timer(metric, kind, percent, due, target.duration, calendar.name))
    return tuple(sorted(out, key=lambda t: (t.due, t.key)))


def retarget(
    policy: Policy, state: SlaState, now: datetime, in_place: Mapping[str, datetime] = MappingProxyType({})
) -> SlaState:
    """The clocks of `state` (advanced under some earlier policy) as `policy` measures them.

    A warning whose instant under the new targets has already passed is marked sent, so a reload
    that tightens a target sends the breach, not a burst of late warnings; unless `in_place`
    (key → due of the ticket's timers, fired or not) holds that very instant: its target did not
    move, and it is due or queued as usual. `timers(policy, …)` of the result is what to arm."""
    if policy.sla is None or state.started_at is None:
        return state
    return _skip_passed_warnings(policy.sla, state, utc(now), in_place)


def current_timer(policy: Policy, state: SlaState, key: str) -> Timer | None:
    """The timer armed under `key` in `state`, or None: a fired timer that is no longer armed is stale."""
    return next((t for t in timers(policy, state) if t.key == key), None)


def share(target: timedelta, percent: int) -> timedelta:
    """`percent` of `target`, to the whole second (75 % of 15m is 11m 15s)."""
    return timedelta(seconds=int(target.total_seconds()) * percent // 100)


# --- helpers ------------------------------------------------------------------------------------------


def _next_reminder_start(sla: SlaPolicy, state: SlaState, due: datetime, now: datetime) -> datetime:
    """The next reminder counts from the one that fired; when that is already past (the connector was
    down), from now, so a backlog gives one reminder, not one per missed interval."""
    target = sla.target(state.priority, "update_every")
    if target is None:
        return now
    calendar = sla.calendar_of(target, state.calendar)
    due = utc(due)
    return due if calendar.add(due, target.duration) > now else now


def _skip_passed_warnings(
    sla: SlaPolicy, state: SlaState, now: datetime, in_place: Mapping[str, datetime] = MappingProxyType({})
) -> SlaState:
    """After a re-target, warnings whose new instant has already passed are not sent (the breach is),
    except one `in_place` at that same instant (see `retarget`)."""
    if state.priority is None or not sla.warn_at:
        return state
    pauses = state.all_pauses()
    clocks = dict(state.clocks)
    for metric, clock in clocks.items():
        target = sla.target(state.priority, metric)
        if target is None or not clock.running or metric == "update_every":
            continue
        calendar = sla.calendar_of(target, state.calendar)
        passed = {
            p
            for p in sla.warn_at
            if p not in clock.warned
            and (due := due_at(calendar, clock.started_at, share(target.duration, p), pauses)) is not None
            and due <= now
            and in_place.get(timer_key(metric, EventKind.SLA_WARNING, p)) != due
        }
        if passed:
            clocks[metric] = replace(clock, warned=clock.warned | passed)
    return replace(state, clocks=MappingProxyType(clocks))


def _clock_variables(policy: Policy, event: TicketEvent) -> cel.Context | None:
    sla = policy.sla
    if sla is None or (sla.pause_when is None and all(c.when is None for c in sla.pick)):
        return None
    mapping = policy.platforms.get(event.ticket.ref.platform)
    ticket = ticket_variables(event, "", policy.fields, mapping.fields if mapping else {})
    del ticket["tier"]  # the clocks do not know the tier; the loader refuses conditions reading it
    return policy.reads.clocks.context({"ticket": ticket})


def _pick_calendar(sla: SlaPolicy, variables: cel.Context | None) -> str:
    for choice in sla.pick:
        if choice.when is None or (variables is not None and _holds(choice.when.program, variables)):
            return choice.calendar
    return sla.default_calendar


def _holds(program: cel.Program, variables: cel.Context | None) -> bool:
    """A clock condition's result; one that cannot be evaluated on this ticket counts as false."""
    if variables is None:
        return False
    try:
        return program.execute(variables) is True
    except (LookupError, ArithmeticError, TypeError, ValueError, RuntimeError):
        return False


def _order(metric: str) -> int:
    return METRICS.index(metric) if metric in METRICS else len(METRICS)  # e.g. a state from a newer version


def _iso(at: datetime | None) -> str | None:
    return utc(at).isoformat() if at is not None else None


def _at(text: str | None) -> Any:
    return utc(datetime.fromisoformat(text)) if text else None
