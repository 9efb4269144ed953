"""The outbox: retries (429 with Retry-After, 5xx, timeouts), restarts, one send per decision, and a
channel that is down never holding up the ticket's write."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import requests
import responses
from sqlalchemy import update
from standardwebhooks import Webhook

from channels.registry import CHANNEL_TYPES, ChannelType
from channels.webhook import WebhookChannel, WebhookSettings
from connector import audit
from connector.outbox import OutboxSender
from connector.runtime import build_runtime
from connector.scheduler import tick
from connector.store import outbox as store
from connector.store.tables import inbox
from tests.channels.conftest import (
    HOOK_SECRET,
    HOOK_URL,
    TEAMS_URL,
    Story,
    email_channel,
    escalator,
    slack_channel,
)
from tests.support.harness import Escalator


def sends(esc: Escalator, channel: str) -> list[dict]:
    return [r for r in esc.audit() if (r.get("notification") or {}).get("channel") == channel]


def _each_record_through(patch: pytest.MonkeyPatch, append) -> None:
    """The outbox appends the records of sends answered together in one batch (audit.append_many):
    here each goes through `append` alone, so a fault can be put on one record."""
    patch.setattr(
        audit, "append_many", lambda conn, entries, **kw: [append(conn, r, at=at, **kw) for r, at in entries]
    )


def test_slack_429_waits_for_retry_after_then_sends(sqlite_url, slack, smtp, api):
    slack.fail_next.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}))
    esc = escalator(sqlite_url, {"oncall": slack_channel(slack), "managers": email_channel(smtp)})
    story = Story(esc, api)
    story.open_p1()
    story.send()
    (first,) = sends(esc, "oncall")
    assert first["outcome"] == "retrying" and first["notification"]["answer"] == "429 ratelimited"
    retry_at = first["retry_at"]
    assert retry_at >= (esc.clock() + timedelta(seconds=30)).isoformat()  # never sooner than Retry-After
    esc.clock.advance(20)
    assert story.send() == 0  # still waiting
    esc.clock.advance(15)
    assert story.send() == 1
    assert [r["outcome"] for r in sends(esc, "oncall")] == ["retrying", "applied"]
    assert len(slack.posts) == 2 and "thread_ts" not in slack.posts[1]  # the retry still starts the thread
    esc.rt.close()


def test_teams_5xx_then_success(sqlite_url, smtp, api):
    api.add(responses.POST, TEAMS_URL, status=503, body="Service Unavailable")
    api.add(responses.POST, TEAMS_URL, status=202)
    esc = escalator(
        sqlite_url, {"oncall": {"type": "teams", "url": TEAMS_URL}, "managers": email_channel(smtp)}
    )
    story = Story(esc, api)
    story.open_p1()
    story.send()
    esc.clock.advance(5)
    story.send()
    outcomes = [(r["outcome"], r["notification"]["answer"]) for r in sends(esc, "oncall")]
    assert outcomes == [("retrying", "503 Service Unavailable"), ("applied", "202 Accepted")]
    esc.rt.close()


def test_webhook_timeout_then_success(sqlite_url, slack, api, monkeypatch):
    # The attempt's time is the signed webhook-timestamp header; the payload's "timestamp" is when
    # the decision asked for the message (Standard Webhooks), so the retry's body is the same bytes.
    attempts = iter([1_780_000_000, 1_780_000_100])
    stepping = ChannelType(WebhookSettings, lambda s: WebhookChannel(s, clock=lambda: next(attempts)), False)
    monkeypatch.setitem(CHANNEL_TYPES, "webhook", stepping)
    api.add(responses.POST, HOOK_URL, body=requests.ConnectTimeout("timed out"))
    api.add(responses.POST, HOOK_URL, status=200)
    pager = {"type": "webhook", "url": HOOK_URL, "secret": HOOK_SECRET, "timeout_seconds": 2}
    esc = escalator(sqlite_url, {"oncall": slack_channel(slack), "managers": pager})
    story = Story(esc, api)
    story.open_p1()
    story.send()
    esc.clock.advance(5)
    story.send()
    records = sends(esc, "managers")
    assert [r["outcome"] for r in records] == ["retrying", "applied"]
    assert records[0]["detail"] == "webhook: no answer within 2s"
    calls = [c.request for c in api.calls if c.request.url == HOOK_URL]
    bodies = [c.body for c in calls]
    assert len(bodies) == 2 and bodies[0] == bodies[1]  # the same message, the same webhook-id
    assert [c.headers["webhook-timestamp"] for c in calls] == ["1780000000", "1780000100"]
    payload = json.loads(bodies[0])
    assert payload["timestamp"] == "2026-11-02T09:00:00Z"  # the decision's instant, said once:
    assert "at" not in payload["data"] and payload["data"]["ticket_key"]
    esc.rt.close()


def test_queued_messages_survive_a_restart(db_url, slack, smtp, api):  # SQLite and the real PostgreSQL
    channels = {"oncall": slack_channel(slack), "managers": email_channel(smtp)}
    esc = escalator(db_url, channels)
    Story(esc, api).open_p1()  # decided and queued; the process stops before the sender ran
    clock = esc.clock
    esc.rt.close()

    again = Escalator(build_runtime(esc.rt.config, clock=clock), clock)
    first, second = OutboxSender(again.rt), OutboxSender(again.rt)
    try:
        assert first.send_due() == 2
        assert len(slack.posts) == 1 and len(smtp.mails) == 1
        assert second.send_due() == 0
    finally:
        first.stop()  # (their send threads, idle, end with them)
        second.stop()
        again.rt.close()


def test_the_same_decision_processed_twice_sends_once(db_url, slack, smtp, api):  # SQLite and PostgreSQL
    esc = escalator(db_url, {"oncall": slack_channel(slack), "managers": email_channel(smtp)})
    story = Story(esc, api)
    story.open_p1()
    # An operator retries the finished delivery (or a crash made a worker take it again).
    with esc.rt.engine.begin() as conn:
        conn.execute(update(inbox).values(status="pending", next_attempt_at=esc.clock(), lease_owner=None))
    esc.work()
    decisions = [r for r in esc.audit() if r["trigger"]["kind"] == "ticket.created"]
    assert len(decisions) == 2 and all("p1-notice" in d["rules"] for d in decisions)
    story.send()
    story.send()
    assert len(slack.posts) == 1 and len(smtp.mails) == 1
    assert len(store.for_ticket(esc.rt.engine, "jira", "10001")) == 2  # one per channel
    esc.rt.close()


def test_a_dead_channel_never_blocks_the_ticket_write(sqlite_url, smtp, api):
    dead = {"type": "slack", "token": "xoxb-t", "channel": "#oncall", "api_url": "http://127.0.0.1:9/api/",
            "timeout_seconds": 1}  # fmt: skip
    esc = escalator(sqlite_url, {"oncall": dead, "managers": email_channel(smtp)})
    story = Story(esc, api)
    decision = story.open_p1()
    assert decision["outcome"] == "applied"  # the Jira write went out before any channel was tried
    assert [w.method for w in story.driver.writes(api)] == ["PUT", "POST"]
    for _ in range(3):
        story.send()
        esc.clock.advance(120)
    # Later events of the ticket are decided and written while the channel keeps failing.
    story.wait(16)
    assert any(r["rules"] == ["sla-breach-escalates"] and r["outcome"] == "applied" for r in esc.audit())
    oncall = sends(esc, "oncall")
    assert oncall and {r["outcome"] for r in oncall} == {"retrying"}
    assert "cannot reach" in oncall[0]["detail"]
    assert len(smtp.mails) >= 1  # the other channel was not held up either
    esc.rt.close()


def test_a_channel_that_keeps_failing_is_given_up_with_its_answer(sqlite_url, smtp, api):
    api.add(responses.POST, TEAMS_URL, status=502, body="Bad Gateway")
    teams = {"type": "teams", "url": TEAMS_URL}
    esc = escalator(sqlite_url, {"oncall": teams, "managers": email_channel(smtp)}, give_up_after_hours=1)
    story = Story(esc, api)
    story.open_p1()
    for _ in range(40):  # 80 minutes of a channel answering 502
        story.send()
        esc.clock.advance(120)
    records = sends(esc, "oncall")
    assert records[-1]["outcome"] == "failed" and records[-1]["detail"] == "gave up: 502 Bad Gateway"
    assert {r["outcome"] for r in records[:-1]} == {"retrying"}
    (row,) = [r for r in store.for_ticket(esc.rt.engine, "jira", "10001") if r["channel"] == "oncall"]
    assert row["status"] == "failed" and row["attempts"] == len(records)
    esc.rt.close()


def test_a_refusal_is_not_retried(sqlite_url, slack, smtp, api):
    slack.fail_next.append((200, {"ok": False, "error": "channel_not_found"}, {}))
    esc = escalator(sqlite_url, {"oncall": slack_channel(slack), "managers": email_channel(smtp)})
    story = Story(esc, api)
    story.open_p1()
    story.send()
    esc.clock.advance(600)
    story.send()
    (record,) = sends(esc, "oncall")
    assert record["outcome"] == "failed" and record["notification"]["answer"] == "200 channel_not_found"
    esc.rt.close()


class Crash(BaseException):
    """The process dies: what comes after the channel's answer (the send's record) never happens."""


def _paged(db_url: str, smtp, api) -> tuple[Escalator, Story]:
    """The P1 story with a Standard Webhooks pager and an e-mail channel, one message at a time."""
    api.add(responses.POST, HOOK_URL, status=200)
    pager = {"type": "webhook", "url": HOOK_URL, "secret": HOOK_SECRET}
    esc = escalator(db_url, {"oncall": pager, "managers": email_channel(smtp)}, threads=1)
    return esc, Story(esc, api)


def test_a_message_the_database_failed_under_goes_again_when_it_answers_not_after_its_lease(
    sqlite_url, smtp, api
):
    """The database went away as a send was recorded (a restart): the same sender takes the message
    again as soon as the database answers, not when its lease (minutes) runs out."""
    from sqlalchemy.exc import OperationalError

    esc, story = _paged(sqlite_url, smtp, api)
    real_append, failed = audit.append, []

    def append(conn, record, **kwargs):
        if (record.get("notification") or {}).get("channel") == "oncall" and not failed:
            failed.append(record["notification"]["kind"])
            raise OperationalError("INSERT INTO audit_log", {}, Exception("the connection is lost"))
        return real_append(conn, record, **kwargs)

    story.open_p1()
    with pytest.MonkeyPatch.context() as patch:
        _each_record_through(patch, append)
        with pytest.raises(OperationalError):
            story.send()
    assert story.send() == 1  # the clock has not moved: only a give-back explains it
    hooks = [c.request for c in api.calls if c.request.url == HOOK_URL]
    assert failed == ["notice"] and len(hooks) == 2  # sent, its record lost, sent again (same id)
    assert hooks[0].headers["webhook-id"] == hooks[1].headers["webhook-id"]
    assert [r["outcome"] for r in sends(esc, "oncall")] == ["applied"]
    esc.rt.close()


def test_a_message_a_bug_failed_waits_for_its_lease_not_sent_again_each_round(sqlite_url, smtp, api):
    esc, story = _paged(sqlite_url, smtp, api)
    story.open_p1()
    with pytest.MonkeyPatch.context() as patch:
        _each_record_through(patch, lambda *args, **kwargs: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            story.send()
    assert story.send() == 0  # the round's messages keep their lease: not tried again every round
    assert len([c for c in api.calls if c.request.url == HOOK_URL]) == 1
    esc.clock.advance(esc.rt.config.notifications.lease_seconds + 1)
    assert story.send() == 2  # once the lease ran out, as before
    esc.rt.close()


def _rewrite_queued(esc: Escalator, channel: str, change) -> None:
    """The message queued for `channel` as `change(message)` returns it (what another version queued)."""
    from connector.store.tables import outbox

    (row,) = [r for r in store.for_ticket(esc.rt.engine, "jira", "10001") if r["channel"] == channel]
    with esc.rt.engine.begin() as conn:
        conn.execute(
            update(outbox).where(outbox.c.id == row["id"]).values(message=change(dict(row["message"])))
        )


def test_a_message_a_newer_version_queued_with_more_fields_is_sent(sqlite_url, smtp, api):
    # A rolling upgrade: a replica still on this version sends what a newer one queued. An older
    # release failed its whole outbox round on the unknown field, every round.
    esc, story = _paged(sqlite_url, smtp, api)
    story.open_p1()
    _rewrite_queued(esc, "oncall", lambda message: {**message, "thread_hint": "from a newer Escalator"})
    story.send()
    assert [r["outcome"] for r in sends(esc, "oncall")] == ["applied"]
    (hook,) = [c.request for c in api.calls if c.request.url == HOOK_URL]
    assert "thread_hint" not in hook.body.decode()
    esc.rt.close()


def test_a_message_that_cannot_be_sent_for_a_bug_retries_then_fails_alone(sqlite_url, smtp, api):
    # Unreadable here (its text is missing): it used to raise out of the round and keep its lease, to
    # be taken and fail again at every lease's end for ever, holding its ticket's thread behind it.
    esc, story = _paged(sqlite_url, smtp, api)
    story.open_p1()
    _rewrite_queued(esc, "oncall", lambda message: {k: v for k, v in message.items() if k != "text"})
    for _ in range(8):
        story.send()
        esc.clock.advance(61)
    records = sends(esc, "oncall")
    most = esc.rt.config.worker.max_attempts_after_internal_error
    assert [r["outcome"] for r in records] == ["retrying"] * (most - 1) + ["failed"]
    assert records[0]["notification"]["answer"].startswith("internal error: TypeError: ")
    assert records[-1]["notification"]["answer"].endswith(f"(gave up after {most} attempts)")
    assert not [c for c in api.calls if c.request.url == HOOK_URL]  # never sent
    assert [r["outcome"] for r in sends(esc, "managers")] == ["applied"]  # the other channel was not held up
    (row,) = [r for r in store.for_ticket(esc.rt.engine, "jira", "10001") if r["channel"] == "oncall"]
    assert row["status"] == "failed" and row["attempts"] == most
    esc.rt.close()


def test_a_sender_whose_lease_another_took_records_nothing_over_the_new_owner(sqlite_url, smtp, api):
    """A sender cut off from the database past its lease while it sends: another worker takes the
    messages and sends and records them; the late sender's sends are not recorded on top."""
    import copy

    esc, story = _paged(sqlite_url, smtp, api)
    story.open_p1()
    other_rt = copy.copy(esc.rt)
    other_rt.owner = "other-worker"
    other = OutboxSender(other_rt)
    real_deliver, overtaken = OutboxSender._deliver, []

    def late(self, queued):
        if self is story.sender and not overtaken:
            overtaken.append(queued.id)
            esc.clock.advance(esc.rt.config.notifications.lease_seconds + 1)  # it renewed nothing
            assert other.send_due() == 2  # the other worker takes both messages, sends, records them
        return real_deliver(self, queued)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OutboxSender, "_deliver", late)
        assert story.send() == 2
    assert [r["outcome"] for r in sends(esc, "oncall")] == ["applied"]  # the other's record, alone
    assert [r["outcome"] for r in sends(esc, "managers")] == ["applied"]
    assert len([c for c in api.calls if c.request.url == HOOK_URL]) == 2  # sent by both: the window
    other.stop()
    esc.rt.close()


