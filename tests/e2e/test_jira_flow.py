"""Jira end to end: signed recorded payloads → Flask → inbox → worker → policy → exact requests → audit."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import requests
import responses
from jsonschema import Draft202012Validator
from prometheus_client import generate_latest

from connector.store import timers
from tests.support.fixtures import FIXTURES, fixture_bytes, load_fixture
from tests.support.harness import JIRA_URL, body_of, jira_config, sign

ISSUE = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+$")
COMMENT = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+/comment$")
COMMENTS = re.compile(
    re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+/comment\?.*$"
)  # the note's look-up
SCHEMA = json.loads((FIXTURES / "jira" / "schema" / "IssueUpdateDetails.schema.json").read_text())


@pytest.fixture
def jira():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def esc(db_url, launch):
    return launch(jira_config(db_url))


def tier_account(esc, tier: str) -> str:
    target = esc.rt.policy.current.platforms["jira"].tiers[tier]
    return target.rota.choose(esc.clock()).team.target.assignee if target.rota else target.assignee


def ok(jira, put_status=204, post_status=201):
    jira.add(responses.PUT, ISSUE, status=put_status)
    jira.add(responses.POST, COMMENT, json={"id": "10100"}, status=post_status)
    # After a failed send the worker looks for the note before sending it again: none there.
    jira.add(responses.GET, COMMENTS, json={"comments": []})


def assert_valid_edit(body):
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(body), key=str)
    assert not errors, [e.message for e in errors]


# --- the happy paths ------------------------------------------------------------------


def test_outage_ticket_gets_one_edit_and_one_internal_note(esc, jira):
    ok(jira)
    answer = esc.deliver("issue_created__outage", delivery_id="d-1")
    assert answer.status_code == 202 and answer.json["result"] == "accepted"
    assert len(jira.calls) == 0  # nothing is sent inside the request
    assert esc.work() == 1

    key = load_fixture("jira", "issue_created__outage")["issue"]["key"]
    assert [(c.request.method, c.request.url) for c in jira.calls] == [
        ("PUT", f"{JIRA_URL}/rest/api/2/issue/{key}"),
        ("POST", f"{JIRA_URL}/rest/api/2/issue/{key}/comment"),
    ]
    edit = body_of(jira.calls[0])
    assert_valid_edit(edit)
    assert edit["fields"]["priority"] == {"name": "Highest"}
    assert edit["fields"]["assignee"] == {"accountId": tier_account(esc, "L2")}
    assert {"add": "escalated-l2"} in edit["update"]["labels"]
    assert "comment" not in edit["update"]  # the note must not be public
    note = body_of(jira.calls[1])
    internal, mark = note["properties"]
    assert internal == {"key": "sd.public.comment", "value": {"internal": True}}
    assert mark["key"] == "escalator.decision" and mark["value"]["mark"].startswith("escalator:")
    assert "L2" in note["body"]

    (record,) = esc.audit()
    assert record["outcome"] == "applied"
    assert record["priority"]["to"] == "P1" and record["tier"]["to"] == "L2"
    assert [a["status"] for a in record["actions_applied"]] == [204, 201]
    assert record["policy"]["name"] == esc.rt.policy.current.name and len(record["policy"]["sha256"]) == 64
    # The change names itself (issue id @ updated), whatever Jira's identifier header says.
    assert record["trigger"] == {
        **record["trigger"],
        "kind": "ticket.created",
        "delivery_id": "10041@1550300000000",
    }


def test_public_notes_travel_inside_the_single_edit(db_url, jira, launch):
    esc = launch(jira_config(db_url, notes="comment"))
    ok(jira)
    esc.deliver("issue_created__outage")
    esc.work()
    assert [c.request.method for c in jira.calls] == ["PUT"]
    edit = body_of(jira.calls[0])
    assert_valid_edit(edit)
    assert "L2" in edit["update"]["comment"][0]["add"]["body"]


def test_security_ticket_goes_to_l3(esc, jira):
    ok(jira)
    esc.deliver("issue_created__security")
    esc.work()
    edit = body_of(jira.calls[0])
    assert_valid_edit(edit)
    assert edit["fields"]["assignee"] == {"accountId": tier_account(esc, "L3")}
    assert esc.audit()[-1]["tier"]["to"] == "L3"


def test_requester_asking_for_a_manager_escalates_to_management(esc, jira):
    ok(jira)
    # Comment payloads carry a trimmed issue without the reporter; Escalator remembers it
    # from the issue's creation.
    esc.deliver("issue_created__outage")
    esc.work()
    jira.calls.reset()
    esc.deliver("comment_created__asks_for_manager")
    esc.work()
    edit = body_of(jira.calls[0])
    assert edit["fields"]["assignee"] == {"accountId": tier_account(esc, "management")}
    record = esc.audit()[-1]
    assert record["tier"]["to"] == "management" and record["outcome"] == "applied"
    assert record["inputs"]["comment"]["by_requester"] is True
    assert "manager" not in json.dumps(record["inputs"])  # no comment bodies in the log


def test_a_comment_on_a_never_seen_issue_reads_it_once_to_know_the_requester(esc, jira):
    ok(jira)
    issue = load_fixture("jira", "issue_created__outage")["issue"]  # the same issue, TES-42
    jira.add(responses.GET, ISSUE, json=issue)
    esc.deliver("comment_created__asks_for_manager")  # Escalator never saw TES-42 before
    esc.work()
    assert [c.request.method for c in jira.calls] == ["GET", "PUT", "POST"]
    record = esc.audit()[-1]
    assert record["inputs"]["comment"]["by_requester"] is True
    assert record["tier"]["to"] == "management" and record["outcome"] == "applied"


def test_a_never_seen_issue_that_cannot_be_read_is_judged_without_the_requester(esc, jira):
    ok(jira)
    jira.add(responses.GET, ISSUE, status=503)
    esc.deliver("comment_created__asks_for_manager")
    esc.work()
    assert [c.request.method for c in jira.calls] == ["GET"]  # nothing written on a guess
    record = esc.audit()[-1]
    assert record["outcome"] == "no_change" and record["inputs"]["comment"]["by_requester"] is False


# --- nothing to do: no request at all -----------------------------------------------------


def test_nothing_to_change_sends_nothing(esc, jira):
    esc.deliver("issue_created__minor")
    esc.work()
    assert len(jira.calls) == 0
    assert esc.audit()[-1]["outcome"] == "no_change"


def test_a_ticket_already_showing_the_decision_sends_nothing(esc, jira):
    ok(jira)
    esc.deliver("issue_created__outage")
    esc.work()
    sent = len(jira.calls)
    # Jira then reports the issue as we left it: P1, L2's assignee, the label.
    payload = load_fixture("jira", "issue_created__outage")
    fields = payload["issue"]["fields"]
    fields["priority"] = {"name": "Highest", "id": "1"}
    fields["assignee"] = {"accountId": tier_account(esc, "L2"), "displayName": "L2 on call"}
    fields["labels"] = sorted(set(fields["labels"]) | {"escalated-l2"})
    payload["webhookEvent"] = "jira:issue_updated"
    payload["user"] = {"accountId": "someone-else", "displayName": "An agent"}
    fields["updated"] = "2019-02-15T22:55:20.000-0800"  # our write moved it on
    esc.deliver("", body=json.dumps(payload).encode())
    esc.work()
    assert len(jira.calls) == sent
    assert esc.audit()[-1]["outcome"] == "no_change"


def test_echo_of_our_own_write_is_dropped(esc, jira):
    esc.deliver("issue_updated__echo")
    esc.work()
    assert len(jira.calls) == 0
    assert esc.audit()[-1]["outcome"] == "echo"


def test_duplicate_delivery_is_processed_once(esc, jira):
    ok(jira)
    first = esc.deliver("issue_created__outage", delivery_id="same")
    again = esc.deliver("issue_created__outage", delivery_id="same")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json["result"] == "duplicate"
    esc.work()
    assert esc.deliver("issue_created__outage", delivery_id="same").status_code == 200  # after processing too
    esc.work()
    assert [c.request.method for c in jira.calls] == ["PUT", "POST"]
    assert len(esc.audit()) == 1


def test_dry_run_sends_nothing_but_audits_the_plan(db_url, jira, launch):
    esc = launch(jira_config(db_url, dry_run=True))
    esc.deliver("issue_created__outage")
    esc.work()
    assert len(jira.calls) == 0
    record = esc.audit()[-1]
    assert record["outcome"] == "dry_run" and record["dry_run"] is True
    assert [r["method"] for r in record["requests"]] == ["PUT", "POST"]


# --- bad input at the door ---------------------------------------------------------------


def test_missing_and_wrong_signatures_are_refused_and_nothing_is_stored(esc):
    body = fixture_bytes("jira", "issue_created__outage")
    missing = esc.deliver("", body=body, headers={"X-Hub-Signature": None})
    wrong = esc.deliver("", body=body, headers={"X-Hub-Signature": "sha256=" + "0" * 64})
    tampered = esc.http.post("/webhooks/jira", data=body + b" ", headers={"X-Hub-Signature": sign(body)})
    assert (missing.status_code, wrong.status_code, tampered.status_code) == (401, 401, 401)
    assert "X-Hub-Signature" in missing.json["error"]
    assert esc.work() == 0 and esc.audit() == []


def test_malformed_json_is_400(esc):
    answer = esc.deliver("", body=b'{"webhookEvent": "jira:issue_created", ')
    assert answer.status_code == 400 and "not JSON" in answer.json["error"]
    assert esc.deliver("", body=b"[1, 2]").status_code == 400
    shapeless = esc.deliver("", body=b'{"webhookEvent": "jira:issue_created"}')
    assert shapeless.status_code == 400 and "issue" in shapeless.json["error"]
    assert esc.work() == 0


def test_oversized_body_is_413(db_url, launch):
    esc = launch(jira_config(db_url))
    limit = esc.rt.config.server.max_body_bytes
    answer = esc.deliver("", body=b"{" + b" " * limit + b"}")
    assert answer.status_code == 413
    assert esc.work() == 0


def test_unknown_event_is_200_and_recorded_as_ignored(esc, jira):
    answer = esc.deliver("issue_deleted__basic")
    assert answer.status_code == 200 and answer.json["result"] == "ignored"
    esc.work()
    assert len(jira.calls) == 0
    record = esc.audit()[-1]
    assert record["outcome"] == "ignored" and record["trigger"]["event_type"] == "jira:issue_deleted"


def test_unknown_or_unconfigured_platform_is_404(esc):
    assert esc.http.post("/webhooks/freshdesk", data=b"{}").status_code == 404
    answer = esc.http.post("/webhooks/zendesk", data=b"{}")
    assert answer.status_code == 404


# --- platform faults ---------------------------------------------------------------------


def test_429_is_retried_after_retry_after_then_succeeds(esc, jira):
    jira.add(responses.PUT, ISSUE, status=429, headers={"Retry-After": "30"})
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, status=201, json={})
    esc.deliver("issue_created__outage")
    esc.work()
    assert [c.response.status_code for c in jira.calls] == [429]
    retrying = esc.audit()[-1]
    assert retrying["outcome"] == "retrying" and "429" in retrying["detail"]

    esc.clock.advance(29)
    assert esc.work() == 0  # not before Retry-After
    esc.clock.advance(60)
    assert esc.work() == 1
    assert [c.response.status_code for c in jira.calls] == [429, 204, 201]
    assert esc.audit()[-1]["outcome"] == "applied"


def test_timeout_is_retried(esc, jira):
    jira.add(responses.PUT, ISSUE, body=requests.exceptions.ReadTimeout("read timed out"))
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, status=201, json={})
    esc.deliver("issue_created__outage")
    esc.work()
    assert esc.audit()[-1]["outcome"] == "retrying"
    esc.clock.advance(120)
    esc.work()
    assert esc.audit()[-1]["outcome"] == "applied"


def test_503_then_success_across_a_restart(db_url, jira, launch):
    first = launch(jira_config(db_url))
    jira.add(responses.PUT, ISSUE, status=503)
    first.deliver("issue_created__outage", delivery_id="survives")
    first.work()
    assert first.audit()[-1]["outcome"] == "retrying"
    first.rt.close()  # the process goes away (launch disposes again at teardown: harmless)

    jira.replace(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, status=201, json={})
    clock = first.clock
    clock.advance(300)
    second = launch(jira_config(db_url), clock)
    assert second.work() == 1
    assert [c.response.status_code for c in jira.calls] == [503, 204, 201]
    assert [r["outcome"] for r in second.audit()] == ["retrying", "applied"]


def test_a_failed_note_is_retried_without_repeating_the_edit(esc, jira):
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, status=502)
    jira.add(responses.POST, COMMENT, status=201, json={})
    jira.add(responses.GET, COMMENTS, json={"comments": []})
    esc.deliver("issue_created__outage")
    esc.work()
    esc.clock.advance(120)
    esc.work()
    # A 502 may come after the comment was taken: the worker looks for its mark before resending.
    assert [(c.request.method, c.response.status_code) for c in jira.calls] == [
        ("PUT", 204),
        ("POST", 502),
        ("GET", 200),
        ("POST", 201),
    ]
    assert esc.audit()[-1]["outcome"] == "applied"


def test_400_from_jira_is_recorded_as_failed_and_not_retried(esc, jira):
    jira.add(
        responses.PUT, ISSUE, status=400,
        json={"errorMessages": [], "errors": {"priority": "Specify a valid priority"}},
    )  # fmt: skip
    esc.deliver("issue_created__outage")
    esc.work()
    esc.clock.advance(3600)
    assert esc.work() == 0
    assert len(jira.calls) == 1
    record = esc.audit()[-1]
    assert record["outcome"] == "failed" and "Specify a valid priority" in record["detail"]


def test_events_of_one_ticket_wait_for_an_earlier_retry(esc, jira):
    jira.add(responses.PUT, ISSUE, status=503)
    esc.deliver("issue_created__outage", delivery_id="first")
    esc.work()
    later = load_fixture("jira", "issue_created__outage")
    later["webhookEvent"] = "jira:issue_updated"
    later["issue"]["fields"]["updated"] = "2019-02-15T22:54:00.000-0800"
    esc.deliver("", body=json.dumps(later).encode(), delivery_id="second")  # same issue, later event
    assert esc.work() == 0  # blocked behind "first", which is not due yet


def test_a_crashed_worker_leaves_the_event_to_be_taken_again(esc, jira):
    from datetime import timedelta

    from connector.store import inbox

    ok(jira)
    esc.deliver("issue_created__outage")
    claimed = inbox.claim(
        esc.rt.engine, owner="crashed", now=esc.clock(), lease=timedelta(seconds=300), limit=5
    )
    assert len(claimed) == 1  # ... and the worker dies here
    assert esc.work() == 0
    esc.clock.advance(301)
    assert esc.work() == 1
    assert esc.audit()[-1]["outcome"] == "applied"


# --- health & metrics ---------------------------------------------------------------------


def test_health_readiness_and_metrics(esc, jira):
    ok(jira)
    esc.deliver("issue_created__outage")
    esc.deliver("", body=b"nope", headers={"X-Hub-Signature": "sha256=" + "0" * 64})
    esc.work()
    assert esc.http.get("/healthz").json == {"status": "ok"}
    ready = esc.http.get("/readyz").json
    assert ready["status"] == "ready" and ready["platforms"] == ["jira"] and ready["dry_run"] is False
    text = esc.http.get("/metrics").get_data(as_text=True)
    assert 'escalator_webhooks_total{platform="jira",result="accepted"} 1.0' in text
    assert 'escalator_webhooks_total{platform="jira",result="unauthorized"} 1.0' in text
    assert "escalator_decisions_total" not in text  # a worker family: the worker's metrics port lists it
    worker = generate_latest(esc.rt.metrics.worker_registry).decode()
    assert 'escalator_decisions_total{outcome="applied",platform="jira"} 1.0' in worker
    assert 'escalator_inbox_events{status="done"} 1' in text
    assert "escalator_database_up 1" in text


def test_metrics_are_served_while_the_database_does_not_answer(esc, jira, monkeypatch):
    """An outage is when an operator scrapes: the process's own counters, and that the database is down."""
    from sqlalchemy.exc import OperationalError

    import connector.store.inbox as inbox_store

    ok(jira)
    esc.deliver("issue_created__outage")

    def down(engine):
        raise OperationalError("SELECT status, count(*) FROM inbox", {}, Exception("Connection refused"))

    monkeypatch.setattr(inbox_store, "counts", down)
    answer = esc.http.get("/metrics")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "escalator_database_up 0" in text
    assert 'escalator_webhooks_total{platform="jira",result="accepted"} 1.0' in text
    assert "escalator_inbox_events" not in text  # not a stale or made-up depth


