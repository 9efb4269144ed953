"""One claimed delivery, start to finish: normalise → echo? → evaluate → plan → apply → audit.

The audit record, the ticket state and the inbox row's new status are written in one
transaction, in a `finally`-like path, so every outcome (failures included) is recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from connector import audit
from connector.model import Decision, EventKind, Ticket, TicketEvent, TicketState, action_to_dict
from connector.plan import make_plan
from connector.retry import backoff_seconds
from connector.runtime import Installation, Runtime
from connector.store import inbox, tickets
from connector.store.db import writing
from connector.store.inbox import InboxItem
from platforms.base import Delivery, OutboundRequest, SentRequest
from platforms.errors import (
    NotConfigured,
    PayloadError,
    PlatformError,
    RejectedByPlatform,
    TransientPlatformError,
)
from policies import evaluate

log = logging.getLogger("escalator.pipeline")


@dataclasses.dataclass
class Outcome:
    """Everything the audit record says about one delivery."""

    outcome: str
    detail: str = ""
    event: TicketEvent | None = None
    decision: Decision | None = None
    planned: list[OutboundRequest] = dataclasses.field(default_factory=list)
    sent: list[SentRequest] = dataclasses.field(default_factory=list)
    retry_at: datetime | None = None
    state: TicketState | None = None


def process(rt: Runtime, item: InboxItem) -> str:
    """Handle one claimed inbox item; returns the audit outcome."""
    started = time.perf_counter()
    installation = rt.installations.get(item.platform)
    try:
        result = _decide_and_apply(rt, installation, item)
    except Exception as exc:  # a bug must not lose the event: record it, retry a few times, then fail
        log.exception("unexpected error processing %s delivery %s", item.platform, item.delivery_id)
        detail = f"internal error: {type(exc).__name__}: {exc}"
        if item.attempts >= rt.config.worker.max_attempts_after_internal_error:
            result = Outcome("failed", detail=f"{detail} (gave up after {item.attempts} attempts)")
        else:
            result = Outcome("retrying", detail=detail)
            result.retry_at = rt.clock() + timedelta(seconds=_backoff(rt, item, None))
    _record(rt, item, result)
    rt.metrics.decisions.labels(item.platform, result.outcome).inc()
    rt.metrics.processing_seconds.labels(item.platform).observe(time.perf_counter() - started)
    return result.outcome


def _decide_and_apply(rt: Runtime, installation: Installation | None, item: InboxItem) -> Outcome:
    if installation is None:
        return Outcome("failed", detail=f"platform '{item.platform}' is no longer configured")
    if item.ignored:
        return Outcome("ignored", detail=f"event type '{item.event_type}' is not handled")
    try:
        payload = json.loads(item.body)
        event = installation.provider.normalise(
            payload, Delivery(item.delivery_id, item.event_type, item.ticket_id)
        )
    except (ValueError, PayloadError) as exc:
        return Outcome("failed", detail=f"payload could not be read: {exc}")

    client = installation.client()
    own = getattr(client, "own_account_id", None)
    if own and event.actor is not None and event.actor.id == own:
        return Outcome("echo", detail="the change was made by Escalator's own account", event=event)

    policy = rt.policy.current
    mapping = policy.platforms.get(item.platform)
    if mapping is None:
        return Outcome(
            "failed", detail=f"policy '{policy.name}' has no 'platforms.{item.platform}' section", event=event
        )

    with rt.engine.connect() as conn:
        stored = tickets.load(conn, item.platform, event.ticket.ref.id)
    event = _enrich(event, mapping, stored.requester_id)
    state = stored.state
    if state.tier is None:
        state = dataclasses.replace(state, tier=mapping.tier_of(event.ticket))
    if _person_set_priority(event) and not state.priority_pinned:
        # A person chose this priority; raise_only leaves it alone from now on.
        state = dataclasses.replace(state, priority_pinned=True)

    decision = evaluate(policy, event, state, rt.clock())
    state = dataclasses.replace(state, tier=decision.tier_after or state.tier)
    plan = make_plan(decision, event.ticket, mapping, installation.provider.capabilities)
    if plan.is_empty:
        return Outcome("no_change", event=event, decision=decision, state=state)

    planned = client.render(plan)
    if rt.dry_run or not installation.can_write:
        why = "dry_run is on" if rt.dry_run else f"platforms.{item.platform} has no write credentials"
        return Outcome("dry_run", detail=why, event=event, decision=decision, planned=planned, state=state)
    return _apply(rt, item, client, event, decision, planned, state)


def _apply(rt, item, client, event, decision, planned, state) -> Outcome:
    sent: list[SentRequest] = []
    confirmed = set(item.confirmed)  # requests the platform took before a retry or a crash
    for request in planned:
        fingerprint = request_fingerprint(request)
        if fingerprint in confirmed:
            continue
        try:
            answer = client.send(request)
        except TransientPlatformError as exc:
            rt.metrics.platform_requests.labels(
                item.platform, request.method, str(exc.status or "error")
            ).inc()
            retry_at = rt.clock() + timedelta(seconds=_backoff(rt, item, exc.retry_after))
            return Outcome("retrying", detail=str(exc), event=event, decision=decision, planned=planned,
                           sent=sent, retry_at=retry_at)  # fmt: skip
        except RejectedByPlatform as exc:
            rt.metrics.platform_requests.labels(item.platform, request.method, str(exc.status)).inc()
            return Outcome("failed", detail=f"{exc.status}: {exc}", event=event, decision=decision,
                           planned=planned, sent=sent)  # fmt: skip
        except NotConfigured as exc:
            return Outcome(
                "dry_run", detail=str(exc), event=event, decision=decision, planned=planned, state=state
            )
        except PlatformError as exc:  # neither transient nor the platform's answer (bad URL, redirect loop)
            rt.metrics.platform_requests.labels(item.platform, request.method, "error").inc()
            return Outcome(
                "failed", detail=str(exc), event=event, decision=decision, planned=planned, sent=sent
            )
        rt.metrics.platform_requests.labels(item.platform, request.method, str(answer.status)).inc()
        sent.append(answer)
        confirmed.add(fingerprint)
        inbox.record_confirmed(rt.engine, item, frozenset(confirmed))
    return Outcome("applied", event=event, decision=decision, planned=planned, sent=sent, state=state)


def _person_set_priority(event: TicketEvent) -> bool:
    # A creation changelog lists every initial value; only a later edit is someone's choice.
    return event.kind is not EventKind.TICKET_CREATED and event.changed("priority") is not None


def _backoff(rt: Runtime, item: InboxItem, retry_after: float | None) -> float:
    w = rt.config.worker
    return backoff_seconds(
        item.attempts, retry_after, initial=w.backoff_initial_seconds, maximum=w.backoff_max_seconds
    )


def _enrich(event: TicketEvent, mapping: Any, known_requester: str | None) -> TicketEvent:
    """Fill what the payload leaves to the policy (P-level) or to memory (the requester)."""
    ticket: Ticket = event.ticket
    ticket = dataclasses.replace(ticket, priority=mapping.priority_of(ticket.platform_priority))
    comment = event.comment
    if ticket.requester is None and known_requester and comment is not None:
        comment = dataclasses.replace(comment, by_requester=comment.author.id == known_requester)
    return dataclasses.replace(event, ticket=ticket, comment=comment)


def _record(rt: Runtime, item: InboxItem, result: Outcome) -> None:
    now = rt.clock()
    with writing(rt.engine) as conn:
        audit.append(conn, audit_record(rt, item, result), at=now)
        event = result.event
        if (
            result.state is not None
            and event is not None
            and result.outcome in ("applied", "no_change", "dry_run")
        ):
            ticket = event.ticket
            tickets.save(
                conn, item.platform, ticket.ref.id, key=ticket.ref.key, state=result.state,
                priority=_priority_value(result.decision),
                requester_id=ticket.requester.id if ticket.requester else None, now=now,
            )  # fmt: skip
        if result.outcome == "retrying":
            inbox.retry_later(conn, item, owner=rt.owner, at=result.retry_at, error=result.detail)
        else:
            status = {"ignored": inbox.IGNORED, "failed": inbox.FAILED}.get(result.outcome, inbox.DONE)
            inbox.finish(conn, item, status=status, owner=rt.owner, now=now, error=result.detail or None)


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
        "detail": result.detail or None,
    }
    if result.retry_at is not None:
        record["retry_at"] = result.retry_at.isoformat()
    return record


def _minimised_inputs(event: TicketEvent) -> dict[str, Any]:
    """What the decision read, without bodies or personal data (ids and e-mails pseudonymised)."""
    t = event.ticket
    inputs: dict[str, Any] = {
        "status": t.status.value,
        "priority": t.platform_priority,
        "labels": sorted(t.labels),
        "assignee": audit.pseudonym(t.assignee),
        "changed": sorted({c.field for c in event.changes}),
        "actor": audit.pseudonym(event.actor.id) if event.actor else None,
    }
    if t.requester is not None:
        inputs["requester"] = {
            "id": audit.pseudonym(t.requester.id),
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
