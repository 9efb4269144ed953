"""One claimed delivery, start to finish: normalise → echo? → evaluate → plan → apply → audit.

Deliveries are webhooks or fired SLA timers (time events, evaluated against the ticket's
last snapshot). The audit record, the ticket's memory and SLA clocks, its re-armed timers and
the inbox row's new status are written in one transaction, in a `finally`-like path, so every
outcome (failures included) is recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Connection

from connector import audit, handover, outbox, ratelimit, retarget
from connector.codec import after_plan
from connector.judgement import judge
from connector.minimise import mask_personal_data
from connector.model import (
    Decision,
    EventKind,
    SlaSignal,
    Ticket,
    TicketEvent,
    TicketState,
    action_to_dict,
)
from connector.plan import note_mark, with_note_mark
from connector.retry import backoff_seconds
from connector.runtime import Installation, Runtime
from connector.store import inbox, tickets, timers
from connector.store.db import database_unavailable, reading, writing
from connector.store.group_commit import Write
from connector.store.inbox import InboxItem
from platforms.base import CAP_LABELS, Delivery, OutboundRequest, SentRequest
from platforms.errors import (
    READER_FAILURES,
    ConflictError,
    NotConfigured,
    PayloadError,
    PlatformError,
    RejectedByPlatform,
    TransientPlatformError,
)
from policies import sla
from policies.sla import SlaState

log = logging.getLogger("escalator.pipeline")


@dataclasses.dataclass
class Outcome:
    """Everything the audit record says about one delivery, and what the store keeps of it."""

    outcome: str
    detail: str = ""
    event: TicketEvent | None = None
    decision: Decision | None = None
    planned: list[OutboundRequest] = dataclasses.field(default_factory=list)
    sent: list[SentRequest] = dataclasses.field(default_factory=list)
    retry_at: datetime | None = None
    state: TicketState | None = None
    snapshot: Ticket | None = None  # the ticket as it now stands, to keep for time events
    sla: SlaState | None = None  # the ticket's SLA clocks after this event
    rearm: SlaState | None = None  # a stale timer's ticket: its stored clocks, re-armed under today's policy
    recovered: list[OutboundRequest] = dataclasses.field(default_factory=list)  # found landed after a crash
    rank: int | None = None  # its place in the rate limiter's line, when it waits there ("deferred")
    confirmed: frozenset[str] | None = None  # requests the platform took, stored with the record
    windows: ratelimit.LeasedWindows | None = None  # the ticket's write windows, counted under its lease
    in_flight_kept: bool = False  # a note may have been taken (no answer, a 5xx, a crash): keep its mark


# A ticket that changes under us (Zendesk's 409) is read again and planned again this often.
MAX_CONFLICT_REREADS = 2
# The outcome of a delivery whose lease another worker took while this one worked on it.
TAKEN_OVER = "taken_over"


def process(rt: Runtime, item: InboxItem) -> str:
    """Handle one claimed inbox item; returns the audit outcome."""
    started = time.perf_counter()
    installation = rt.installations.get(item.platform)
    if item.lease_expiries >= rt.config.worker.max_lease_expiries:
        # Its worker died holding it this often: the delivery itself may be what kills it.
        detail = (
            f"its worker stopped {item.lease_expiries} times while handling it (the lease ran out); "
            "not tried again"
        )
        record_failure(rt, item, detail)
        rt.metrics.decisions.labels(item.platform, "failed").inc()
        return "failed"
    try:
        result = _decide_and_apply(rt, installation, item)
    except inbox.LeaseLost as exc:  # found before a note went out: the other worker sends it
        return _taken_over(rt, item, exc)
    except Exception as exc:  # a bug must not lose the event: record it, retry a few times, then fail
        if database_unavailable(rt.engine, exc):
            raise  # the database, not this delivery: given back when it answers (or its lease runs out)
        log.exception("unexpected error processing %s delivery %s", item.platform, item.delivery_id)
        detail = f"internal error: {type(exc).__name__}: {exc}"
        if item.attempts >= rt.config.worker.max_attempts_after_internal_error:
            result = Outcome("failed", detail=f"{detail} (gave up after {item.attempts} attempts)")
        else:
            result = Outcome("retrying", detail=detail)
            result.retry_at = rt.clock() + timedelta(seconds=_backoff(rt, item, None))
    try:
        _record(rt, item, result)
    except inbox.LeaseLost as exc:
        return _taken_over(rt, item, exc)
    except Exception as exc:  # the store refused what this delivery left: it alone ends, as failed
        if database_unavailable(rt.engine, exc):
            raise  # not this delivery's fault: its lease runs out and it is taken again
        result = _unrecordable(result, exc)
        try:
            record_failure(rt, item, result.detail)
        except inbox.LeaseLost as lost:  # refused because another worker has recorded it meanwhile
            return _taken_over(rt, item, lost)
        log.exception("could not record %s delivery %s", item.platform, item.delivery_id)
    elapsed = time.perf_counter() - started
    rt.metrics.decisions.labels(item.platform, result.outcome).inc()
    rt.metrics.processing_seconds.labels(item.platform).observe(elapsed)
    _log_decision(item, result, elapsed)
    return result.outcome


def _taken_over(rt: Runtime, item: InboxItem, lost: inbox.LeaseLost) -> str:
    """Nothing of this worker's result is stored: the row, the ticket and the audit are the other
    worker's to write. What it sent the platform stays sent (field changes are idempotent; a note is
    sent only after its in-flight mark, refused here once the row is no longer ours)."""
    log.warning("%s: this worker's result is dropped", lost)
    rt.metrics.decisions.labels(item.platform, TAKEN_OVER).inc()
    return TAKEN_OVER


def _log_decision(item: InboxItem, result: Outcome, elapsed: float) -> None:
    """One line per decision: what an on-call engineer greps for. Never a body or a secret."""
    event, decision = result.event, result.decision
    fields = {
        "platform": item.platform,
        "ticket": event.ticket.ref.key if event else item.ticket_id,
        "event": event.kind.value if event else item.event_type,
        "event_id": item.id,
        "outcome": result.outcome,
        "rules": list(decision.rules) if decision else [],
        "requests": len(result.sent),
        "planned": len(result.planned),
        "ms": round(elapsed * 1000, 1),
    }
    if result.outcome in ("failed", "retrying") and result.detail:
        fields["detail"] = result.detail[:300]
    log.log(logging.WARNING if result.outcome == "failed" else logging.INFO, "decision",
            extra={"fields": fields})  # fmt: skip


def _decide_and_apply(rt: Runtime, installation: Installation | None, item: InboxItem) -> Outcome:
    if installation is None:
        return Outcome("failed", detail=f"platform '{item.platform}' is no longer configured")
    if item.ignored:
        return Outcome("ignored", detail=f"event type '{item.event_type}' is not handled")

    policy = rt.policy.current
    if item.memory is not None:  # what the claim read with the ticket's lease
        stored = tickets.from_row(item.memory)
    elif item.ticket_id:
        with reading(rt.engine) as conn:
            stored = tickets.load(conn, item.platform, item.ticket_id)
    else:
        stored = None
    if item.delivery_id.startswith(timers.TIMER_EVENT_PREFIX):
        event, why_not = _timer_event(item, stored, policy)
        if event is None:
            # Its clock changed under it. If the policy did (a reload), the replacement timer was
            # never armed: keep the clocks so the record re-arms what the policy now wants.
            clocks = SlaState.from_json(stored.sla) if stored is not None and stored.sla else None
            return Outcome("ignored", detail=why_not, rearm=clocks)
    else:
        try:  # the same parser and reader as the webhook door, so what it admitted reads here
            payload = orjson.loads(item.body)
            event = installation.provider.normalise(
                payload, Delivery(item.delivery_id, item.event_type, item.ticket_id)
            )
        except (PayloadError, *READER_FAILURES) as exc:
            return Outcome("failed", detail=f"payload could not be read: {type(exc).__name__}: {exc}")
        event = counted_from_arrival(event, item.received_at, rt.config.inbox.max_delivery_delay_hours)

    client = installation.client()
    own = client.own_account_id
    if own and event.actor is not None and event.actor.id == own:
        return Outcome(
            "echo",
            detail="the change was made by Escalator's own account",
            event=event,
            snapshot=event.ticket,
        )

    mapping = policy.platforms.get(item.platform)
    if mapping is None:
        return Outcome(
            "failed", detail=f"policy '{policy.name}' has no 'platforms.{item.platform}' section", event=event
        )
    if stored is None:
        with reading(rt.engine) as conn:
            stored = tickets.load(conn, item.platform, event.ticket.ref.id)
    if event.ticket_partial:
        completed = _complete_ticket(rt, item, client, event, stored.snapshot)
        if isinstance(completed, Outcome):
            return completed
        event = completed
    elif event.comment is not None and event.ticket.requester is None and stored.requester_id is None:
        event = _learn_requester(rt, item, client, event)
    capabilities = installation.capabilities
    windows = _leased_windows(item, event)
    for rereads in range(MAX_CONFLICT_REREADS + 1):
        result = _decide(rt, installation, item, client, capabilities, mapping, stored, event, windows)
        if not isinstance(result, _Conflict):
            return result
        if rereads == MAX_CONFLICT_REREADS:
            break
        try:  # the ticket changed since the snapshot: read it again and plan from what it shows now
            event = dataclasses.replace(event, ticket=client.fetch(event.ticket.ref))
        except TransientPlatformError as exc:
            return _retrying(rt, item, exc, f"re-reading after a conflict: {exc}", result.outcome)
        except PlatformError as exc:
            return dataclasses.replace(
                result.outcome, outcome="failed", detail=f"re-reading after a conflict: {exc}"
            )
    return _retrying(rt, item, None, f"the ticket kept changing ({MAX_CONFLICT_REREADS + 1} conflicts)",
                     result.outcome)  # fmt: skip


def _leased_windows(item: InboxItem, event: TicketEvent) -> ratelimit.LeasedWindows | None:
    """The ticket's own write windows, when the claim leased this ticket and read them with it."""
    if item.memory is None or item.ticket_id != event.ticket.ref.id:
        return None
    return ratelimit.LeasedWindows(item.memory.write_windows)


