"""Notifications: queued with the decision that asked for them, sent by a loop of their own.

    pipeline._record ─ same transaction as the audit record ─▶ outbox rows (pending)
    OutboxSender: due rows ─▶ channel.send ─▶ audit record of the send + the row's new status

A message is queued once per delivery and channel (the same decision processed twice queues it once),
kept across restarts, retried with backoff no sooner than the channel's Retry-After, and recorded as
failed with the channel's answer when the channel refuses it or keeps failing for
`notifications.give_up_after_hours`. Sending never touches the ticket's write: a dead channel holds up
nothing but its own messages. Each ticket has one thread per channel (Slack's ts, the first e-mail's
Message-ID), remembered when its first message goes out.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from channels import Message, Receipt, RejectedByChannel, TransientChannelError
from channels.errors import ChannelError
from channels.message import INSTANT_FORMAT
from channels.registry import CHANNEL_TYPES, TICKET_NOTE, Channel, make_channel
from connector import audit
from connector.errors import first_line
from connector.lease_keeper import Held
from connector.model import Decision, Note, Plan, TicketEvent, TicketRef
from connector.retry import Stranded, backoff_seconds
from connector.runtime import Runtime
from connector.store import outbox as store
from connector.store.db import database_unavailable, log_round_failed, pipelined_writing, reading
from platforms.errors import NotConfigured, PlatformError, RejectedByPlatform, TransientPlatformError
from policies.markup import note_escape

log = logging.getLogger("escalator.outbox")

QUEUED_WITH = ("applied", "no_change", "dry_run")  # a failed or retried decision notifies nobody (yet)

_FACTS = {
    "en": ("Priority", "Tier", "Status"),
    "id": ("Prioritas", "Tingkat", "Status"),
    "de": ("Priorität", "Stufe", "Status"),
}


def planned(
    rt: Runtime, delivery_id: str, outcome: str, event: TicketEvent | None, decision: Decision | None
) -> list[dict[str, Any]]:
    """The outbox rows a decision asks for (computed before its transaction; pure)."""
    if decision is None or event is None or not decision.notifications or outcome not in QUEUED_WITH:
        return []
    policy = rt.policy.current
    ticket = event.ticket
    asked_at = rt.clock().astimezone(UTC).strftime(INSTANT_FORMAT)
    rows = []
    for n, notify in enumerate(decision.notifications):
        settings = rt.config.notifications.channels.get(notify.channel)
        language = getattr(settings, "language", None) or policy.default_language
        dedupe = hashlib.sha256(
            f"{ticket.ref.platform}\0{delivery_id}\0{notify.channel}\0{notify.kind}\0{n}".encode()
        ).hexdigest()
        message = Message(
            id=dedupe[:32],
            platform=ticket.ref.platform,
            ticket_id=ticket.ref.id,
            ticket_key=ticket.ref.key,
            title=ticket.title,
            text=notify.text(language, policy.default_language),
            ticket_url=ticket.ref.url,
            kind=notify.kind,
            facts=_facts(language, decision, event),
            language=language,
            at=asked_at,
        )
        rows.append(
            {
                "dedupe_key": dedupe,
                "platform": ticket.ref.platform,
                "ticket_id": ticket.ref.id,
                "channel": notify.channel,
                "kind": notify.kind,
                "message": message.to_json(),
            }
        )
    return rows


def queue(conn: Any, rows: Sequence[dict[str, Any]], *, decision_id: str, now: Any) -> None:
    """Queue the decision's messages inside its transaction (next to its audit record)."""
    if rows:
        store.enqueue(conn, rows, decision_id=decision_id, now=now)


def summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """What the decision's audit record says it queued."""
    return [{"channel": r["channel"], "kind": r["kind"], "message": r["message"]["id"]} for r in rows]


def _facts(language: str, decision: Decision, event: TicketEvent) -> tuple[tuple[str, str], ...]:
    labels = _FACTS.get(language.replace("-", "_").split("_")[0], _FACTS["en"])
    priority = decision.priority_after.value if decision.priority_after else "—"
    return (
        (labels[0], priority),
        (labels[1], decision.tier_after or "—"),
        (labels[2], event.ticket.status.value.replace("_", " ")),
    )


