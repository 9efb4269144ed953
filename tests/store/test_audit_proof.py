"""What an auditor checks away from the database: an export with its checkpoints, the public key
alone; and pruning, after which what remains still proves itself."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
from sqlalchemy import select, text

from connector import audit
from connector.audit import checkpoints as cps
from connector.audit import offline, privacy
from connector.audit.keys import AuditKeys, generate, load_public_keys, load_signer
from connector.store.tables import audit_log, audit_people

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def keys(tmp_path):
    generate(tmp_path / "audit.key", tmp_path / "audit.pub")
    return AuditKeys(signer=load_signer(str(tmp_path / "audit.key")), pseudonym_key=b"p" * 32)


@pytest.fixture
def public(tmp_path, keys):
    return load_public_keys([str(tmp_path / "audit.pub")])


def _append(engine, keys, days: range) -> None:
    for day in days:
        record = {
            "platform": "jira",
            "ticket": {"id": f"100{day}", "key": f"TES-{day}", "url": None},
            "rules": ["outage-goes-to-l2"],
            "inputs": {"actor": audit.person("jira", f"acct-{day % 3}", f"Agent {day % 3}")},
            "outcome": "applied",
        }
        with engine.begin() as conn:
            audit.append(conn, record, at=T0 + timedelta(days=day), keys=keys)


def _export(engine) -> str:
    out = io.StringIO()
    offline.write_proof(engine, out)
    return out.getvalue()


def test_an_export_with_checkpoints_verifies_offline_and_any_changed_byte_fails_it(
    engine, keys, public, tmp_path
):
    sink = cps.DirectorySink(tmp_path / "checkpoints")
    _append(engine, keys, range(0, 4))
    cps.make(engine, keys.signer, sink, now=T0 + timedelta(days=4))
    _append(engine, keys, range(4, 6))
    cps.make(engine, keys.signer, sink, now=T0 + timedelta(days=6))
    _append(engine, keys, range(6, 7))  # after the last checkpoint: its signature still vouches
    exported = _export(engine)
    assert exported.count('"checkpoint":') == 2 and exported.count('"signature":') == 9
    path = tmp_path / "audit.jsonl"
    path.write_text(exported, encoding="utf-8")
    engine.dispose()  # no database from here on

    result = offline.verify_export(path, public)
    assert result.ok and result.checked == 7 and result.head[0] == 7, str(result)
    outside = cps.read(tmp_path / "checkpoints")
    assert offline.verify_export(path, public, outside).ok

    raw = exported.encode()
    positions = sorted({*range(0, len(raw), max(1, len(raw) // 300)), len(raw) - 1, len(raw) - 2})
    for i in positions:
        damaged = bytearray(raw)
        damaged[i] = ord("x") if raw[i] != ord("x") else ord("y")
        path.write_bytes(bytes(damaged))
        assert not offline.verify_export(path, public).ok, f"a changed byte at {i} went unnoticed"


def test_an_export_cut_short_or_with_a_record_removed_fails(engine, keys, public, tmp_path):
    _append(engine, keys, range(0, 5))
    cps.make(engine, keys.signer, cps.StreamSink(io.StringIO()), now=T0 + timedelta(days=5))
    lines = _export(engine).splitlines(keepends=True)
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(lines[:2] + lines[3:]))  # record 3 gone
    result = offline.verify_export(path, public)
    assert not result.ok and result.broken_seq == 3, str(result)
    path.write_text("".join(lines[:4] + lines[5:]))  # the last record gone, checkpoint kept
    result = offline.verify_export(path, public)
    assert not result.ok and result.broken_seq == 5, str(result)
    other = tmp_path / "other"
    generate(other.with_suffix(".key"), other.with_suffix(".pub"))
    path.write_text("".join(lines))
    wrong = load_public_keys([str(other.with_suffix(".pub"))])
    assert "not among the public keys" in offline.verify_export(path, wrong).reason


def test_prune_keeps_what_remains_verifiable(engine, keys, public, tmp_path):
    directory = tmp_path / "checkpoints"
    _append(engine, keys, range(0, 10))  # one record a day
    cut = T0 + timedelta(days=6)
    with pytest.raises(privacy.PrivacyError, match="younger than the retention"):
        privacy.prune(engine, keys, cps.DirectorySink(directory), before=cut, retention_days=30,
                      now=T0 + timedelta(days=20), actor="dpo")  # fmt: skip
    with pytest.raises(privacy.PrivacyError, match="signing key"):
        privacy.prune(engine, AuditKeys(), cps.DirectorySink(directory), before=cut, retention_days=None,
                      now=T0 + timedelta(days=20), actor="dpo")  # fmt: skip
    done = privacy.prune(engine, keys, cps.DirectorySink(directory), before=cut, retention_days=None,
                         now=T0 + timedelta(days=20), actor="dpo")  # fmt: skip
    assert (done.through, done.removed) == (6, 6), str(done)
    with engine.connect() as conn:
        assert conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq)).scalars().all() == [
            7, 8, 9, 10, 11,
        ]  # fmt: skip
        prune_record = json.loads(
            conn.execute(select(audit_log.c.record).where(audit_log.c.seq == 11)).scalar()
        )
    assert prune_record["trigger"]["kind"] == "audit.prune" and prune_record["pruned"]["through_seq"] == 6
    signed = cps.prove(cps.read(directory), public)
    result = audit.verify(engine, public_keys=public, checkpoints=signed)
    assert result.ok and result.checked == 5, str(result)
    assert "pruned" in str(result)

    path = tmp_path / "after-prune.jsonl"
    path.write_text(_export(engine))
    assert offline.verify_export(path, public).ok

    # Someone removes more than the signed cut: named, although the chain after it is intact.
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_head SET base_seq = 7, base_hash = (SELECT hash FROM audit_log WHERE seq = 7)")
        )
        conn.execute(text("DELETE FROM audit_log WHERE seq = 7"))
    assert audit.verify(engine, public_keys=public).ok  # without the checkpoints, a cut looks like a cut
    result = audit.verify(engine, public_keys=public, checkpoints=signed)
    assert not result.ok and result.broken_seq == 7, str(result)


def test_people_named_only_in_pruned_records_leave_the_mapping(engine, keys, tmp_path):
    _append(engine, keys, range(0, 3))  # actors acct-0, acct-1, acct-2
    _append(engine, keys, range(9, 10))  # acct-0 again, later
    privacy.prune(engine, keys, cps.DirectorySink(tmp_path / "cp"), before=T0 + timedelta(days=5),
                  retention_days=None, now=T0 + timedelta(days=20), actor="dpo")  # fmt: skip
    with engine.connect() as conn:
        left = set(conn.execute(select(audit_people.c.person_id)).scalars())
    assert left == {"acct-0", "dpo"}


def test_scheduled_checkpoints_every_n_records_or_t_minutes(db_url, tmp_path):
    from connector.audit import schedule
    from connector.config import Config
    from connector.runtime import build_runtime
    from tests.support.harness import FakeClock

    generate(tmp_path / "k.pem", tmp_path / "k.pub")
    config = Config.model_validate({"database": db_url, "audit": {
        "signing_key": str(tmp_path / "k.pem"),
        "checkpoints": {"to": str(tmp_path / "cps"), "every_records": 3, "every_minutes": 60},
    }})  # fmt: skip
    clock = FakeClock(T0)
    rt = build_runtime(config, clock=clock)
    try:
        assert schedule.enabled(rt) and schedule.tick(rt) is None  # an empty log: nothing to sign

        def add(n: int) -> None:
            with rt.engine.begin() as conn:
                for _ in range(n):
                    audit.append(
                        conn, {"platform": "jira", "outcome": "no_change"}, at=clock(), keys=rt.audit_keys
                    )

        add(1)
        assert schedule.tick(rt).last_seq == 1  # the first record starts the series
        add(2)
        assert schedule.tick(rt) is None  # 2 new records, 0 minutes
        clock.advance(61 * 60)
        assert (schedule.tick(rt).first_seq, schedule.tick(rt)) == (2, None)
        add(3)
        assert schedule.tick(rt).last_seq == 6
        public = load_public_keys([str(tmp_path / "k.pub")])
        signed = cps.prove(cps.read(tmp_path / "cps"), public)
        assert [c.number for c in signed] == [1, 2, 3]
        assert audit.verify(rt.engine, public_keys=public, checkpoints=signed).ok
    finally:
        rt.close()


@responses.activate
def test_checkpoints_can_be_posted_and_a_refused_post_keeps_nothing(engine, keys, public):
    url = "https://archive.example/escalator/checkpoints"
    responses.add(responses.POST, url, status=503)
    responses.add(responses.POST, url, status=201)
    _append(engine, keys, range(0, 3))
    with pytest.raises(cps.CheckpointError, match="answered 503"):
        cps.make(engine, keys.signer, cps.sink_for(url), now=T0)
    assert cps.from_database(engine) == []  # nothing kept: the next attempt makes the same one
    checkpoint, where = cps.make(engine, keys.signer, cps.sink_for(url), now=T0)
    assert where == url and checkpoint.number == 1
    posted = json.loads([c for c in responses.calls if c.request.url == url][1].request.body)
    assert cps.prove([cps.Checkpoint.parse(posted, "POST")], public)[0].last_seq == 3


def test_forget_erases_the_mapping_ticket_memory_and_inbox_bodies_and_the_chain_verifies(
    engine, keys, public
):
    from sqlalchemy import insert

    from connector.store.tables import inbox, outbox, tickets

    person = {"accountId": "acct-7", "displayName": "Ann Example", "emailAddress": "ann@example.com"}
    summary = "Ann Example cannot log in"
    with engine.begin() as conn:
        conn.execute(insert(tickets).values(
            platform="jira", ticket_id="10040", ticket_key="TES-40", requester_id="acct-7",
            snapshot={"requester": {"id": "acct-7", "name": "Ann Example", "email": "ann@example.com"}},
        ))  # fmt: skip
        conn.execute(insert(inbox).values(
            platform="jira", delivery_id="d1", event_type="jira:issue_created", ticket_id="10040",
            received_at=T0, status="done", attempts=1, next_attempt_at=T0,
            body=json.dumps({"issue": {"fields": {"reporter": person, "summary": summary}}}).encode(),
            last_error="400: User Ann Example cannot be assigned issues",
        ))  # fmt: skip
        conn.execute(insert(outbox).values(
            dedupe_key="k1", decision_id="d", platform="jira", ticket_id="10040", channel="oncall",
            kind="notice", message={"text": "P1: Ann Example cannot log in"}, status="sent", attempts=1,
            created_at=T0, next_attempt_at=T0,
        ))  # fmt: skip
        audit.append(conn, {"platform": "jira", "outcome": "applied",
                            "inputs": {"requester": {"id": audit.person("jira", "acct-7", "Ann Example")}}},
                     at=T0, keys=keys)  # fmt: skip
    done = privacy.forget(engine, keys, "jira", "acct-7", now=T0, actor="dpo")
    assert len(done.pseudonyms) == 1 and done.tickets == 1 and done.inbox == 2, str(done)
    with engine.connect() as conn:
        dump = json.dumps([
            [list(map(str, row)) for row in conn.execute(select(table))]
            for table in (tickets, inbox, outbox, audit_people, audit_log)
        ])  # fmt: skip
    for trace in ("acct-7", "Ann Example", "ann@example.com"):
        assert trace not in dump
    assert done.pseudonyms[0] in dump  # still in the record it was in; now pointing at nobody
    assert audit.verify(engine, public_keys=public).ok
    assert "nothing to erase" in str(privacy.forget(engine, keys, "jira", "nobody", now=T0, actor="dpo"))
