"""Replay throughput: stored deliveries re-judged per second under the policy in force and a candidate.

    .venv/bin/python bench/replay.py [--deliveries 20000]

Fills a scratch SQLite inbox with recorded webhook bodies from all three platforms (tests/fixtures),
each ticket with a creation and three updates, then times `connector.replay.replay` with the
example policy as the one in force and a candidate with one rule changed (security goes to L2),
the way `escalator replay --policy` runs it. Reading the rows is part of the time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.config import EXAMPLE_POLICY, Config
from connector.replay import replay
from connector.store.db import make_engine, migrate, writing
from connector.store.inbox import new_row, store_rows
from policies import load_policy

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/replay.db")
        migrate(engine)
        fill(engine, args.deliveries)
        text = EXAMPLE_POLICY.read_text(encoding="utf-8")
        rule = text.index("- name: security-goes-to-l3")
        candidate_path = Path(tmp) / "candidate.yaml"
        candidate_path.write_text(text[:rule] + text[rule:].replace("- escalate: L3", "- escalate: L2", 1))
        in_force, candidate = load_policy(str(EXAMPLE_POLICY)), load_policy(str(candidate_path))
        config = Config()
        replay(
            engine, config, in_force, candidate, since=START + timedelta(days=365)
        )  # warm-up: imports, caches
        started = time.perf_counter()
        report = replay(engine, config, in_force, candidate)
        elapsed = time.perf_counter() - started
        engine.dispose()
    print(
        f"replayed {report.deliveries} deliveries ({report.tickets} tickets, 3 platforms) in {elapsed:.2f}s"
    )
    print(f"  {report.deliveries / elapsed:,.0f} deliveries/s, each judged under both policies")
    print(f"  {len(report.changed)} tickets would differ; skipped: {dict(report.skipped) or 'none'}")


if __name__ == "__main__":
    main()
