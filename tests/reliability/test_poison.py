"""Issue 11, findings 1 and 2: one bad-but-signed delivery never hurts another.

A delivery nested ~980 deep, one whose key is longer than the store's column, one carrying a NUL
character: at the door each is refused alone (400, nothing stored) while its neighbours are
applied; and one that is already in the inbox (stored before the door knew better) ends as failed
with the reason, never stalling its batch-mates in `processing`. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest

from connector.store import inbox
from connector.store.tables import inbox as inbox_table
from platforms.registry import PLATFORMS
from tests.conformance.drivers import Delivery, Spec, post

KINDS = ("depth", "long_key", "nul")


DEEP = "__nested_980_deep__"


def raw(body: dict) -> bytes:
    """The JSON text of `body`, with a list nested 980 deep where it holds DEEP (too deep for the
    standard library's encoder to write, which is the point)."""
    return json.dumps(body).replace(f'"{DEEP}"', "[" * 980 + "]" * 980).encode()


def signed(driver, body: bytes, now) -> Delivery:
    return Delivery(body, {"Content-Type": "application/json", **driver.sign(body, now)})


def poisoned(platform: str, body: dict, kind: str) -> dict:
    """`body` (a valid delivery of `platform`) made into the poison of `kind`."""
    if kind == "depth":
        if platform == "jira":
            body["issue"]["fields"]["customfield_10999"] = DEEP  # where the attack put it
        else:
            body["u_deep"] = DEEP
    elif kind == "long_key":
        if platform == "jira":
            body["issue"]["key"] = "OPS-" + "9" * 300
        elif platform == "zendesk":
            body["ticket"]["id"] = "4" * 300
        else:
            body["number"] = "INC" + "0" * 300
    else:
        text = json.dumps(body).replace("Checkout is down", "Checkout\\u0000 is down")
        assert "\\u0000" in text
        return json.loads(text)
    return body


@pytest.mark.parametrize("kind", KINDS)
def test_a_poison_delivery_among_valid_ones_is_refused_alone_at_the_door(esc, driver, api, kind):
    driver.register_write(api)
    now = esc.clock()
    answers = [post(esc, driver, driver.created(Spec(n, labels=("outage",)), now)).status_code
               for n in (11, 12, 13)]  # fmt: skip
    bad = poisoned(driver.platform, json.loads(driver.created(Spec(14, labels=("outage",)), now).body), kind)
    refused = post(esc, driver, signed(driver, raw(bad), now))
    answers += [post(esc, driver, driver.created(Spec(n, labels=("outage",)), now)).status_code
                for n in (15, 16, 17)]  # fmt: skip

    assert refused.status_code == 400, refused.json
    assert refused.json["result"] == "malformed"
    reason = refused.json["error"]
    assert {"depth": "deeper than 64", "long_key": "characters long", "nul": "NUL"}[kind] in reason
    assert answers == [202] * 6
    esc.work()
    assert inbox.counts(esc.rt.engine) == {"done": 6}  # nothing of the poison was stored
    assert [r["outcome"] for r in esc.audit()] == ["applied"] * 6


def _store_directly(esc, driver, body: dict, delivery_id: str) -> None:
    """A delivery stored before the door checked it (an older version's inbox)."""
    found = PLATFORMS[driver.platform].provider.identify(
        {"X-Atlassian-Webhook-Identifier": delivery_id}, body
    )
    # Under the header's id, as the older version named every Jira delivery.
    row = inbox.new_row(driver.platform, delivery_id, found.event_type, found.ticket_id, found.ignored,
                        raw(body), esc.clock())  # fmt: skip
    assert inbox.accept(esc.rt.engine, row)


@pytest.mark.parametrize("platform", ["jira"])
@pytest.mark.parametrize("kind", ["depth", "long_key", "nul_in_key"])
def test_a_poison_already_in_the_inbox_fails_alone_and_its_batch_mates_go_on(esc, driver, api, kind):
    driver.register_write(api)
    now = esc.clock()
    for n in (21, 22):
        assert post(esc, driver, driver.created(Spec(n, labels=("outage",)), now)).status_code == 202
    body = json.loads(driver.created(Spec(23, labels=("outage",)), now).body)
    if kind == "nul_in_key":
        body["issue"]["key"] = "OPS-\x0023"
    else:
        body = poisoned("jira", body, kind)
    _store_directly(esc, driver, body, "poison-1")
    for n in (24, 25):
        assert post(esc, driver, driver.created(Spec(n, labels=("outage",)), now)).status_code == 202

    esc.work()
    esc.clock.advance(3600)
    esc.work()

    with esc.rt.engine.connect() as conn:
        rows = {r.delivery_id: r for r in conn.execute(inbox_table.select())}
    poison = rows.pop("poison-1")
    assert {r.status for r in rows.values()} == {"done"}, "a batch-mate was held up"
    assert len(rows) == 4
    if esc.rt.engine.dialect.name == "sqlite" and kind != "depth":
        assert poison.status == "done"  # SQLite holds any length and NUL: nothing to refuse
    else:
        assert poison.status == "failed", poison.last_error
        assert "could not be stored" in poison.last_error
        failed = [r for r in esc.audit() if r["outcome"] == "failed"]
        assert len(failed) == 1 and failed[0]["trigger"]["delivery_id"] == "poison-1"
    assert inbox.counts(esc.rt.engine).get("processing", 0) == 0


def test_a_delivery_whose_worker_dies_holding_it_is_retried_once_then_failed(esc, api):
    """Nothing stays in `processing` beyond its lease plus one retry (worker.max_lease_expiries)."""
    from datetime import timedelta

    from tests.conformance.drivers import DRIVERS

    driver = DRIVERS["jira"](esc.rt.policy.current.platforms["jira"])
    driver.register_write(api)
    assert post(esc, driver, driver.created(Spec(31, labels=("outage",)), esc.clock())).status_code == 202
    assert post(esc, driver, driver.created(Spec(32, labels=("outage",)), esc.clock())).status_code == 202
    lease = timedelta(seconds=esc.rt.config.worker.lease_seconds)
    for _ in range(esc.rt.config.worker.max_lease_expiries):
        # A worker takes the first delivery and dies: nothing is processed, the lease runs out.
        (taken,) = inbox.claim(esc.rt.engine, owner="doomed", now=esc.clock(), lease=lease, limit=1)
        assert taken.ticket_id == driver.ticket_id(Spec(31))
        esc.clock.advance(lease.total_seconds() + 1)
    esc.work()

    with esc.rt.engine.connect() as conn:
        rows = {r.ticket_id: r for r in conn.execute(inbox_table.select())}
    doomed, mate = rows[driver.ticket_id(Spec(31))], rows[driver.ticket_id(Spec(32))]
    assert mate.status == "done"
    assert doomed.status == "failed" and "stopped 2 times" in doomed.last_error
    assert [r["outcome"] for r in esc.audit()].count("failed") == 1
    assert inbox.counts(esc.rt.engine).get("processing", 0) == 0
