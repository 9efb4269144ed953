"""Issue 11, finding 3 as it was found: `kill -9` of the whole process group while writes are in
flight, several times, and every accepted delivery's note exists exactly once. On SQLite and on
PostgreSQL, where a record's transaction is pipelined (the kill lands in it as often as not).

A real `escalator serve` (waitress, its worker process) writes to a fake Jira over HTTP that
takes each request and only then, slowly, answers: a kill lands between "Jira has it" and
"Escalator recorded it" as often as the timing allows. After each kill the product is started
again; at the end every issue must carry one note with its decision's mark, none twice.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer

from connector.plan import note_mark
from platforms.jira.change_id import change_id
from tests.support.fake_http import JsonHandler
from tests.support.fixtures import load_fixture
from tests.support.harness import SECRET
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import post_jira, start_escalator, wait_for_line

pytestmark = ONE_AT_A_TIME

DELIVERIES = 16
KILLS = 3
ANSWER_AFTER = 0.15  # seconds between taking a write and answering it: the crash window


class SlowJira(ThreadingHTTPServer):
    """Takes edits and comments at once, answers them late; lists an issue's comments with properties."""

    def __init__(self):
        self.comments: dict[str, list[dict]] = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def notes(self) -> int:
        with self.lock:
            return sum(len(c) for c in self.comments.values())


class _Handler(JsonHandler):
    server: SlowJira

    def do_PUT(self):
        self.body()
        time.sleep(ANSWER_AFTER)
        self.answer(204)

    def do_POST(self):
        key = self.path.split("/")[-2]
        comment = self.body()
        with self.server.lock:  # taken: from now on it is on the issue, whatever happens to the caller
            self.server.comments.setdefault(key, []).append(comment)
        time.sleep(ANSWER_AFTER)
        self.answer(201, b'{"id": "1"}')

    def do_GET(self):
        key = self.path.split("?")[0].split("/")[-2]
        with self.server.lock:
            listed = [{"id": str(n), "properties": c.get("properties", [])}
                      for n, c in enumerate(self.server.comments.get(key, []))]  # fmt: skip
        self.answer(200, json.dumps({"comments": listed}).encode())


IDS: dict[int, str] = {}  # delivery number → the delivery id Escalator gives it


def _deliver(port: int, n: int) -> int:
    payload = load_fixture("jira", "issue_created__outage")
    payload["issue"]["id"], payload["issue"]["key"] = str(50000 + n), f"KILL-{n}"
    # Created now: no SLA target is already missed, so each issue gets one decision and one note.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    payload["issue"]["fields"]["created"] = payload["issue"]["fields"]["updated"] = stamp
    payload["timestamp"] = int(time.time() * 1000)
    status = post_jira(port, payload, f"kill-{n}")
    IDS[n] = change_id(payload["issue"]) or f"kill-{n}"  # a field change is named issue id @ updated
    return status


def test_kill_9_with_writes_in_flight_leaves_every_note_exactly_once(tmp_path, db_url):
    jira = SlowJira()
    threading.Thread(target=jira.serve_forever, daemon=True).start()
    config = tmp_path / "escalator.yaml"
    config.write_text(
        f"database: {db_url}\n"
        "dry_run: false\n"
        # One delivery per claim, and a lease a little longer than one slow decision: a kill's
        # deliveries are taken again soon after the restart, and a live worker never loses one.
        "worker: {poll_seconds: 0.05, lease_seconds: 2, batch: 1, threads: 2}\n"
        "platforms:\n"
        f"  jira: {{url: 'http://127.0.0.1:{jira.server_address[1]}', email: bot@acme.test, api_token: t,\n"
        f"         webhook_secret: {SECRET}, account_id: escalator-bot}}\n"
    )

    def serve():
        proc = start_escalator(tmp_path, "serve", "--config", str(config), "--port", "0", own_group=True)
        return proc, int(wait_for_line(proc, "Escalator listening on").rsplit(":", 1)[1])

    accepted, kills, per_run = [], 0, DELIVERIES // (KILLS + 1)
    try:
        for run in range(KILLS + 1):
            proc, port = serve()
            for n in range(run * per_run, (run + 1) * per_run):
                assert _deliver(port, n) == 202
                accepted.append(n)
            if run == KILLS:
                break
            before = jira.notes()  # kill as soon as this run has a write in flight
            deadline = time.monotonic() + 10
            while jira.notes() == before and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(ANSWER_AFTER / 2)  # …and Jira has taken it but not yet answered
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
            kills += 1
        deadline = time.monotonic() + 60
        while (len(jira.comments) < len(accepted) or _open(db_url)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
        jira.shutdown()
        jira.server_close()

    # A delivery's note carries its mark; SLA timers firing on these (old) issues add notes of
    # their own decisions, each with its own mark. Every mark must be on Jira exactly once.
    marks = Counter(p["value"]["mark"] for cs in jira.comments.values() for c in cs for p in c["properties"]
                    if p["key"] == "escalator.decision")  # fmt: skip
    lost = [n for n in accepted if marks[note_mark("jira", IDS[n])] == 0]
    duplicated = {mark: count for mark, count in marks.items() if count > 1}
    recovered = _recovered(db_url)
    chain = _chain(db_url)
    print(f"\nkill -9: {len(accepted)} deliveries accepted, {kills} kills survived, {len(marks)} notes, "
          f"duplicates {len(duplicated)}, lost {len(lost)}, recovered after a kill {recovered}")  # fmt: skip
    assert kills == KILLS
    assert not lost, f"no note for {lost}"
    assert not duplicated, f"notes written twice: {duplicated}"
    assert chain.ok, str(chain)


def _open(url: str) -> int:
    """Deliveries not yet done (pending, or processing under a dead worker's lease)."""
    from connector.store import inbox

    counts = _read(url, inbox.counts)
    return counts.get(inbox.PENDING, 0) + counts.get(inbox.PROCESSING, 0)


def _recovered(url: str) -> int:
    from sqlalchemy import select

    from connector.store.tables import audit_log

    def count(engine) -> int:
        with engine.connect() as conn:
            return sum('"recovered"' in r for r in conn.execute(select(audit_log.c.record)).scalars())

    return _read(url, count)


def _chain(url: str):
    """The audit chain, verified: every record hashed onto the one before it, none missing."""
    from connector import audit

    return _read(url, audit.verify)


def _read(url: str, read):
    from connector.store.db import make_engine

    engine = make_engine(url)
    try:
        return read(engine)
    finally:
        engine.dispose()
