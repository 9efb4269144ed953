"""Decision → message request latency at a steady rate of decisions, with a fake Slack over HTTP.

    .venv/bin/python bench/notify_latency.py [--rate 20] [--seconds 15] [--poll 0.5]

Each decision is a new P1 outage ticket on Jira (the example policy's p1-notice), delivered through
the webhook intake at `--rate` per second and decided by the worker threads; the outbox sender, in its
own thread as in `escalator work`, sends the notice to a local fake Slack (slack_sdk, real HTTP). The
latency of one message is from its decision's commit (the audit record's instant) to the moment the fake
Slack received the chat.postMessage request. Jira has no write credentials here (decisions are dry
runs on the ticket; channels still send), so the figure is Escalator's own: the worker, the outbox's
queue and its poll interval, the channel's HTTP round trip.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector import audit  # noqa: E402
from connector.app import create_app  # noqa: E402
from connector.config import Config  # noqa: E402
from connector.outbox import OutboxSender  # noqa: E402
from connector.runtime import build_runtime  # noqa: E402
from connector.worker import WorkerPool  # noqa: E402
from tests.conformance.drivers import JiraDriver, Spec  # noqa: E402
from tests.support.channels import FakeSlack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="decisions per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to deliver")
    parser.add_argument("--poll", type=float, default=0.25, help="notifications.poll_seconds")
    args = parser.parse_args()

    slack = FakeSlack().start()
    with tempfile.TemporaryDirectory() as tmp:
        jira = {**JiraDriver.settings, "api_token": ""}  # no write credentials: the ticket write is a dry run
        config = Config.model_validate({
            "database": f"sqlite:///{tmp}/bench.db", "dry_run": False,
            "worker": {"threads": 2, "poll_seconds": 0.05},
            "platforms": {"jira": jira},
            "notifications": {"poll_seconds": args.poll, "channels": {
                "oncall": {"type": "slack", "token": "xoxb-bench", "channel": "#bench", "api_url": slack.url},
                "managers": {"type": "email", "sender": "a@b.example", "to": ["c@d.example"]},  # no host
            }},
        })  # fmt: skip
        rt = build_runtime(config)
        driver = JiraDriver(rt.policy.current.platforms["jira"])
        http = create_app(rt).test_client()
        pool = WorkerPool(rt)
        sender = OutboxSender(rt)
        pool.start()
        sender.start()
        total = int(args.rate * args.seconds)
        start = time.perf_counter()
        for n in range(total):
            due = start + n / args.rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            spec = Spec(1000 + n, labels=("outage",))
            delivery = driver.created(spec, datetime.now(UTC))
            answer = http.post("/webhooks/jira", data=delivery.body, headers=delivery.headers)
            assert answer.status_code == 202, answer.status_code
        deadline = time.time() + 30
        while len(slack.calls) < total and time.time() < deadline:
            time.sleep(0.1)
        # the instant the fake received each notice, by ticket key (the text starts with it)
        arrived = {c.body["text"].split(":", 1)[0]: c.at for c in list(slack.calls)}
        pool.request_stop()
        sender.stop()
        threading.Thread(target=pool.wait, daemon=True).start()

        decided = {}
        for record in audit.records(rt.engine, platform="jira"):
            if record["trigger"]["kind"] == "ticket.created":
                decided[record["ticket"]["key"]] = datetime.fromisoformat(record["at"]).timestamp()
        latencies = sorted(1000 * (arrived[k] - decided[k]) for k in decided if k in arrived)
        rt.close()
    slack.stop()
    if not latencies:
        print("no message arrived")
        return 1
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
    print(
        f"{len(latencies)}/{total} notices at {args.rate:g} decisions/s, outbox poll {args.poll:g}s: "
        f"decision → Slack request p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
