"""`escalator replay`: stored deliveries re-judged under a candidate policy, nothing stored or sent."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from connector.cli import main
from connector.config import EXAMPLE_POLICY, Config
from connector.replay import ReplayReport, replay
from connector.replay_report import as_json, as_markdown, as_text
from connector.runtime import build_runtime
from connector.store.db import make_engine, migrate, writing
from connector.store.inbox import new_row, store_rows
from connector.store.tables import audit_log, inbox, tickets
from connector.worker import drain
from policies import load_policy
from tests.support.fixtures import load_fixture
from tests.support.harness import FakeClock, jira_config

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TICKETS = 50  # × 4 deliveries each = 200, every kind ten times (how fast replay is: bench/)


@pytest.fixture
def store(sqlite_url) -> Engine:
    engine = make_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


def candidate_policy(tmp_path: Path) -> Path:
    """The example policy with one rule changed: security tickets go to L2, not L3."""
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    rule = text.index("- name: security-goes-to-l3")
    changed = text[:rule] + text[rule:].replace("- escalate: L3", "- escalate: L2", 1)
    assert changed != text
    path = tmp_path / "candidate.yaml"
    path.write_text(changed, encoding="utf-8")
    return path


def kind_of(n: int) -> str:
    return ("security", "outage", "minor", "minor", "minor")[n % 5]


def record_history(engine: Engine, tickets: int = TICKETS) -> dict[str, str]:
    """Jira deliveries (200 by default): per ticket a creation and three updates. Returns key → kind."""
    rows, kinds = [], {}
    for n in range(tickets):
        issue_id, key, kind = str(30000 + n), f"SUP-{n}", kind_of(n)
        kinds[key] = kind
        for step in range(4):
            if step == 0:
                payload = load_fixture("jira", f"issue_created__{kind}")
            else:
                payload = load_fixture("jira", "issue_updated__priority")
                payload["issue"]["fields"]["labels"] = [] if kind == "minor" else [kind]
            payload["issue"]["id"], payload["issue"]["key"] = issue_id, key
            at = START + timedelta(minutes=n, seconds=step)
            body = json.dumps(payload).encode()
            event = payload["webhookEvent"]
            rows.append(new_row("jira", f"{issue_id}-{step}", event, issue_id, False, body, at))
    with writing(engine) as conn:
        stored = store_rows(conn.connection.dbapi_connection, conn.dialect, rows)
    assert sum(stored) == 4 * tickets
    return kinds


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (inbox, tickets, audit_log)
        )


def test_a_changed_rule_reports_exactly_the_tickets_it_changes(store):
    kinds = record_history(store)
    before = counts(store)
    policy = load_policy(str(EXAMPLE_POLICY))
    candidate = load_policy(str(candidate_policy(Path(store.url.database).parent)))

    report = replay(store, Config(), policy, candidate)

    assert report.deliveries == 4 * TICKETS and report.tickets == TICKETS
    security = {key for key, kind in kinds.items() if kind == "security"}
    assert {c.key for c in report.changed} == security
    for change in report.changed:
        assert change.final == (("P2", "L3"), ("P2", "L2"))
        assert change.baseline.rules == change.candidate.rules == ("security-goes-to-l3",)
        assert "to L3" in change.baseline.note and "to L2" in change.candidate.note
    # Counts move only where the rule did: L3 becomes L2 for the security tickets' deliveries.
    assert report.candidate.tiers["L3"] == 0
    assert report.baseline.tiers["L3"] - report.candidate.tiers["L3"] == 4 * len(security)
    # … and the report shows the change's side effect: at L2 the rule's own condition (tier in L1, L2)
    # still holds, so under the candidate it fires again on every later update of those tickets.
    assert report.baseline.rules["security-goes-to-l3"] == len(security)
    assert report.candidate.rules["security-goes-to-l3"] == 4 * len(security)
    others = set(report.baseline.rules) - {"security-goes-to-l3"}
    assert {r: report.baseline.rules[r] for r in others} == {r: report.candidate.rules[r] for r in others}
    assert sum(report.candidate.requests.values()) > 0
    # Nothing stored, nothing sent.
    assert counts(store) == before


def test_replaying_the_policy_in_force_against_itself_changes_nothing(store):
    record_history(store)
    policy = load_policy(str(EXAMPLE_POLICY))
    report = replay(store, Config(), policy, policy)
    assert report.changed == []
    assert report.baseline == report.candidate


def test_since_and_platform_narrow_what_is_replayed(store):
    record_history(store)
    policy = load_policy(str(EXAMPLE_POLICY))
    since = START + timedelta(minutes=TICKETS - 10)
    report = replay(store, Config(), policy, policy, since=since)
    assert report.deliveries == 40 and report.tickets == 10
    assert replay(store, Config(), policy, policy, platform="zendesk").deliveries == 0


def test_unreadable_ignored_and_timer_rows_are_counted_as_skipped(store):
    rows = [
        new_row("jira", "bad", "jira:issue_updated", "1", False, b"{not json", START),
        new_row("jira", "ign", "jira:issue_deleted", "1", True, b"{}", START),
        new_row("jira", "timer:1:x", "sla.breached", "1", False, b"{}", START),
    ]
    with writing(store) as conn:
        store_rows(conn.connection.dbapi_connection, conn.dialect, rows)
    policy = load_policy(str(EXAMPLE_POLICY))
    report = replay(store, Config(), policy, policy)
    assert report.deliveries == 0
    assert dict(report.skipped) == {
        "unreadable payload": 1,
        "ignored event type": 1,
        "SLA timer (not replayed)": 1,
    }


def test_the_three_report_forms(store, tmp_path, capsys):
    record_history(store, tickets=50)
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: {store.url}\n")
    candidate = candidate_policy(tmp_path)

    assert main(["replay", "--config", str(config), "--policy", str(candidate), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["deliveries"] == 200 and len(data["changed_tickets"]) == 10
    assert data["in_force"]["tiers"]["L3"] == 40 and "L3" not in data["candidate"]["tiers"]
    first = data["changed_tickets"][0]["first_difference"]
    assert first["in_force"]["tier"] == "L3" and first["candidate"]["tier"] == "L2"

    assert main(["replay", "--config", str(config), "--policy", str(candidate), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "| tier after `L3` | 40 | 0 | -40 |" in md
    assert "### Tickets whose priority, tier or notes would differ (10)" in md

    assert main(["replay", "--config", str(config), "--policy", str(candidate)]) == 0
    text = capsys.readouterr().out
    assert "jira SUP-0: tier L3 → L2" in text


def test_an_unknown_platform_is_refused(store, tmp_path, capsys):
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: {store.url}\n")
    assert main(["replay", "--config", str(config), "--platform", "jria"]) == 2
    assert "unknown platform 'jria'" in capsys.readouterr().err


def test_report_helpers_render_an_empty_replay(store):
    policy = load_policy(str(EXAMPLE_POLICY))
    report = replay(store, Config(), policy, policy)
    assert "replayed 0 deliveries" in as_text(report)
    assert "- none" in as_markdown(report)
    assert as_json(report)["changed_tickets"] == []


def test_several_processes_report_exactly_what_one_does(store):
    record_history(store, tickets=60)
    policy = load_policy(str(EXAMPLE_POLICY))
    candidate = load_policy(str(candidate_policy(Path(store.url.database).parent)))
    one = replay(store, Config(), policy, candidate, processes=1)
    two = replay(store, Config(), policy, candidate, processes=2)
    assert (two.deliveries, two.tickets, two.skipped) == (one.deliveries, one.tickets, one.skipped)
    assert (two.baseline, two.candidate) == (one.baseline, one.candidate)
    assert [(c.key, c.final, c.differing) for c in two.changed] == [
        (c.key, c.final, c.differing) for c in one.changed
    ]


def comparable(report: ReplayReport) -> tuple:
    """Everything a replay reports but its timing and where the in-force side came from."""
    changes = [(c.key, c.final, c.deliveries, c.differing, c.first_delivery, c.baseline, c.candidate)
               for c in report.changed]  # fmt: skip
    return report.deliveries, report.tickets, report.skipped, report.baseline, report.candidate, changes


def decided_by_the_worker(engine: Engine, config: Config) -> None:
    """The worker's own decisions on every stored delivery (dry run): one audit record each."""
    rt = build_runtime(config, clock=FakeClock(START + timedelta(hours=5)), engine=engine)
    assert drain(rt) > 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == 4 * TICKETS


