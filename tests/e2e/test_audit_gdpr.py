"""GDPR erasure end to end: a real Jira payload goes through the worker, then `audit forget` erases
its requester. Afterwards neither the database file's bytes nor an export hold their id, name or
e-mail, and the chain still verifies with the public key."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

from connector import audit
from connector.audit import offline
from connector.audit.keys import generate, load_public_keys
from connector.cli import main
from connector.config import Config
from connector.store.db import make_engine, migrate
from tests.support.harness import jira_config

PERSON = "5d9e1a2b3c4d5e6f7a8b9c0d"  # the reporter of issue_created__outage
TRACES = (PERSON, "Casey Customer", "casey.customer@example.com", "casey.customer")


def _config(tmp_path) -> Config:
    generate(tmp_path / "audit.key", tmp_path / "audit.pub")
    base = jira_config(f"sqlite:///{tmp_path / 'escalator.db'}", dry_run=True).model_dump()
    base["audit"] = {"signing_key": str(tmp_path / "audit.key"), "pseudonym_key": "k" * 32,
                     "checkpoints": {"to": str(tmp_path / "checkpoints")}}  # fmt: skip
    return Config.model_validate(base)


def _database_bytes(tmp_path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("escalator.db*") if p.is_file())


def test_forget_leaves_no_trace_of_the_person_and_the_chain_verifies(tmp_path, launch):
    config = _config(tmp_path)
    esc = launch(config)
    esc.deliver("issue_created__outage")
    esc.deliver("issue_created__security")
    esc.work()
    records = esc.audit()
    assert len(records) == 2
    requester = records[0]["inputs"]["requester"]["id"]
    assert requester.startswith("psn:")
    assert PERSON not in json.dumps(records)  # the log never held the id itself
    assert PERSON.encode() in _database_bytes(tmp_path)  # but the ticket memory and inbox do, so far
    esc.rt.close()

    (tmp_path / "escalator.yaml").write_text(json.dumps(config.model_dump(mode="json")))
    cfg = ["--config", str(tmp_path / "escalator.yaml")]
    assert main(["audit", "forget", "--platform", "jira", "--person", PERSON, *cfg]) == 0

    stored = _database_bytes(tmp_path)
    for trace in TRACES:
        assert trace.encode() not in stored, f"{trace!r} is still in the database file"
    export = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--proof", "-o", str(export), *cfg]) == 0
    exported = export.read_text()
    for trace in TRACES:
        assert trace not in exported
    assert requester in exported  # the records are unchanged: their pseudonym now points at nobody
    forget_record = json.loads(exported.splitlines()[-1])
    assert forget_record["trigger"]["kind"] == "audit.forget"
    assert forget_record["erased"]["pseudonyms"] == [requester]

    public = load_public_keys([str(tmp_path / "audit.pub")])
    assert offline.verify_export(export, public).ok
    assert main(["audit", "checkpoint", *cfg]) == 0
    verify = ["audit", "verify", "--public-key", str(tmp_path / "audit.pub")]
    assert main([*verify, "--checkpoints", str(tmp_path / "checkpoints"), *cfg]) == 0

    # The same person again later gets a new pseudonym: nothing links them to what was erased.
    esc = launch(config)
    esc.deliver("issue_created__minor")
    esc.work()
    latest = esc.audit()[-1]["inputs"].get("requester", {}).get("id")
    assert latest != requester


def test_an_export_piped_into_a_reader_that_stops_ends_quietly(tmp_path):
    config = _config(tmp_path)
    engine = make_engine(config.database)
    migrate(engine)
    for _ in range(300):
        with engine.begin() as conn:
            audit.append(conn, {"platform": "jira", "outcome": "no_change"}, at=datetime.now(UTC))
    engine.dispose()
    (tmp_path / "escalator.yaml").write_text(json.dumps(config.model_dump(mode="json")))
    done = subprocess.run(
        f"{sys.executable} -m connector audit export --config {tmp_path / 'escalator.yaml'} | head -1",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