def counted_from_arrival(event: TicketEvent, received_at: datetime | None, max_hours: float) -> TicketEvent:
    """A webhook arrives seconds after its change, or hours when the platform retried. One that says
    it happened far longer ago (a backfill, a recorded payload sent by hand) is counted from its
    arrival, with a note: otherwise a ticket first seen that way would start its SLA clocks in the
    past and breach at once."""
    said = event.occurred_at
    if said is None or received_at is None or said >= received_at - timedelta(hours=max_hours):
        return event
    note = (
        f"the event says it happened at {said.isoformat()}, more than {max_hours:g} h before it arrived "
        f"({received_at.isoformat()}): counted from its arrival"
    )
    return dataclasses.replace(event, occurred_at=received_at, notes=(*event.notes, note))


def _complete_ticket(rt: Runtime, item: InboxItem, client, event: TicketEvent,
                     snapshot: Ticket | None) -> TicketEvent | Outcome:  # fmt: skip
    """An event that names its ticket without carrying it (Jira Server's bare `comment_created`):
    the ticket as last seen, or, for a ticket never seen, one GET."""
    ticket = snapshot
    if ticket is None:
        try:
            ticket = client.fetch(event.ticket.ref)
        except TransientPlatformError as exc:
            rt.metrics.platform_requests.labels(item.platform, "GET", str(exc.status or "error")).inc()
            return _retrying(rt, item, exc, f"reading the ticket the event names: {exc}", Outcome("retrying"))
        except NotConfigured as exc:  # no credentials: nothing can be written either (dry run)
            note = f"the ticket was not read ({exc}): decided on the comment alone"
            return dataclasses.replace(event, ticket_partial=False, notes=(*event.notes, note))
        except PlatformError as exc:
            status = str(getattr(exc, "status", None) or "error")
            rt.metrics.platform_requests.labels(item.platform, "GET", status).inc()
            return Outcome("failed", detail=f"reading the ticket the event names: {exc}", event=event)
        rt.metrics.platform_requests.labels(item.platform, "GET", "200").inc()
    comment = event.comment
    if comment is not None and ticket.requester is not None:
        comment = dataclasses.replace(comment, by_requester=comment.author.id == ticket.requester.id)
    return dataclasses.replace(event, ticket=ticket, comment=comment, ticket_partial=False)