class OutboxSender:
    """Sends due messages. `send_due` is one round (tests, benchmarks); `start` runs rounds in a thread."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self._channels: dict[str, Channel] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stranded: Stranded[int] = Stranded()  # ids of messages the database failed under
        # The messages being sent now, with their leases' ends: what the lease keeper renews.
        self.held = Held()

    # --- the loop -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="escalator-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop within `timeout` seconds: a message still being sent then is sent again by the next
        worker (its lease runs out), never waited for without end."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        poll = self.rt.config.notifications.poll_seconds
        while not self._stop.is_set():
            try:
                handled = self.send_due()
            except Exception as exc:  # the database may be briefly unavailable; never let the thread die
                log_round_failed(log, self.rt.engine, exc, "outbox round failed; retrying in %.1fs", poll)
                handled = 0
            if not handled:
                self._wake.wait(poll)
                self._wake.clear()

    # --- one round ----------------------------------------------------------------------------------

    def send_due(self) -> int:
        """Send every message that is due now; returns how many were tried.

        Messages of different tickets or channels go out side by side (`notifications.threads`):
        one slow channel's round trip does not hold up the others'. Each ticket's messages to one
        channel stay in order: only the oldest is ever due.
        """
        cfg = self.rt.config.notifications
        if self._stranded:
            self._give_back_stranded()
        now = self.rt.clock()
        due = store.due(self.rt.engine, now=now, limit=cfg.batch)
        if not due:
            return 0
        lease = timedelta(seconds=cfg.lease_seconds)
        ids = [q.id for q in due]
        taken = store.take_many(self.rt.engine, ids, owner=self.rt.owner, now=now, lease=lease)
        mine = [q for q in due if q.id in taken]
        self.held.add(taken, now + lease)
        try:
            if len(mine) == 1 or cfg.threads == 1:
                _each(mine, self._send_or_strand)  # one that fails does not leave the rest to their lease
            else:
                self._send_side_by_side(mine)
        finally:
            self.held.drop(taken)  # recorded, stranded or failed: not renewed any more
        return len(mine)

    def _send_or_strand(self, queued: store.QueuedMessage) -> None:
        """One message: sent, then recorded."""
        try:
            sent = self._deliver(queued)
        except Exception as exc:
            if database_unavailable(self.rt.engine, exc):  # due again once the database answers
                self._stranded.add(queued.id)
            raise
        self._record_or_strand([sent])

    def _send_side_by_side(self, mine: list[store.QueuedMessage]) -> None:
        """Sent side by side; each recorded as soon as its answer is in, those whose answers came in
        together in one transaction (a commit each cost more than the record). A message whose send
        broke keeps its lease, and does not hold up the records of the others."""
        pending = {self._pool().submit(self._deliver, queued): queued for queued in mine}
        failure: Exception | None = None
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            answered = []
            for future in done:
                queued = pending.pop(future)
                try:
                    answered.append(future.result())
                except Exception as exc:
                    if database_unavailable(self.rt.engine, exc):
                        self._stranded.add(queued.id)
                    failure = failure or exc
            if answered:
                try:
                    self._record_or_strand(answered)
                except Exception as exc:
                    failure = failure or exc
        if failure is not None:
            raise failure

    def _record_or_strand(self, answered: list[_Answered]) -> None:
        """The records of `answered` in one transaction. The database failing under it: each is due
        again once it answers. Any other failure (a record the store refuses): each is written alone,
        so only the one at fault keeps its lease."""
        try:
            self._record(answered)
        except Exception as exc:
            if database_unavailable(self.rt.engine, exc):
                for a in answered:
                    self._stranded.add(a.queued.id)
                raise
            if len(answered) == 1:
                raise
            log.warning("recording %d sends together failed (%s); recording each alone", len(answered), exc)
            _each(answered, lambda one: self._record_or_strand([one]))

    def _give_back_stranded(self) -> None:
        """Messages the database failed under (a restart, say) are due again as soon as it answers,
        not after their lease (`notifications.lease_seconds`). One sent before its record failed is
        sent again, as its lease running out would have it."""

        self._stranded.give_back(lambda ids: store.give_back(self.rt.engine, ids, owner=self.rt.owner))

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.rt.config.notifications.threads, "escalator-outbox-send")
        return self._executor

    def _deliver(self, queued: store.QueuedMessage) -> _Answered:
        """Send one message (or decide it is not sent: dry run, a channel gone) and say what to record."""
        rt = self.rt
        message: Message | None = None
        attempts = queued.attempts + 1
        thread: str | None = None
        receipt: Receipt | None = None
        retry_at = None
        try:
            message = Message.from_json(dict(queued.message))
            if queued.kind == "report":
                message = _with_report(rt, message, queued.decision_id)
            if queued.channel == TICKET_NOTE:
                receipt = self._note(message)
            else:
                settings = rt.config.notifications.channels.get(queued.channel)
                if settings is None:
                    raise RejectedByChannel(f"channel '{queued.channel}' is no longer configured")
                if rt.dry_run or not settings.can_send:
                    raise _DryRun(
                        "dry_run is on" if rt.dry_run else f"channel '{queued.channel}' has no credentials"
                    )
                if CHANNEL_TYPES[settings.type].threads:
                    with reading(rt.engine) as conn:
                        thread = store.thread_of(conn, queued.platform, queued.ticket_id, queued.channel)
                receipt = self._channel(queued.channel, settings).send(message, thread)
            status, outcome, answer = store.SENT, "applied", receipt.answer
        except _DryRun as exc:
            status, outcome, answer = store.DRY_RUN, "dry_run", str(exc)
        except TransientChannelError as exc:
            answer = exc.answer or str(exc)
            give_up = queued.created_at + timedelta(hours=rt.config.notifications.give_up_after_hours)
            retry_at = self._retry_at(attempts, exc.retry_after)
            if retry_at > give_up:
                status, outcome, answer, retry_at = store.FAILED, "failed", f"gave up: {answer}", None
            else:
                status, outcome = store.PENDING, "retrying"
        except ChannelError as exc:
            status, outcome, answer = store.FAILED, "failed", exc.answer or str(exc)
        except Exception as exc:  # a bug, or a message this version cannot read: it alone retries, then fails
            if database_unavailable(rt.engine, exc):
                raise  # the database, not this message: due again once it answers
            log.exception("sending outbox message %s to %s failed unexpectedly", queued.id, queued.channel)
            answer = f"internal error: {type(exc).__name__}: {first_line(exc)}"
            if attempts >= rt.config.worker.max_attempts_after_internal_error:
                status, outcome = store.FAILED, "failed"
                answer = f"{answer} (gave up after {attempts} attempts)"
            else:
                status, outcome, retry_at = store.PENDING, "retrying", self._retry_at(attempts, None)
        if message is None:  # unreadable: the record names it by what the queue row says
            ticket = queued.ticket_id
            message = Message(f"outbox:{queued.id}", queued.platform, ticket, ticket, title="", text="")
        record = _send_record(rt, queued, message, outcome, answer, attempts, thread, receipt, retry_at)
        return _Answered(
            queued, record, status, outcome, answer, attempts, retry_at, thread, receipt, at=rt.clock()
        )

    def _retry_at(self, attempts: int, retry_after: float | None) -> datetime:
        """When a message tried `attempts` times goes again: the channel's Retry-After, else the backoff."""
        cfg = self.rt.config.notifications
        wait = backoff_seconds(
            attempts, retry_after, initial=cfg.backoff_initial_seconds, maximum=cfg.backoff_max_seconds
        )
        return self.rt.clock() + timedelta(seconds=wait)

    def _record(self, answered: list[_Answered]) -> None:
        """Each send's audit record and its message's new status (and a thread the channel started),
        all in one transaction."""
        with pipelined_writing(self.rt.engine) as conn:  # on PostgreSQL: three round trips in all
            ours = store.still_ours(conn, [a.queued.id for a in answered], owner=self.rt.owner)
            if len(ours) < len(answered):
                answered = self._taken_over(answered, ours)
            finished = [(a.queued.id, a.status, a.attempts, a.answer, a.at) for a in answered
                        if a.status != store.PENDING]  # fmt: skip
            store.finish_many(conn, finished)
            for a in answered:
                queued = a.queued
                if a.status == store.PENDING:
                    store.retry_later(conn, queued.id, attempts=a.attempts, answer=a.answer, at=a.retry_at)
                started = a.receipt is not None and a.receipt.thread and a.thread is None
                if started and queued.channel != TICKET_NOTE:
                    store.remember_thread(
                        conn, queued.platform, queued.ticket_id, queued.channel, a.receipt.thread, a.at
                    )
            # Last, all at once: appending locks the chain's head until the commit (one bump for all).
            audit.append_many(conn, [(a.record, a.at) for a in answered])
        for a in answered:
            self.rt.metrics.platform_requests.labels(f"channel:{a.queued.channel}", "POST", a.outcome).inc()

    def _taken_over(self, answered: list[_Answered], ours: set[int]) -> list[_Answered]:
        """Those of `answered` this sender still leases; the others were taken by another worker
        when their lease ran out: their records are its to write (a message may have gone twice)."""
        for a in answered:
            if a.queued.id not in ours:
                log.warning("notification %s to %s is no longer %s's: its lease ran out and another worker "
                            "took it; this send (%s) is not recorded", a.queued.id, a.queued.channel,
                            self.rt.owner, a.outcome)  # fmt: skip
        return [a for a in answered if a.queued.id in ours]

    def _channel(self, name: str, settings: Any) -> Channel:
        channel = self._channels.get(name)
        if channel is None or getattr(channel, "settings", None) != settings:
            channel = self._channels[name] = make_channel(settings)
        return channel

    def _note(self, message: Message) -> Receipt:
        """The report as an internal note on the ticket, through the platform's own client."""
        installation = self.rt.installations.get(message.platform)
        if installation is None:
            raise RejectedByChannel(f"platform '{message.platform}' is no longer configured")
        if self.rt.dry_run or not installation.can_write:
            raise _DryRun(
                "dry_run is on" if self.rt.dry_run else f"platforms.{message.platform} cannot write"
            )
        client = installation.client()
        ref = TicketRef(message.platform, message.ticket_id, message.ticket_key, message.ticket_url)
        # A message is plain text (channels escape it for their own markup): literal in the note field too.
        escape = note_escape(message.platform)
        text = escape(message.text) if escape is not None else message.text
        status = 0
        try:
            for request in client.render(Plan(ticket=ref, note=Note(text, internal=True))):
                status = client.send(request).status
        except NotConfigured as exc:
            raise _DryRun(str(exc)) from exc
        except TransientPlatformError as exc:
            raise TransientChannelError(
                f"note: {exc}", status=exc.status, answer=str(exc), retry_after=exc.retry_after
            ) from exc
        except RejectedByPlatform as exc:
            raise RejectedByChannel(f"note: {exc}", status=exc.status, answer=f"{exc.status}: {exc}") from exc
        except PlatformError as exc:
            raise RejectedByChannel(f"note: {exc}", answer=str(exc)) from exc
        return Receipt(status=status, answer=f"{status} internal note added")


