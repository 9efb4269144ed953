"""A dead worker's leases run out at once (connector/store/leases.py): its deliveries, their tickets
and its notifications are taken by another worker without waiting for `worker.lease_seconds`, as if
the leases had run out by themselves; nobody else's lease is touched."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from connector.store import inbox, leases
from connector.store import outbox as notifications
from connector.store.db import make_engine
from connector.store.tables import tickets

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def _accept(engine, delivery_id: str, ticket: str) -> None:
    inbox.accept(engine, inbox.new_row("jira", delivery_id, "jira:issue_updated", ticket, False, b"{}", T0))


def _notification(engine, n: int) -> int:
    row = {"dedupe_key": f"k{n}", "platform": "jira", "ticket_id": f"T{n}", "channel": "oncall",
           "kind": "notice", "message": {"text": f"notice {n}"}}  # fmt: skip
    with engine.begin() as conn:
        notifications.enqueue(conn, [row], decision_id=f"decision-{n}", now=T0)
    (queued,) = [m for m in notifications.due(engine, now=T0, limit=10) if m.ticket_id == f"T{n}"]
    return queued.id


def test_what_a_dead_worker_held_is_taken_again_at_once_and_counted_as_an_expiry(engine):
    _accept(engine, "a1", ticket="A")
    _accept(engine, "b1", ticket="B")
    (dead_item,) = inbox.claim(engine, owner="dead", now=T0, lease=LEASE, limit=1)
    (live_item,) = inbox.claim(engine, owner="alive", now=T0, lease=LEASE, limit=1)
    inbox.record_in_flight(
        engine, dead_item, "note-fingerprint", owner="dead", confirmed=frozenset({"put-fingerprint"})
    )
    first, second = _notification(engine, 1), _notification(engine, 2)
    assert notifications.take_many(engine, [first], owner="dead", now=T0, lease=LEASE) == {first}
    assert notifications.take_many(engine, [second], owner="alive", now=T0, lease=LEASE) == {second}
    later = T0 + timedelta(seconds=10)

    ended = leases.run_out(engine, "dead", later)

    assert (ended.deliveries, ended.tickets, ended.notifications) == (1, 1, 1)
    assert str(ended) == "1 delivery, 1 ticket, 1 notification"
    # Taken again well inside the five minutes, with what the dead worker had sent or was sending.
    (again,) = inbox.claim(engine, owner="next", now=later + timedelta(seconds=1), lease=LEASE, limit=10)
    assert again.id == dead_item.id and again.lease_expiries == 1 and again.attempts == 2
    assert again.in_flight == "note-fingerprint" and again.confirmed == {"put-fingerprint"}
    assert notifications.take_many(engine, [first, second], owner="next", now=later, lease=LEASE) == {first}
    with engine.connect() as conn:
        held = dict(conn.execute(select(tickets.c.ticket_id, tickets.c.lease_owner)).all())
    assert held == {"A": "next", "B": "alive"}  # the live worker keeps its ticket and its delivery
    assert live_item.ticket_id == "B"


def test_an_owner_holding_nothing_runs_out_nothing_and_an_ended_lease_keeps_its_end(engine):
    assert not leases.run_out(engine, "nobody", T0)
    _accept(engine, "a1", ticket="A")
    inbox.claim(engine, owner="dead", now=T0, lease=timedelta(seconds=30), limit=1)
    # Its leases ran out by themselves already: nothing to end, and a claim finds them as it would.
    assert not leases.run_out(engine, "dead", T0 + timedelta(minutes=1))
    (again,) = inbox.claim(engine, owner="next", now=T0 + timedelta(minutes=1), lease=LEASE, limit=1)
    assert again.lease_expiries == 1


def test_a_finished_delivery_is_not_run_out(engine):
    _accept(engine, "a1", ticket="A")
    (item,) = inbox.claim(engine, owner="dead", now=T0, lease=LEASE, limit=1)
    with engine.begin() as conn:  # its record was committed just before the worker died
        inbox.finish(conn, item, status=inbox.DONE, owner="dead", now=T0)
    ended = leases.run_out(engine, "dead", T0 + timedelta(seconds=1))
    assert ended.deliveries == 0 and inbox.counts(engine) == {"done": 1}


def test_a_live_worker_renews_its_deliveries_their_tickets_and_its_notifications_and_nothing_else(engine):
    _accept(engine, "a1", ticket="A")
    _accept(engine, "b1", ticket="B")
    _accept(engine, "c1", ticket="C")
    _accept(engine, "d1", ticket="D")
    (mine,) = inbox.claim(engine, owner="w1", now=T0, lease=timedelta(seconds=60), limit=1)
    (theirs,) = inbox.claim(engine, owner="w2", now=T0, lease=timedelta(seconds=60), limit=1)
    (finished,) = inbox.claim(engine, owner="w1", now=T0, lease=timedelta(seconds=60), limit=1)
    (forgotten,) = inbox.claim(engine, owner="w1", now=T0, lease=timedelta(seconds=60), limit=1)
    with engine.begin() as conn:  # decided: nothing of it is held any more
        inbox.finish(conn, finished, status=inbox.DONE, owner="w1", now=T0)
    first, second = _notification(engine, 1), _notification(engine, 2)
    notifications.take_many(engine, [first], owner="w1", now=T0, lease=timedelta(seconds=60))
    notifications.take_many(engine, [second], owner="w2", now=T0, lease=timedelta(seconds=60))
    # Renewed 50 s on: its delivery is still being decided (a slow platform), and stays its own.
    later = T0 + timedelta(seconds=50)
    # Asked for more than it holds (a row decided since, one another worker holds): those are left be.
    until = later + timedelta(seconds=60)
    renewed = leases.renew(
        engine, "w1", deliveries=[mine.id, finished.id, theirs.id], deliveries_until=until,
        notifications=[first, second], notifications_until=until,
    )  # fmt: skip
    assert (renewed.deliveries, renewed.tickets, renewed.notifications) == (1, 1, 1)
    past_first_lease = T0 + timedelta(seconds=90)
    # w2 renewed nothing, and w1 did not renew the delivery it no longer works on (`forgotten`):
    # those are taken again; w1's renewed ones are not.
    taken = inbox.claim(engine, owner="w3", now=past_first_lease, lease=LEASE, limit=10)
    assert sorted(i.id for i in taken) == sorted([theirs.id, forgotten.id])
    assert all(i.lease_expiries == 1 for i in taken)
    assert notifications.take_many(
        engine, [first, second], owner="w3", now=past_first_lease, lease=LEASE
    ) == {second}
    with engine.connect() as conn:
        held = dict(conn.execute(select(tickets.c.ticket_id, tickets.c.lease_owner)).all())
    assert held["A"] == "w1" and held["B"] == held["D"] == "w3"
    # Once its renewed lease ends too (the worker died after renewing), it is taken again.
    assert [i.id for i in inbox.claim(engine, owner="w3", now=T0 + timedelta(seconds=111), lease=LEASE,
                                      limit=10)] == [mine.id]  # fmt: skip


def test_renewing_keeps_a_lease_that_ran_out_unnoticed_but_not_one_taken_again(engine):
    _accept(engine, "a1", ticket="A")
    _accept(engine, "b1", ticket="B")
    a, b = inbox.claim(engine, owner="w1", now=T0, lease=timedelta(seconds=10), limit=10)
    # Both ran out (the worker was cut off from the database); another worker took b meanwhile.
    with engine.begin() as conn:
        conn.execute(
            inbox.inbox.update()
            .where(inbox.inbox.c.id == b.id)
            .values(lease_owner="w2", lease_until=T0 + timedelta(seconds=100))
        )
    renewed = leases.renew(engine, "w1", deliveries=[a.id, b.id], deliveries_until=T0 + timedelta(seconds=80),
                           notifications_until=T0 + timedelta(seconds=80))  # fmt: skip
    assert renewed.deliveries == 1  # a: nobody took it, it is still being decided by w1
    assert inbox.claim(engine, owner="w3", now=T0 + timedelta(seconds=30), lease=LEASE, limit=10) == []


@pytest.mark.postgres
def test_renewing_never_deadlocks_with_a_record_locking_its_ticket_then_its_delivery(migrated_postgres_url):
    """Found in a real run: a decision's record locks its ticket, then its delivery; a renewal of
    both in one transaction, in the other order, deadlocked with it under load."""
    engine = make_engine(migrated_postgres_url)
    try:
        _accept(engine, "a1", ticket="A")
        (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=1)
        failures: list[BaseException] = []
        with engine.connect() as record:  # the record's transaction, under way
            record.execute(update(tickets).where(tickets.c.ticket_id == "A").values(priority="P1"))

            def renew() -> None:
                try:
                    leases.renew(engine, "w1", deliveries=[item.id], deliveries_until=T0 + LEASE,
                                 notifications_until=T0 + LEASE)  # fmt: skip
                except BaseException as exc:
                    failures.append(exc)

            renewing = threading.Thread(target=renew)
            renewing.start()
            time.sleep(0.5)  # the renewal has its delivery's row and waits for the ticket's
            record.execute(update(inbox.inbox).where(inbox.inbox.c.id == item.id).values(last_error=None))
            record.commit()
        renewing.join(30)
        assert not renewing.is_alive() and failures == []
    finally:
        engine.dispose()


def test_a_long_host_name_still_makes_an_owner_name_the_lease_columns_hold(engine, monkeypatch):
    """Kubernetes pod names, FQDNs: a host name may be 63 characters or more; the lease columns hold
    64. The name keeps its pid and tag whole (serve finds a dead worker by them)."""
    from connector import runtime
    from connector.store.tables import inbox as inbox_table

    monkeypatch.setattr(runtime.socket, "gethostname", lambda: "escalator-worker-" + "x" * 80 + ".svc.local")
    owner = runtime.owner_name(4194303, "a1b2c3")
    assert len(owner) <= inbox_table.c.lease_owner.type.length and owner.endswith(":4194303:a1b2c3")
    _accept(engine, "a1", ticket="A")
    (item,) = inbox.claim(engine, owner=owner, now=T0, lease=LEASE, limit=1)
    assert leases.run_out(engine, owner, T0).deliveries == 1
