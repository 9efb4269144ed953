from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from connector import audit
from connector.store.tables import audit_people

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _record(platform="jira", ticket="10040", outcome="applied", rules=("outage-goes-to-l2",)):
    return {
        "platform": platform,
        "ticket": {"id": ticket, "key": "TES-41", "url": "https://x.atlassian.net/browse/TES-41"},
        "trigger": {"kind": "ticket.created", "delivery_id": f"d-{ticket}"},
        "policy": {"name": "global-support", "version": 1, "sha256": "ab" * 32},
        "rules": list(rules),
        "inputs": {"labels": ["outage"]},
        "priority": {"from": "P3", "to": "P1", "why": "impact high × urgency high"},
        "tier": {"from": "L1", "to": "L2"},
        "actions_planned": [{"action": "set_priority", "priority": "P1"}],
        "actions_applied": [{"method": "PUT", "status": 204}],
        "outcome": outcome,
    }


def _append(engine, n, start=0, **kw):
    out = []
    for i in range(start, start + n):
        with engine.begin() as conn:
            out.append(audit.append(conn, _record(**kw), at=T0 + timedelta(minutes=i)))
    return out


def test_chain_links_each_record_to_the_previous(engine):
    first, second = _append(engine, 2)
    assert first["prev_hash"] == audit.GENESIS
    assert second["prev_hash"] == first["hash"]
    assert (first["seq"], second["seq"]) == (1, 2)
    result = audit.verify(engine)
    assert result.ok and result.checked == 2, str(result)


def test_unknown_outcome_is_refused(engine):
    with pytest.raises(ValueError, match="outcome"):
        with engine.begin() as conn:
            audit.append(conn, _record(outcome="maybe"), at=T0)


def _disable_guard(conn):
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    else:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))


def test_verify_names_the_first_altered_record(engine):
    _append(engine, 4)
    with engine.begin() as conn:  # an attacker with table rights edits record 2
        _disable_guard(conn)
        row = conn.execute(text("SELECT record FROM audit_log WHERE seq = 2")).scalar_one()
        forged = json.loads(row)
        forged["priority"]["to"] = "P4"
        conn.execute(
            text("UPDATE audit_log SET record = :r WHERE seq = 2"), {"r": audit.canonical_json(forged)}
        )
    result = audit.verify(engine)
    assert not result.ok
    assert result.broken_seq == 2
    assert "altered" in result.reason


def test_verify_detects_a_deleted_record_and_a_truncated_tail(engine):
    _append(engine, 3)
    with engine.begin() as conn:
        _disable_guard(conn)
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    result = audit.verify(engine)
    assert not result.ok and result.broken_seq == 3 and "missing" in result.reason
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 1"))
    result = audit.verify(engine)
    assert not result.ok and result.broken_seq == 1 and "missing" in result.reason


def test_export_filters_and_formats(engine):
    _append(engine, 2, platform="jira")
    _append(engine, 1, start=2, platform="zendesk", ticket="77", rules=("security-goes-to-l3",))
    out = io.StringIO()
    assert audit.write_jsonl(audit.records(engine, platform="zendesk"), out) == 1
    line = json.loads(out.getvalue())
    assert line["platform"] == "zendesk" and line["seq"] == 3 and len(line["hash"]) == 64

    out = io.StringIO()
    assert audit.write_csv(audit.records(engine, since=T0 + timedelta(minutes=1)), out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["seq"] for r in rows] == ["2", "3"]
    assert rows[0]["priority_to"] == "P1" and rows[0]["tier_to"] == "L2"

    assert [r["seq"] for r in audit.records(engine, rule="security-goes-to-l3")] == [3]
    assert [r["seq"] for r in audit.records(engine, ticket="10040")] == [1, 2]


def test_pseudonym_hides_personal_data_stably():
    assert audit.pseudonym("ann@example.com") == audit.pseudonym("ann@example.com")
    assert "ann" not in audit.pseudonym("ann@example.com")
    assert audit.pseudonym(None) is None


