"""Issue 11, finding 3: a crash between sending a note and recording it never writes the note twice.

The worker records the note's request as in flight before sending it. Here the process "dies"
right after the platform took the note (before the worker could record that), the lease runs
out, and the delivery is taken again: the worker finds the note's mark on the ticket (Jira: our
comment property; Zendesk: the comments; ServiceNow: the journal) and does not send it again.
The audit says the send was recovered.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import pytest
import responses

from connector import pipeline
from connector.store import inbox
from tests.conformance.drivers import JIRA_URL, SERVICENOW_URL, ZENDESK_URL, Spec, post

CT = "application/json"
JSON = {"Content-Type": CT}


class Crash(BaseException):
    """The process dying: nothing of ours catches it."""


class NotePlatform:
    """The platform's write endpoints and the read-back of its notes, remembering every note taken."""

    def __init__(self, api: responses.RequestsMock, platform: str):
        self.notes: list[str] = []  # the JSON of every note-bearing request taken
        self.platform = platform
        take = self._take
        if platform == "jira":
            api.add(
                responses.PUT, re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/?]+$"), status=204
            )
            api.add_callback(responses.POST, re.compile(r".*/comment$"), callback=take, content_type=CT)
            api.add_callback(
                responses.GET, re.compile(r".*/comment\?.*"), callback=self._jira_comments, content_type=CT
            )
        elif platform == "zendesk":
            ticket = re.compile(re.escape(ZENDESK_URL) + r"/api/v2/tickets/\d+\.json")
            api.add_callback(responses.PUT, ticket, callback=take, content_type=CT)
            comments = re.compile(r".*/comments\.json.*")
            api.add_callback(responses.GET, comments, callback=self._zendesk_comments, content_type=CT)
        else:
            incident = re.compile(re.escape(SERVICENOW_URL) + r"/api/now/table/incident/\w+")
            api.add_callback(responses.PATCH, incident, callback=take, content_type=CT)
            api.add_callback(
                responses.GET,
                re.compile(r".*/sys_journal_field\?.*"),
                callback=self._journal,
                content_type=CT,
            )

    def _take(self, request):
        self.notes.append(request.body if isinstance(request.body, str) else request.body.decode())
        return (
            (201 if self.platform == "jira" else 200),
            {},
            json.dumps({"id": "1", "result": {}, "ticket": {}}),
        )

    def _jira_comments(self, request):
        comments = [
            {"id": str(n), "properties": json.loads(b).get("properties", [])}
            for n, b in enumerate(self.notes)
        ]
        return 200, JSON, json.dumps({"comments": comments})

    def _zendesk_comments(self, request):
        comments = [{"body": json.loads(b)["ticket"].get("comment", {}).get("body", "")} for b in self.notes]
        return 200, JSON, json.dumps({"comments": comments})

    def _journal(self, request):
        mark = re.search(r"\[(escalator:[0-9a-f]+)\]", unquote(request.url))[1]
        found = [{"sys_id": "j1"}] if any(mark in b for b in self.notes) else []
        return 200, JSON, json.dumps({"result": found})


def test_a_crash_between_send_and_record_then_restart_the_note_exists_once(esc, driver, api, monkeypatch):
    if esc.rt.engine.dialect.name != "sqlite":
        pytest.skip("the recovery reads the platform, not the database; SQLite keeps it fast")
    platform = NotePlatform(api, driver.platform)
    real = pipeline._record
    crashes = []

    def crash_after_the_note(rt, item, result):  # the platform took it; its record is never written
        if platform.notes and not crashes:
            crashes.append(item.delivery_id)
            raise Crash
        real(rt, item, result)

    monkeypatch.setattr(pipeline, "_record", crash_after_the_note)
    assert post(esc, driver, driver.created(Spec(61, labels=("outage",)), esc.clock())).status_code == 202
    with pytest.raises(Crash):
        esc.work()
    assert len(platform.notes) == 1 and inbox.counts(esc.rt.engine) == {"processing": 1}

    esc.clock.advance(esc.rt.config.worker.lease_seconds + 1)  # restarted: the lease ran out
    esc.work()

    assert len(platform.notes) == 1, "the note was sent twice"
    record = esc.audit()[-1]
    assert record["outcome"] == "applied" and record["recovered"], record
    assert inbox.counts(esc.rt.engine) == {"done": 1}


def test_the_database_failing_under_a_decision_is_no_internal_error(esc, driver, api, monkeypatch, caplog):
    """The database went away while a note's in-flight mark was written, before the note went out:
    that is the database, not a bug in the decision. No 'internal error' record and no 'unexpected
    error' traceback: the delivery waits for the database (here for its lease), then is decided once."""
    if esc.rt.engine.dialect.name != "sqlite" or driver.platform != "jira":
        pytest.skip("the worker's handling is the same for every platform and database")
    from sqlalchemy.exc import OperationalError

    platform = NotePlatform(api, driver.platform)
    real, failed = inbox.record_in_flight, []

    def database_gone_once(*args, **kwargs):
        if not failed:
            failed.append(True)
            raise OperationalError(
                "UPDATE inbox …", {}, Exception("server closed the connection unexpectedly")
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox, "record_in_flight", database_gone_once)
    assert post(esc, driver, driver.created(Spec(62, labels=("outage",)), esc.clock())).status_code == 202
    esc.work()
    assert failed and not platform.notes and inbox.counts(esc.rt.engine) == {"processing": 1}
    esc.clock.advance(esc.rt.config.worker.lease_seconds + 1)
    esc.work()

    assert len(platform.notes) == 1
    assert [r["outcome"] for r in esc.audit()] == ["applied"]
    assert "unexpected error" not in caplog.text
