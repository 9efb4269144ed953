"""The attacker's side: someone with direct database access (the append-only triggers switched off)
tries to change the log without `audit verify` noticing, or without it naming the right record.
Every case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from connector import audit
from connector.audit import checkpoints as cps
from connector.audit.chain import canonical_json, chain_hash
from connector.audit.keys import AuditKeys, load_public_keys, load_signer
from connector.store.tables import audit_head, audit_log

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def keypair(tmp_path):
    private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
    audit.keys.generate(private, public)
    return load_signer(str(private)), load_public_keys([str(public)])


def _record(n: int) -> dict:
    return {
        "platform": "jira",
        "ticket": {"id": f"1004{n}", "key": f"TES-{40 + n}", "url": None},
        "trigger": {"kind": "ticket.created", "delivery_id": f"d-{n}"},
        "rules": ["outage-goes-to-l2"],
        "priority": {"from": "P3", "to": "P1", "why": "impact high"},
        "outcome": "applied",
    }


def _append(engine, n: int, keys: AuditKeys | None = None, start: int = 1) -> None:
    for i in range(start, start + n):
        with engine.begin() as conn:
            audit.append(conn, _record(i), at=T0 + timedelta(minutes=i), keys=keys)


def _unguard(conn) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    else:
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))


def _row(conn, seq: int):
    return conn.execute(select(audit_log).where(audit_log.c.seq == seq)).one()


def _rewrite(conn, seq: int, change, *, rehash: bool) -> str:
    """Edit record `seq`'s JSON; with `rehash` also its hash (and the head if it is the last)."""
    row = _row(conn, seq)
    body = json.loads(row.record)
    change(body)
    record = canonical_json(body)
    values = {"record": record}
    if rehash:
        values["hash"] = chain_hash(row.prev_hash, record)
    conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(**values))
    return values.get("hash", row.hash)


def _rechain_from(conn, seq: int) -> None:
    """Recompute every hash from `seq` on and move the head: a chain consistent in itself."""
    prev = _row(conn, seq - 1).hash if seq > 1 else audit.GENESIS
    last = conn.execute(select(audit_head.c.seq)).scalar_one()
    for s in range(seq, last + 1):
        row = _row(conn, s)
        body = json.loads(row.record)
        body.pop("key_id", None)  # the attacker has no private key: signatures can only be dropped
        record = canonical_json(body)
        digest = chain_hash(prev, record)
        conn.execute(
            update(audit_log)
            .where(audit_log.c.seq == s)
            .values(record=record, prev_hash=prev, hash=digest, signature=None)
        )
        prev = digest
    conn.execute(update(audit_head).values(hash=prev))


def _checkpoint(engine, signer, tmp_path) -> list[cps.Checkpoint]:
    cps.make(engine, signer, cps.DirectorySink(tmp_path / "checkpoints"), now=T0 + timedelta(hours=1))
    return cps.read(tmp_path / "checkpoints")


def _broken(result, seq: int, *words: str) -> None:
    assert not result.ok, str(result)
    assert result.broken_seq == seq, str(result)
    for word in words:
        assert word in result.reason, str(result)


def test_an_untouched_chain_verifies_with_keys_and_checkpoints(engine, keypair, tmp_path):
    signer, public = keypair
    _append(engine, 5, AuditKeys(signer=signer))
    result = audit.verify(engine, public_keys=public, checkpoints=_checkpoint(engine, signer, tmp_path))
    assert result.ok and result.checked == 5, str(result)
    assert result.head is not None and result.head[0] == 5 and "head: seq=5 hash=" in str(result)


def test_altered_content_is_named(engine):
    _append(engine, 5)
    with engine.begin() as conn:
        _unguard(conn)
        _rewrite(conn, 3, lambda b: b["priority"].update(to="P4"), rehash=False)
    _broken(audit.verify(engine), 3, "altered")