def test_since_in_another_time_zone_means_the_same_instant(engine):
    _append(engine, 1)  # at 09:00 UTC
    berlin_summer = timezone(timedelta(hours=2))
    assert len(list(audit.records(engine, since=datetime(2026, 11, 2, 10, 59, tzinfo=berlin_summer)))) == 1
    assert len(list(audit.records(engine, since=datetime(2026, 11, 2, 11, 1, tzinfo=berlin_summer)))) == 0


def test_stored_times_come_back_aware_utc(engine):
    from sqlalchemy import select

    from connector.store.tables import audit_log

    _append(engine, 1)
    with engine.connect() as conn:
        at = conn.execute(select(audit_log.c.at)).scalar_one()
    assert at == T0 and at.tzinfo is not None and at.utcoffset() == timedelta(0)


def test_each_person_of_a_record_gets_their_own_pseudonym(engine):
    people = [audit.person("jira", f"acct-{n}", f"Person {n}") for n in range(5)]
    requester = {"id": people[2], "also": [people[3], people[4], people[0]]}
    record = {**_record(), "inputs": {"assignee": people[0], "actor": people[1], "requester": requester}}
    with engine.begin() as conn:
        written = audit.append(conn, record, at=T0)
        again = audit.append(conn, {**_record(), "inputs": {"assignee": people[4]}}, at=T0)
    with engine.connect() as conn:
        who = dict(conn.execute(select(audit_people.c.pseudonym, audit_people.c.person_id)).all())
    inputs = written["inputs"]
    named = [inputs["assignee"], inputs["actor"], inputs["requester"]["id"], *inputs["requester"]["also"]]
    assert [who[p] for p in named] == ["acct-0", "acct-1", "acct-2", "acct-3", "acct-4", "acct-0"]
    assert (
        again["inputs"]["assignee"] == inputs["requester"]["also"][1]
    )  # the same person, the same pseudonym
    assert written["ticket"] == _record()["ticket"]  # what holds nobody is kept as it was


def test_records_appended_together_chain_as_if_appended_one_by_one(engine):
    """append_many (the outbox's sends answered together): one bump of the head for all, their rows
    in one batch, and a chain that verifies, with single appends before and after it."""
    before = _append(engine, 1)
    with engine.begin() as conn:
        together = audit.append_many(
            conn, [(_record(ticket=str(10041 + i)), T0 + timedelta(minutes=1 + i)) for i in range(4)]
        )
    after = _append(engine, 1, start=5)
    written = before + together + after
    assert [r["seq"] for r in written] == [1, 2, 3, 4, 5, 6]
    assert [r["prev_hash"] for r in written[1:]] == [r["hash"] for r in written[:-1]]
    assert [r["ticket"]["id"] for r in together] == ["10041", "10042", "10043", "10044"]
    stored = list(audit.records(engine))
    assert [(r["seq"], r["hash"]) for r in stored] == [(r["seq"], r["hash"]) for r in written]
    result = audit.verify(engine)
    assert result.ok and result.checked == 6, str(result)


def test_records_appended_together_that_name_people_or_an_unknown_outcome(engine):
    """A record naming someone is pseudonymised as alone; an unknown outcome refuses the whole batch."""
    with pytest.raises(ValueError, match="outcome"):
        with engine.begin() as conn:
            audit.append_many(conn, [(_record(), T0), (_record(outcome="maybe"), T0)])
    assert list(audit.records(engine)) == []
    someone = audit.person("jira", "acct-7", "Person 7")
    with engine.begin() as conn:
        first, second = audit.append_many(
            conn, [(_record(), T0), ({**_record(), "inputs": {"assignee": someone}}, T0)]
        )
    with engine.connect() as conn:
        who = dict(conn.execute(select(audit_people.c.pseudonym, audit_people.c.person_id)).all())
    assert who[second["inputs"]["assignee"]] == "acct-7"
    assert (first["seq"], second["seq"]) == (1, 2)
    result = audit.verify(engine)
    assert result.ok and result.checked == 2, str(result)
