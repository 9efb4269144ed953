"""What `escalator doctor` checks about the audit log: keys, the append-only guard, checkpoints.

Read-only: nothing is written, the keys are only loaded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, inspect, select, text

from connector.audit import checkpoints as cps
from connector.audit.keys import AuditKeyError, AuditKeys
from connector.audit.settings import AuditSettings
from connector.store.tables import audit_checkpoints, audit_head

OK, WARN, FAIL = "ok", "warn", "FAIL"
_SQLITE_GUARDS = {"audit_log_no_update", "audit_log_no_delete"}


def keys(settings: AuditSettings) -> tuple[list[tuple[str, str]], AuditKeys | None]:
    """Findings about the signing and pseudonym keys, and the keys when they load."""
    try:
        loaded = AuditKeys.load(settings.signing_key, settings.pseudonym_key)
    except AuditKeyError as exc:
        return [(FAIL, f"audit keys: {exc}")], None
    out: list[tuple[str, str]] = []
    missing = []
    if loaded.signer is None:
        missing.append(
            "no signing key (audit.signing_key): records are not signed and no checkpoint is written, "
            "so a removed tail or a re-computed chain would go unnoticed"
        )
    else:
        out.append((OK, f"audit records and checkpoints are signed with key {loaded.signer.key_id}"))
        if not settings.checkpoints.to:
            missing.append("audit.checkpoints.to is not set: no checkpoint leaves the database")
        elif (unwritable := _unwritable_directory(settings.checkpoints.to)) is not None:
            out.append((FAIL, f"audit.checkpoints.to {settings.checkpoints.to}: {unwritable}: no checkpoint "
                              "would leave the database"))  # fmt: skip
    if loaded.pseudonym_key is None:
        missing.append("no pseudonym key (audit.pseudonym_key): people are looked up by unkeyed SHA-256")
    if missing:
        out.append((WARN, "; ".join(missing)))
    return out, loaded


def _unwritable_directory(destination: str) -> str | None:
    """Why checkpoints could not be written to `destination` when it is a directory (this user's
    rights); None when they could, or it is "-" or a URL (tried when sent)."""
    sink = cps.sink_for(destination)
    return sink.unwritable() if isinstance(sink, cps.DirectorySink) else None


def database(engine: Engine, settings: AuditSettings, loaded: AuditKeys | None) -> list[tuple[str, str]]:
    """Findings about the append-only triggers and the newest checkpoint (schema already current)."""
    out: list[tuple[str, str]] = []
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            found = conn.execute(
                text("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_log_append_only'")
            ).scalar()
            guarded = found is not None and found != "D"
        else:
            names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
            guarded = _SQLITE_GUARDS <= names
        if guarded:
            out.append((OK, "audit_log refuses UPDATE and DELETE (append-only triggers in place)"))
        else:
            unguarded = (
                "the append-only triggers on audit_log are missing or disabled: run "
                "`escalator audit verify` at once, then restore them (re-run the migration)"
            )
            out.append((FAIL, unguarded))
        if "audit_checkpoints" not in inspect(conn).get_table_names():
            return out
        head = conn.execute(select(audit_head.c.seq)).scalar_one()
        last = conn.execute(
            select(audit_checkpoints.c.number, audit_checkpoints.c.last_seq, audit_checkpoints.c.at)
            .order_by(audit_checkpoints.c.number.desc())
            .limit(1)
        ).first()
    if loaded is None or loaded.signer is None:
        return out
    if last is None:
        if head:
            out.append((WARN, f"no audit checkpoint yet for {head} records: `escalator audit checkpoint`"))
        return out
    age = datetime.now(UTC) - last.at
    limit = timedelta(minutes=settings.checkpoints.every_minutes * 2)
    if head > last.last_seq and age > limit:
        stale = (
            f"the newest audit checkpoint (#{last.number}) is {_age(age)} old and "
            f"{head - last.last_seq} records are not covered: is the worker running?"
        )
        out.append((WARN, stale))
    public = {loaded.signer.key_id: loaded.signer.private.public_key()}
    try:
        newest = [c for c in cps.from_database(engine) if c.number == last.number]
        cps.prove(newest, public)
    except cps.CheckpointError as exc:
        out.append((FAIL, f"the newest audit checkpoint does not verify: {exc}"))
        return out
    out.append((OK, f"newest audit checkpoint #{last.number} (records up to {last.last_seq}, "
                    f"{_age(age)} ago) verifies with the configured key"))  # fmt: skip
    return out


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"