def _learn_requester(rt: Runtime, item: InboxItem, client, event: TicketEvent) -> TicketEvent:
    """A comment on a ticket never seen before, in a payload that omits the requester (Jira trims
    the issue): one GET tells whether the requester wrote it. Without it the comment is judged
    as not the requester's, which is what an unreadable ticket leaves us."""
    try:
        fresh = client.fetch(event.ticket.ref)
    except NotConfigured:
        return event
    except PlatformError as exc:
        status = getattr(exc, "status", None) or "error"
        rt.metrics.platform_requests.labels(item.platform, "GET", str(status)).inc()
        log.warning("could not read %s to learn its requester: %s", event.ticket.ref.key, exc)
        return event
    rt.metrics.platform_requests.labels(item.platform, "GET", "200").inc()
    if fresh.requester is None or event.comment is None:
        return event
    comment = dataclasses.replace(event.comment, by_requester=event.comment.author.id == fresh.requester.id)
    return dataclasses.replace(
        event, ticket=dataclasses.replace(event.ticket, requester=fresh.requester), comment=comment
    )


@dataclasses.dataclass
class _Conflict:
    """The platform refused the write because the ticket changed (ConflictError)."""

    outcome: Outcome


def _decide(rt, installation, item, client, capabilities, mapping, stored, event,
            windows) -> Outcome | _Conflict:  # fmt: skip
    verdict = judge(rt.policy.current, mapping, capabilities, stored, event, rt.clock())
    event, plan = verdict.event, verdict.plan
    if verdict.out_of_scope is not None:
        return Outcome("out_of_scope", detail=verdict.out_of_scope, event=event, decision=verdict.decision,
                       state=verdict.state, snapshot=event.ticket, sla=verdict.clocks)  # fmt: skip
    done = Outcome(
        "no_change", event=event, decision=verdict.decision, state=verdict.state, snapshot=event.ticket,
        sla=verdict.clocks,
    )  # fmt: skip
    if plan.is_empty:
        return done

    plan = with_note_mark(plan, item.platform, item.delivery_id)
    done.planned = client.render(plan)
    done.windows = windows
    if rt.dry_run or not installation.can_write:
        done.outcome = "dry_run"
        done.detail = "dry_run is on" if rt.dry_run else f"platforms.{item.platform} has no write credentials"
        return done
    if (waiting := _wait_for_rate_limit(rt, item, verdict.decision, plan, done)) is not None:
        return waiting
    try:
        result = _apply(rt, item, client, done)
    except ConflictError as exc:
        rt.metrics.platform_requests.labels(item.platform, done.planned[0].method, str(exc.status)).inc()
        return _Conflict(dataclasses.replace(done, outcome="retrying", detail=str(exc)))
    if result.outcome == "applied":
        result.snapshot = after_plan(event.ticket, plan, labels=CAP_LABELS in capabilities)
    return result


