"""The worker's decision records committed together (connector/store/group_commit.py): records that
finish while another is being written share one transaction, stages first and seals last; each still
commits whole or not at all, and one that fails there (its lease taken, a value refused) fails alone
while the others commit. Nobody is left waiting, whatever the leader met."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from connector import audit
from connector.store import inbox
from connector.store.db import make_engine, writing
from connector.store.group_commit import GroupCommit, Write
from connector.store.inbox import InboxItem
from connector.store.tables import inbox as inbox_table
from connector.store.tables import tickets as tickets_table
from tests.support.concurrency import run_together

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def _claimed(engine, count: int) -> list[InboxItem]:
    rows = [
        inbox.new_row("jira", f"gc-{n}", "jira:issue_updated", str(90_000 + n), False, b"{}", T0)
        for n in range(count)
    ]
    with writing(engine) as conn:
        conn.execute(insert(inbox_table), rows)
    items = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=count)
    assert len(items) == count
    return sorted(items, key=lambda item: item.delivery_id)


def _record(item: InboxItem, steps: list | None = None, *, priority: str = "P2", stage_first=None) -> Write:
    """What a decision's record writes: the ticket's memory and the inbox row (stage), the audit
    record and the lease fence (seal)."""
    fences = []

    def stage(conn) -> None:
        if stage_first is not None:
            stage_first()
        if steps is not None:
            steps.append(("stage", item.delivery_id))
        conn.execute(
            update(tickets_table)
            .where(tickets_table.c.platform == "jira", tickets_table.c.ticket_id == item.ticket_id)
            .values(priority=priority)
        )
        fences[:] = [inbox.finish(conn, item, status=inbox.DONE, owner="w1", now=T0, fence_later=True)]

    def seal(conn) -> None:
        if steps is not None:
            steps.append(("seal", item.delivery_id))
        record = {"platform": "jira", "ticket": {"id": item.ticket_id},
                  "trigger": {"delivery_id": item.delivery_id}, "outcome": "applied"}  # fmt: skip
        audit.append(conn, record, at=T0)
        fences[0]()

    return Write(stage, seal)


class Holding:
    """The first record's stage: it holds its leader (once it has taken its own batch) until `count`
    more records wait behind it."""

    def __init__(self, records: GroupCommit, count: int) -> None:
        self.records, self.count = records, count
        self.leading = threading.Event()

    def __call__(self) -> None:
        self.leading.set()
        deadline = time.monotonic() + 10
        while len(self.records._queue) < self.count:
            assert time.monotonic() < deadline, "the other records never queued"
            time.sleep(0.005)


def _write_together(records: GroupCommit, writes: list[Write], holding: Holding) -> dict[int, object]:
    """writes[0] first (its stage holds it until the rest are queued), the rest from their own threads;
    index → None or what write() raised."""
    errors: dict[int, object] = {}

    def run(k: int) -> None:
        if k:
            assert holding.leading.wait(10)
        try:
            records.write(writes[k])
            errors[k] = None
        except BaseException as exc:  # noqa: BLE001 (an interrupt, too, must reach every waiter)
            errors[k] = exc

    run_together(run, len(writes), timeout=30)
    return errors


def _state(engine) -> tuple[dict[str, str], dict[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbox_table.c.delivery_id, inbox_table.c.status)).all()
        priorities = conn.execute(select(tickets_table.c.ticket_id, tickets_table.c.priority)).all()
    return dict(rows), dict(priorities)


def _audited(engine) -> list[str]:
    return [r["trigger"]["delivery_id"] for r in audit.records(engine)]


def test_records_that_finish_meanwhile_share_one_transaction_stages_first(engine):
    items = _claimed(engine, 6)
    sizes: list[int] = []
    records = GroupCommit(engine, committed=sizes.append)
    holding = Holding(records, 5)
    steps: list = []
    writes = [_record(item, steps, stage_first=holding if n == 0 else None) for n, item in enumerate(items)]

    assert _write_together(records, writes, holding) == dict.fromkeys(range(6))

    # The first alone (it led before the rest came), then the five that queued behind it in one.
    assert records.transactions == 2 and records.written_again == 0 and sizes == [1, 5]
    assert steps[:2] == [("stage", "gc-0"), ("seal", "gc-0")]
    shared = steps[2:]
    assert [s for s, _ in shared] == ["stage"] * 5 + ["seal"] * 5  # the chain's head is taken last
    assert [d for _, d in shared[:5]] == [d for _, d in shared[5:]]  # appended in the order staged
    statuses, priorities = _state(engine)
    assert set(statuses.values()) == {"done"} and set(priorities.values()) == {"P2"}
    assert sorted(_audited(engine)) == [f"gc-{n}" for n in range(6)]
    assert audit.verify(engine).ok


def test_a_leader_writes_one_batch_then_hands_the_lead_to_the_first_waiting(engine):
    items = _claimed(engine, 4)
    records = GroupCommit(engine)
    holding = Holding(records, 3)
    staged_on: dict[str, int] = {}

    def noting(item: InboxItem, first=None) -> Write:
        write = _record(item, stage_first=first)

        def stage(conn) -> None:
            staged_on[item.delivery_id] = threading.get_ident()
            write.stage(conn)

        return Write(stage, write.seal)

    writes = [noting(item, holding if n == 0 else None) for n, item in enumerate(items)]
    assert _write_together(records, writes, holding) == dict.fromkeys(range(4))

    # The first leader wrote its own record alone and returned; the three that had queued meanwhile
    # were written together by one of their own threads, not by the first leader's.
    followers = {staged_on[f"gc-{n}"] for n in (1, 2, 3)}
    assert len(followers) == 1 and staged_on["gc-0"] not in followers
    assert records.transactions == 2
    assert sorted(_audited(engine)) == [f"gc-{n}" for n in range(4)]


def test_a_record_whose_lease_was_taken_fails_alone_and_the_others_commit(engine):
    items = _claimed(engine, 4)
    with writing(engine) as conn:  # another worker took gc-2 meanwhile (this one's lease ran out)
        conn.execute(update(inbox_table).where(inbox_table.c.delivery_id == "gc-2").values(lease_owner="w2"))
    records = GroupCommit(engine)
    holding = Holding(records, 3)
    writes = [_record(item, priority="P1", stage_first=holding if n == 0 else None)
              for n, item in enumerate(items)]  # fmt: skip

    errors = _write_together(records, writes, holding)

    assert isinstance(errors.pop(2), inbox.LeaseLost)
    assert errors == {0: None, 1: None, 3: None}
    # The shared transaction rolled back whole, then each of its records was written alone.
    assert records.written_again == 3 and records.transactions == 1 + 1 + 3
    statuses, priorities = _state(engine)
    assert statuses == {"gc-0": "done", "gc-1": "done", "gc-2": "processing", "gc-3": "done"}
    assert priorities[items[2].ticket_id] is None  # nothing of the lost one's record stayed
    assert sorted(_audited(engine)) == ["gc-0", "gc-1", "gc-3"]
    assert audit.verify(engine).ok


@pytest.mark.postgres
def test_a_value_the_store_refuses_fails_its_own_record_only(migrated_postgres_url):
    engine = make_engine(migrated_postgres_url)  # (SQLite keeps a text of any length: nothing to refuse)
    try:
        items = _claimed(engine, 3)
        records = GroupCommit(engine)
        holding = Holding(records, 2)
        writes = [_record(items[0], stage_first=holding),
                  _record(items[1], priority="P1-far-too-long-for-its-column"),  # String(8)
                  _record(items[2])]  # fmt: skip

        errors = _write_together(records, writes, holding)

        assert "too long" in str(errors.pop(1)) and errors == {0: None, 2: None}
        assert sorted(_audited(engine)) == ["gc-0", "gc-2"]
        assert _state(engine)[0]["gc-1"] == "processing"
        assert audit.verify(engine).ok
    finally:
        engine.dispose()


def test_followers_wait_off_the_cpu_and_the_leader_does_not(engine):
    items = _claimed(engine, 4)
    waited: list[str] = []

    @contextmanager
    def waiting():
        waited.append(threading.current_thread().name)
        yield

    records = GroupCommit(engine, waiting=waiting)
    holding = Holding(records, 3)
    leader: list[str] = []

    def lead() -> None:
        leader.append(threading.current_thread().name)
        holding()

    writes = [_record(item, stage_first=lead if n == 0 else None) for n, item in enumerate(items)]
    assert _write_together(records, writes, holding) == dict.fromkeys(range(4))
    assert len(waited) == 3 and leader[0] not in waited


def test_a_leader_stopped_by_an_interrupt_leaves_nobody_waiting(engine):
    items = _claimed(engine, 3)
    records = GroupCommit(engine)
    holding = Holding(records, 2)

    class Stop(BaseException):
        pass

    def interrupted() -> None:
        holding()
        raise Stop()

    writes = [_record(item, stage_first=interrupted if n == 0 else None) for n, item in enumerate(items)]
    errors = _write_together(records, writes, holding)

    assert sorted(errors) == [0, 1, 2] and all(isinstance(e, Stop) for e in errors.values())
    assert set(_state(engine)[0].values()) == {"processing"}  # none of it committed
    records.write(_record(items[1]))  # and the next record leads afresh
    assert _state(engine)[0]["gc-1"] == "done"


@pytest.mark.parametrize("count", [1, 3])
def test_records_written_one_after_another_are_each_their_own_transaction(engine, count):
    items = _claimed(engine, count)
    records = GroupCommit(engine)
    for item in items:
        records.write(_record(item))
    assert records.transactions == count and records.written_again == 0
    assert sorted(_audited(engine)) == [f"gc-{n}" for n in range(count)]


def test_two_workers_batching_side_by_side_append_one_intact_chain(db_url):
    """Two worker processes' group commits (two engines) writing at once: their shared transactions
    take ticket rows, then the chain's head, in the same order, so neither waits on the other for
    ever; every record lands once and the chain stays linear."""
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        items = _claimed(engines[0], 24)
        groups = [GroupCommit(engine) for engine in engines]

        def run(k: int) -> None:  # 12 threads, 6 a worker, 2 records each
            for item in items[2 * k : 2 * k + 2]:
                groups[k % 2].write(_record(item))

        run_together(run, 12, timeout=60)
        assert sorted(_audited(engines[0])) == sorted(item.delivery_id for item in items)
        assert set(_state(engines[0])[0].values()) == {"done"}
        assert audit.verify(engines[0]).ok
        assert sum(g.written_again for g in groups) == 0  # nothing failed, so nothing was written again
    finally:
        for engine in engines:
            engine.dispose()
