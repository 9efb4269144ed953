"""Console benchmark: a million audit records, then the decisions page and each report, timed.

    .venv/bin/python bench/console_pages.py [--records 1000000] [--database sqlite|postgresql://…] [--runs 20]

Seeds the audit log directly (a valid hash chain, records shaped as the worker writes them, three
platforms, ~6 % escalations, SLA breaches, ~30 records per ticket, one tickets row with SLA clocks per
ticket), indexes it into the console's read model (console/facts.py, timed), then asks the real Flask
app, logged in, for: the decisions page (first page, a filtered page, a deep keyset page) and each
report page, `--runs` times each, and prints p50 / p95 / max. Targets: a page p95 < 300 ms, a report
p95 < 2 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, delete, insert, select, text, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.audit import canonical_json, chain_hash, pseudonym  # noqa: E402
from connector.store.db import writing  # noqa: E402
from connector.store.tables import audit_head, audit_log, tickets, timers  # noqa: E402
from connector.store.tickets import save_sla, sla_open  # noqa: E402
from console import facts  # noqa: E402
from console.clocks import clock_states  # noqa: E402
from policies.sla import SlaState  # noqa: E402
from policies.sla import timers as sla_timers  # noqa: E402
from tests.console.conftest import PASSWORDS, csrf_of, make_console_for  # noqa: E402

PLATFORMS = ("jira", "zendesk", "servicenow")
RULES = ("security-goes-to-l3", "customer-asks-for-manager", "sla-breach-escalates", "outage-raises", "vip")
LABELS = ("security", "billing", "outage", "vip", "login", "mobile")
TIERS = ("L1", "L2", "L3", "management")
START = datetime(2026, 1, 5, tzinfo=UTC)


def seed(engine, n: int, sha: str, version: str) -> None:
    rnd = random.Random(7)
    prev = "0" * 64
    per_ticket = 30
    batch_rows, ticket_rows = [], []
    step = timedelta(seconds=(300 * 86400) / n)
    for seq in range(1, n + 1):
        ticket = seq // per_ticket
        platform = PLATFORMS[ticket % 3]
        at = START + step * seq
        escalate = rnd.random() < 0.06
        breach = rnd.random() < 0.02
        tier_from = TIERS[rnd.randrange(3)]
        tier_to = TIERS[TIERS.index(tier_from) + 1] if escalate else tier_from
        body = {
            "platform": platform,
            "ticket": {"id": str(ticket), "key": f"SUP-{ticket}", "url": None},
            "trigger": {
                "kind": "sla.breached" if breach else "ticket.updated",
                "delivery_id": uuid.uuid4().hex,
            },
            "policy": {"name": "global-support", "version": version, "sha256": sha},
            "rules": rnd.sample(RULES, rnd.randrange(3)),
            "reasons": [],
            "inputs": {
                "labels": rnd.sample(LABELS, 2),
                "requester": {"id": pseudonym(f"u{ticket}"), "region": "emea"},
            },
            "priority": {"from": "P3", "to": "P2", "why": "impact × urgency"},
            "tier": {"from": tier_from, "to": tier_to},
            "outcome": rnd.choice(("applied", "applied", "no_change", "dry_run", "echo", "failed")),
            "id": str(uuid.uuid4()),
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
        }
        if breach:
            body["sla"] = {"metric": "first_response", "calendar": rnd.choice(("emea", "apac", "always"))}
        record = canonical_json(body)
        digest = chain_hash(prev, record)
        batch_rows.append(
            {
                "seq": seq, "record_id": body["id"], "at": at, "platform": platform, "ticket_id": str(ticket),
                "rules": " ".join(body["rules"]), "outcome": body["outcome"], "record": record,
                "prev_hash": prev, "hash": digest,
            }
        )  # fmt: skip
        prev = digest
        if seq % per_ticket == 0:
            started = at - timedelta(hours=rnd.randrange(1, 48))
            fr = started + timedelta(minutes=rnd.randrange(5, 600))
            res = started + timedelta(hours=rnd.randrange(1, 72))
            ticket_rows.append(
                {
                    "platform": platform, "ticket_id": str(ticket), "ticket_key": f"SUP-{ticket}", "tier": tier_to,  # noqa: E501
                    "priority": "P2", "priority_pinned": False, "updated_at": at,
                    "sla": {
                        "started_at": started.isoformat(), "priority": rnd.choice(("P1", "P2", "P3", "P4")),
                        "calendar": "emea", "pauses": [], "paused_since": None,
                        "resolved_at": res.isoformat() if rnd.random() < 0.8 else None, "seen_at": at.isoformat(),  # noqa: E501
                        "clocks": {
                            "first_response": {"started_at": started.isoformat(), "stopped_at": fr.isoformat(),  # noqa: E501
                                               "breached": rnd.random() < 0.1, "warned": []},
                            "resolution": {"started_at": started.isoformat(), "stopped_at": res.isoformat(),
                                           "breached": rnd.random() < 0.15, "warned": []},
                        },
                    },
                }
            )  # fmt: skip
        if len(batch_rows) == 20_000 or seq == n:
            with writing(engine) as conn:
                conn.execute(insert(audit_log), batch_rows)
                if ticket_rows:
                    for row in ticket_rows:
                        row["sla_open"] = sla_open(row["sla"])  # as connector/store/tickets.py writes it
                    conn.execute(insert(tickets), ticket_rows)
                conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=prev))
            batch_rows, ticket_rows = [], []


def run_open_clocks(engine, policy) -> int:
    """Open tickets as the worker leaves them: the resolution clock still running and every timer of the
    ticket armed (policies.sla.timers). Idempotent, so it also brings a database kept by an earlier run
    up to date. Returns how many tickets are open."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(tickets.c.platform, tickets.c.ticket_id, tickets.c.sla).where(tickets.c.sla_open.is_(True))
        ).all()
    armed_at = START
    timer_rows = []
    with writing(engine) as conn:
        conn.execute(delete(timers))
        for row in rows:
            state = dict(row.sla)
            clocks = {m: dict(c) for m, c in state["clocks"].items()}
            clocks["resolution"]["stopped_at"] = None
            state["clocks"] = clocks
            for clock in clock_states(policy, SlaState.from_json(state), armed_at):
                if clocks[clock["metric"]]["breached"] and clock["due_at"] is not None:
                    clocks[clock["metric"]]["due"] = clock["due_at"].isoformat()  # kept when a breach fires
            save_sla(conn, row.platform, row.ticket_id, state)
            for t in sla_timers(policy, SlaState.from_json(state)):
                timer_rows.append(
                    {"platform": row.platform, "ticket_id": row.ticket_id, "key": t.key, "kind": t.kind.value,
                     "metric": t.metric, "percent": t.percent, "target_seconds": t.target.total_seconds(),
                     "calendar": t.calendar, "due_at": t.due, "armed_at": armed_at, "fired_at": None}
                )  # fmt: skip
        for start in range(0, len(timer_rows), 5000):
            conn.execute(insert(timers), timer_rows[start : start + 5000])
    return len(rows)