def _wait_for_rate_limit(rt: Runtime, item: InboxItem, decision, plan, done: Outcome) -> Outcome | None:
    """None when the platform's write limits grant the writes now; else the delivery waits in line."""
    rank = ratelimit.rank_of(decision, plan)
    ask = ratelimit.Ask(
        item.platform, plan.ticket.id, item.id, rank, item.received_at, len(done.planned), done.windows
    )
    now = rt.clock()
    wait = ratelimit.Limiter(rt.engine, rt.config.rate_limits).admit(ask, now)
    if wait is None:
        return None
    why = f"waiting for a {item.platform} write slot (rate limit, rank {rank}) until {wait.at.isoformat()}"
    return dataclasses.replace(done, outcome="deferred", detail=why, retry_at=wait.at, rank=wait.rank)


def _timer_event(item: InboxItem, stored, policy) -> tuple[TicketEvent | None, str]:
    """The time event a fired timer stands for, or None (and why) when it no longer applies."""
    if handover.is_handover(item):
        return handover.handover_event(item, stored, policy)
    fired = timers.FiredTimer.from_json(item.platform, item.ticket_id or "", json.loads(item.body)["timer"])
    if stored is None or stored.snapshot is None:
        return None, f"timer {fired.key} fired for a ticket Escalator has no snapshot of"
    armed = {t.key: t for t in sla.timers(policy, SlaState.from_json(stored.sla))}
    current = armed.get(fired.key)
    if current is None or current.due != fired.due:
        # An event processed before this one stopped, paused or re-armed the clock.
        return None, f"timer {fired.key} due {fired.due.isoformat()} is no longer armed (its clock changed)"
    signal = SlaSignal(
        metric=fired.metric,
        target=fired.target,
        due=fired.due,
        fired_at=fired.fired_at,
        percent=fired.percent,
        calendar=fired.calendar,
        late=fired.late,
    )
    kind = EventKind(fired.kind)
    return TicketEvent(
        kind, stored.snapshot, delivery_id=item.delivery_id, occurred_at=fired.fired_at, sla=signal
    ), ""


