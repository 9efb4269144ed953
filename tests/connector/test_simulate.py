"""`escalator simulate`: the worker's judgement on a payload file, with nothing stored or sent.
What it shows must be what the worker does: the requests are compared with a real run."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import pytest
import responses

from connector.cli import main
from connector.config import EXAMPLE_POLICY
from connector.simulate import SimulationError, simulate
from policies import load_policy
from tests.support.fixtures import fixture_path
from tests.support.harness import JIRA_URL, FakeClock, jira_config, start

AT = "2026-11-02T09:00:00Z"


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["simulate", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_what_simulate_shows_is_what_the_worker_sends(sqlite_url, tmp_path, capsys):
    config = jira_config(sqlite_url)
    path = tmp_path / "escalator.yaml"
    path.write_text(
        json.dumps(config.model_dump(mode="json", exclude_none=True))
    )  # YAML is a superset of JSON
    status, out, _ = run(
        capsys, "jira", str(fixture_path("jira", "issue_created__outage")), "--config", str(path), "--at", AT,
        "--format", "json",
    )  # fmt: skip
    assert status == 0
    shown = json.loads(out)
    assert (shown["priority"]["from"], shown["priority"]["to"]) == ("P2", "P1")
    assert (shown["tier"]["from"], shown["tier"]["to"]) == ("L1", "L2")
    assert shown["rules"] == ["outage-goes-to-l2", "p1-notice"]

    esc = start(config, FakeClock(datetime.fromisoformat(AT)))
    try:
        with responses.RequestsMock() as jira:
            jira.add(responses.PUT, re.compile(re.escape(JIRA_URL) + ".*"), status=204)
            jira.add(responses.POST, re.compile(re.escape(JIRA_URL) + ".*"), json={"id": "1"}, status=201)
            esc.deliver("issue_created__outage")
            esc.work()
            sent = [
                {"method": c.request.method, "url": c.request.url, "json": json.loads(c.request.body)}
                for c in jira.calls
            ]
    finally:
        esc.rt.close()
    # The note's mark names the delivery (the file's is "simulated"); everything else is the same.
    assert _unmarked(shown["requests"]) == _unmarked(sent)


def _unmarked(requests: list) -> str:
    return re.sub(r"escalator:[0-9a-f]{20}", "escalator:<mark>", json.dumps(requests))


def test_text_names_the_rules_the_change_and_each_request(capsys):
    status, out, _ = run(capsys, "jira", str(fixture_path("jira", "issue_created__outage")), "--at", AT)
    assert status == 0
    assert out.startswith("jira jira:issue_created under policy global-support v1\n")
    assert "rules:    outage-goes-to-l2" in out
    assert "priority: P2 → P1 (impact high × urgency high → P1)" in out
    assert "requests: 2 (placeholder URL: the platform is not configured)" in out
    assert "  PUT https://jira.example.invalid/rest/api/2/issue/TES-42" in out
    assert "  POST https://jira.example.invalid/rest/api/2/issue/TES-42/comment" in out


def test_a_ticket_already_at_the_tier_asks_for_less(capsys):
    status, out, _ = run(
        capsys, "jira", str(fixture_path("jira", "issue_created__outage")), "--tier", "L2", "--at", AT,
        "--format", "json",
    )  # fmt: skip
    shown = json.loads(out)
    assert status == 0 and shown["tier"] == {"from": "L2", "to": "L2"} and shown["rules"] == ["p1-notice"]


@pytest.mark.parametrize(
    "platform, fixture, method",
    [
        ("zendesk", "ticket.created__trigger_outage", "PUT"),
        ("servicenow", "incident_updated__tagged", "PATCH"),
    ],
)
def test_the_other_platforms_from_their_own_payloads(capsys, platform, fixture, method):
    status, out, _ = run(
        capsys, platform, str(fixture_path(platform, fixture)), "--at", AT, "--format", "json"
    )
    shown = json.loads(out)
    assert status == 0 and [r["method"] for r in shown["requests"]] == [method]


def test_an_event_escalator_ignores_says_so(capsys):
    status, out, _ = run(capsys, "jira", str(fixture_path("jira", "issue_deleted__basic")))
    assert status == 0
    assert "ignored: Escalator records this event type and does nothing with it" in out


def test_the_payload_can_come_on_standard_input(capsys, monkeypatch):
    body = fixture_path("jira", "issue_created__outage").read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))
    status, out, _ = run(capsys, "jira", "-", "--at", AT, "--format", "json")
    assert status == 0 and json.loads(out)["ticket"]["key"] == "TES-42"


@pytest.mark.parametrize(
    "args, message",
    [
        (["freshdesk", "{fixture}"], "unknown platform 'freshdesk' (known: jira, zendesk, servicenow)"),
        (["zendesk", "{fixture}"], "not a zendesk payload Escalator reads:"),
        (
            ["jira", "{fixture}", "--tier", "L9"],
            "tier 'L9' is not one of the policy's tiers (L1, L2, L3, management)",
        ),
        (["jira", "{missing}"], "cannot read the payload:"),
    ],
)
def test_wrong_input_exits_2_with_the_reason(capsys, tmp_path, args, message):
    fixture = str(fixture_path("jira", "issue_created__outage"))
    args = [a.format(fixture=fixture, missing=tmp_path / "nope.json") for a in args]
    status, out, err = run(capsys, *args)
    assert status == 2 and out == "" and message in err


def test_a_body_that_is_not_json_is_refused():
    with pytest.raises(SimulationError, match="the payload is not JSON"):
        simulate(
            jira_config("sqlite://"), load_policy(str(EXAMPLE_POLICY)), "jira", b"{nope", datetime.now(UTC)
        )


def test_a_broken_policy_to_try_is_refused_with_file_and_line(capsys, tmp_path):
    broken = tmp_path / "policy.yaml"
    broken.write_text(EXAMPLE_POLICY.read_text() + "\nsurprise: 1\n")
    status, out, err = run(
        capsys, "jira", str(fixture_path("jira", "issue_created__outage")), "--policy", str(broken)
    )
    assert status == 2 and out == ""
    assert "the policy does not load" in err and f"{broken}:" in err and "surprise" in err


def test_simulate_says_which_timers_would_already_be_overdue(capsys, tmp_path):
    body = json.loads(fixture_path("jira", "issue_created__outage").read_text(encoding="utf-8"))
    body["timestamp"] = int(datetime.fromisoformat(AT).timestamp() * 1000)  # sent at AT …
    body["issue"]["fields"]["created"] = "2019-03-14T10:00:00.000+0000"  # … about a ticket from 2019
    (tmp_path / "old.json").write_text(json.dumps(body), encoding="utf-8")
    payload = str(tmp_path / "old.json")
    status, out, _ = run(capsys, "jira", payload, "--at", AT, "--format", "json")
    assert status == 0 and [t["overdue"] for t in json.loads(out)["timers"]] == [False] * 5  # from first seen

    text = EXAMPLE_POLICY.read_text(encoding="utf-8").replace(
        "  warn_at: 75%", "  start: created\n  warn_at: 75%"
    )
    (tmp_path / "created.yaml").write_text(text, encoding="utf-8")
    status, out, _ = run(capsys, "jira", payload, "--at", AT, "--policy", str(tmp_path / "created.yaml"))
    assert status == 0 and "already overdue: they fire on the next tick" in out
    assert "first_response:sla.breached:100 due" in out and "OVERDUE" in out


def test_a_server_comment_without_its_issue_says_the_worker_reads_it(capsys):
    payload = str(fixture_path("jira", "thirdparty/mm__webhook-server-comment-created"))
    status, out, _ = run(capsys, "jira", payload, "--at", AT)
    assert status == 0 and "the payload names the ticket without carrying it" in out
