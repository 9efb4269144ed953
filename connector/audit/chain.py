"""Appending to the audit chain: one hash-chained record per decision, on every platform.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical
JSON, so changing, removing or reordering any record breaks every hash after it. The
database also refuses UPDATE and DELETE on the table (see the initial migration).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, update

from connector.store.tables import audit_head, audit_log

GENESIS = "0" * 64
OUTCOMES = ("applied", "dry_run", "no_change", "echo", "ignored", "failed", "retrying", "out_of_scope")
# An operator's action on an event (connector/events.py): put back in the queue, or discarded.
OPERATOR_OUTCOMES = ("requeued", "discarded")


def canonical_json(value: Any) -> str:
    """The one serialisation that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{record_json}".encode()).hexdigest()


def pseudonym(value: str | None) -> str | None:
    """A stable, non-reversible stand-in for personal data (e-mails, account ids) in the log."""
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


def append(conn: Connection, record: Mapping[str, Any], *, at: datetime) -> dict[str, Any]:
    """Append one record inside the caller's transaction and return it with id, seq and hashes.

    Bumping the single head row first takes a write lock on every backend, so concurrent
    appenders (threads or replicas) queue up and the chain stays linear. The bump returns
    the new seq and the previous hash (UPDATE … RETURNING: SQLite ≥ 3.35, PostgreSQL).
    """
    if record.get("outcome") not in OUTCOMES + OPERATOR_OUTCOMES:
        known = OUTCOMES + OPERATOR_OUTCOMES
        raise ValueError(f"audit outcome must be one of {known}, got {record.get('outcome')!r}")
    seq, prev_hash = conn.execute(_BUMP_HEAD).one()
    body = {
        **record,
        "id": str(uuid.uuid4()),
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    body_json = canonical_json(body)
    digest = chain_hash(prev_hash, body_json)
    ticket = body.get("ticket") or {}
    conn.execute(
        _INSERT,
        dict(
            seq=seq,
            record_id=body["id"],
            at=at,
            platform=body["platform"],
            ticket_id=ticket.get("id"),
            rules=" ".join(body.get("rules") or ()),
            outcome=body["outcome"],
            record=body_json,
            prev_hash=prev_hash,
            hash=digest,
        ),
    )
    conn.execute(_SET_HEAD_HASH, {"hash": digest})
    return {**body, "prev_hash": prev_hash, "hash": digest}