def _retrying(rt: Runtime, item: InboxItem, exc: TransientPlatformError | None, detail: str,
              base: Outcome) -> Outcome:  # fmt: skip
    retry_at = rt.clock() + timedelta(seconds=_backoff(rt, item, exc.retry_after if exc else None))
    return dataclasses.replace(base, outcome="retrying", detail=detail, retry_at=retry_at)


def _apply(rt: Runtime, item: InboxItem, client, done: Outcome) -> Outcome:
    """Send what the platform has not confirmed yet; ConflictError propagates (re-read, re-plan).

    What the platform confirmed is kept in the outcome and stored with its record, in the same
    transaction: a crash before that sends the idempotent requests again, the same writes. A note
    is not idempotent: it is marked in flight, durably, before it goes out (with what was confirmed
    so far), and after a crash the ticket is searched for it before it is sent again.
    """
    sent: list[SentRequest] = []
    confirmed = set(item.confirmed)  # requests the platform took before a retry or a crash
    result = dataclasses.replace(
        done, sent=sent, confirmed=frozenset(confirmed), in_flight_kept=item.in_flight is not None
    )
    mark = note_mark(item.platform, item.delivery_id)
    for request in done.planned:
        fingerprint = request_fingerprint(request)
        if fingerprint in confirmed:
            continue
        carries_note = mark in json.dumps(request.json) if request.json is not None else False
        try:
            if carries_note and item.in_flight is not None and _landed(client, result.event.ticket.ref, mark):
                # Sent before a crash (or a timeout) and taken by the platform: not sent again.
                result.recovered.append(request)
                confirmed.add(fingerprint)
                result.confirmed, result.in_flight_kept = frozenset(confirmed), False
                continue
            if carries_note:  # a note is not idempotent: say durably that it is going out
                inbox.record_in_flight(rt.engine, item, fingerprint, owner=rt.owner,
                                       confirmed=frozenset(confirmed), records=rt.records)  # fmt: skip
                result.in_flight_kept = True
            answer = client.send(request)
        except TransientPlatformError as exc:
            rt.metrics.platform_requests.labels(
                item.platform, request.method, str(exc.status or "error")
            ).inc()
            if exc.status == 429:  # the platform's own word on when to write again beats our estimate
                limiter = ratelimit.Limiter(rt.engine, rt.config.rate_limits)
                limiter.refused(item.platform, item.ticket_id, exc.retry_after, exc.limits, rt.clock(),
                                result.windows)  # fmt: skip
            if carries_note and exc.status in _NOT_TAKEN:  # refused before it was taken: not in flight
                result.in_flight_kept = False  # (a 5xx or no answer may come after it was taken: kept)
            return _retrying(rt, item, exc, str(exc), dataclasses.replace(result, state=None, sla=None))
        except RejectedByPlatform as exc:
            rt.metrics.platform_requests.labels(item.platform, request.method, str(exc.status)).inc()
            return dataclasses.replace(result, outcome="failed", detail=f"{exc.status}: {exc}", state=None,
                                       sla=None, snapshot=None)  # fmt: skip
        except NotConfigured as exc:
            return dataclasses.replace(done, outcome="dry_run", detail=str(exc))
        except ConflictError:
            raise
        except PlatformError as exc:  # neither transient nor the platform's answer (bad URL, redirect loop)
            rt.metrics.platform_requests.labels(item.platform, request.method, "error").inc()
            return dataclasses.replace(result, outcome="failed", detail=str(exc), state=None, sla=None,
                                       snapshot=None)  # fmt: skip
        rt.metrics.platform_requests.labels(item.platform, request.method, str(answer.status)).inc()
        if answer.limits is not None:
            limiter = ratelimit.Limiter(rt.engine, rt.config.rate_limits)
            limiter.observe(item.platform, item.ticket_id, answer.limits, rt.clock(), result.windows)
        sent.append(answer)
        confirmed.add(fingerprint)
        result.confirmed = frozenset(confirmed)
        if carries_note:
            result.in_flight_kept = False
    result.outcome = "applied"
    return result


