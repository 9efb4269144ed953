"""DESIGN.md's bad-input table, on every platform's endpoint: a clear answer, nothing lost, nothing
stored that should not be."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from connector.store import inbox
from tests.conformance.drivers import OUTAGE, Delivery, post


def signed(driver, body: bytes, now) -> Delivery:
    return Delivery(body, {"Content-Type": "application/json", **driver.sign(body, now)})


def test_a_bad_signature_is_refused_and_nothing_is_stored(esc, driver):
    good = driver.created(OUTAGE, esc.clock())
    tampered = Delivery(good.body.replace(b"outage", b"0utage"), good.headers)
    answer = post(esc, driver, tampered)
    assert answer.status_code == 401 and "signature" in answer.json["error"].casefold()
    assert inbox.counts(esc.rt.engine) == {}


def test_a_missing_signature_is_refused(esc, driver):
    good = driver.created(OUTAGE, esc.clock())
    answer = post(esc, driver, Delivery(good.body, {"Content-Type": "application/json"}))
    assert answer.status_code == 401 and "missing" in answer.json["error"]
    assert inbox.counts(esc.rt.engine) == {}


def test_a_stale_timestamp_is_refused(esc, driver):
    if driver.platform == "jira":
        pytest.skip(
            "Jira signs no timestamp: a replay is caught by its delivery id (X-Atlassian-Webhook-Identifier)"
        )
    old = driver.created(OUTAGE, esc.clock() - timedelta(minutes=6))
    answer = post(esc, driver, old)
    assert answer.status_code == 401 and "old" in answer.json["error"]
    assert inbox.counts(esc.rt.engine) == {}


def test_a_body_that_is_not_json_is_refused(esc, driver):
    answer = post(esc, driver, signed(driver, b"{not json", esc.clock()))
    assert answer.status_code == 400 and "not JSON" in answer.json["error"]


def test_json_of_the_wrong_shape_is_refused_with_a_reason(esc, driver):
    answer = post(esc, driver, signed(driver, json.dumps({"hello": "world"}).encode(), esc.clock()))
    assert answer.status_code == 400 and answer.json["error"]
    assert inbox.counts(esc.rt.engine) == {}


def test_an_oversize_body_is_refused(esc, driver):
    limit = esc.rt.config.server.max_body_bytes
    body = json.dumps({"padding": "x" * (limit + 1)}).encode()
    answer = post(esc, driver, signed(driver, body, esc.clock()))
    assert answer.status_code == 413
    assert inbox.counts(esc.rt.engine) == {}


def test_an_event_we_do_not_handle_is_answered_200_and_recorded_as_ignored(esc, driver, api):
    answer = post(esc, driver, driver.ignored(esc.clock()))
    assert (answer.status_code, answer.json["result"]) == (200, "ignored")
    esc.work()
    (record,) = esc.audit()
    assert record["outcome"] == "ignored" and record["platform"] == driver.platform
    assert len(api.calls) == 0
