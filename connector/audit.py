"""The tamper-evident audit log: one hash-chained record per decision, on every platform.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical
JSON, so changing, removing or reordering any record breaks every hash after it. The
database also refuses UPDATE and DELETE on the table (see the initial migration).
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, Engine, and_, select, update

from connector.store.tables import audit_head, audit_log

GENESIS = "0" * 64
OUTCOMES = ("applied", "dry_run", "no_change", "echo", "ignored", "failed", "retrying")


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
    if record.get("outcome") not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {OUTCOMES}, got {record.get('outcome')!r}")
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


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} records"
        return (
            f"audit chain BROKEN at record seq={self.broken_seq}: {self.reason} "
            f"({self.checked} records checked)"
        )


def verify(engine: Engine, *, batch: int = 1000) -> Verification:
    """Walk the whole chain; name the first record whose hash, link or sequence is wrong."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    with engine.connect() as conn:
        last_seq = 0
        while True:
            rows = conn.execute(
                select(audit_log).where(audit_log.c.seq > last_seq).order_by(audit_log.c.seq).limit(batch)
            ).all()
            for row in rows:
                problem = _check_row(row, expected_seq, prev_hash)
                if problem:
                    return Verification(False, checked, row.seq, problem)
                prev_hash, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
                checked += 1
            if len(rows) < batch:
                break
        head_seq, head_hash = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if (head_seq, head_hash) != (expected_seq - 1, prev_hash):
        return Verification(
            False,
            checked,
            expected_seq,
            f"records after seq={expected_seq - 1} are missing (head is seq={head_seq})",
        )
    return Verification(True, checked)


def _check_row(row: Any, expected_seq: int, prev_hash: str) -> str:
    if row.seq != expected_seq:
        return f"expected seq={expected_seq}: records are missing or out of order"
    if row.prev_hash != prev_hash:
        return "prev_hash does not match the previous record's hash"
    if chain_hash(prev_hash, row.record) != row.hash:
        return "hash does not match the record's content (the record was altered)"
    try:
        body = json.loads(row.record)
    except ValueError:
        return "record is not valid JSON"
    if (body.get("seq"), body.get("platform"), body.get("outcome")) != (row.seq, row.platform, row.outcome):
        return "indexed columns disagree with the hashed record"
    return ""


# --- export --------------------------------------------------------------------

CSV_COLUMNS = (
    "seq", "id", "at", "platform", "ticket_id", "ticket_key", "ticket_url", "trigger_kind", "delivery_id",
    "policy_name", "policy_version", "policy_sha256", "rules", "priority_from", "priority_to", "priority_why",
    "tier_from", "tier_to", "outcome", "detail", "actions_planned", "actions_applied", "inputs",
    "prev_hash", "hash",
)  # fmt: skip


def records(
    engine: Engine,
    *,
    platform: str | None = None,
    since: datetime | None = None,
    ticket: str | None = None,
    rule: str | None = None,
    batch: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Stream records in chain order, filtered; each with its prev_hash and hash."""
    conditions = []
    if platform:
        conditions.append(audit_log.c.platform == platform)
    if since:
        conditions.append(audit_log.c.at >= since)
    if ticket:
        conditions.append(audit_log.c.ticket_id == ticket)
    last_seq = 0
    with engine.connect() as conn:
        while True:
            rows = conn.execute(
                select(audit_log.c.seq, audit_log.c.record, audit_log.c.prev_hash, audit_log.c.hash)
                .where(and_(audit_log.c.seq > last_seq, *conditions))
                .order_by(audit_log.c.seq)
                .limit(batch)
            ).all()
            for row in rows:
                body = json.loads(row.record)
                last_seq = row.seq
                if rule and rule not in (body.get("rules") or ()):
                    continue
                yield {**body, "prev_hash": row.prev_hash, "hash": row.hash}
            if len(rows) < batch:
                return


def write_jsonl(items: Iterator[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for item in items:
        out.write(canonical_json(item) + "\n")
        count += 1
    return count


def write_csv(items: Iterator[dict[str, Any]], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for item in items:
        writer.writerow(_flatten(item))
        count += 1
    return count


def _flatten(item: Mapping[str, Any]) -> dict[str, Any]:
    ticket = item.get("ticket") or {}
    trigger = item.get("trigger") or {}
    policy = item.get("policy") or {}
    priority = item.get("priority") or {}
    tier = item.get("tier") or {}
    return {
        "seq": item.get("seq"),
        "id": item.get("id"),
        "at": item.get("at"),
        "platform": item.get("platform"),
        "ticket_id": ticket.get("id"),
        "ticket_key": ticket.get("key"),
        "ticket_url": ticket.get("url"),
        "trigger_kind": trigger.get("kind"),
        "delivery_id": trigger.get("delivery_id"),
        "policy_name": policy.get("name"),
        "policy_version": policy.get("version"),
        "policy_sha256": policy.get("sha256"),
        "rules": " ".join(item.get("rules") or ()),
        "priority_from": priority.get("from"),
        "priority_to": priority.get("to"),
        "priority_why": priority.get("why"),
        "tier_from": tier.get("from"),
        "tier_to": tier.get("to"),
        "outcome": item.get("outcome"),
        "detail": item.get("detail"),
        "actions_planned": canonical_json(item.get("actions_planned") or []),
        "actions_applied": canonical_json(item.get("actions_applied") or []),
        "inputs": canonical_json(item.get("inputs") or {}),
        "prev_hash": item.get("prev_hash"),
        "hash": item.get("hash"),
    }