def _backoff(rt: Runtime, item: InboxItem, retry_after: float | None) -> float:
    w = rt.config.worker
    return backoff_seconds(
        item.attempts, retry_after, initial=w.backoff_initial_seconds, maximum=w.backoff_max_seconds
    )


def _record(rt: Runtime, item: InboxItem, result: Outcome) -> None:
    """Audit record, ticket memory, SLA timers and the inbox row's status: one transaction (shared with
    the records of deliveries that finish meanwhile: connector/store/group_commit.py).

    Everything that is pure computation happens before the transaction: on SQLite the
    webhook intake waits for the same writer lock, so the lock is held only for the writes.
    """
    now = rt.clock()
    # The ticket's write windows, when this attempt counted in them under the ticket's lease.
    windows_counted = result.windows is not None and result.windows.changed
    windows = result.windows.to_json(now) if windows_counted else None
    if result.outcome == "deferred":  # waits for a write slot: not an attempt, nothing to audit yet

        def defer(conn: Connection) -> None:
            if windows_counted:  # an earlier round of this attempt wrote (a conflict, then the wait)
                tickets.save_write_windows(conn, item.platform, item.ticket_id, windows)
            inbox.defer(conn, item, owner=rt.owner, at=result.retry_at, rank=result.rank, why=result.detail)

        rt.records.write(Write(defer))
        return
    record = audit_record(rt, item, result)
    event = result.event
    remember = (
        result.state is not None
        and event is not None
        and result.outcome in ("applied", "no_change", "dry_run", "out_of_scope")
    )
    if remember:
        clocks = result.sla or SlaState.from_json(None)
        ticket_now = result.snapshot or event.ticket
        wanted_timers = (
            *sla.timers(rt.policy.current, clocks),
            *handover.wanted(rt.policy.current, item.platform, result.state.tier, ticket_now, clocks, now),
        )
        # The claim leased this ticket and read its memory (unless the delivery named no ticket):
        # the timers armed last time are known, and the memory's update frees the lease.
        claimed_with_it = item.memory is not None and item.ticket_id == event.ticket.ref.id
        armed = timers.digest(wanted_timers)
        rearm_timers = not claimed_with_it or (item.memory.sla or {}).get(timers.ARMED_KEY) != armed
    notices = outbox.planned(rt, item.delivery_id, result.outcome, event, result.decision)
    if notices:
        record["notifications"] = outbox.summary(notices)
    record_id = str(uuid.uuid4())
    error = mask_personal_data(result.detail) or None
    sent = {} if result.confirmed is None else {"confirmed": sorted(result.confirmed)}
    if not result.in_flight_kept:
        sent["in_flight"] = None
    released = rt.owner if remember and claimed_with_it else None
    if released is not None:
        sent["ticket_released"] = True
    fence: Callable[[], None]  # the inbox row's lease fence (stage sends it, seal reads it)

    # On PostgreSQL its statements go out together: a record is two round trips (three when the
    # ticket's timers are read first).
    def stage(conn: Connection) -> None:
        nonlocal fence
        existing = None
        if remember and rearm_timers:
            # A ticket whose memory holds no SLA state was never recorded, so no timer of it is armed.
            never_armed = claimed_with_it and item.memory.sla is None
            existing = {} if never_armed else timers.in_place(conn, item.platform, event.ticket.ref.id)
        outbox.queue(conn, notices, decision_id=record_id, now=now)  # with its decision, or not at all
        if remember:
            ticket = event.ticket
            tickets.save(
                conn, item.platform, ticket.ref.id, key=ticket.ref.key, state=result.state,
                priority=_priority_value(result.decision),
                requester_id=ticket.requester.id if ticket.requester else None, now=now,
                snapshot=result.snapshot, sla={**clocks.to_json(), timers.ARMED_KEY: armed},
                release_lease_of=released,
                write_windows=windows if windows_counted else tickets.UNCHANGED,
            )  # fmt: skip
            if existing is not None:  # else they are the ones armed last time: nothing to write
                timers.reconcile(conn, item.platform, ticket.ref.id, wanted_timers, now,
                                 existing=existing)  # fmt: skip
        elif result.outcome == "echo" and event is not None and result.snapshot is not None:
            tickets.save_snapshot(conn, item.platform, event.ticket.ref.id, result.snapshot, now)
        elif result.rearm is not None and item.ticket_id:  # rare: computed under the lock
            retarget.rearm(conn, rt.policy.current, item.platform, item.ticket_id, result.rearm, now)
        if windows_counted and not remember:  # writes went out, nothing else of the memory is saved
            tickets.save_write_windows(conn, item.platform, item.ticket_id, windows)
        # The lease fence's answer is read after the append's first read, with it (one round trip less
        # on PostgreSQL), and before the commit: a row no longer ours rolls everything back.
        if result.outcome == "retrying":
            fence = inbox.retry_later(conn, item, owner=rt.owner, at=result.retry_at, error=error or "",
                                      fence_later=True, **sent)  # fmt: skip
        else:
            status = {"ignored": inbox.IGNORED, "failed": inbox.FAILED}.get(result.outcome, inbox.DONE)
            fence = inbox.finish(conn, item, status=status, owner=rt.owner, now=now, error=error,
                                 fence_later=True, **sent)  # fmt: skip

    def seal(conn: Connection) -> None:
        # Last: appending locks the chain's head until the commit, so every other appender waits
        # only for this append, not for the rest of this transaction.
        audit.append(conn, record, at=now, keys=rt.audit_keys, record_id=record_id)
        fence()

    rt.records.write(Write(stage, seal))