def test_a_delivery_the_database_cannot_store_is_503_and_the_next_one_works(esc, jira, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import connector.store.intake as intake

    real = intake.store_rows

    def disk_full(*args, **kwargs):
        raise OperationalError("INSERT INTO inbox", {}, Exception("database or disk is full"))

    monkeypatch.setattr(intake, "store_rows", disk_full)
    answer = esc.deliver("issue_created__outage", delivery_id="d-full")
    assert answer.status_code == 503
    assert "disk is full" in answer.json["error"] and "retry" in answer.json["error"]

    monkeypatch.setattr(intake, "store_rows", real)
    ok(jira)
    assert esc.deliver("issue_created__outage", delivery_id="d-full").status_code == 202  # Jira's retry
    assert esc.work() == 1
    assert esc.audit()[-1]["outcome"] == "applied"


def test_no_loop_even_without_our_account_id(db_url, jira, launch):
    """Echo suppression by account is the first guard; convergence is the second."""
    esc = launch(jira_config(db_url, account_id=None))
    ok(jira)
    esc.deliver("issue_created__outage")
    esc.work()
    written = len(jira.calls)
    # Jira reports our own edit back, now attributed to an account Escalator does not know.
    edit = body_of(jira.calls[0])
    payload = load_fixture("jira", "issue_created__outage")
    fields = payload["issue"]["fields"]
    fields["priority"] = edit["fields"]["priority"]
    fields["assignee"] = edit["fields"]["assignee"]
    fields["labels"] = sorted(
        set(fields["labels"]) | {op["add"] for op in edit["update"]["labels"] if "add" in op}
    )
    payload["webhookEvent"] = "jira:issue_updated"
    payload["user"] = {"accountId": "unknown-bot", "displayName": "Escalator"}
    payload["changelog"] = {"items": [{"field": "priority", "fieldId": "priority", "fromString": "Medium",
                                       "toString": "Highest"}]}  # fmt: skip
    for n in range(3):  # three changes (each moves `updated` on), each reported back
        fields["updated"] = f"2019-02-15T22:55:2{n}.000-0800"
        esc.deliver("", body=json.dumps(payload).encode(), delivery_id=f"echo-{n}")
        esc.work()
    assert len(jira.calls) == written
    assert [r["outcome"] for r in esc.audit()[1:]] == ["no_change"] * 3


def test_audit_cli_exports_and_verifies_real_decisions(sqlite_url, jira, launch, tmp_path, capsys):
    from sqlalchemy import text

    from connector.cli import main

    esc = launch(jira_config(sqlite_url))
    ok(jira)
    for fixture in ("issue_created__outage", "issue_created__minor", "issue_updated__echo"):
        esc.deliver(fixture)
        esc.work()
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: {sqlite_url}\n")

    assert (
        main(["audit", "export", "--config", str(config), "--platform", "jira", "--since", "2026-11-01"]) == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["outcome"] for r in lines] == ["applied", "no_change", "echo"]
    assert all(r["policy"]["sha256"] == esc.rt.policy.current.sha256 for r in lines)
    assert main(["audit", "export", "--config", str(config), "--rule", "outage-goes-to-l2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1

    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "intact: 3 records" in capsys.readouterr().out
    with esc.rt.engine.begin() as conn:  # someone with table rights rewrites history
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(
            text("UPDATE audit_log SET record = replace(record, 'applied', 'dry_run') WHERE seq = 1")
        )
    assert main(["audit", "verify", "--config", str(config)]) == 1
    assert "BROKEN at record seq=1" in capsys.readouterr().out


def test_a_policy_reload_between_retries_sends_what_changed_and_nothing_twice(db_url, jira, launch, tmp_path):
    from connector.config import EXAMPLE_POLICY

    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text())
    esc = launch(jira_config(db_url).model_copy(update={"policy": str(policy)}))
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, status=503)
    jira.add(responses.POST, COMMENT, status=201, json={})
    jira.add(responses.GET, COMMENTS, json={"comments": []})
    esc.deliver("issue_created__outage")
    esc.work()  # the edit went through, the note did not
    policy.write_text(
        EXAMPLE_POLICY.read_text().replace("this ticket reports a total outage", "TOTAL OUTAGE")
    )
    esc.rt.policy.reload()
    esc.clock.advance(120)
    esc.work()
    assert [(c.request.method, c.response.status_code) for c in jira.calls] == [
        ("PUT", 204), ("POST", 503), ("GET", 200), ("POST", 201),
    ]  # fmt: skip
    assert "TOTAL OUTAGE" in body_of(jira.calls[3])["body"]  # the new note, not the old one again
    assert esc.audit()[-1]["outcome"] == "applied"


def test_an_event_that_hits_a_bug_is_retried_then_recorded_as_failed(esc, jira, monkeypatch):
    from connector import pipeline

    def broken(*args, **kwargs):
        raise KeyError("fields")

    # The reader runs at the door (a reader's failure is a 400 there); the bug is further in.
    monkeypatch.setattr(pipeline, "judge", broken)
    esc.deliver("issue_created__outage")
    for _ in range(10):
        esc.work()
        esc.clock.advance(3600)
    outcomes = [r["outcome"] for r in esc.audit()]
    limit = esc.rt.config.worker.max_attempts_after_internal_error
    assert outcomes == ["retrying"] * (limit - 1) + ["failed"]
    assert "KeyError" in esc.audit()[-1]["detail"] and "gave up" in esc.audit()[-1]["detail"]
    assert len(jira.calls) == 0


# --- wrong inputs further in: configuration, policy and payloads the door cannot judge -----


def test_without_a_webhook_secret_every_delivery_is_refused(db_url, launch):
    esc = launch(jira_config(db_url, webhook_secret=None))
    answer = esc.deliver("issue_created__outage")
    assert answer.status_code == 401
    assert "platforms.jira.webhook_secret is not set" in answer.json["error"]
    assert esc.work() == 0


def test_a_chunked_body_over_the_limit_is_413(esc):
    import io

    limit = esc.rt.config.server.max_body_bytes
    answer = esc.http.post(
        "/webhooks/jira",
        input_stream=io.BytesIO(b"{" + b" " * limit + b"}"),
        # Chunked, as waitress hands it over: no length declared, the stream ends by itself.
        environ_overrides={"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
    )
    assert answer.status_code == 413
    assert answer.json["error"].startswith("body exceeds the")  # the limit was found by reading
    assert esc.work() == 0


def test_a_payload_the_worker_could_not_normalise_is_refused_at_the_door(esc, jira):
    # Issue 11: one verdict at the door. It used to be accepted (202) and then fail in the worker.
    body = json.dumps({"webhookEvent": "jira:issue_created", "issue": {"id": "1"}}).encode()
    answer = esc.deliver("", body=body)
    assert answer.status_code == 400 and "'issue.key' missing" in answer.json["error"]
    assert esc.work() == 0 and esc.audit() == []
    assert len(jira.calls) == 0


def test_a_policy_without_the_platforms_section_fails_each_event_clearly(db_url, jira, launch, tmp_path):
    from connector.config import EXAMPLE_POLICY

    text = EXAMPLE_POLICY.read_text()
    policy = tmp_path / "no-jira.yaml"
    policy.write_text(text[: text.index("\nplatforms:")] + "\n")
    esc = launch(jira_config(db_url).model_copy(update={"policy": str(policy)}))
    esc.deliver("issue_created__outage")
    esc.work()
    record = esc.audit()[-1]
    assert record["outcome"] == "failed" and "no 'platforms.jira' section" in record["detail"]
    assert len(jira.calls) == 0


def test_events_of_a_platform_removed_from_the_config_fail_instead_of_waiting(db_url, jira, launch):
    from connector.config import Config

    esc = launch(jira_config(db_url))
    esc.deliver("issue_created__outage")
    without_jira = launch(Config.model_validate({"database": db_url}), esc.clock)
    assert without_jira.work() == 1
    record = without_jira.audit()[-1]
    assert record["outcome"] == "failed" and "no longer configured" in record["detail"]
    assert len(jira.calls) == 0


def test_an_event_years_older_than_its_arrival_counts_from_its_arrival(esc, jira):
    """The recorded payload says 2019; sent by hand today (the README's "Try it"), or backfilled, its
    ticket's SLA clocks start when Escalator saw it: nothing is overdue at once."""
    ok(jira)
    esc.deliver("issue_created__outage", delivery_id="d-old")
    esc.work()

    (record,) = esc.audit()
    arrived = esc.clock()
    assert record["outcome"] == "applied"
    (note,) = record["reader_notes"]
    assert note.startswith("the event says it happened at 2019-") and "counted from its arrival" in note
    issue_id = load_fixture("jira", "issue_created__outage")["issue"]["id"]
    with esc.rt.engine.connect() as conn:
        due = timers.armed(conn, "jira", issue_id)
    assert due and min(due.values()) > arrived  # every timer ahead of now
    assert timers.fire_due(esc.rt.engine, now=arrived, limit=100, late_after=timedelta(seconds=30)) == []
