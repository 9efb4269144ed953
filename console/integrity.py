"""Integrity and policy: the audit chain's state, the policy versions that have been in force, and
the difference between two of them."""

from __future__ import annotations

import difflib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from connector import audit
from connector.store import policy_texts
from connector.store.db import writing
from connector.store.tables import (
    audit_checkpoints,
    audit_head,
    audit_log,
    console_decisions,
    console_index_state,
    console_policies,
)
from policies import Policy

D = console_decisions
CHECKPOINTS_SHOWN = 20


def chain_status(engine: Engine) -> dict[str, Any]:
    """The head of the chain and the last verification the console ran."""
    with engine.connect() as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one_or_none()
        last = conn.execute(select(console_index_state.c.last_verify)).scalar()
    return {
        "head_seq": head.seq if head else 0,
        "head_hash": head.hash if head else audit.GENESIS,
        "last_verify": last,
    }


def checkpoints(engine: Engine, *, limit: int = CHECKPOINTS_SHOWN) -> dict[str, Any]:
    """The signed checkpoints (their database copies), newest first, each held against the chain as
    it is now: the record a checkpoint ends at must still carry the hash it signed."""
    with engine.connect() as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.base_seq)).one_or_none()
        count = conn.execute(select(func.count()).select_from(audit_checkpoints)).scalar_one()
        rows = conn.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.number.desc()).limit(limit)
        ).all()
        ends = {r.last_seq for r in rows}
        now_hashes = dict(
            conn.execute(select(audit_log.c.seq, audit_log.c.hash).where(audit_log.c.seq.in_(ends))).all()
        ) if ends else {}  # fmt: skip
    base_seq = head.base_seq if head else 0
    items = []
    for r in rows:
        if r.last_seq <= base_seq:
            state, why = "pruned", "its records were pruned since (the checkpoint keeps their hashes)"
        elif r.last_seq not in now_hashes:
            state, why = "broken", f"record {r.last_seq} is missing from the chain"
        elif now_hashes[r.last_seq] != r.head_hash:
            state, why = "broken", f"record {r.last_seq} no longer carries the hash this checkpoint signed"
        else:
            state, why = "matches", "the chain still ends its range with the hash it signed"
        document = json.loads(r.document)
        items.append(
            {
                "number": r.number,
                "kind": r.kind,
                "first_seq": r.first_seq,
                "last_seq": r.last_seq,
                "count": r.last_seq - r.first_seq + 1,
                "head_hash": r.head_hash,
                "at": r.at,
                "key_id": document.get("key_id"),
                "digest": r.digest,
                "state": state,
                "why": why,
            }
        )
    latest = items[0] if items else None
    return {
        "count": count,
        "latest": latest,
        "records_since": (head.seq if head else 0) - (latest["last_seq"] if latest else base_seq),
        "items": items,
    }


def run_verify(engine: Engine, now: datetime) -> dict[str, Any]:
    """Walk the whole chain now and remember the result."""
    result = audit.verify(engine)
    outcome = {
        "at": now.isoformat(timespec="seconds"),
        "ok": result.ok,
        "checked": result.checked,
        "broken_seq": result.broken_seq,
        "reason": result.reason,
        "summary": str(result),
    }
    with writing(engine) as conn:
        conn.execute(
            update(console_index_state).where(console_index_state.c.id == 1).values(last_verify=outcome)
        )
    return outcome


def remember_policy(engine: Engine, policy: Policy, now: datetime) -> None:
    """Keep the text of the policy in force (serve and work keep it at start and on reload too)."""
    policy_texts.keep(engine, policy, now)


def versions(engine: Engine) -> list[dict[str, Any]]:
    """Each policy (name, version, hash) decisions were made under: when, how often, is its text kept."""
    stmt = (
        select(
            D.c.policy_name,
            D.c.policy_version,
            D.c.policy_sha256,
            func.min(D.c.at).label("first_at"),
            func.max(D.c.at).label("last_at"),
            func.count().label("decisions"),
        )
        .where(D.c.policy_sha256.is_not(None))
        .group_by(D.c.policy_name, D.c.policy_version, D.c.policy_sha256)
        .order_by(func.min(D.c.at))
    )
    with engine.connect() as conn:
        used = {r.policy_sha256: dict(r._mapping) for r in conn.execute(stmt)}
        kept = {
            r.sha256: dict(r._mapping)
            for r in conn.execute(
                select(
                    console_policies.c.sha256,
                    console_policies.c.name,
                    console_policies.c.version,
                    console_policies.c.path,
                    console_policies.c.seen_at,
                )
            )
        }
    out = []
    for sha, row in used.items():
        out.append({**row, "sha256": sha, "text_kept": sha in kept, "path": kept.get(sha, {}).get("path")})
    for sha, row in kept.items():
        if sha not in used:
            out.append(
                {
                    "policy_name": row["name"],
                    "policy_version": row["version"],
                    "sha256": sha,
                    "first_at": row["seen_at"],
                    "last_at": None,
                    "decisions": 0,
                    "text_kept": True,
                    "path": row["path"],
                }
            )
    for row in out:
        row.pop("policy_sha256", None)
    return out


class UnknownVersion(LookupError):
    """No kept policy text has this hash."""


def diff(engine: Engine, old: str, new: str) -> list[str]:
    """Unified diff of two kept policy texts, by their hashes."""
    with engine.connect() as conn:
        texts = dict(
            conn.execute(
                select(console_policies.c.sha256, console_policies.c.text).where(
                    console_policies.c.sha256.in_([old, new])
                )
            ).all()
        )
    for sha in (old, new):
        if sha not in texts:
            raise UnknownVersion(f"no policy text kept with sha256 {sha[:64]!r}")
    return list(
        difflib.unified_diff(
            texts[old].splitlines(),
            texts[new].splitlines(),
            f"sha256:{old[:12]}",
            f"sha256:{new[:12]}",
            lineterm="",
        )
    )
