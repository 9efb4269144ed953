"""Issue 11, finding 2: one row the database refuses never fails its group commit.

Under load the webhook intake stores deliveries in groups, one transaction each. A row the
database cannot hold (an id over its column's length on PostgreSQL, a NOT NULL broken on both)
used to fail the whole group: every sender in it got 503, and the bad one got 503 on every resend.
Now the refused row's sender alone hears 400 (permanent), its group-mates are stored, and 503
stays for a database that is really unavailable.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

import connector.store.intake as intake_module
from connector.store import inbox
from connector.store.intake import Intake, IntakeRefused, IntakeUnavailable
from tests.support.concurrency import run_together
from webhooks import door

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _row(delivery_id: str, **changed) -> dict:
    row = inbox.new_row("jira", delivery_id, "jira:issue_created", "10040", False, b"{}", T0)
    return {**row, **changed}


def _grouped(monkeypatch, batches: list[int]) -> None:
    """Each commit takes a while, so deliveries arriving meanwhile queue into one group."""
    real = intake_module.store_rows

    def slow(dbapi, dialect, rows):
        batches.append(len(rows))
        time.sleep(0.03)
        return real(dbapi, dialect, rows)

    monkeypatch.setattr(intake_module, "store_rows", slow)


def _bad_row(engine, delivery_id: str) -> dict:
    if engine.dialect.name == "postgresql":  # StringDataRightTruncation, as in the attack
        return _row(delivery_id, ticket_id="1" * 300)
    return _row(delivery_id, event_type=None)  # NOT NULL: SQLite holds any length


@pytest.mark.parametrize("bad_at", [0, 7, 15])
def test_a_row_the_database_refuses_is_answered_alone_and_its_group_is_stored(engine, monkeypatch, bad_at):
    batches: list[int] = []
    _grouped(monkeypatch, batches)
    rows = [_row(f"d{k}") for k in range(16)]
    rows[bad_at] = _bad_row(engine, f"d{bad_at}")
    results: dict[int, object] = {}
    intake = Intake(engine)

    def send(k: int) -> None:
        try:
            results[k] = intake.accept(rows[k])
        except (IntakeRefused, IntakeUnavailable) as exc:
            results[k] = exc

    try:
        run_together(send, len(rows), timeout=20)
    finally:
        intake.close()

    assert max(batches) > 1, f"no group formed: {batches}"
    assert isinstance(results.pop(bad_at), IntakeRefused)  # permanent: 400, never 503
    assert all(r is True for r in results.values()), results
    assert inbox.counts(engine) == {"pending": 15}


def test_an_unavailable_database_is_still_503_for_the_whole_group(engine, monkeypatch):
    def down(dbapi, dialect, rows):
        raise engine.dialect.dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(intake_module, "store_rows", down)
    intake = Intake(engine, hold_seconds=0.2)  # (waited for a moment first: tests/store/test_intake.py)
    try:
        with pytest.raises(IntakeUnavailable):
            intake.accept(_row("d1"))
    finally:
        intake.close()


def test_the_receiver_answers_a_refused_row_400_and_stores_nothing(esc, driver, monkeypatch):
    """Even past the door (were its bounds wrong), the database's refusal is a 400 with the reason."""
    if esc.rt.engine.dialect.name != "postgresql" or driver.platform != "zendesk":
        pytest.skip("PostgreSQL refuses the over-long id; one platform shows the receiver's mapping")
    monkeypatch.setattr(door, "check_delivery", lambda delivery, bounds=None: None)
    monkeypatch.setattr(door, "check_event", lambda event, bounds=None: None)
    from tests.conformance.drivers import Spec, post

    body = driver._body(Spec(1), "ticket.created", driver.requester, esc.clock())
    body["ticket"]["id"] = "4" * 300
    answer = post(esc, driver, driver.deliver(body, esc.clock()))
    assert answer.status_code == 400, answer.json
    assert "cannot store this delivery" in answer.json["error"]
    assert inbox.counts(esc.rt.engine) == {}
