"""A ticket that changed after the snapshot Escalator planned from: Zendesk refuses the write (409 on
`safe_update`); the worker re-reads the ticket, plans again from what it shows now, and retries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import responses

from tests.conformance.drivers import OUTAGE, ZENDESK_URL, decide
from tests.support.fixtures import load_fixture

TICKET = re.compile(re.escape(f"{ZENDESK_URL}/api/v2/tickets/") + r"\d+\.json$")


def current_ticket(driver, **changes):
    body = load_fixture("zendesk", "api/ticket_get_response")
    body["ticket"].update(id=int(driver.ticket_id(OUTAGE)), **changes)
    return body


@pytest.mark.parametrize("platform", ["zendesk"])
def test_a_409_rereads_the_ticket_and_sends_a_fresh_plan(esc, driver, api):
    api.add(responses.PUT, TICKET, status=409, json={"error": "UpdateConflict", "description": "changed"})
    now = "2026-11-02T09:00:30Z"
    group_l1 = int(driver.mapping.tiers["L1"].group)
    # Meanwhile a person tagged it "vip": the full tag list we send must keep that tag.
    api.add(responses.GET, TICKET, json=current_ticket(driver, updated_at=now, tags=["outage", "vip"],
                                                       priority="low", group_id=group_l1))  # fmt: skip
    driver.register_write(api)

    record = decide(esc, driver, driver.created(OUTAGE, esc.clock()))

    assert record["outcome"] == "applied"
    assert [(c.request.method, c.response.status_code) for c in api.calls] == [
        ("PUT", 409), ("GET", 200), ("PUT", 200),
    ]  # fmt: skip
    retry = driver.writes(api)[2].body["ticket"]
    assert retry["safe_update"] is True and retry["updated_stamp"] == now
    assert retry["tags"] == ["escalated-l2", "outage", "vip"]
    assert retry["priority"] == "urgent" and retry["group_id"] == int(driver.tier_target("L2").group)


@pytest.mark.parametrize("platform", ["zendesk"])
def test_a_ticket_that_keeps_changing_is_retried_later_not_forever(esc, driver, api):
    api.add(responses.PUT, TICKET, status=409, json={"error": "UpdateConflict"})
    api.add(responses.GET, TICKET, json=current_ticket(driver, tags=["outage"]))

    record = decide(esc, driver, driver.created(OUTAGE, esc.clock()))

    assert record["outcome"] == "retrying" and "kept changing" in record["detail"]
    methods = [c.request.method for c in api.calls]
    assert methods == ["PUT", "GET", "PUT", "GET", "PUT"]  # bounded: 2 re-reads, then back-off


@pytest.mark.parametrize("platform", ["zendesk"])
def test_a_reread_that_fails_for_now_is_retried_later(esc, driver, api):
    api.add(responses.PUT, TICKET, status=409, json={"error": "UpdateConflict"})
    api.add(responses.GET, TICKET, status=503, headers={"Retry-After": "20"})

    record = decide(esc, driver, driver.created(OUTAGE, esc.clock()))

    assert record["outcome"] == "retrying" and "re-reading after a conflict" in record["detail"]
    assert record["retry_at"] >= (esc.clock() + timedelta(seconds=20)).isoformat()


@pytest.mark.parametrize("platform", ["zendesk"])
def test_a_ticket_gone_by_the_reread_is_recorded_as_failed(esc, driver, api):
    api.add(responses.PUT, TICKET, status=409, json={"error": "UpdateConflict"})
    api.add(responses.GET, TICKET, status=404, json={"error": "RecordNotFound", "description": "Not found"})

    record = decide(esc, driver, driver.created(OUTAGE, esc.clock()))

    assert record["outcome"] == "failed" and "Not found" in record["detail"]
    esc.clock.advance(3600)
    assert esc.work() == 0
