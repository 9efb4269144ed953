"""Signed checkpoints: the chain's head, signed with a key the database never holds, kept outside it.

A checkpoint signs {number, first seq, last seq, count, head hash, time, the previous checkpoint's
digest, the SHA-256 of the hashes of every record in its range}, and carries that hash list, so a
verifier names the exact record that differs (as CloudTrail digest files list each log file's
hash). Checkpoints form their own chain (each names the previous one's digest), so one removed from
the middle is noticed. Escalator writes one every N records or T minutes (`audit.checkpoints`), on
demand (`escalator audit checkpoint`) and at every prune cut, to a directory (one file each, never
rewritten), standard output, or an HTTP endpoint; the database keeps a copy to chain the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, insert, select, text

from connector.audit.chain import canonical_json, chain_hash
from connector.audit.keys import Signer, check_signature
from connector.store.db import writing
from connector.store.tables import audit_checkpoints, audit_head, audit_log
from connector.version import VERSION

KINDS = ("scheduled", "on_demand", "prune")
_PREFIX = b"escalator-audit-checkpoint\n"


class CheckpointError(Exception):
    """A checkpoint that cannot be made, written or read; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    body: Mapping[str, Any]  # what is signed
    key_id: str
    signature: str
    hashes: tuple[str, ...]

    @property
    def number(self) -> int:
        return int(self.body["number"])

    @property
    def first_seq(self) -> int:
        return int(self.body["first_seq"])

    @property
    def last_seq(self) -> int:
        return int(self.body["last_seq"])

    @property
    def head_hash(self) -> str:
        return str(self.body["head_hash"])

    @property
    def pruned_through(self) -> int | None:
        return self.body.get("pruned_through")

    @property
    def pruned_hash(self) -> str | None:
        return self.body.get("pruned_hash")

    @property
    def digest(self) -> str:
        """This checkpoint's name in the next one (`prev`)."""
        return hashlib.sha256(canonical_json(self.body).encode()).hexdigest()

    def document(self) -> dict[str, Any]:
        return {"checkpoint": dict(self.body), "key_id": self.key_id, "signature": self.signature,
                "hashes": list(self.hashes)}  # fmt: skip

    def line(self) -> str:
        return canonical_json(self.document())

    @classmethod
    def parse(cls, data: Any, where: str) -> Checkpoint:
        try:
            body = dict(data["checkpoint"])
            cp = cls(body, str(data["key_id"]), str(data["signature"]), tuple(map(str, data["hashes"])))
            for name in ("number", "first_seq", "last_seq"):
                int(body[name])
            str(body["head_hash"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{where}: not an Escalator audit checkpoint ({exc} missing or wrong)"
            ) from exc
        return cp


def _message(body: Mapping[str, Any]) -> bytes:
    return _PREFIX + canonical_json(body).encode()


def _hashes_digest(hashes: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


# --- where checkpoints go ---------------------------------------------------------------


class Sink(Protocol):
    def write(self, checkpoint: Checkpoint) -> str: ...  # returns where it went


class DirectorySink:
    """One file per checkpoint, created exclusively: an existing file is never rewritten."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def unwritable(self) -> str | None:
        """Why `write` would fail for want of a directory this user may write in (nothing is created:
        the first checkpoint makes the missing folders); None when it would not."""
        if self.path.exists() and not self.path.is_dir():
            return "is not a directory"
        existing = next(p for p in (self.path, *self.path.parents) if p.exists())
        if not existing.is_dir():
            return f"{existing} is not a directory"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable by this user"
        return None

    def write(self, checkpoint: Checkpoint) -> str:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            target = self.path / f"checkpoint-{checkpoint.number:08d}.json"
            with open(target, "x", encoding="utf-8") as out:
                out.write(checkpoint.line() + "\n")
        except FileExistsError:
            raise CheckpointError(f"{target} already exists: a checkpoint file is never rewritten") from None
        except OSError as exc:
            raise CheckpointError(f"cannot write the checkpoint to {self.path}: {exc}") from exc
        return str(target)


class StreamSink:
    def __init__(self, stream=None):
        self.stream = stream

    def write(self, checkpoint: Checkpoint) -> str:
        out = self.stream or sys.stdout
        out.write(checkpoint.line() + "\n")
        out.flush()
        return "standard output"


class HttpSink:
    """POSTs the checkpoint as JSON; anything but a 2xx is a failure (the checkpoint is not kept)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url, self.timeout = url, timeout

    def write(self, checkpoint: Checkpoint) -> str:
        import requests

        try:
            answer = requests.post(self.url, json=checkpoint.document(), timeout=self.timeout)
        except requests.RequestException as exc:
            raise CheckpointError(f"cannot POST the checkpoint to {self.url}: {exc}") from exc
        if not 200 <= answer.status_code < 300:
            raise CheckpointError(f"{self.url} answered {answer.status_code} to the checkpoint")
        return self.url


def sink_for(destination: str) -> Sink:
    if destination == "-":
        return StreamSink()
    if destination.startswith(("http://", "https://")):
        return HttpSink(destination)
    return DirectorySink(destination)


# --- making one ---------------------------------------------------------------------------


def due(engine: Engine, now: datetime, *, every_records: int, every_minutes: float) -> bool:
    """Whether a scheduled checkpoint is due: enough new records, or new ones and enough time."""
    with engine.connect() as conn:
        head = conn.execute(select(audit_head.c.seq)).scalar_one()
        last = conn.execute(
            select(audit_checkpoints.c.last_seq, audit_checkpoints.c.at)
            .order_by(audit_checkpoints.c.number.desc())
            .limit(1)
        ).first()
    if last is None:
        return head > 0
    new = head - last.last_seq
    return new >= every_records or (new > 0 and now - last.at >= timedelta(minutes=every_minutes))


def make(
    engine: Engine,
    signer: Signer,
    sink: Sink,
    *,
    now: datetime,
    kind: str = "on_demand",
    prune_through: int | None = None,
    pruned_before: datetime | None = None,
) -> tuple[Checkpoint, str]:
    """Sign the chain from the last checkpoint to the head, write it to `sink`, keep a copy.

    The records are checked (links and hashes) before they are signed: a checkpoint never vouches
    for a broken chain. The sink is written before the copy commits, so a failed write leaves no
    checkpoint behind and the next attempt makes the same one.
    """
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}")
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":  # one checkpointer at a time across replicas
            conn.execute(text("SELECT pg_advisory_xact_lock(724201)"))
        previous = conn.execute(
            select(audit_checkpoints.c.number, audit_checkpoints.c.last_seq, audit_checkpoints.c.digest)
            .order_by(audit_checkpoints.c.number.desc())
            .limit(1)
        ).first()
        head_seq, head_hash, base_seq, base_hash = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash, audit_head.c.base_seq, audit_head.c.base_hash)
        ).one()
        first = previous.last_seq + 1 if previous else base_seq + 1
        start_hash = _hash_before(conn, first, base_seq, base_hash)
        hashes = _checked_hashes(conn, first, head_seq, start_hash)
        body: dict[str, Any] = {
            "v": 1,
            "number": previous.number + 1 if previous else 1,
            "kind": kind,
            "first_seq": first,
            "last_seq": head_seq,
            "count": len(hashes),
            "head_hash": head_hash,
            "at": now.isoformat(timespec="microseconds"),
            "prev": previous.digest if previous else None,
            "hashes_sha256": _hashes_digest(hashes),
            "software": VERSION,
        }
        if prune_through is not None:
            body["pruned_through"] = prune_through
            body["pruned_hash"] = _hash_before(conn, prune_through + 1, base_seq, base_hash)
            body["pruned_before"] = pruned_before.isoformat() if pruned_before else None
        checkpoint = Checkpoint(body, signer.key_id, signer.sign(_message(body)), tuple(hashes))
        where = sink.write(checkpoint)
        conn.execute(
            insert(audit_checkpoints).values(
                number=checkpoint.number, kind=kind, first_seq=first, last_seq=head_seq,
                head_hash=head_hash, at=now, digest=checkpoint.digest, document=checkpoint.line(),
            )
        )  # fmt: skip
    return checkpoint, where


