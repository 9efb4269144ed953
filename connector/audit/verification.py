"""Proving the chain unbroken: recompute every hash and link, name the first record that is wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from connector.audit.chain import GENESIS, chain_hash
from connector.store.tables import audit_head, audit_log


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
