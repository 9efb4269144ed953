"""`escalator replay`: what a candidate policy would have done to the deliveries Escalator kept.

Every stored webhook delivery (the inbox keeps bodies for `inbox.retention_days`) is read again in
the order it arrived and judged by the worker's own pure judgement (connector/judgement.py) under
the candidate. The policy in force's side is what its audit record says was decided, where that
record provably equals judging it again (connector/replay_recorded.py); otherwise it is judged
again too. Each ticket carries its own memory (tier, pinned priority, requester) through its
deliveries, once per policy, as the worker would have kept it. Nothing is stored and nothing is
sent: the requests are only rendered, to be counted.

SLA timer events are not replayed: when they fire depends on the clocks each policy arms, which is
a different history, not a different decision. They are counted as skipped.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from connector.config import Config
from connector.judgement import judge
from connector.model import TicketEvent, TicketState
from connector.pipeline import counted_from_arrival
from connector.replay_recorded import Recorded, recall, recorded_decisions
from connector.runtime import Installation
from connector.store.db import make_engine
from connector.store.tables import inbox
from connector.store.tickets import StoredTicket
from connector.store.timers import TIMER_EVENT_PREFIX
from platforms.base import Delivery
from platforms.errors import PayloadError
from platforms.registry import PLATFORMS
from policies import Policy

_READ_BATCH = 1000


@dataclass(frozen=True)
class Verdict:
    """One delivery judged under one policy: what would have been decided and sent."""

    outcome: str  # "write", "no_change", "echo" or "no_mapping"
    rules: tuple[str, ...] = ()
    priority: str | None = None
    tier: str | None = None
    note: str | None = None
    requests: tuple[str, ...] = ()  # "METHOD purpose" of each rendered request
    notifications: int = 0

    def differs(self, other: Verdict) -> bool:
        return (self.priority, self.tier, self.note) != (other.priority, other.tier, other.note)


@dataclass
class Tally:
    """What one policy did over the whole replay."""

    outcomes: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    priorities: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    notifications: int = 0

    def merge(self, other: Tally) -> None:
        for name in ("outcomes", "rules", "priorities", "tiers", "requests"):
            getattr(self, name).update(getattr(other, name))
        self.notifications += other.notifications

    def add(self, verdict: Verdict) -> None:
        self.outcomes[verdict.outcome] += 1
        self.rules.update(verdict.rules)
        if verdict.outcome in ("write", "no_change"):
            self.priorities[verdict.priority or "-"] += 1
            self.tiers[verdict.tier or "-"] += 1
        self.requests.update(verdict.requests)
        self.notifications += verdict.notifications


@dataclass
class TicketChange:
    """A ticket whose priority, tier or notes would differ under the candidate."""

    platform: str
    ticket_id: str
    key: str | None
    deliveries: int = 0
    differing: int = 0
    first_delivery: str = ""
    first_at: datetime | None = None
    baseline: Verdict | None = None  # at the first difference
    candidate: Verdict | None = None
    final: tuple[tuple[str | None, str | None], tuple[str | None, str | None]] = ((None, None), (None, None))


@dataclass
class ReplayReport:
    baseline_policy: str
    candidate_policy: str
    since: datetime | None
    platform: str | None
    deliveries: int = 0  # replayed
    recorded: int = 0  # of them, the in-force side read from the audit log (the rest judged again)
    tickets: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    baseline: Tally = field(default_factory=Tally)
    candidate: Tally = field(default_factory=Tally)
    changed: list[TicketChange] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0


@dataclass
class _Memory:
    """What the worker would remember of one ticket under one policy (its SLA clocks only matter to
    timer events, which are not replayed)."""

    state: TicketState = field(default_factory=TicketState)
    requester_id: str | None = None
    priority: str | None = None  # after its last delivery


@dataclass
class _Ticket:
    key: str | None
    baseline: _Memory = field(default_factory=_Memory)
    candidate: _Memory = field(default_factory=_Memory)
    change: TicketChange | None = None
    deliveries: int = 0


class ReplayError(Exception):
    """The replay cannot run as asked; the message says why."""


def replay(
    engine: Engine,
    config: Config,
    baseline: Policy,
    candidate: Policy,
    *,
    since: datetime | None = None,
    platform: str | None = None,
    processes: int | None = None,
) -> ReplayReport:
    """Judge every stored delivery (from `since`, of `platform`) under both policies and compare.

    Tickets are independent, so with `processes` > 1 (default: one per core when there is enough
    to do) each process replays the tickets of its share of a stable hash, and the parts are summed.
    """
    if platform is not None and platform not in PLATFORMS:
        raise ReplayError(f"unknown platform '{platform}' (known: {', '.join(PLATFORMS)})")
    started = time.perf_counter()
    job = _Job(engine.url.render_as_string(hide_password=False), config, baseline, candidate, since, platform)
    if processes is None:
        processes = _processes_for(engine, since, platform)
    if processes <= 1:
        report = _replay_share(job, engine, 0, 1)
    else:
        report = _in_processes(job, processes)
    report.changed.sort(key=lambda c: (c.platform, c.key or c.ticket_id))
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class _Job:
    url: str
    config: Config
    baseline: Policy
    candidate: Policy
    since: datetime | None
    platform: str | None


_MIN_PER_PROCESS = 2000  # below this, starting processes costs more than it saves
_FORKED_JOB: _Job | None = None  # what a forked process replays (policies hold compiled CEL: not picklable)


def _processes_for(engine: Engine, since: datetime | None, platform: str | None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    query = select(func.count()).select_from(inbox)
    if since is not None:
        query = query.where(inbox.c.received_at >= since)
    if platform is not None:
        query = query.where(inbox.c.platform == platform)
    with engine.connect() as conn:
        rows = conn.execute(query).scalar_one()
    return max(1, min(cores, 8, rows // _MIN_PER_PROCESS))


def _in_processes(job: _Job, processes: int) -> ReplayReport:
    global _FORKED_JOB
    _FORKED_JOB = job
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            parts = list(pool.map(_forked_share, [(share, processes) for share in range(processes)]))
    finally:
        _FORKED_JOB = None
    report = parts[0]
    for part in parts[1:]:
        report.deliveries += part.deliveries
        report.recorded += part.recorded
        report.tickets += part.tickets
        report.skipped.update(part.skipped)
        report.baseline.merge(part.baseline)
        report.candidate.merge(part.candidate)
        report.changed += part.changed
    return report


def _forked_share(args: tuple[int, int]) -> ReplayReport:
    assert _FORKED_JOB is not None
    engine = make_engine(_FORKED_JOB.url)  # never the parent's pool: its connections are not ours
    try:
        return _replay_share(_FORKED_JOB, engine, *args)
    finally:
        engine.dispose()


def _replay_share(job: _Job, engine: Engine, share: int, shares: int) -> ReplayReport:
    """Replay the tickets whose stable hash falls in `share` of `shares`."""
    report = ReplayReport(job.baseline.summary(), job.candidate.summary(), job.since, job.platform)
    installations: dict[str, _Platform] = {}
    tickets: dict[tuple[str, str], _Ticket] = {}
    same_policy = job.baseline.sha256 == job.candidate.sha256
    reads_reply = job.baseline.kinds_reading("last_reply")
    for row, recorded in _deliveries(engine, job.since, job.platform, share, shares, not same_policy):
        if row.ignored:
            report.skipped["ignored event type"] += 1
            continue
        if row.delivery_id.startswith(TIMER_EVENT_PREFIX):
            report.skipped["SLA timer (not replayed)"] += 1
            continue
        target = installations.get(row.platform)
        if target is None:
            target = installations[row.platform] = _Platform(job.config, row.platform)
        try:
            event = target.installation.provider.normalise(
                orjson.loads(row.body), Delivery(row.delivery_id, row.event_type, row.ticket_id)
            )
        except (ValueError, PayloadError):
            report.skipped["unreadable payload"] += 1
            continue
        # As the worker reads it: an event far older than its arrival counts from its arrival.
        event = counted_from_arrival(event, row.received_at, job.config.inbox.max_delivery_delay_hours)
        key = (row.platform, event.ticket.ref.id)
        ticket = tickets.get(key)
        if ticket is None:
            ticket = tickets[key] = _Ticket(event.ticket.ref.key)
        ticket.deliveries += 1
        report.deliveries += 1
        old = target.recall(job.baseline, ticket.baseline, event, recorded, reads_reply) if recorded else None
        if old is not None:
            report.recorded += 1
        else:
            old = target.judge(job.baseline, ticket.baseline, event, row.received_at)
        # The same policy twice (no --policy) is judged once: equal inputs give equal outputs.
        new = old if same_policy else target.judge(job.candidate, ticket.candidate, event, row.received_at)
        report.baseline.add(old)
        report.candidate.add(new)
        if old.differs(new):
            change = ticket.change
            if change is None:
                change = ticket.change = TicketChange(row.platform, event.ticket.ref.id, ticket.key)
                change.first_delivery, change.first_at = row.delivery_id, row.received_at
                change.baseline, change.candidate = old, new
                report.changed.append(change)
            change.differing += 1
    for ticket in tickets.values():
        if ticket.change is not None:
            ticket.change.deliveries = ticket.deliveries
            old, new = ticket.baseline, ticket.candidate
            ticket.change.final = ((old.priority, old.state.tier), (new.priority, new.state.tier))
    report.tickets = len(tickets)
    return report


class _Platform:
    """One platform's provider, capabilities and renderer, set up once per replay."""

    def __init__(self, config: Config, key: str):
        settings = config.platform(key)
        if settings is None:  # deliveries kept from a platform no longer configured: placeholder URLs
            settings = PLATFORMS[key].settings(url=f"https://{key}.example.invalid")
        self.installation = Installation.of(key, settings)
        self.client = self.installation.client()
        self.capabilities = self.installation.capabilities
        self.own = self.client.own_account_id

    def judge(self, policy: Policy, memory: _Memory, event: TicketEvent, at: datetime) -> Verdict:
        if self.own and event.actor is not None and event.actor.id == self.own:
            return Verdict("echo")
        mapping = policy.platforms.get(self.installation.key)
        if mapping is None:
            return Verdict("no_mapping")
        stored = StoredTicket(memory.state, memory.requester_id)
        # SLA timer events are not replayed, and no decision on a webhook event reads the clocks.
        verdict = judge(policy, mapping, self.capabilities, stored, event, at, advance_clocks=False)
        decision, plan = verdict.decision, verdict.plan
        requests = () if plan.is_empty else tuple(f"{r.method} {r.purpose}" for r in self.client.render(plan))
        priority = decision.priority_after or verdict.event.ticket.priority
        memory.state = verdict.state
        memory.priority = priority.value if priority is not None else None
        requester = verdict.event.ticket.requester
        memory.requester_id = requester.id if requester else memory.requester_id
        return Verdict(
            "no_change" if plan.is_empty else "write",
            decision.rules,
            priority.value if priority is not None else None,
            verdict.state.tier,
            plan.note.text if plan.note is not None else None,
            requests,
            len(decision.notifications),
        )

    def recall(
        self,
        policy: Policy,
        memory: _Memory,
        event: TicketEvent,
        recorded: Recorded,
        reads_reply: frozenset[str],
    ) -> Verdict | None:
        """The recorded decision as a verdict, when it stands for judging `event` again (else None)."""
        if self.own and event.actor is not None and event.actor.id == self.own:
            return Verdict("echo")
        mapping = policy.platforms.get(self.installation.key)
        if mapping is None:
            return None
        state = recall(policy, mapping, recorded, memory.state, event, reads_reply)
        if state is None:
            return None
        memory.state = state
        memory.priority = recorded.priority_to
        requester = event.ticket.requester
        memory.requester_id = requester.id if requester else memory.requester_id
        return Verdict(
            "no_change" if recorded.outcome == "no_change" else "write",
            recorded.rules,
            recorded.priority_to,
            state.tier,
            recorded.note,
            recorded.requests,
            recorded.notifications,
        )