def _hash_before(conn: Connection, seq: int, base_seq: int, base_hash: str) -> str:
    """The hash record seq-1 has (the base's for the first record after a prune)."""
    if seq - 1 <= base_seq:
        return base_hash
    found = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq - 1)).scalar()
    if found is None:
        raise CheckpointError(f"record seq={seq - 1} is missing: run `escalator audit verify`")
    return found


def _checked_hashes(conn: Connection, first: int, last: int, prev_hash: str) -> list[str]:
    hashes: list[str] = []
    rows = conn.execute(
        select(audit_log.c.seq, audit_log.c.record, audit_log.c.prev_hash, audit_log.c.hash)
        .where(audit_log.c.seq.between(first, last))
        .order_by(audit_log.c.seq)
    )
    expected = first
    for row in rows:
        if (
            row.seq != expected
            or row.prev_hash != prev_hash
            or chain_hash(row.prev_hash, row.record) != row.hash
        ):
            raise CheckpointError(
                f"record seq={expected} does not continue the chain: not signing it "
                "(run `escalator audit verify`)"
            )
        hashes.append(row.hash)
        prev_hash, expected = row.hash, expected + 1
    if expected != last + 1:
        raise CheckpointError(f"record seq={expected} is missing: not signing (run `escalator audit verify`)")
    return hashes