def _each(items: Sequence[Any], action: Callable[[Any], object]) -> None:
    """`action(item)` for every item, also after one failed; then the first failure is raised."""
    failure: Exception | None = None
    for item in items:
        try:
            action(item)
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


class _DryRun(Exception):
    """Rendered and recorded, not sent."""


@dataclass(frozen=True)
class _Answered:
    """A message's send done (or decided against), its record still to be written."""

    queued: store.QueuedMessage
    record: dict[str, Any]
    status: str  # the message's new status: store.PENDING again (retried later), SENT, FAILED, DRY_RUN
    outcome: str
    answer: str
    attempts: int
    retry_at: datetime | None
    thread: str | None  # the ticket's thread on this channel before the send
    receipt: Receipt | None
    at: datetime  # when the answer came


def _with_report(rt: Runtime, message: Message, decision_id: str) -> Message:
    """A report message: its introduction, then the post-incident report as the audit log has it now,
    without the sends of the decision that queued it: the copies of one report go out side by side,
    and each would otherwise list the others that happened to go first."""
    from connector.report import incident_report

    report = incident_report(
        rt.engine, rt.policy.current, message.platform, message.ticket_id, language=message.language,
        leave_out_sends_of=decision_id,
    )  # fmt: skip
    text = f"{message.text.strip()}\n\n{report.to_text()}" if message.text.strip() else report.to_text()
    return Message(**{**vars(message), "text": text})


