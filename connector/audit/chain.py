"""Appending to the audit chain: one hash-chained, signed record per decision, on every platform.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical JSON,
which holds everything the row's other columns hold (seq, id, at, platform, ticket, rules,
outcome), so changing, removing or reordering any record breaks every hash after it and a column
that disagrees with its record is named by `verify`. With a signing key, each hash is also signed
(Ed25519): a record appended by someone without the key is named as a forgery. The database refuses
UPDATE and DELETE on the table (DELETE only below the pruned base, see `audit prune`).

Record versions: v1 (before the `v` field) and v2 hash alike; v2 adds `v`, `software` and, when
signed, `key_id`, and holds pseudonyms instead of personal data (see connector/audit/people.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, update

from connector.audit.keys import AuditKeys
from connector.audit.people import pseudonymise
from connector.store.tables import audit_head, audit_log
from connector.version import VERSION

GENESIS = "0" * 64
RECORD_VERSION = 2
OUTCOMES = ("applied", "dry_run", "no_change", "echo", "ignored", "failed", "retrying", "out_of_scope")
# An operator's action on an event (connector/events.py): put back in the queue, or discarded.
OPERATOR_OUTCOMES = ("requeued", "discarded")
_NO_KEYS = AuditKeys()
# The keys a running Escalator set for its engine (Runtime does): every appender signs and
# pseudonymises alike, also code that does not pass `keys` itself.
_ENGINE_KEYS: weakref.WeakKeyDictionary[Engine, AuditKeys] = weakref.WeakKeyDictionary()


def use_keys(engine: Engine, keys: AuditKeys) -> None:
    """Make `keys` the default for every record appended through `engine`."""
    _ENGINE_KEYS[engine] = keys


def canonical_json(value: Any) -> str:
    """The one serialisation that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{record_json}".encode()).hexdigest()


def signed_message(seq: int, digest: str) -> bytes:
    """What a record's signature covers: its place and its hash (which covers everything else)."""
    return f"escalator-audit-record\n{seq}\n{digest}".encode()


def pseudonym(value: str | None) -> str | None:
    """Legacy, unkeyed stand-in (records before v2). New code marks people with `person()`."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


# append's statements, built once: building them per call cost more than running them.
_BUMP_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=audit_head.c.seq + 1)
    .returning(audit_head.c.seq, audit_head.c.hash)
)
_INSERT = audit_log.insert()
_SET_HEAD_HASH = update(audit_head).where(audit_head.c.id == 1)
_COLUMNS = ("seq", "record_id", "at", "platform", "ticket_id", "ticket_key", "rules", "outcome", "record",
            "prev_hash", "hash", "signature")  # fmt: skip
# PostgreSQL: the record's row and the head's new hash in one statement (a round trip less); the
# INSERT in its WITH runs once, to completion, whether or not the UPDATE reads it.
_INSERT_AND_SET_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(hash=bindparam("head_hash", type_=audit_head.c.hash.type))
    .add_cte(
        audit_log.insert()
        .values({name: bindparam(f"v_{name}", type_=audit_log.c[name].type) for name in _COLUMNS})
        .returning(audit_log.c.seq)
        .cte("appended")
    )
)


def append(
    conn: Connection,
    record: Mapping[str, Any],
    *,
    at: datetime,
    keys: AuditKeys | None = None,
    record_id: str | None = None,
) -> dict[str, Any]:
    """Append one record inside the caller's transaction and return it with id, seq and hashes.

    People in `record` are marked with `person(...)`; they are stored as pseudonyms. With
    `keys.signer` the record is signed; without `keys`, those `use_keys` set for the engine.
    Bumping the single head row first takes a write lock on every backend, so concurrent
    appenders (threads or replicas) queue up and the chain stays linear. The bump returns the
    new seq and the previous hash (UPDATE … RETURNING). That lock is held until the caller's
    transaction ends: append last, after the transaction's other writes, so appenders queue only
    for the append itself. `record_id`: the record's id when the caller needs it before (a new
    UUID otherwise).
    """
    if record.get("outcome") not in OUTCOMES + OPERATOR_OUTCOMES:
        known = OUTCOMES + OPERATOR_OUTCOMES
        raise ValueError(f"audit outcome must be one of {known}, got {record.get('outcome')!r}")
    keys = keys or _ENGINE_KEYS.get(conn.engine, _NO_KEYS)
    seq, prev_hash = conn.execute(_BUMP_HEAD).one()
    record = pseudonymise(conn, record, keys, seq=seq, now=at)
    body = {
        **record,
        "id": record_id or str(uuid.uuid4()),
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "v": RECORD_VERSION,
        "software": VERSION,
    }
    if keys.signer is not None:
        body["key_id"] = keys.signer.key_id
    body_json = canonical_json(body)
    digest = chain_hash(prev_hash, body_json)
    signature = keys.signer.sign(signed_message(seq, digest)) if keys.signer is not None else None
    ticket = body.get("ticket") or {}
    row = dict(
        seq=seq,
        record_id=body["id"],
        at=at,
        platform=body["platform"],
        ticket_id=_text(ticket.get("id")),
        ticket_key=_text(ticket.get("key")),
        rules=" ".join(body.get("rules") or ()),
        outcome=body["outcome"],
        record=body_json,
        prev_hash=prev_hash,
        hash=digest,
        signature=signature,
    )
    if conn.dialect.name == "postgresql":
        conn.execute(_INSERT_AND_SET_HEAD, {"head_hash": digest, **{f"v_{k}": v for k, v in row.items()}})
    else:  # SQLite has no INSERT inside WITH; its statements cost no round trip
        conn.execute(_INSERT, row)
        conn.execute(_SET_HEAD_HASH, {"hash": digest})
    out = {**body, "prev_hash": prev_hash, "hash": digest}
    if signature is not None:
        out["signature"] = signature
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
