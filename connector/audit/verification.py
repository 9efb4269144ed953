"""Proving the chain: recompute every hash, link, column and signature; name the first wrong record.

One walk serves the database (`verify`) and an export file (`connector/audit/offline.py`). What
each check proves:
- hash: the record's content is what was hashed (any edit of the JSON is caught);
- link: each record names its predecessor's hash (a deleted, inserted or reordered record is caught);
- columns (database only): every column queries filter on says what the hashed record says;
- signatures (with --public-key): a record whose hash was recomputed, or one appended by someone
  without the private key, is caught;
- checkpoints (with --checkpoints): the hash of every record a checkpoint signed is still the one
  it signed, and every such record is still there, so a truncated tail, a moved head or a fully
  re-chained log is caught.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select

from connector.audit.chain import GENESIS, chain_hash, signed_message
from connector.audit.checkpoints import Checkpoint
from connector.audit.keys import check_signature
from connector.store.tables import audit_head, audit_log


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""
    head: tuple[int, str] | None = None  # the last record seen: write it down elsewhere
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = []
        if self.ok:
            lines.append(f"audit chain intact: {self.checked} records")
        else:
            lines.append(
                f"audit chain BROKEN at record seq={self.broken_seq}: {self.reason} "
                f"({self.checked} records checked)"
            )
        if self.head is not None:
            lines.append(f"head: seq={self.head[0]} hash={self.head[1]}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    record: str  # the canonical JSON that was hashed
    prev_hash: str
    hash: str
    signature: str | None = None
    columns: Mapping[str, Any] | None = None  # the database's other columns, to compare


class Broken(Exception):
    def __init__(self, seq: int, reason: str):
        super().__init__(reason)
        self.seq, self.reason = seq, reason


@dataclass
class Walk:
    """Feed records in seq order; raises Broken at the first one that is wrong."""

    base_seq: int = 0
    base_hash: str = GENESIS
    public_keys: Mapping[str, Ed25519PublicKey] | None = None
    checkpoints: Sequence[Checkpoint] = ()
    checked: int = 0
    last: tuple[int, str] | None = None
    _prev: StoredRecord | None = None
    _signed_seen: int | None = None  # seq of the first signed record
    _starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.checkpoints = sorted(self.checkpoints, key=lambda c: c.first_seq)
        self._starts = [c.first_seq for c in self.checkpoints]
        self.last = (self.base_seq, self.base_hash)

    @property
    def pruned_through(self) -> int:
        """Records up to here may be absent: a signed prune checkpoint says they were removed."""
        return max((c.pruned_through or 0 for c in self.checkpoints), default=0)

    def check_base(self) -> None:
        """With checkpoints, a base other than the genesis must be a signed prune cut."""
        if not self.checkpoints or self.base_seq == 0:
            return
        for c in self.checkpoints:
            if c.pruned_through == self.base_seq and c.pruned_hash == self.base_hash:
                return
        first_missing = self.pruned_through + 1
        raise Broken(
            first_missing,
            f"records up to seq={self.base_seq} were removed without a signed prune checkpoint at that cut",
        )

    def feed(self, row: StoredRecord) -> None:
        expected_seq, prev_hash = self.last[0] + 1, self.last[1]
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                raise Broken(expected_seq, f"record seq={expected_seq} is missing (next is seq={row.seq})")
            raise Broken(row.seq, f"expected seq={expected_seq}: records are out of order")
        try:
            body = json.loads(row.record)
        except ValueError:
            raise Broken(row.seq, "the record is not valid JSON") from None
        if not isinstance(body, dict):
            raise Broken(row.seq, "the record is not a JSON object")
        if body.get("seq") != row.seq:
            raise Broken(row.seq, f"the record stored at seq={row.seq} says seq={body.get('seq')} (moved)")
        if chain_hash(row.prev_hash, row.record) != row.hash:
            raise Broken(row.seq, "hash does not match the record's content (the record was altered)")
        if row.prev_hash != prev_hash:
            if self._prev is not None:
                raise Broken(
                    self._prev.seq,
                    f"the next record (seq={row.seq}) was chained to a different hash for this one: "
                    "it was altered and its hash recomputed",
                )
            raise Broken(row.seq, "prev_hash does not match the previous record's hash")
        if row.columns is not None:
            _check_columns(row, body)
        self._check_checkpoint(row)
        self._check_signature(row, body)
        self._prev, self.last = row, (row.seq, row.hash)
        self.checked += 1

    def _check_checkpoint(self, row: StoredRecord) -> None:
        i = bisect.bisect_right(self._starts, row.seq) - 1
        if i < 0:
            return
        c = self.checkpoints[i]
        if row.seq <= c.last_seq and c.hashes[row.seq - c.first_seq] != row.hash:
            raise Broken(
                row.seq,
                f"its hash differs from the one checkpoint #{c.number} signed for it "
                "(the record was altered or the chain re-computed from here)",
            )

    def _check_signature(self, row: StoredRecord, body: Mapping[str, Any]) -> None:
        if self.public_keys is None:
            return
        kid = body.get("key_id")
        if kid is None:
            if self._signed_seen is not None:
                raise Broken(
                    row.seq,
                    f"the record is not signed, but records since seq={self._signed_seen} are: "
                    "forged, or signing was switched off",
                )
            return
        if self._signed_seen is None:
            self._signed_seen = row.seq
        if not row.signature:
            raise Broken(row.seq, f"the record names signing key {kid} but carries no signature")
        problem = check_signature(
            self.public_keys, str(kid), signed_message(row.seq, row.hash), row.signature
        )
        if problem:
            raise Broken(row.seq, f"{problem} (forged, or altered and re-hashed)")

    def finish(self) -> None:
        """After the last record: every record a checkpoint signed must have been seen."""
        signed_last = max((c.last_seq for c in self.checkpoints), default=0)
        if self.last[0] < signed_last:
            c = next(c for c in self.checkpoints if c.last_seq >= self.last[0] + 1)
            raise Broken(
                self.last[0] + 1,
                f"the log ends at seq={self.last[0]}, but checkpoint #{c.number} signed records up to "
                f"seq={c.last_seq} (the tail was removed)",
            )


_COLUMNS = ("record_id", "at", "platform", "ticket_id", "ticket_key", "rules", "outcome")


def _check_columns(row: StoredRecord, body: Mapping[str, Any]) -> None:
    ticket = body.get("ticket") or {}
    expected = {
        "record_id": body.get("id"),
        "at": body.get("at"),
        "platform": body.get("platform"),
        "ticket_id": _text(ticket.get("id")),
        "ticket_key": _text(ticket.get("key")),
        "rules": " ".join(body.get("rules") or ()),
        "outcome": body.get("outcome"),
    }
    for name in _COLUMNS:
        if name not in row.columns:
            continue
        stored, wanted = row.columns[name], expected[name]
        if name == "at":
            same = _same_instant(stored, wanted)
        elif name == "rules":
            same = (stored or "") == wanted
        else:
            same = stored == wanted
        if not same:
            raise Broken(
                row.seq, f"column {name} says {stored!r} but the hashed record says {wanted!r} (altered)"
            )


def _same_instant(stored: Any, wanted: Any) -> bool:
    try:
        return isinstance(stored, datetime) and stored == datetime.fromisoformat(str(wanted))
    except ValueError:
        return False


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def verify(
    engine: Engine,
    *,
    public_keys: Mapping[str, Ed25519PublicKey] | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    batch: int = 1000,
) -> Verification:
    """Walk the whole chain in the database; name the first record whose hash, link, columns,
    signature or checkpoint is wrong, or the first one missing."""
    with engine.connect() as conn:
        head_seq, head_hash, base_seq, base_hash = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash, audit_head.c.base_seq, audit_head.c.base_hash)
        ).one()
        walk = Walk(base_seq, base_hash, public_keys, checkpoints)
        try:
            walk.check_base()
            for row in _rows(conn, base_seq, batch):
                if row.seq > head_seq:
                    head_seq, head_hash = _head_again(conn, row.seq, head_seq, head_hash)
                walk.feed(row)
            walk.finish()
            _check_head(walk, head_seq, head_hash)
        except Broken as exc:
            return Verification(False, walk.checked, exc.seq, exc.reason, walk.last, _notes(walk))
    return Verification(True, walk.checked, head=walk.last, notes=_notes(walk))


def _rows(conn, base_seq: int, batch: int) -> Iterable[StoredRecord]:
    last = base_seq
    while True:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(batch)
        ).all()
        for r in rows:
            last = r.seq
            columns = {name: getattr(r, name) for name in _COLUMNS}
            yield StoredRecord(r.seq, r.record, r.prev_hash, r.hash, r.signature, columns)
        if len(rows) < batch:
            return


def _head_again(conn, seq: int, head_seq: int, head_hash: str) -> tuple[int, str]:
    """A record beyond the head read at the start: appended since (fine), or a forgery."""
    now_seq, now_hash = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if seq > now_seq:
        raise Broken(seq, f"the record lies beyond the chain's head (seq={now_seq}): it was not appended")
    return now_seq, now_hash


def _check_head(walk: Walk, head_seq: int, head_hash: str) -> None:
    last_seq, last_hash = walk.last
    if last_seq < head_seq:
        raise Broken(
            last_seq + 1, f"records seq={last_seq + 1}..{head_seq} are missing (the head is seq={head_seq})"
        )
    if last_seq == head_seq and last_hash != head_hash:
        raise Broken(last_seq, "its hash is not the one the head recorded (altered and re-hashed)")


def _notes(walk: Walk) -> tuple[str, ...]:
    notes = []
    if walk.base_seq:
        notes.append(f"records up to seq={walk.base_seq} were pruned; the chain starts after them")
    if walk.public_keys is None:
        notes.append("signatures not checked (give --public-key)")
    if not walk.checkpoints:
        notes.append(
            "no checkpoints given: a removed tail or a re-computed chain cannot be told from the "
            "database alone (give --checkpoints)"
        )
    return tuple(notes)