CHANGED_COLUMNS = {
    "ticket_id": "99999",
    "ticket_key": "TES-99",
    "at": T0 + timedelta(days=30),
    "platform": "zendesk",
    "outcome": "failed",
    "rules": "security-goes-to-l3",
    "record_id": "00000000-0000-0000-0000-000000000000",
}


def test_each_filtered_column_that_disagrees_with_the_record_is_named(engine):
    _append(engine, 5)
    for column, value in CHANGED_COLUMNS.items():
        with engine.begin() as conn:
            _unguard(conn)
            before = getattr(_row(conn, 3), column)
            conn.execute(update(audit_log).where(audit_log.c.seq == 3).values({column: value}))
        _broken(audit.verify(engine), 3, f"column {column}")
        with engine.begin() as conn:
            conn.execute(update(audit_log).where(audit_log.c.seq == 3).values({column: before}))
        assert audit.verify(engine).ok


def test_altered_and_rehashed_is_named_without_keys(engine):
    _append(engine, 5)
    with engine.begin() as conn:
        _unguard(conn)
        _rewrite(conn, 3, lambda b: b["priority"].update(to="P4"), rehash=True)
    _broken(audit.verify(engine), 3, "recomputed")


def test_altered_and_rehashed_is_named_by_its_signature(engine, keypair):
    signer, public = keypair
    _append(engine, 5, AuditKeys(signer=signer))
    with engine.begin() as conn:
        _unguard(conn)
        _rewrite(conn, 3, lambda b: b["priority"].update(to="P4"), rehash=True)
    _broken(audit.verify(engine, public_keys=public), 3, "signature")


def test_altered_and_rehashed_last_record_is_named_by_the_head(engine):
    _append(engine, 5)
    with engine.begin() as conn:
        _unguard(conn)
        _rewrite(conn, 5, lambda b: b["priority"].update(to="P4"), rehash=True)
    _broken(audit.verify(engine), 5, "head")


def test_a_deleted_middle_record_is_named(engine):
    _append(engine, 5)
    with engine.begin() as conn:
        _unguard(conn)
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    _broken(audit.verify(engine), 3, "missing")


def test_a_deleted_tail_with_the_head_moved_back_is_caught_by_the_checkpoint(engine, keypair, tmp_path):
    signer, public = keypair
    _append(engine, 5, AuditKeys(signer=signer))
    signed = _checkpoint(engine, signer, tmp_path)
    with engine.begin() as conn:
        _unguard(conn)
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 4"))
        conn.execute(update(audit_head).values(seq=3, hash=_row(conn, 3).hash))
    assert audit.verify(engine, public_keys=public).ok  # the database alone cannot tell
    _broken(audit.verify(engine, public_keys=public, checkpoints=signed), 4, "tail", "#1")


def test_swapped_records_are_named(engine):
    _append(engine, 5)
    with engine.begin() as conn:
        _unguard(conn)
        for old, new in ((2, -2), (3, 2), (-2, 3)):  # records 2 and 3 trade places
            conn.execute(update(audit_log).where(audit_log.c.seq == old).values(seq=new))
    _broken(audit.verify(engine), 2, "moved")


def test_a_fully_rechained_log_is_caught_by_the_checkpoint_at_the_first_changed_record(
    engine, keypair, tmp_path
):
    signer, public = keypair
    _append(engine, 5, AuditKeys(signer=signer))
    signed = _checkpoint(engine, signer, tmp_path)
    with engine.begin() as conn:
        _unguard(conn)
        _rewrite(conn, 2, lambda b: b["priority"].update(to="P4"), rehash=False)
        _rechain_from(conn, 1)  # every record re-hashed, signatures dropped
    assert audit.verify(engine).ok  # consistent in itself: only something outside can tell
    _broken(audit.verify(engine, public_keys=public, checkpoints=signed), 1, "checkpoint #1")