# --- reading and proving them -------------------------------------------------------------


def read(path: str | Path) -> list[Checkpoint]:
    """Checkpoints from a directory of checkpoint files or from one file of JSON lines."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise CheckpointError(f"{path} holds no checkpoint files (*.json)")
        return [_parse_line(f.read_text(encoding="utf-8").strip(), str(f)) for f in files]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoints from {path}: {exc.strerror}") from exc
    return [_parse_line(line, f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


def from_database(engine: Engine) -> list[Checkpoint]:
    """The database's own copies (for doctor and exports; a verifier trusts the outside ones)."""
    with engine.connect() as conn:
        docs = conn.execute(select(audit_checkpoints.c.document).order_by(audit_checkpoints.c.number))
        return [_parse_line(doc, "audit_checkpoints") for (doc,) in docs]


def _parse_line(line: str, where: str) -> Checkpoint:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise CheckpointError(f"{where}: not JSON: {exc}") from exc
    return Checkpoint.parse(data, where)


def prove(checkpoints: Iterable[Checkpoint], public_keys: Mapping[str, Ed25519PublicKey]) -> list[Checkpoint]:
    """Each checkpoint signed by a known key, its hash list the one it signed, and the checkpoints
    chained one to the next; raises CheckpointError naming the first that is not."""
    ordered = sorted(checkpoints, key=lambda c: c.number)
    for i, c in enumerate(ordered):
        problem = check_signature(public_keys, c.key_id, _message(c.body), c.signature)
        if problem:
            raise CheckpointError(f"checkpoint #{c.number}: {problem} (altered or forged)")
        if _hashes_digest(c.hashes) != c.body.get("hashes_sha256"):
            raise CheckpointError(f"checkpoint #{c.number}: its hash list is not the one it signed")
        count = c.last_seq - c.first_seq + 1
        if len(c.hashes) != count or c.body.get("count") != count:
            raise CheckpointError(
                f"checkpoint #{c.number}: it covers {count} records but lists {len(c.hashes)}"
            )
        if c.hashes and c.hashes[-1] != c.head_hash:
            raise CheckpointError(f"checkpoint #{c.number}: its head hash is not its last record's")
        if i:
            before = ordered[i - 1]
            if c.number != before.number + 1 or c.body.get("prev") != before.digest:
                raise CheckpointError(
                    f"checkpoint #{c.number} does not follow #{before.number}: a checkpoint between "
                    "them is missing or one of them was replaced"
                )
            if c.first_seq != before.last_seq + 1:
                raise CheckpointError(f"checkpoint #{c.number} does not start where #{before.number} ended")
    return ordered
