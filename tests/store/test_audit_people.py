"""Pseudonyms a process already knows (connector/audit/people.py): a person met again costs one
UPDATE instead of the keyed lookup and the upsert, and the row stays the truth. `last_seen_seq` must
follow every record that names the person (`audit prune` drops people whose last sighting it
removed), erasure and rolled-back first sightings must not leave a record pointing at nobody."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from connector import audit
from connector.audit import checkpoints as cps
from connector.audit import people, privacy
from connector.audit.keys import AuditKeys, generate, load_signer
from connector.codec import ticket_to_json
from connector.model import Requester, Ticket, TicketRef
from connector.store.db import make_engine
from connector.store.tables import audit_people, tickets

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEYS = AuditKeys(pseudonym_key=b"q" * 32)


def _append(engine, *who, day=0, keys=KEYS):
    record = {
        "platform": "jira",
        "ticket": {"id": "1", "key": "TES-1", "url": None},
        "rules": [],
        "inputs": {
            "actor": who[0],
            "requester": {"id": who[1] if len(who) > 1 else None},
            "also": list(who[2:]),
        },
        "outcome": "applied",
    }
    with engine.begin() as conn:
        return audit.append(conn, record, at=T0 + timedelta(days=day), keys=keys)


def _rows(engine):
    with engine.connect() as conn:
        query = select(audit_people.c.pseudonym, audit_people.c.person_id, audit_people.c.name,
                       audit_people.c.last_seen_seq)  # fmt: skip
        return {row.person_id: row for row in conn.execute(query)}


def test_a_known_person_met_again_moves_their_last_sighting_and_name_on(engine):
    ann, bob = audit.person("jira", "acct-ann", "Ann"), audit.person("jira", "acct-bob", "Bob")
    first = _append(engine, ann, bob)
    assert set(people._KNOWN[engine][KEYS.pseudonym_key]) == {("jira", "acct-ann"), ("jira", "acct-bob")}
    second = _append(engine, ann, bob)  # both known to this process now: the UPDATE path
    third = _append(engine, audit.person("jira", "acct-ann"), audit.person("jira", "acct-bob", "Robert"))
    for written in (second, third):
        assert written["inputs"]["actor"] == first["inputs"]["actor"]
        assert written["inputs"]["requester"]["id"] == first["inputs"]["requester"]["id"]
    rows = _rows(engine)
    assert rows["acct-ann"].last_seen_seq == rows["acct-bob"].last_seen_seq == third["seq"] == 3
    assert rows["acct-ann"].name == "Ann"  # no name given: the row keeps the one it had, as the upsert does
    assert rows["acct-bob"].name == "Robert"  # a new name given: taken, as the upsert does
    assert audit.verify(engine).ok


def test_one_person_known_and_one_new_in_the_same_record(engine):
    ann = audit.person("jira", "acct-ann", "Ann")
    first = _append(engine, ann)
    written = _append(engine, ann, audit.person("jira", "acct-new", "New"))
    rows = _rows(engine)
    assert written["inputs"]["actor"] == first["inputs"]["actor"] == rows["acct-ann"].pseudonym
    assert written["inputs"]["requester"]["id"] == rows["acct-new"].pseudonym
    assert rows["acct-ann"].last_seen_seq == rows["acct-new"].last_seen_seq == 2


def test_a_person_erased_elsewhere_gets_a_new_row_though_this_process_knew_them(engine):
    ann = audit.person("jira", "acct-ann", "Ann")
    first = _append(engine, ann)
    with engine.begin() as conn:  # what `audit forget` in another process does to the mapping
        conn.execute(delete(audit_people).where(audit_people.c.person_id == "acct-ann"))
    again = _append(engine, ann, audit.person("jira", "acct-bob"))
    rows = _rows(engine)
    assert again["inputs"]["actor"] != first["inputs"]["actor"]  # the erased pseudonym is not reused
    assert again["inputs"]["actor"] == rows["acct-ann"].pseudonym and rows["acct-ann"].last_seen_seq == 2
    assert again["inputs"]["requester"]["id"] == rows["acct-bob"].pseudonym


def test_forget_in_this_process_leaves_no_pseudonym_to_reuse(engine):
    ann = audit.person("jira", "acct-ann", "Ann")
    first = _append(engine, ann)
    privacy.forget(engine, KEYS, "jira", "acct-ann", now=T0, actor="dpo")
    assert engine not in people._KNOWN
    again = _append(engine, ann)
    assert again["inputs"]["actor"] != first["inputs"]["actor"]
    assert again["inputs"]["actor"] == _rows(engine)["acct-ann"].pseudonym


def test_a_first_sighting_rolled_back_is_not_trusted_later(engine):
    ann = audit.person("jira", "acct-ann", "Ann")
    record = {"platform": "jira", "ticket": {"id": "1"}, "rules": [], "inputs": {"actor": ann},
              "outcome": "applied"}  # fmt: skip
    conn = engine.connect()
    with conn.begin() as transaction:
        audit.append(conn, record, at=T0, keys=KEYS)  # this process now knows Ann's pseudonym …
        transaction.rollback()  # … whose row never was
    conn.close()
    written = _append(engine, ann)
    assert written["inputs"]["actor"] == _rows(engine)["acct-ann"].pseudonym


def test_each_engine_and_pseudonym_key_has_its_own_memory(engine, tmp_path):
    ann = audit.person("jira", "acct-ann", "Ann")
    _append(engine, ann)
    other = AuditKeys(pseudonym_key=b"r" * 32)
    written = _append(engine, ann, keys=other)  # another key: another lookup, another row
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_people.c.pseudonym).where(audit_people.c.person_id == "acct-ann")
        ).all()
    assert len(rows) == 2 and written["inputs"]["actor"] in {r.pseudonym for r in rows}


def test_prune_keeps_a_person_a_kept_record_names_through_the_known_path(engine, tmp_path):
    generate(tmp_path / "k", tmp_path / "k.pub")
    keys = AuditKeys(signer=load_signer(str(tmp_path / "k")), pseudonym_key=KEYS.pseudonym_key)
    ann, bob = audit.person("jira", "acct-ann", "Ann"), audit.person("jira", "acct-bob", "Bob")
    _append(engine, ann, bob, day=0, keys=keys)
    _append(engine, bob, day=1, keys=keys)
    late = _append(engine, ann, day=9, keys=keys)  # Ann known: her last sighting moves on by the UPDATE
    privacy.prune(engine, keys, cps.DirectorySink(tmp_path / "cp"), before=T0 + timedelta(days=5),
                  retention_days=None, now=T0 + timedelta(days=20), actor="dpo")  # fmt: skip
    rows = _rows(engine)
    assert set(rows) == {"acct-ann", "dpo"}  # Bob was named only in pruned records
    assert rows["acct-ann"].pseudonym == late["inputs"]["actor"]  # the kept record still names someone
    again = _append(engine, bob, day=21, keys=keys)  # Bob's row went with the prune: a new one
    assert again["inputs"]["actor"] == _rows(engine)["acct-bob"].pseudonym


def test_the_record_given_is_left_as_it_was_and_what_holds_nobody_is_not_copied(engine):
    ann = audit.person("jira", "acct-ann", "Ann")
    plain = {"labels": ["a", "b"]}
    record = {"platform": "jira", "ticket": {"id": "1"}, "rules": [], "outcome": "applied",
              "inputs": {"actor": ann, "watchers": (ann, "x"), "plain": plain}}  # fmt: skip
    with engine.begin() as conn:
        out = people.pseudonymise(conn, record, KEYS, seq=1, now=T0)
    assert record["inputs"]["actor"] is ann and record["inputs"]["watchers"] == (ann, "x")
    pseudonym = out["inputs"]["actor"]
    assert pseudonym.startswith("psn:") and out["inputs"]["watchers"] == [pseudonym, "x"]
    assert out["inputs"]["plain"] is plain and out["ticket"] is record["ticket"]
    with engine.begin() as conn:
        assert people.pseudonymise(conn, plain, KEYS, seq=2, now=T0) is plain
        assert people.pseudonymise(conn, ann, KEYS, seq=2, now=T0) == pseudonym


def test_people_all_known_one_of_them_erased_elsewhere(engine):
    ann, bob = audit.person("jira", "acct-ann", "Ann"), audit.person("jira", "acct-bob", "Bob")
    first = _append(engine, ann, bob)
    with engine.begin() as conn:  # another process's `audit forget` of Ann
        conn.execute(delete(audit_people).where(audit_people.c.person_id == "acct-ann"))
    again = _append(engine, ann, bob)  # both known here: the seen-again path, which finds one row of two
    rows = _rows(engine)
    assert again["inputs"]["actor"] == rows["acct-ann"].pseudonym != first["inputs"]["actor"]
    assert (
        again["inputs"]["requester"]["id"] == rows["acct-bob"].pseudonym == first["inputs"]["requester"]["id"]
    )
    assert rows["acct-ann"].last_seen_seq == rows["acct-bob"].last_seen_seq == again["seq"] == 2
    third = _append(engine, ann, bob)  # and known again, with the new pseudonym
    assert third["inputs"]["actor"] == again["inputs"]["actor"]
    assert _rows(engine)["acct-ann"].last_seen_seq == 3


def test_an_append_on_a_connection_without_a_transaction_commits_with_it(engine):
    ann = audit.person("jira", "acct-ann", "Ann")
    record = {"platform": "jira", "ticket": {"id": "1"}, "rules": [], "inputs": {"actor": ann},
              "outcome": "applied"}  # fmt: skip
    with engine.connect() as conn:  # no begin(): as with Core statements, the append begins one
        audit.append(conn, record, at=T0, keys=KEYS)
        assert conn.in_transaction()
        conn.rollback()
    with engine.connect() as conn:
        audit.append(conn, record, at=T0, keys=KEYS)
        conn.commit()
    with engine.connect() as conn:
        assert conn.execute(select(audit_people.c.last_seen_seq)).scalars().all() == [1]
    assert audit.verify(engine).ok and audit.verify(engine).checked == 1


def test_an_append_naming_nobody_on_a_connection_without_a_transaction_commits_with_it(engine):
    record = {"platform": "jira", "ticket": {"id": "1"}, "rules": [], "outcome": "applied"}
    with engine.connect() as conn:  # every statement of this append goes through the DBAPI cursor
        audit.append(conn, record, at=T0, keys=KEYS)
        conn.commit()
    assert audit.verify(engine).checked == 1


@pytest.mark.postgres
def test_forget_waits_for_a_decision_holding_the_tickets_row_and_neither_deadlocks(migrated_postgres_url):
    """A decision's record locks its ticket's row, then the chain's head, then the people it names.
    `forget` takes them in that order too: a record waiting for the head while forget held it and
    waited for the ticket's row would deadlock (PostgreSQL aborts one of them)."""
    engine = make_engine(migrated_postgres_url)
    _append(engine, "acct-ann")  # the person is known to the chain
    snapshot = ticket_to_json(Ticket(TicketRef("jira", "1", "TES-1"), requester=Requester("acct-ann", "Ann")))
    with engine.begin() as conn:
        conn.execute(insert(tickets).values(platform="jira", ticket_id="1", snapshot=snapshot,
                                            priority_pinned=False))  # fmt: skip
    with ThreadPoolExecutor(1) as pool, engine.connect() as decision:
        with decision.begin():
            decision.execute(update(tickets).where(tickets.c.ticket_id == "1").values(tier="L2"))
            erasing = pool.submit(privacy.forget, engine, KEYS, "jira", "acct-ann", now=T0, actor="dpo")
            time.sleep(0.5)  # forget now waits for the ticket's row
            assert not erasing.done()
            record = {"platform": "jira", "ticket": {"id": "1"}, "rules": [], "outcome": "applied",
                      "inputs": {"requester": people.person("jira", "acct-ann")}}  # fmt: skip
            audit.append(decision, record, at=T0 + timedelta(minutes=1), keys=KEYS)  # head, then people
        forgotten = erasing.result(timeout=30)
    assert len(forgotten.pseudonyms) == 1 and forgotten.tickets == 1
    assert [r for r in _rows(engine) if r[1] == "acct-ann"] == []
    engine.dispose()
