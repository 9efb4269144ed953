"""One ticket as an operator sees it: `ticket_view` (shared with the console) and `escalator ticket show`."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import responses

from connector import audit
from connector.cli import main
from connector.ticket_view import TicketNotFound, ticket_view
from tests.support.entry import escalator
from tests.support.harness import JIRA_URL, jira_config, start

ISSUE = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+$")


@pytest.fixture
def esc(db_url):
    running = start(jira_config(db_url, dry_run=True))
    yield running
    running.rt.close()


def test_the_view_of_a_ticket_after_two_decisions(esc):
    esc.deliver("issue_created__minor", delivery_id="d-1")  # TES-44: a P4 on the emea calendar
    esc.clock.advance(60)
    esc.deliver("issue_created__outage", delivery_id="d-2")  # TES-42: P1, L2, clocks on 24x7
    esc.work()
    policy = esc.rt.policy.current

    minor = ticket_view(esc.rt.engine, policy, "jira", "tes-44", now=esc.clock())  # a key, any case
    assert (minor.key, minor.id, minor.zone, minor.calendar) == ("TES-44", "10043", "Europe/Berlin", "emea")
    first = next(c for c in minor.clocks if c.metric == "first_response")
    assert first.zone == "Europe/Berlin" and str(first.due.tzinfo) == "Europe/Berlin"
    assert first.target == timedelta(hours=8) and first.state == (
        "overdue" if first.due <= esc.clock() else "running"
    )
    armed = {t.key: t for t in minor.timers}
    breach = armed["first_response:sla.breached:100"]
    assert breach.due == first.due and str(breach.due.tzinfo) == "Europe/Berlin"

    outage = ticket_view(esc.rt.engine, policy, "jira", "10041", now=esc.clock())  # an id
    assert (outage.tier, outage.priority, outage.sla_priority) == ("L2", "P1", "P1")
    assert outage.title and outage.url.endswith("/browse/TES-42")
    [decision] = outage.decisions
    assert (decision.outcome, decision.priority_to, decision.tier_from, decision.tier_to) == (
        "dry_run", "P1", "L1", "L2",
    )  # fmt: skip
    assert decision.trigger == "ticket.created" and decision.requests >= 1 and decision.rules
    assert {c.metric for c in outage.clocks} >= {"first_response", "resolution"}
    assert all(c.zone == "UTC" for c in outage.clocks if c.target)  # P1 targets run on `always`
    assert outage.open_events == ()
    data = outage.to_json()
    assert json.loads(json.dumps(data)) == data and data["decisions"][0]["outcome"] == "dry_run"

    with pytest.raises(TicketNotFound, match="no jira ticket with key or id 'NOPE-1'"):
        ticket_view(esc.rt.engine, policy, "jira", "NOPE-1")


def _config(tmp_path: Path, db_url: str) -> Path:
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: {db_url}\n")
    return config


def test_ticket_show_and_events_through_the_installed_command(tmp_path, capsys):
    """Each command once through the installed `escalator`; the variations in-process (same parser)."""
    db_url = f"sqlite:///{tmp_path / 'escalator.db'}"
    esc = start(jira_config(db_url, notes="comment"))
    with responses.RequestsMock() as jira:
        refused = {"errorMessages": ["Field 'priority' cannot be set."]}
        jira.add(responses.PUT, ISSUE, json=refused, status=400)
        esc.deliver("issue_created__outage", delivery_id="d-1")
        esc.work()
    config = str(_config(tmp_path, db_url))

    shown = escalator("ticket", "show", "jira", "TES-42", "--config", config)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("jira TES-42 (id 10041)")
    assert "Events waiting" in shown.stdout and "failed" in shown.stdout and "Last decisions" in shown.stdout
    assert main(["ticket", "show", "jira", "TES-42", "--config", config, "--format", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["key"] == "TES-42" and as_json["decisions"][0]["outcome"] == "failed"
    assert main(["ticket", "show", "jira", "TES-999", "--config", config]) == 1
    assert "no jira ticket with key or id 'TES-999'" in capsys.readouterr().err

    listed = escalator("events", "list", "--status", "failed", "--config", config)
    assert listed.returncode == 0 and "TES-42" in listed.stdout and "400" in listed.stdout
    assert main(["events", "list", "--config", config, "--format", "json"]) == 0
    [event] = json.loads(capsys.readouterr().out)
    event_id = str(event["id"])

    with pytest.raises(SystemExit) as usage:
        main(["events", "discard", event_id, "--config", config])
    assert usage.value.code == 2 and "--why" in capsys.readouterr().err  # the reason is required
    retried = escalator("events", "retry", event_id, "--config", config)
    assert retried.returncode == 0 and f"event {event_id} put back in the queue" in retried.stdout
    assert main(["events", "retry", event_id, "--config", config]) == 1
    assert "has not been tried yet" in capsys.readouterr().err
    gone = escalator("events", "discard", event_id, "--why", "duplicate of TES-41", "--config", config)
    assert gone.returncode == 0 and "discarded" in gone.stdout
    assert main(["events", "list", "--config", config]) == 0
    assert capsys.readouterr().out.startswith("no open events")

    assert [r["outcome"] for r in esc.audit()] == ["failed", "requeued", "discarded"]
    assert audit.verify(esc.rt.engine).ok
    esc.rt.close()