def timed(client, path: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--database", default="sqlite", help="sqlite (a temp file) or a postgresql:// server URL"
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database and print its URL")
    parser.add_argument("--existing", metavar="URL", help="time a database seeded by an earlier --keep run")
    args = parser.parse_args()
    drop = None
    if args.existing:
        url = args.existing
    elif args.database == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='escalator-bench-')}/escalator.db"
    else:
        name = f"escalator_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(
            args.database.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = args.database.rsplit("/", 1)[0] + f"/{name}"

        def drop() -> None:
            if args.keep:
                return
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    try:
        console = make_console_for(url)
        engine, policy = console.rt.engine, console.rt.policy.current
        if not args.existing:
            started = time.perf_counter()
            seed(engine, args.records, policy.sha256, str(policy.version))
            took = time.perf_counter() - started
            print(
                f"seeded {args.records:,} audit records in {took:.1f} s ({engine.dialect.name})", flush=True
            )
        started = time.perf_counter()
        opened = run_open_clocks(engine, policy)
        took = time.perf_counter() - started
        print(f"open tickets: {opened:,} with running clocks and armed timers ({took:.1f} s)", flush=True)
        started = time.perf_counter()
        indexed = facts.catch_up(engine)  # resumes where an interrupted run stopped
        print(f"read model: indexed {indexed:,} records in {time.perf_counter() - started:.1f} s", flush=True)
        if args.keep:
            print(f"kept: --existing {url}", flush=True)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        client = console.client()
        page = client.get("/console/login")
        client.post(
            "/console/login",
            data={"name": "vera", "password": PASSWORDS["vera"], "csrf_token": csrf_of(page.text)},
        )
        with engine.connect() as conn:
            records = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
        deep = records // 2
        pages = {
            "decisions (first page)": "/console/decisions",
            "decisions (platform + outcome)": "/console/decisions?platform=zendesk&outcome=failed",
            "decisions (rule)": "/console/decisions?rule=vip",
            "decisions (ticket key)": f"/console/decisions?key=SUP-{deep // 30}",
            "decisions (keyset, middle)": f"/console/decisions?before={deep}",
            "decisions (time range)": "/console/decisions?since=2026-06-01&until=2026-06-02",
            "decision (one record)": f"/console/decisions/{deep}",
            "ticket page": f"/console/tickets/{PLATFORMS[(deep // 30) % 3]}/{deep // 30}",
            "SLA board": "/console/sla",
        }
        reports = {f"report {n}": f"/console/reports/{n}" for n in
                   ("escalations", "attainment", "durations", "fcr", "causes", "breaches")}  # fmt: skip
        print(f"{'what':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target")
        for label, path in {**pages, **reports}.items():
            runs = args.runs if label in pages else max(3, args.runs // 4)
            samples = sorted(timed(client, path, runs))
            p95 = samples[max(0, int(round(0.95 * len(samples))) - 1)]
            target = 300 if label in pages else 2000
            verdict = "ok" if p95 < target else "SLOW"
            print(
                f"{label:34} {statistics.median(samples):8.1f} {p95:8.1f} {samples[-1]:8.1f}  <{target} {verdict}"  # noqa: E501
            )
        console.rt.close()
    finally:
        if drop:
            drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
