"""Issue 11, findings 4 and 6: the door gives one verdict, 400 never 500, for every wrong-typed field.

Everything the worker needs to read a delivery is read at the door by the platform's own reader,
so a delivery either is refused with the reason (nothing stored) or is one the worker can read.
"""

from __future__ import annotations

import json

import pytest

from connector.store import inbox
from tests.conformance.drivers import Delivery, Spec, post


def signed(driver, body: bytes, now) -> Delivery:
    return Delivery(body, {"Content-Type": "application/json", **driver.sign(body, now)})


def valid(driver, now) -> dict:
    return json.loads(driver.created(Spec(1, labels=("outage",)), now).body)


WRONG_TYPES = {
    "zendesk": [("type", {"a": 1}), ("type", 5), ("type", ["zen:event-type:ticket.created"]),
                ("event", {"a": 1}), ("event", ["ticket.created"]), ("ticket", "7"), ("requester", 3),
                ("comment", [])],
    "servicenow": [("operation", {"a": 1}), ("operation", ["insert"]), ("table", {"x": 1}),
                   ("sys_mod_count", {"n": 1}), ("changes", "all"), ("number", 7)],
    "jira": [("webhookEvent", {"a": 1}), ("webhookEvent", ["jira:issue_created"]), ("issue", []),
             ("timestamp", 10**20), ("timestamp", "soon"), ("user", 5), ("changelog", "x")],
}  # fmt: skip


def test_every_wrong_typed_top_level_field_is_400_and_nothing_is_stored(esc, driver):
    now = esc.clock()
    for field, value in WRONG_TYPES[driver.platform]:
        body = {**valid(driver, now), field: value}
        answer = post(esc, driver, signed(driver, json.dumps(body).encode(), now))
        # 202/200: a field this body style does not read (a trigger body has no `type`)
        assert answer.status_code in (400, 202, 200), (field, value, answer.json)
        if answer.status_code == 400:
            assert answer.json["result"] == "malformed" and answer.json["error"], (field, value)
    esc.work()  # what the door admitted, the worker reads: none ends as "could not be read"
    assert "failed" not in inbox.counts(esc.rt.engine)
    assert not [r for r in esc.audit() if "could not be read" in (r["detail"] or "")]


@pytest.mark.parametrize("platform", ["zendesk"])
@pytest.mark.parametrize("value", [{"name": "zen:event-type:ticket.created"}, 7, 7.5, True, None])
def test_zendesk_type_of_the_wrong_type_is_400(esc, driver, value):
    body = valid(driver, esc.clock())
    body["type"] = value
    del body["event"]
    answer = post(esc, driver, signed(driver, json.dumps(body).encode(), esc.clock()))
    assert answer.status_code == 400, answer.json


@pytest.mark.parametrize("platform", ["servicenow"])
@pytest.mark.parametrize("value", [{"op": "insert"}, ["insert"], 1, None])
def test_servicenow_operation_of_the_wrong_type_is_400(esc, driver, value):
    body = {**valid(driver, esc.clock()), "operation": value}
    answer = post(esc, driver, signed(driver, json.dumps(body).encode(), esc.clock()))
    assert answer.status_code == 400, answer.json
    assert "operation" in answer.json["error"]


@pytest.mark.parametrize("depth", [65, 1000, 1023])
def test_json_nested_too_deep_is_400_at_the_door(esc, driver, depth):
    text = json.dumps({**valid(driver, esc.clock()), "u_deep": "DEEP"})
    body = text.replace('"DEEP"', "[" * (depth - 1) + "]" * (depth - 1)).encode()
    answer = post(esc, driver, signed(driver, body, esc.clock()))
    assert answer.status_code == 400
    assert "deeper than 64 levels" in answer.json["error"] or "depth" in answer.json["error"]
    assert inbox.counts(esc.rt.engine) == {}


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_a_repeated_delivery_id_header_is_400(esc, driver):
    now = esc.clock()
    # Where the header is the delivery id: a Jira edited comment; a Zendesk trigger whose account renders
    # updated_at without seconds. (An issue or ticket change, a new comment, is named by itself.)
    if driver.platform == "jira":
        body = json.loads(driver.commented(Spec(1, labels=("outage",)), "hello", now).body)
        body.update(webhookEvent="jira:issue_updated", issue_event_type_name="issue_comment_edited")
        good = driver.deliver(body, now)
    else:
        body = json.loads(driver.created(Spec(1, labels=("outage",)), now).body)
        body["ticket"]["updated_at"] = now.strftime("%Y-%m-%dT%H:%MZ")
        good = driver.deliver(body, now)
    name = {"jira": "X-Atlassian-Webhook-Identifier", "zendesk": "X-Zendesk-Webhook-Invocation-Id"}[
        driver.platform
    ]
    headers = [(k, v) for k, v in good.headers.items() if k != name] + [(name, "id-a"), (name, "id-b")]
    answer = esc.http.post(f"/webhooks/{driver.platform}", data=good.body, headers=headers)
    assert answer.status_code == 400, answer.json
    assert "repeated header" in answer.json["error"]
    assert inbox.counts(esc.rt.engine) == {}