def _send_record(
    rt: Runtime,
    queued: store.QueuedMessage,
    message: Message,
    outcome: str,
    answer: str,
    attempts: int,
    thread: str | None,
    receipt: Receipt | None,
    retry_at,
) -> dict[str, Any]:
    policy = rt.policy.current
    settings = rt.config.notifications.channels.get(queued.channel)
    record: dict[str, Any] = {
        "platform": queued.platform,
        "ticket": {"id": queued.ticket_id, "key": message.ticket_key, "url": message.ticket_url},
        "trigger": {
            "kind": "notification",
            "event_type": f"notify.{queued.kind}",
            "delivery_id": f"outbox:{queued.id}",
            "attempt": attempts,
        },
        "policy": {"name": policy.name, "version": policy.version, "sha256": policy.sha256},
        "rules": [],
        "reasons": [],
        "inputs": {},
        "priority": {"from": None, "to": None, "why": None},
        "tier": {"from": None, "to": None},
        "actions_planned": [],
        "requests": [],
        "actions_applied": [],
        "notification": {
            "message": message.id,
            "channel": queued.channel,
            "type": "note" if queued.channel == TICKET_NOTE else getattr(settings, "type", None),
            "kind": queued.kind,
            "language": message.language,
            "decision": queued.decision_id,
            "in_thread": thread is not None,
            "status": receipt.status if receipt else None,
            "answer": answer,
        },
        "outcome": outcome,
        "dry_run": outcome == "dry_run",
        "detail": answer or None,
    }
    if retry_at is not None:
        record["retry_at"] = retry_at.isoformat()
    return record