def test_a_rechain_from_the_altered_record_names_that_record(engine, keypair, tmp_path):
    signer, _ = keypair
    _append(engine, 5)  # records unsigned: only the checkpoint vouches for them
    signed = _checkpoint(engine, signer, tmp_path)
    public = load_public_keys([str(tmp_path / "audit.pub")])
    with engine.begin() as conn:
        _unguard(conn)
        _rewrite(conn, 2, lambda b: b["priority"].update(to="P4"), rehash=False)
        _rechain_from(conn, 2)
    assert audit.verify(engine).ok
    _broken(audit.verify(engine, public_keys=public, checkpoints=signed), 2, "checkpoint #1")


def _forge(conn, *, move_head: bool) -> None:
    last = _row(conn, 5)
    body = {**json.loads(last.record), "seq": 6, "id": "forged-0000", "outcome": "no_change"}
    body.pop("key_id", None)
    record = canonical_json(body)
    digest = chain_hash(last.hash, record)
    conn.execute(
        audit_log.insert().values(
            seq=6, record_id="forged-0000", at=datetime.fromisoformat(body["at"]), platform="jira",
            ticket_id=body["ticket"]["id"], ticket_key=body["ticket"]["key"], rules="outage-goes-to-l2",
            outcome="no_change", record=record, prev_hash=last.hash, hash=digest,
        )
    )  # fmt: skip
    if move_head:
        conn.execute(update(audit_head).values(seq=6, hash=digest))


def test_an_appended_forgery_beyond_the_head_is_named(engine):
    _append(engine, 5)
    with engine.begin() as conn:
        _forge(conn, move_head=False)
    _broken(audit.verify(engine), 6, "beyond the chain's head")


def test_an_appended_forgery_with_the_head_moved_is_named_with_keys_and_checkpoints(
    engine, keypair, tmp_path
):
    signer, public = keypair
    _append(engine, 5, AuditKeys(signer=signer))
    signed = _checkpoint(engine, signer, tmp_path)
    with engine.begin() as conn:
        _forge(conn, move_head=True)
    _broken(audit.verify(engine, public_keys=public, checkpoints=signed), 6, "not signed")


def test_a_checkpoint_never_signs_a_broken_chain(engine, keypair, tmp_path):
    signer, _ = keypair
    _append(engine, 3)
    with engine.begin() as conn:
        _unguard(conn)
        _rewrite(conn, 2, lambda b: b.update(outcome="failed"), rehash=False)
    with pytest.raises(cps.CheckpointError, match="seq=2"):
        cps.make(engine, signer, cps.DirectorySink(tmp_path / "cp"), now=T0)
    assert not (tmp_path / "cp").exists() or not list((tmp_path / "cp").iterdir())


def test_a_removed_or_altered_checkpoint_file_is_caught(engine, keypair, tmp_path):
    signer, public = keypair
    _append(engine, 2, AuditKeys(signer=signer))
    directory = tmp_path / "checkpoints"
    for i in range(3):
        _append(engine, 1, AuditKeys(signer=signer), start=3 + i)
        cps.make(engine, signer, cps.DirectorySink(directory), now=T0 + timedelta(hours=i))
    files = sorted(directory.iterdir())
    assert [f.name for f in files] == [f"checkpoint-{n:08d}.json" for n in (1, 2, 3)]
    assert len(cps.prove(cps.read(directory), public)) == 3
    with pytest.raises(cps.CheckpointError, match="never rewritten"):
        cps.DirectorySink(directory).write(cps.read(directory)[0])
    files[1].unlink()
    with pytest.raises(cps.CheckpointError, match="#3 does not follow #1"):
        cps.prove(cps.read(directory), public)
    doc = json.loads(files[2].read_text())
    doc["checkpoint"]["last_seq"] -= 1
    files[2].write_text(json.dumps(doc))
    with pytest.raises(cps.CheckpointError, match="#3: the signature"):
        cps.prove(cps.read(directory), public)