def test_a_message_sent_again_after_a_crash_before_its_record_carries_the_same_id(sqlite_url, smtp, api):
    # The window no outbox can close: the channel accepted the message, the process died before the
    # outbox recorded it, and the restarted sender sends it again. Standard Webhooks receivers and mail
    # clients drop the copy by its id, so the id must be the first copy's (Slack and Teams cannot: docs).
    esc, story = _paged(sqlite_url, smtp, api)
    lease = esc.rt.config.notifications.lease_seconds
    real_append = audit.append

    def each_channel_crashes_once() -> None:
        """Each channel's send dies once between its answer and its record; the process restarts."""
        dying = {"oncall", "managers"}

        def append(conn, record, **kwargs):
            channel = (record.get("notification") or {}).get("channel")
            if channel in dying:
                dying.discard(channel)
                raise Crash
            return real_append(conn, record, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            _each_record_through(patch, append)
            while dying:
                with pytest.raises(Crash):
                    story.send()
                story.sender.stop()  # (the dead one's idle send threads)
                story.sender = OutboxSender(esc.rt)  # the restarted process
                assert story.send() == 0  # the dead sender's lease still holds its messages
                esc.clock.advance(lease + 1)
        assert story.send() == 1  # the last one taken again

    story.open_p1()
    each_channel_crashes_once()  # the notice: the webhook, and the mail that starts the thread
    for _ in range(60):  # 10:00: the hourly update is queued
        esc.clock.advance(60)
        tick(esc.rt)
        esc.work()
    each_channel_crashes_once()  # the update: a mail that answers the thread

    hooks = [c.request for c in api.calls if c.request.url == HOOK_URL]
    ids = [h.headers["webhook-id"] for h in hooks]
    assert len(ids) == 4 and ids[0] == ids[1] != ids[2] == ids[3]
    for hook in hooks:  # each copy is signed for its own timestamp under the same id
        Webhook(HOOK_SECRET).verify(hook.body, dict(hook.headers))
    mails = smtp.mails
    message_ids = [m["Message-ID"] for m in mails]
    assert len(mails) == 4 and message_ids[0] == message_ids[1] != message_ids[2] == message_ids[3]
    assert mails[3]["In-Reply-To"] == mails[2]["In-Reply-To"] == message_ids[0]  # the copy answers the thread
    # The log holds one send per message: a crashed attempt left no record, its copy is the send.
    sent = [r for r in esc.audit() if r["trigger"]["kind"] == "notification"]
    assert sorted((r["notification"]["channel"], r["notification"]["kind"], r["outcome"]) for r in sent) == [
        ("managers", "notice", "applied"), ("managers", "update", "applied"),
        ("oncall", "notice", "applied"), ("oncall", "update", "applied"),
    ]  # fmt: skip
    esc.rt.close()


# --- side by side (notifications.threads > 1): records as the answers come in --------------------


def _side_by_side(db_url: str, smtp, api) -> tuple[Escalator, Story]:
    """The P1 story with a Standard Webhooks pager and an e-mail channel, sent side by side."""
    api.add(responses.POST, HOOK_URL, status=200)
    pager = {"type": "webhook", "url": HOOK_URL, "secret": HOOK_SECRET}
    esc = escalator(db_url, {"oncall": pager, "managers": email_channel(smtp)}, threads=4)
    return esc, Story(esc, api)


def _transactions(engine, monkeypatch) -> list[int]:
    """A list that grows by one at each commit on `engine`: SQLAlchemy's, and those a PostgreSQL
    pipeline sends itself (db.pipelined_writing)."""
    from sqlalchemy import event

    from connector.store.pgpipeline import Pipeline

    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    finish = Pipeline.finish

    def finishing(pipeline, end):
        if end == "COMMIT":
            commits.append(1)
        return finish(pipeline, end)

    monkeypatch.setattr(Pipeline, "finish", finishing)
    return commits


def test_side_by_side_a_send_is_recorded_when_its_answer_comes_not_when_the_slowest_does(
    sqlite_url, smtp, api, monkeypatch
):
    """A slow channel must not keep a fast one's send unrecorded (a crash then would send it twice):
    the mail goes out only once the pager's record is committed."""
    from channels.email import EmailChannel

    esc, story = _side_by_side(sqlite_url, smtp, api)
    story.open_p1()
    real_send = EmailChannel.send

    def slow_mail(self, message, thread):
        deadline = time.monotonic() + 10
        while not sends(esc, "oncall"):
            assert time.monotonic() < deadline, "the pager's send was not recorded while the mail was out"
            time.sleep(0.01)
        return real_send(self, message, thread)

    monkeypatch.setattr(EmailChannel, "send", slow_mail)
    assert story.send() == 2
    assert [r["outcome"] for r in sends(esc, "oncall")] == ["applied"]
    assert [r["outcome"] for r in sends(esc, "managers")] == ["applied"]
    esc.rt.close()


def _answered_together(monkeypatch) -> None:
    """The round finds every send answered when it looks (as under load): wait for all of them."""
    import concurrent.futures

    from connector import outbox

    monkeypatch.setattr(
        outbox, "wait", lambda fs, return_when: concurrent.futures.wait(fs, return_when="ALL_COMPLETED")
    )


def test_side_by_side_sends_answered_together_are_recorded_in_one_transaction(db_url, smtp, api, monkeypatch):
    esc, story = _side_by_side(db_url, smtp, api)
    story.open_p1()
    _answered_together(monkeypatch)
    commits = _transactions(esc.rt.engine, monkeypatch)
    assert story.send() == 2
    take = 0 if esc.rt.engine.dialect.name == "postgresql" else 1  # PostgreSQL takes in autocommit
    assert len(commits) == take + 1  # both records in one transaction
    assert {r["notification"]["channel"]: r["outcome"] for r in esc.audit() if r.get("notification")} == {
        "oncall": "applied", "managers": "applied",
    }  # fmt: skip
    assert store.counts(esc.rt.engine) == {"sent": 2}
    assert audit.verify(esc.rt.engine).ok  # the chain links both records, in the order appended
    esc.rt.close()


def test_side_by_side_a_record_the_store_refuses_does_not_take_the_others_with_it(
    sqlite_url, smtp, api, monkeypatch
):
    esc, story = _side_by_side(sqlite_url, smtp, api)
    story.open_p1()
    _answered_together(monkeypatch)
    real_append = audit.append

    def append(conn, record, **kwargs):
        if (record.get("notification") or {}).get("channel") == "managers":
            raise ValueError("a value the store cannot hold")
        return real_append(conn, record, **kwargs)

    _each_record_through(monkeypatch, append)
    with pytest.raises(ValueError):
        story.send()
    assert [r["outcome"] for r in sends(esc, "oncall")] == [
        "applied"
    ]  # recorded alone after the group failed
    assert sends(esc, "managers") == []
    assert story.send() == 0  # the mail keeps its lease, as one a bug broke does
    esc.rt.close()


def test_side_by_side_the_database_failing_under_the_records_gives_both_back_at_once(
    sqlite_url, smtp, api, monkeypatch
):
    from sqlalchemy.exc import OperationalError

    esc, story = _side_by_side(sqlite_url, smtp, api)
    story.open_p1()
    _answered_together(monkeypatch)
    real_append, failed = audit.append, []

    def append(conn, record, **kwargs):
        if not failed:
            failed.append(record["notification"]["channel"])
            raise OperationalError("INSERT INTO audit_log", {}, Exception("the connection is lost"))
        return real_append(conn, record, **kwargs)

    _each_record_through(monkeypatch, append)
    with pytest.raises(OperationalError):
        story.send()
    assert story.send() == 2  # the clock has not moved: both given back, sent again (same ids)
    assert {r["notification"]["channel"] for r in esc.audit() if r.get("notification")} == {
        "oncall",
        "managers",
    }
    esc.rt.close()
