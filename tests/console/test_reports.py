"""Report figures against the hand-counted history in tests/console/seed.py (SQLite and PostgreSQL)."""

from __future__ import annotations

from console import facts, reports
from console.reports import Scope


def build(console, name: str, scope: Scope | None = None):
    facts.catch_up(console.rt.engine)
    return reports.REPORTS[name][1](
        console.rt.engine, console.rt.policy.current, scope or Scope(), console.clock()
    )


def test_escalation_volume_by_week_tier_and_platform(shared_console):
    # Escalations: decisions 1, 3, 4 (dry run counts), 6, 7. Decision 5 failed, 2 and 8 kept the tier.
    report = build(shared_console, "escalations")
    assert report.rows == [
        ("2026-11-02", "L2", "servicenow", 1),
        ("2026-11-02", "L3", "jira", 1),
        ("2026-11-02", "management", "zendesk", 1),
        ("2026-11-09", "L2", "jira", 1),
        ("2026-11-09", "L2", "zendesk", 1),
    ]
    assert "<svg" in report.chart and "2026-11-09" in report.chart
    assert "escalated" in report.query  # the SQL behind it


def test_escalation_volume_honours_the_time_range_and_platform(shared_console):
    from datetime import UTC, datetime

    scope = Scope(since=datetime(2026, 11, 9, tzinfo=UTC), platform="jira")
    assert build(shared_console, "escalations", scope).rows == [("2026-11-09", "L2", "jira", 1)]


def test_rules_and_labels_behind_escalations(shared_console):
    report = build(shared_console, "causes")
    assert report.rows == [
        ("rule", "sla-breach-escalates", 3),
        ("rule", "customer-asks-for-manager", 1),
        ("rule", "security-goes-to-l3", 1),
        ("label", "billing", 2),
        ("label", "security", 2),
        ("label", "vip", 1),
    ]


def test_breaches_by_calendar_and_region(shared_console):
    assert sorted(build(shared_console, "breaches").rows) == [
        ("always", "emea", "resolution", 1),
        ("apac", "apac", "first_response", 1),
        ("emea", "emea", "first_response", 1),
    ]


def test_sla_attainment_per_metric_and_priority(shared_console):
    # first_response: P1 1/1, P2 1 met + 1 breached, P3 1 + 1, P4 2/2; the P1 at 09:48 still runs.
    # resolution: P1 1/1, P2 1 met (501) + 1 breached (SUP-2), P3 1/1, P4 2/2.
    assert build(shared_console, "attainment").rows == [
        ("first_response", "P1", 1, 0, 100.0),
        ("first_response", "P2", 1, 1, 50.0),
        ("first_response", "P3", 1, 1, 50.0),
        ("first_response", "P4", 2, 0, 100.0),
        ("resolution", "P1", 1, 0, 100.0),
        ("resolution", "P2", 1, 1, 50.0),
        ("resolution", "P3", 1, 0, 100.0),
        ("resolution", "P4", 2, 0, 100.0),
    ]


def test_first_response_and_resolution_medians_and_p90(shared_console):
    # FRT hours: P1 [1/6], P2 [0.5, 2], P3 [4], P4 [1, 1/3]; TTR: P1 [3], P2 [24], P3 [24], P4 [2, 1].
    assert build(shared_console, "durations").rows == [
        ("first_response", "P1", 1, 0.167, 0.167),
        ("first_response", "P2", 2, 1.25, 2.0),
        ("first_response", "P3", 1, 4.0, 4.0),
        ("first_response", "P4", 2, 0.667, 1.0),
        ("resolution", "P1", 1, 3.0, 3.0),
        ("resolution", "P2", 1, 24.0, 24.0),
        ("resolution", "P3", 1, 24.0, 24.0),
        ("resolution", "P4", 2, 1.5, 2.0),
    ]


def test_first_contact_resolution(shared_console):
    # Resolved: SUP-1 (escalated), SUP-3 (never), 501 (escalated), sn1 (escalated, dry run), sn2 (never).
    assert build(shared_console, "fcr").rows == [
        ("jira", 2, 1, 50.0),
        ("servicenow", 2, 1, 50.0),
        ("zendesk", 1, 0, 0.0),
        ("all", 5, 2, 40.0),
    ]


def test_percentiles_by_nearest_rank():
    assert reports.p90([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == 9
    assert reports.p90([5]) == 5
    assert reports.median([1, 2, 3, 10]) == 2.5
    assert reports.p90([]) == 0.0


def test_csv_has_the_same_rows(shared_console):
    text = build(shared_console, "fcr").csv()
    assert text.splitlines() == [
        "platform,resolved,resolved_in_first_tier,fcr_percent",
        "jira,2,1,50.0",
        "servicenow,2,1,50.0",
        "zendesk,1,0,0.0",
        "all,5,2,40.0",
    ]
