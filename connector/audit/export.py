"""Audit records out of the database: filtered, in chain order, as JSON lines or CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Engine, and_, or_, select

from connector.audit.chain import canonical_json
from connector.spreadsheet import cell
from connector.store.tables import audit_log

CSV_COLUMNS = (
    "seq", "id", "at", "platform", "ticket_id", "ticket_key", "ticket_url", "trigger_kind", "delivery_id",
    "policy_name", "policy_version", "policy_sha256", "rules", "priority_from", "priority_to", "priority_why",
    "tier_from", "tier_to", "outcome", "detail", "actions_planned", "actions_applied", "inputs",
    "software", "prev_hash", "hash", "signature",
)  # fmt: skip


def records(
    engine: Engine,
    *,
    platform: str | None = None,
    since: datetime | None = None,
    ticket: str | None = None,
    rule: str | None = None,
    seq: int | None = None,
    batch: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Stream records in chain order, filtered; each with its prev_hash, hash and signature.

    `ticket` matches the ticket's id or its key (TES-42)."""
    conditions = []
    if seq is not None:
        conditions.append(audit_log.c.seq == seq)
    if platform:
        conditions.append(audit_log.c.platform == platform)
    if since:
        conditions.append(audit_log.c.at >= since)
    if ticket:
        conditions.append(or_(audit_log.c.ticket_id == ticket, audit_log.c.ticket_key == ticket))
    last_seq = 0
    with engine.connect() as conn:
        while True:
            rows = conn.execute(
                select(
                    audit_log.c.seq,
                    audit_log.c.record,
                    audit_log.c.prev_hash,
                    audit_log.c.hash,
                    audit_log.c.signature,
                )  # fmt: skip
                .where(and_(audit_log.c.seq > last_seq, *conditions))
                .order_by(audit_log.c.seq)
                .limit(batch)
            ).all()
            for row in rows:
                body = json.loads(row.record)
                last_seq = row.seq
                if rule and rule not in (body.get("rules") or ()):
                    continue
                yield as_exported(body, row.prev_hash, row.hash, row.signature)
            if len(rows) < batch:
                return


def as_exported(
    body: Mapping[str, Any], prev_hash: str, digest: str, signature: str | None
) -> dict[str, Any]:
    """The record as exported: its hashed JSON plus the fields that prove it (`offline.py` splits them)."""
    out = {**body, "prev_hash": prev_hash, "hash": digest}
    if signature:
        out["signature"] = signature
    return out


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
        writer.writerow({k: cell(v) for k, v in _flatten(item).items()})
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
        "software": item.get("software"),
        "prev_hash": item.get("prev_hash"),
        "hash": item.get("hash"),
        "signature": item.get("signature"),
    }
