"""The door itself: what reaches the webhook receiver, what falls through to Flask, and how it
answers requests that are not deliveries or that hit a bug of ours."""

from __future__ import annotations

import logging

import pytest

from tests.support.harness import jira_config


@pytest.fixture
def esc(sqlite_url, launch):
    return launch(jira_config(sqlite_url, dry_run=True))


def _metrics(esc) -> str:
    return esc.http.get("/metrics").get_data(as_text=True)


def test_only_post_is_a_delivery(esc):
    answer = esc.http.get("/webhooks/jira")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.json == {"result": "method_not_allowed", "error": "webhooks are delivered with POST"}
    assert esc.work() == 0


def test_paths_under_webhooks_that_name_no_platform_are_404_in_json(esc):
    for path in ("/webhooks", "/webhooks/", "/webhooks/jira/extra"):
        answer = esc.http.post(path, data=b"{}")
        assert answer.status_code == 404, path
        assert answer.json["result"] == "not_found" and "no such endpoint" in answer.json["error"]
    assert esc.work() == 0


def test_every_other_path_is_still_flask(esc):
    assert esc.http.get("/healthz").json == {"status": "ok"}
    assert esc.http.get("/webhooksx").status_code == 404  # a prefix of the name is not the mount
    assert esc.http.get("/nowhere").status_code == 404


def test_a_bug_at_the_door_is_500_in_json_logged_and_nothing_is_stored(esc, monkeypatch, caplog):
    installation = esc.rt.installations["jira"]

    def broken(headers, payload):
        raise RuntimeError("identify fell over")

    monkeypatch.setattr(installation.provider, "identify", broken)
    with caplog.at_level(logging.ERROR, logger="escalator.webhooks"):
        answer = esc.deliver("issue_created__outage")
    assert answer.status_code == 500
    assert answer.json == {"result": "error", "error": "internal error; the delivery was not stored"}
    assert "identify fell over" in caplog.text  # the traceback is in the log, not in the answer
    assert esc.work() == 0
    assert 'escalator_webhooks_total{platform="jira",result="error"} 1.0' in _metrics(esc)

    monkeypatch.undo()  # Jira's retry of the same delivery is then taken
    assert esc.deliver("issue_created__outage").status_code == 202


def test_answers_are_json_with_a_length_and_counted_per_platform(esc):
    answer = esc.deliver("comment_created__basic", delivery_id="d-1")
    assert answer.status_code == 202
    assert answer.headers["Content-Type"] == "application/json"
    assert int(answer.headers["Content-Length"]) == len(answer.get_data())
    assert answer.json == {"result": "accepted", "delivery_id": "10040/comment/10019"}  # it names itself
    esc.http.post("/webhooks/freshdesk", data=b"{}")
    text = _metrics(esc)
    assert 'escalator_webhooks_total{platform="jira",result="accepted"} 1.0' in text
    assert 'escalator_webhooks_total{platform="unknown",result="unknown_platform"} 1.0' in text
