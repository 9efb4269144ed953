"""A transaction that has bumped the audit chain's head holds its row until the commit, so its next
appends need not read it again (connector/audit/chain.py, `_HEAD` in db.transaction_memo): on
PostgreSQL a shared transaction of the worker's group commit reads the head once for all its records
instead of one round trip a record, and the reads it still has to make (a known person's row still
there, an in-flight mark's lease) come together before the commit. The chain it leaves is the one
records appended one by one would have left, and a person erased meanwhile is not named by a
pseudonym that no longer links to anyone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select

from connector import audit
from connector.audit.keys import AuditKeys
from connector.store import inbox
from connector.store.db import make_engine, writing
from connector.store.group_commit import GroupCommit, Write
from connector.store.pgpipeline import Pipeline
from connector.store.tables import audit_head, audit_people
from connector.store.tables import inbox as inbox_table
from tests.store.test_group_commit import Holding, _write_together
from tests.support.concurrency import run_together

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KEYS = AuditKeys(pseudonym_key=b"h" * 32)


class Wire:
    """What went to PostgreSQL through the pipelines: the statements sent, and the round trips (each
    time the client pushed what it had queued and waited for answers)."""

    def __init__(self, monkeypatch) -> None:
        self.sent: list[str] = []
        self.trips = 0
        send, flush = Pipeline.send, Pipeline._flush

        def sending(pipeline, sql, params):
            self.sent.append(sql)
            return send(pipeline, sql, params)

        def flushing(pipeline):
            self.trips += 1
            return flush(pipeline)

        monkeypatch.setattr(Pipeline, "send", sending)
        monkeypatch.setattr(Pipeline, "_flush", flushing)

    def bumps(self) -> int:
        return sum("SET seq = seq +" in sql for sql in self.sent)


def _claimed(engine, count: int) -> list[inbox.InboxItem]:
    rows = [
        inbox.new_row("jira", f"held-{n}", "jira:issue_updated", str(70_000 + n), False, b"{}", T0)
        for n in range(count)
    ]
    with writing(engine) as conn:
        conn.execute(insert(inbox_table), rows)
    items = inbox.claim(engine, owner="w1", now=T0, lease=timedelta(seconds=60), limit=count)
    return sorted(items, key=lambda item: item.delivery_id)


def _record(item: inbox.InboxItem, who: str | None = None, first=None) -> Write:
    """A decision's record: the inbox row (its fence read before the commit) and the audit record,
    naming `who` as the requester."""
    fences = []

    def stage(conn) -> None:
        if first is not None:
            first()
        fences[:] = [inbox.finish(conn, item, status=inbox.DONE, owner="w1", now=T0, fence_later=True)]

    def seal(conn) -> None:
        requester = audit.person("jira", who, who.title()) if who else None
        record = {"platform": "jira", "ticket": {"id": item.ticket_id}, "outcome": "applied",
                  "trigger": {"delivery_id": item.delivery_id},
                  "inputs": {"requester": requester}}  # fmt: skip
        audit.append(conn, record, at=T0, keys=KEYS)
        fences[0]()

    return Write(stage, seal)


def _written(engine) -> dict[str, dict]:
    return {r["trigger"]["delivery_id"]: r for r in audit.records(engine)}


def _head(engine) -> tuple[int, str]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one())


def test_a_shared_transaction_reads_the_chain_head_once_and_leaves_it_where_its_last_record_is(
    engine, monkeypatch
):
    items = _claimed(engine, 7)
    # Ann and Bob are known to this process (their rows written by an earlier record); Cid is new.
    GroupCommit(engine).write(_record(items[0], "ann"))
    GroupCommit(engine).write(_record(items[1], "bob"))
    wire = Wire(monkeypatch)
    records = GroupCommit(engine)
    holding = Holding(records, 4)
    writes = [_record(items[2], "ann", first=holding), _record(items[3], "ann"), _record(items[4], "bob"),
              _record(items[5], "cid"), _record(items[6])]  # fmt: skip

    assert _write_together(records, writes, holding) == dict.fromkeys(range(5))

    assert records.transactions == 2 and records.written_again == 0  # the first alone, four together
    written = _written(engine)
    seqs = {name: r["seq"] for name, r in written.items()}
    assert sorted(seqs.values()) == list(range(1, 8))  # (followers queue in whatever order they came)
    last = max(written.values(), key=lambda r: r["seq"])
    assert _head(engine) == (7, last["hash"])
    assert audit.verify(engine).ok
    requester = {name: r["inputs"]["requester"] for name, r in written.items()}  # pseudonyms
    assert requester["held-2"] == requester["held-3"] == requester["held-0"]  # Ann's
    assert requester["held-4"] == requester["held-1"]  # Bob's
    with engine.connect() as conn:
        seen = dict(conn.execute(select(audit_people.c.person_id, audit_people.c.last_seen_seq)).all())
    # Sightings moved on by the held appends too.
    assert seen == {"ann": max(seqs["held-2"], seqs["held-3"]), "bob": seqs["held-4"], "cid": seqs["held-5"]}
    if engine.dialect.name == "postgresql":
        # One bump a transaction, not one a record. Round trips: the lone record's head read and
        # commit; the shared transaction's head read, Cid's upsert (a person this process did not
        # know yet), one for every answer due before the commit (Ann's and Bob's rows still there,
        # the leases), the commit: not one a record.
        assert wire.bumps() == 2
        assert wire.trips == 2 + 4


def test_a_record_appended_alone_after_a_shared_transaction_chains_on(engine):
    items = _claimed(engine, 5)
    records = GroupCommit(engine)
    holding = Holding(records, 3)
    writes = [_record(item, "ann", first=holding if n == 0 else None) for n, item in enumerate(items[:4])]
    assert _write_together(records, writes, holding) == dict.fromkeys(range(4))
    with writing(engine) as conn:  # anyone else's append, outside the group commit
        audit.append(conn, {"platform": "jira", "ticket": {"id": "1"}, "outcome": "applied",
                            "trigger": {"delivery_id": "held-x"}}, at=T0, keys=KEYS)  # fmt: skip
    records.write(_record(items[4], "ann"))
    written = _written(engine)
    assert sorted(r["seq"] for r in written.values()) == list(range(1, 7))
    assert _head(engine) == (6, written["held-4"]["hash"])
    assert audit.verify(engine).ok


@pytest.mark.postgres
def test_a_person_erased_while_a_shared_transaction_names_them_is_written_again_under_a_new_pseudonym(
    migrated_postgres_url,
):
    engine = make_engine(migrated_postgres_url)
    try:
        items = _claimed(engine, 4)
        GroupCommit(engine).write(_record(items[0], "ann"))  # this process now knows Ann's pseudonym
        old = _written(engine)["held-0"]["inputs"]["requester"]
        with writing(engine) as conn:  # erased by another process: this one still remembers her
            conn.execute(delete(audit_people).where(audit_people.c.person_id == "ann"))
        records = GroupCommit(engine)
        holding = Holding(records, 2)
        # Ann in the second record of the shared transaction: its head is held, so her row's absence
        # is only learnt at the check before the commit.
        order = [_record(items[1], first=holding), _record(items[3]), _record(items[2], "ann")]
        errors: dict[int, object] = {}

        def run(k: int) -> None:
            if k:
                assert holding.leading.wait(10)
            while k == 2 and len(records._queue) < 1:  # Ann's queues behind the other follower
                time.sleep(0.002)
            records.write(order[k])
            errors[k] = None

        run_together(run, 3, timeout=30)

        assert errors == dict.fromkeys(range(3))

        assert records.written_again == 2  # the shared transaction rolled back, each written alone
        written = _written(engine)
        new = written["held-2"]["inputs"]["requester"]
        assert new != old  # the erased pseudonym names nobody again
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_people.c.pseudonym).where(audit_people.c.person_id == "ann")
            ).all()
        assert [r.pseudonym for r in rows] == [new]
        assert sorted(r["seq"] for r in written.values()) == [1, 2, 3, 4]
        assert audit.verify(engine).ok
    finally:
        engine.dispose()


def test_an_in_flight_mark_in_a_shared_transaction_still_fails_when_its_lease_was_taken(engine):
    items = _claimed(engine, 3)
    with writing(engine) as conn:  # another worker took held-1 meanwhile
        conn.execute(
            inbox_table.update().where(inbox_table.c.delivery_id == "held-1").values(lease_owner="w2")
        )
    records = GroupCommit(engine)
    holding = Holding(records, 2)
    steps = [
        lambda: records.write(_record(items[0], first=holding)),
        lambda: inbox.record_in_flight(
            engine, items[1], "fp", owner="w1", confirmed=frozenset(), records=records
        ),  # fmt: skip
        lambda: records.write(_record(items[2])),
    ]
    errors: dict[int, object] = {}

    def run(k: int) -> None:
        if k:
            assert holding.leading.wait(10)
        try:
            steps[k]()
            errors[k] = None
        except BaseException as exc:  # noqa: BLE001
            errors[k] = exc

    run_together(run, 3, timeout=30)

    # Its fence, read with the others' answers before the commit, still says the row is not ours.
    assert isinstance(errors.pop(1), inbox.LeaseLost) and errors == {0: None, 2: None}
    assert records.written_again == 2
    assert set(_written(engine)) == {"held-0", "held-2"}
    with engine.connect() as conn:
        marks = dict(conn.execute(select(inbox_table.c.delivery_id, inbox_table.c.in_flight)).all())
    assert marks["held-1"] is None
    assert audit.verify(engine).ok
