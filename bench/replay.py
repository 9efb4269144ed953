"""Replay throughput: stored deliveries replayed per second under the policy in force and a candidate.

    .venv/bin/python bench/replay.py [--deliveries 20000] [--processes N]

Fills a scratch SQLite inbox with recorded webhook bodies from all three platforms (tests/fixtures),
each ticket with a creation and three updates, then times `connector.replay.replay` with the
example policy as the one in force and a candidate with one rule changed (security goes to L2),
the way `escalator replay --policy` runs it. Reading the rows is part of the time.

Two figures, in the same run: with no audit log (every delivery judged under both policies, as
before the in-force side was read back), and after the worker decided every delivery (dry run),
when the in-force side is read from the audit records and only the candidate is judged. The
worker's own time to decide them is not part of either.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project, as the checkout has it

from connector.config import EXAMPLE_POLICY, Config  # noqa: E402
from connector.replay import ReplayReport, replay  # noqa: E402
from connector.runtime import build_runtime  # noqa: E402
from connector.store.db import make_engine, migrate, writing  # noqa: E402
from connector.store.inbox import new_row, store_rows  # noqa: E402
from connector.worker import drain  # noqa: E402
from policies import load_policy  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SOURCES = {  # platform → (created fixture, updated fixture)
    "jira": ("issue_created__security", "issue_updated__priority"),
    "zendesk": ("ticket.created__trigger_outage", "ticket.updated__trigger_security_label"),
    "servicenow": ("incident_inserted__basic", "incident_updated__priority"),
}


def payload(platform: str, name: str, ticket: int) -> tuple[dict, str, str]:
    """The fixture as ticket number `ticket`: (body, event type, ticket id)."""
    body = json.loads((FIXTURES / platform / f"{name}.json").read_text(encoding="utf-8"))
    if platform == "jira":
        body["issue"]["id"], body["issue"]["key"] = str(40000 + ticket), f"SUP-{ticket}"
        return body, body["webhookEvent"], body["issue"]["id"]
    if platform == "zendesk":
        body["ticket"]["id"] = str(ticket + 1)
        return body, f"trigger:{body['event']}", body["ticket"]["id"]
    body["sys_id"] = f"{ticket:032x}"
    return body, f"incident.{'inserted' if body['operation'] == 'insert' else 'updated'}", body["sys_id"]


def fill(engine, deliveries: int) -> None:
    rows = []
    platforms = list(SOURCES)
    for n in range(deliveries // 4):
        platform = platforms[n % 3]
        created, updated = SOURCES[platform]
        for step in range(4):
            body, event, ticket_id = payload(platform, created if step == 0 else updated, n)
            at = START + timedelta(seconds=4 * n + step)
            rows.append(
                new_row(
                    platform, f"{ticket_id}:{step}", event, ticket_id, False, json.dumps(body).encode(), at
                )
            )
    with writing(engine) as conn:
        store_rows(conn.connection.dbapi_connection, conn.dialect, rows)


def config_for(url: str) -> Config:
    """All three platforms configured, without credentials: the worker decides in dry run."""
    platforms = {
        "jira": {"url": "https://acme.atlassian.net"},
        "zendesk": {"url": "https://acme.zendesk.com"},
        "servicenow": {"url": "https://acme.service-now.com"},
    }
    return Config.model_validate({"database": url, "dry_run": True, "platforms": platforms})


def timed(engine, config, in_force, candidate, processes) -> tuple[ReplayReport, float]:
    started = time.perf_counter()
    report = replay(engine, config, in_force, candidate, processes=processes)
    return report, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=None, help="default: one per core (up to 8)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/replay.db"
        engine = make_engine(url)
        migrate(engine)
        fill(engine, args.deliveries)
        text = EXAMPLE_POLICY.read_text(encoding="utf-8")
        rule = text.index("- name: security-goes-to-l3")
        candidate_path = Path(tmp) / "candidate.yaml"
        candidate_path.write_text(text[:rule] + text[rule:].replace("- escalate: L3", "- escalate: L2", 1))
        in_force, candidate = load_policy(str(EXAMPLE_POLICY)), load_policy(str(candidate_path))
        config = config_for(url)
        replay(engine, config, in_force, candidate, since=START + timedelta(days=365))  # warm-up
        judged, judged_s = timed(engine, config, in_force, candidate, args.processes)
        rt = build_runtime(config, engine=engine)
        drain(rt)  # the worker's decisions: one audit record per delivery
        recalled, recalled_s = timed(engine, config, in_force, candidate, args.processes)
        engine.dispose()
    same = (judged.baseline, judged.candidate, [c.key for c in judged.changed]) == (
        recalled.baseline,
        recalled.candidate,
        [c.key for c in recalled.changed],
    )
    print(f"replayed {judged.deliveries} deliveries ({judged.tickets} tickets, 3 platforms)")
    print(
        f"  no audit log, both sides judged:   {judged.deliveries / judged_s:7,.0f} deliveries/s "
        f"({judged_s:.2f}s)"
    )
    print(
        f"  in-force side from the audit log:  {recalled.deliveries / recalled_s:7,.0f} deliveries/s "
        f"({recalled_s:.2f}s; {recalled.recorded} of {recalled.deliveries} read back)"
    )
    print(f"  {len(recalled.changed)} tickets would differ; the two reports agree: {same}")


if __name__ == "__main__":
    main()
