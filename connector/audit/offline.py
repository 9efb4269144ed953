"""An export an auditor can verify with the public key alone, no database.

`escalator audit export --proof` writes every record (with its prev_hash, hash and signature) and
every checkpoint, one canonical JSON object a line. `escalator audit verify --export FILE
--public-key K` re-computes each hash and link, checks each signature and checkpoint, and that the
export reaches every record the checkpoints signed. Each line must be exactly the canonical JSON of
what it holds, so a change of one byte anywhere is either a different record (wrong hash), a
different checkpoint (wrong signature) or a non-canonical line: never unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine

from connector.audit import checkpoints as cps
from connector.audit.chain import canonical_json
from connector.audit.export import records
from connector.audit.verification import Broken, StoredRecord, Verification, Walk

_PROOF_FIELDS = ("prev_hash", "hash", "signature")


def write_proof(engine: Engine, out: IO[str]) -> int:
    """The whole chain and the database's copies of the checkpoints; returns the records written."""
    count = 0
    for item in records(engine):
        out.write(canonical_json(item) + "\n")
        count += 1
    for checkpoint in cps.from_database(engine):
        out.write(checkpoint.line() + "\n")
    return count


class ExportError(Exception):
    """The export cannot be read as an Escalator audit export."""


def verify_export(
    path: str | Path,
    public_keys: Mapping[str, Ed25519PublicKey],
    outside: Sequence[cps.Checkpoint] = (),
) -> Verification:
    """Verify an export file; `outside` are checkpoints kept apart from it (they must agree)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read the export {path}: {exc}") from exc
    rows, inside, failure = _parse(text)
    walk = Walk(public_keys=public_keys)
    try:
        if failure is not None:
            raise failure
        checkpoints = cps.prove(_merge(inside, outside), public_keys)
        base_seq = rows[0].seq - 1 if rows else 0
        base_hash = rows[0].prev_hash if rows else walk.base_hash
        walk = Walk(base_seq, base_hash, public_keys, checkpoints)
        walk.check_base()
        if base_seq and not checkpoints:
            raise Broken(1, f"the export starts at seq={base_seq + 1} and no checkpoint signs the cut")
        for row in rows:
            walk.feed(row)
        walk.finish()
    except cps.CheckpointError as exc:
        return Verification(False, walk.checked, None, str(exc), walk.last)
    except Broken as exc:
        return Verification(False, walk.checked, exc.seq, exc.reason, walk.last)
    notes = (
        () if walk.checkpoints else ("the export holds no checkpoint: only its inner consistency is proven",)
    )
    return Verification(True, walk.checked, head=walk.last, notes=notes)


def _parse(text: str) -> tuple[list[StoredRecord], list[cps.Checkpoint], Broken | None]:
    rows: list[StoredRecord] = []
    checkpoints: list[cps.Checkpoint] = []
    if text and not text.endswith("\n"):
        return rows, checkpoints, Broken(0, "the export's last line is cut short")
    for number, line in enumerate(text.split("\n")[:-1], 1):
        where = _next_seq(rows)
        try:
            data = json.loads(line)
        except ValueError:
            return rows, checkpoints, Broken(where, f"line {number} is not JSON (changed or damaged)")
        if not isinstance(data, dict) or canonical_json(data) != line:
            return rows, checkpoints, Broken(where, f"line {number} is not in canonical form (changed)")
        if "checkpoint" in data:
            try:
                checkpoints.append(cps.Checkpoint.parse(data, f"line {number}"))
            except cps.CheckpointError as exc:
                return rows, checkpoints, Broken(where, str(exc))
            continue
        if checkpoints:
            return rows, checkpoints, Broken(where, f"line {number}: a record after the checkpoints")
        body = {k: v for k, v in data.items() if k not in _PROOF_FIELDS}
        seq = body.get("seq")
        if not isinstance(seq, int) or not isinstance(data.get("hash"), str):
            return rows, checkpoints, Broken(where, f"line {number} is not an audit record")
        rows.append(
            StoredRecord(
                seq, canonical_json(body), str(data.get("prev_hash")), data["hash"], data.get("signature")
            )
        )
    return rows, checkpoints, None


def _next_seq(rows: list[StoredRecord]) -> int:
    return rows[-1].seq + 1 if rows else 1


def _merge(inside: Iterable[cps.Checkpoint], outside: Iterable[cps.Checkpoint]) -> list[cps.Checkpoint]:
    by_number = {c.number: c for c in inside}
    for c in outside:
        mine = by_number.get(c.number)
        if mine is not None and mine.digest != c.digest:
            raise cps.CheckpointError(
                f"checkpoint #{c.number} in the export differs from the one kept outside it"
            )
        by_number[c.number] = c
    return list(by_number.values())