def test_the_in_force_side_read_from_the_audit_log_reports_exactly_what_judging_again_does(store):
    kinds = record_history(store)
    config = jira_config(str(store.url), dry_run=True)
    policy = load_policy(str(EXAMPLE_POLICY))
    candidate = load_policy(str(candidate_policy(Path(store.url.database).parent)))
    judged = replay(store, config, policy, candidate, processes=1)
    assert judged.recorded == 0

    decided_by_the_worker(store, config)
    recalled = replay(store, config, policy, candidate, processes=1)

    assert recalled.recorded == 4 * TICKETS  # not one delivery judged again under the policy in force
    assert comparable(recalled) == comparable(judged)
    assert {c.key for c in recalled.changed} == {key for key, kind in kinds.items() if kind == "security"}
    assert recalled.baseline.notifications > 0  # the outage tickets' P1 notices, counted on both sides
    # In parts, as several processes read it, the same.
    assert comparable(replay(store, config, policy, candidate, processes=2)) == comparable(judged)


def test_a_record_that_cannot_stand_for_the_judgement_is_judged_again(store, tmp_path):
    record_history(store)
    config = jira_config(str(store.url), dry_run=True)
    policy = load_policy(str(EXAMPLE_POLICY))
    candidate = load_policy(str(candidate_policy(Path(store.url.database).parent)))
    decided_by_the_worker(store, config)

    # A window that starts in the middle of SUP-5's history (a security ticket escalated to L3 by its
    # first delivery): the replay does not know what the worker remembered of it.
    assert kind_of(5) == "security"
    since = START + timedelta(minutes=5, seconds=2)
    recalled = replay(store, config, policy, candidate, since=since, processes=1)
    # Judged again: SUP-5's first update in the window. Judging it puts the ticket at L3, as the
    # worker had it, so its last update is read from the record again.
    assert recalled.deliveries - recalled.recorded == 1
    with engine_without_records(store, tmp_path) as bare:
        assert comparable(recalled) == comparable(replay(bare, config, policy, candidate, since=since))

    # Decided under another policy (the in-force file changed since): every delivery judged again.
    edited = tmp_path / "edited.yaml"
    edited.write_text(EXAMPLE_POLICY.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    other = replay(store, config, load_policy(str(edited)), candidate, processes=1)
    assert other.recorded == 0
    assert {c.key for c in other.changed} == {f"SUP-{n}" for n in range(TICKETS) if kind_of(n) == "security"}


@contextmanager
def engine_without_records(store: Engine, tmp_path: Path):
    """A copy of the store's inbox without its audit log: what judging every delivery again reports."""
    copy = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    migrate(copy)
    with store.connect() as source, writing(copy) as target:
        rows = [dict(r._mapping) for r in source.execute(select(inbox))]
        target.execute(inbox.insert(), rows)
    try:
        yield copy
    finally:
        copy.dispose()


def test_an_event_far_older_than_its_arrival_counts_from_its_arrival_as_in_the_worker(store, tmp_path):
    record_history(store, tickets=1)  # SUP-0, a security ticket; the payload says it happened in 2019
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    rule = text.index("- name: security-goes-to-l3")
    quoting = text[:rule] + text[rule:].replace(
        "(security specialists)", "(security specialists) at {{ event.at }}", 1
    )
    path = tmp_path / "quoting.yaml"
    path.write_text(quoting, encoding="utf-8")
    report = replay(store, Config(), load_policy(str(EXAMPLE_POLICY)), load_policy(str(path)))
    [change] = report.changed
    assert f"at {START.isoformat()}" in change.candidate.note and "2019" not in change.candidate.note
