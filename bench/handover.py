"""The cost of a follow-the-sun handover wave: N open tickets held by one team when its calendar closes.

    .venv/bin/python bench/handover.py [--tickets 10000] [--platform zendesk] [--database URL]

The example policy's L2 is worked from Jakarta, Berlin and New York. N tickets sit with Berlin's team
(stored as the worker stores them: tier, snapshot, SLA clocks, their SLA and handover timers). At
Berlin's close (Tuesday 3 November 2026, 17:00 UTC) the scheduler's tick fires the N handover timers
into the inbox and the worker hands each ticket to New York. Measured: the tick, the worker (judgement,
plan, the platform's request rendered, audit record, timers re-armed), and the writes the wave asks of
the platform. The worker runs in dry-run, so no request leaves the process: the platform's rate limit,
not Escalator, sets how long a wave takes to reach the platform, and the report says how long that is.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from connector.codec import ticket_to_json
from connector.config import Config
from connector.handover import wanted as handover_timers
from connector.model import EventKind, Priority, Status, Ticket, TicketEvent, TicketRef
from connector.runtime import build_runtime
from connector.scheduler import tick
from connector.store import timers
from connector.store.db import writing
from connector.store.tables import tickets as tickets_table
from connector.worker import drain
from policies import sla
from policies.sla import SlaState

OPENED = datetime(2026, 11, 3, 16, 0, tzinfo=UTC)  # Tuesday: Berlin's team works until 17:00 UTC
CLOSE = datetime(2026, 11, 3, 17, 0, tzinfo=UTC)
SETTINGS = {
    "jira": {"url": "https://acme.atlassian.net", "email": "bot@acme.test", "api_token": "t",
             "webhook_secret": "s", "account_id": "escalator-bot", "notes": "internal"},
    "zendesk": {"url": "https://acme.zendesk.com", "email": "bot@acme.test", "api_token": "t",
                "webhook_secret": "s", "user_id": "9000000000001"},
    "servicenow": {"url": "https://acme.service-now.com", "user": "escalator.bot", "password": "p",
                   "webhook_secret": "s", "extra_fields": ["u_escalator_labels"]},
}  # fmt: skip
# Documented write limits (DESIGN.md, the platforms' docs): Zendesk's Update Ticket endpoint allows 100
# requests a minute per account. Jira Cloud and ServiceNow answer 429 with Retry-After under limits set
# per site / per instance; pass --limit to model yours.
LIMIT_PER_MINUTE = {"zendesk": 100}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--platform", choices=sorted(SETTINGS), default="zendesk")
    parser.add_argument("--database", help="a scratch database URL (default: a new SQLite file)")
    parser.add_argument("--limit", type=float, help="the platform's write limit, requests per minute")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'handover.db'}"
        config = Config.model_validate(
            {"database": url, "dry_run": True, "platforms": {args.platform: SETTINGS[args.platform]}}
        )
        clock = Clock(OPENED)
        rt = build_runtime(config, clock=clock)
        try:
            seeded = time.perf_counter()
            seed(rt, args.platform, args.tickets)
            seeded = time.perf_counter() - seeded
            clock.now = CLOSE
            started = time.perf_counter()
            fired = tick(rt)
            ticked = time.perf_counter() - started
            started = time.perf_counter()
            handled = drain(rt, max_rounds=args.tickets)
            worked = time.perf_counter() - started
            records = _records(rt)
            clock.now = CLOSE + timedelta(minutes=1)
            again = tick(rt)
        finally:
            rt.close()
    report(args, seeded, fired, ticked, handled, worked, records, again)
    return 0


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def seed(rt, platform: str, count: int) -> None:
    """`count` open P4 tickets with Berlin's L2 team, stored and armed as the worker leaves them."""
    policy = rt.policy.current
    rota = policy.platforms[platform].tiers["L2"].rota
    emea = rota.team("emea").target
    for start in range(0, count, 500):
        with writing(rt.engine) as conn:
            for n in range(start, min(count, start + 500)):
                ticket = Ticket(
                    TicketRef(platform, str(500000 + n), f"BEN-{n}"), title="Where is my invoice?",
                    status=Status.OPEN, priority=Priority.P4, platform_priority=None, assignee=emea.assignee,
                    group=emea.group, created_at=OPENED,
                )  # fmt: skip
                event = TicketEvent(EventKind.TICKET_CREATED, ticket, occurred_at=OPENED)
                clocks = sla.advance(policy, SlaState(), event, Priority.P4, OPENED)
                conn.execute(
                    insert(tickets_table).values(
                        platform=platform, ticket_id=ticket.ref.id, ticket_key=ticket.ref.key, tier="L2",
                        priority="P4", priority_pinned=False, updated_at=OPENED,
                        snapshot=ticket_to_json(ticket), sla=clocks.to_json(),
                    )
                )  # fmt: skip
                armed = (
                    *sla.timers(policy, clocks),
                    *handover_timers(policy, platform, "L2", ticket, clocks, OPENED),
                )
                timers.reconcile(conn, platform, ticket.ref.id, armed, OPENED)


def _records(rt) -> list[dict]:
    from connector import audit

    return [r for r in audit.records(rt.engine) if r["trigger"]["kind"] == "handover"]


def report(args, seeded, fired, ticked, handled, worked, records, again) -> None:
    outcomes = Counter(r["outcome"] for r in records)
    requests = Counter(len(r["requests"]) for r in records)
    writes = sum(len(r["requests"]) for r in records)
    per_ticket = Counter(r["ticket"]["id"] for r in records)
    teams = Counter(a["team"] for r in records for a in r["actions_planned"] if a["action"] == "hand_over")
    n = args.tickets
    print(f"handover wave: {n} open {args.platform} tickets held by emea at its close ({CLOSE:%a %H:%M} UTC)")
    print(f"  seeded (stored + armed)  {seeded:8.2f} s")
    each = 1000 * ticked / max(fired, 1)
    print(f"  scheduler tick           {ticked:8.2f} s  fired {fired} handover timers ({each:.3f} ms each)")
    each = 1000 * worked / max(handled, 1)
    print(f"  worker                   {worked:8.2f} s  handled {handled} ({each:.2f} ms each, one thread)")
    print(f"  audit records            {len(records)} ({dict(outcomes)}), tickets with more than one: "
          f"{sum(1 for c in per_ticket.values() if c > 1)}")  # fmt: skip
    print(f"  handed to                {dict(teams)}")
    print(f"  writes                   {writes} requests ({dict(requests)} requests per handover)")
    print(f"  fired again a minute on  {again}")
    limit = args.limit or LIMIT_PER_MINUTE.get(args.platform)
    if limit:
        minutes = writes / limit
        print(f"  at {limit:g} requests/min   the wave reaches {args.platform} in {minutes:.0f} min "
              f"(Escalator's side: {(ticked + worked) / 60:.1f} min)")  # fmt: skip
    else:
        print(
            f"  rate limit               {args.platform}: set per site; --limit REQUESTS_PER_MINUTE models it"
        )
    if outcomes.get("dry_run", 0) != n or fired != n or again:
        print("UNEXPECTED: every ticket should be handed over exactly once", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