def _deliveries(
    engine: Engine, since: datetime | None, platform: str | None, share: int, shares: int, recalled: bool
) -> Iterator[tuple[Any, Recorded | None]]:
    """This share's stored deliveries in arrival order, each with what its audit record says was
    decided (when `recalled`): both read a page at a time, never a query per delivery."""
    with engine.connect() as conn:
        for page in _pages(conn, since, platform):
            if shares > 1:
                page = [
                    r for r in page if zlib.crc32(f"{r.platform}:{r.ticket_id}".encode()) % shares == share
                ]
            recorded: dict[tuple[str, str], Recorded] = {}
            if recalled and page:
                tickets = {(r.platform, r.ticket_id) for r in page if r.ticket_id}
                recorded = recorded_decisions(conn, tickets)
            for row in page:
                yield row, recorded.get((row.platform, row.delivery_id))


def _pages(conn: Connection, since: datetime | None, platform: str | None) -> Iterator[list[Any]]:
    """Stored deliveries in arrival order, read in keyset pages (the inbox may be large)."""
    columns = (
        inbox.c.id,
        inbox.c.platform,
        inbox.c.delivery_id,
        inbox.c.event_type,
        inbox.c.ticket_id,
        inbox.c.body,
        inbox.c.ignored,
        inbox.c.received_at,
    )
    after = 0
    while True:
        query = select(*columns).where(inbox.c.id > after).order_by(inbox.c.id).limit(_READ_BATCH)
        if since is not None:
            query = query.where(inbox.c.received_at >= since)
        if platform is not None:
            query = query.where(inbox.c.platform == platform)
        rows = conn.execute(query).all()
        yield rows
        if len(rows) < _READ_BATCH:
            return
        after = rows[-1].id