def _unrecordable(result: Outcome, exc: BaseException) -> Outcome:
    """What is left to say about a delivery whose outcome the store could not keep."""
    what = describe_error(exc)
    if result.outcome == "applied":
        detail = f"applied to the platform, but the ticket's state could not be stored ({what})"
    else:
        detail = f"its outcome '{result.outcome}' could not be stored ({what})"
    return Outcome("failed", detail=detail, planned=result.planned, sent=result.sent)


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` of the error under SQLAlchemy's wrapper, whose own text repeats the statement's
    parameters (the very values the database refused, which may not even print)."""
    cause = getattr(exc, "orig", None) or exc
    try:
        text = str(cause)
    except Exception:  # e.g. RecursionError again, rendering a value nested too deep
        text = "(its message could not be rendered)"
    return f"{type(cause).__name__}: {text[:limit]}"


def record_failure(rt: Runtime, item: InboxItem, detail: str) -> None:
    """Close `item` as failed with `detail`: with an audit record when the store takes one, else
    the inbox row alone. Nothing of the event is stored, so nothing in it can be refused again."""
    detail = mask_personal_data(detail) or detail
    bare = Outcome("failed", detail=detail)
    try:
        record = audit_record(rt, item, bare)
        with writing(rt.engine) as conn:
            inbox.finish(conn, item, status=inbox.FAILED, owner=rt.owner, now=rt.clock(), error=detail)
            audit.append(conn, record, at=rt.clock())  # last: it holds the chain's head until the commit
        return
    except inbox.LeaseLost:
        raise
    except Exception as exc:
        if database_unavailable(rt.engine, exc):
            raise
        log.exception("could not audit the failure of %s delivery %s", item.platform, item.delivery_id)
    with writing(rt.engine) as conn:
        inbox.finish(conn, item, status=inbox.FAILED, owner=rt.owner, now=rt.clock(), error=detail)


# Answers that say the platform did not take the request (rate limited, too early, request timeout);
# a 5xx or no answer at all may come after it was taken, so those stay in flight and are looked for.
_NOT_TAKEN = frozenset({408, 425, 429})


def _landed(client, ref, mark: str) -> bool:
    """Whether the note marked `mark` is on the ticket. A refused look (no read permission on the
    comments or journal) sends the note again: a note twice is better than a note lost."""
    try:
        return client.note_landed(ref, mark)
    except (RejectedByPlatform, NotConfigured) as exc:
        log.warning("could not look for note %s on %s: %s; sending it", mark, ref.key or ref.id, exc)
        return False


def request_fingerprint(request: OutboundRequest) -> str:
    """Identity of a request: the same method, URL and body give the same fingerprint."""
    return hashlib.sha256(
        audit.canonical_json([request.method, request.url, request.json]).encode()
    ).hexdigest()


def _priority_value(decision: Decision | None) -> str | None:
    return decision.priority_after.value if decision and decision.priority_after else None


def _request_summary(request: OutboundRequest) -> dict[str, Any]:
    return {"method": request.method, "path": urlsplit(request.url).path, "purpose": request.purpose}


def audit_record(rt: Runtime, item: InboxItem, result: Outcome) -> dict[str, Any]:
    """The audit record: who/what/when/why, with personal data minimised."""
    policy = rt.policy.current
    event, decision = result.event, result.decision
    ticket = event.ticket if event else None
    record: dict[str, Any] = {
        "platform": item.platform,
        "ticket": {
            "id": ticket.ref.id if ticket else item.ticket_id,
            "key": ticket.ref.key if ticket else None,
            "url": ticket.ref.url if ticket else None,
        },
        "trigger": {
            "kind": event.kind.value if event else None,
            "event_type": item.event_type,
            "delivery_id": item.delivery_id,
            "received_at": item.received_at.isoformat() if item.received_at else None,
            "attempt": item.attempts,
        },
        "policy": {"name": policy.name, "version": policy.version, "sha256": policy.sha256},
        "rules": list(decision.rules) if decision else [],
        "reasons": list(decision.reasons) if decision else [],
        "inputs": _minimised_inputs(event) if event else {},
        "priority": {
            "from": decision.priority_before.value if decision and decision.priority_before else None,
            "to": _priority_value(decision),
            "why": decision.priority_why if decision else None,
        },
        "tier": {
            "from": decision.tier_before if decision else None,
            "to": decision.tier_after if decision else None,
        },
        "actions_planned": [action_to_dict(a) for a in decision.actions] if decision else [],
        "requests": [_request_summary(r) for r in result.planned],
        "actions_applied": [{**_request_summary(s.request), "status": s.status} for s in result.sent],
        "outcome": result.outcome,
        "dry_run": result.outcome == "dry_run",
        "detail": mask_personal_data(result.detail) or None,  # platforms' messages quote people
    }
    if event is not None and event.notes:
        record["reader_notes"] = list(event.notes)  # optional values the reader skipped
    if result.retry_at is not None:
        record["retry_at"] = result.retry_at.isoformat()
    if result.recovered:
        # Sent before a crash: its mark was found on the ticket, so it was not sent a second time.
        record["recovered"] = [_request_summary(r) for r in result.recovered]
    if event is not None and event.sla is not None:
        signal = event.sla
        record["sla"] = {
            "metric": signal.metric,
            "target_seconds": signal.target.total_seconds(),
            "calendar": signal.calendar,
            "percent": signal.percent,
            "due": signal.due.isoformat(),
            "fired_at": signal.fired_at.isoformat(),
            "late": signal.late,
            "late_by_seconds": round((signal.fired_at - signal.due).total_seconds(), 3),
        }
    return record


def _minimised_inputs(event: TicketEvent) -> dict[str, Any]:
    """What the decision read, without bodies; people are marked for the audit log to pseudonymise."""
    t = event.ticket
    inputs: dict[str, Any] = {
        "status": t.status.value,
        "priority": t.platform_priority,
        "labels": sorted(t.labels),
        "assignee": audit.person(t.ref.platform, t.assignee),
        "changed": sorted({c.field for c in event.changes}),
        "actor": audit.person(t.ref.platform, event.actor.id, event.actor.name) if event.actor else None,
    }
    if t.requester is not None:
        inputs["requester"] = {
            "id": audit.person(t.ref.platform, t.requester.id, t.requester.name),
            "tier": t.requester.tier or None,
            "region": t.requester.region or None,
        }
    if event.comment is not None:
        inputs["comment"] = {
            "by_requester": event.comment.by_requester,
            "public": event.comment.public,
            "chars": len(event.comment.text),
        }
    return inputs
