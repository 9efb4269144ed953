"""The decisions view: audit records filtered and keyset-paginated (newest first), and one in full."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, or_, select

from connector.store.tables import audit_head, audit_log, console_decisions, console_rule_hits

PAGE = 50
MAX_PAGE = 200
D = console_decisions


class FilterError(ValueError):
    """A filter value the console cannot use; the message names the field."""


@dataclass(frozen=True)
class Filters:
    platform: str | None = None
    key: str | None = None  # ticket key or id on its platform
    rule: str | None = None
    outcome: str | None = None
    version: str | None = None  # policy version
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None  # keyset cursor: records with seq below this
    limit: int = PAGE

    @classmethod
    def parse(cls, args: Any) -> Filters:
        """From query arguments; empty strings mean "any"."""

        def text(name: str) -> str | None:
            value = (args.get(name) or "").strip()
            return value[:255] or None

        return cls(
            platform=text("platform"),
            key=text("key"),
            rule=text("rule"),
            outcome=text("outcome"),
            version=text("version"),
            since=_instant(text("since"), "since"),
            until=_instant(text("until"), "until"),
            before=_integer(text("before"), "before", 1, 2**62),
            limit=_integer(text("limit"), "limit", 1, MAX_PAGE) or PAGE,
        )

    def query_args(self, **override: Any) -> dict[str, str]:
        """The filters as query arguments (for links to the next page, CSV, the API)."""
        out = {}
        for f in fields(self):
            value = override.get(f.name, getattr(self, f.name))
            if value is None or (f.name == "limit" and value == PAGE):
                continue
            out[f.name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FilterError(f"{name}: not an ISO-8601 date or date-time: {value!r}") from exc
    if at.tzinfo is None:
        from datetime import UTC

        at = at.replace(tzinfo=UTC)
    return at


def _integer(value: str | None, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError as exc:
        raise FilterError(f"{name}: not a whole number: {value!r}") from exc
    if not low <= number <= high:
        raise FilterError(f"{name}: must be between {low} and {high}, got {number}")
    return number


def list_decisions(engine: Engine, f: Filters) -> tuple[list[dict[str, Any]], int | None]:
    """One page of decisions, newest first, and the cursor of the next page (None: last page)."""
    conditions = []
    if f.platform:
        conditions.append(D.c.platform == f.platform)
    if f.key:
        conditions.append(or_(D.c.ticket_key == f.key, D.c.ticket_id == f.key))
    if f.outcome:
        conditions.append(D.c.outcome == f.outcome)
    if f.version:
        conditions.append(D.c.policy_version == f.version)
    if f.since:
        conditions.append(D.c.at >= f.since)
    if f.until:
        conditions.append(D.c.at < f.until)
    if f.rule:
        # Walk the rule's hits newest first (their primary key is rule, seq), then fetch each row.
        hits = console_rule_hits
        conditions.append(hits.c.rule == f.rule)
        if f.before:
            conditions.append(hits.c.seq < f.before)
        page = (
            select(D)
            .select_from(hits)
            .join(D, D.c.seq == hits.c.seq)
            .where(*conditions)
            .order_by(hits.c.seq.desc())
            .limit(f.limit + 1)
        )
    else:
        if f.before:
            conditions.append(D.c.seq < f.before)
        page = select(D).where(*conditions).order_by(D.c.seq.desc()).limit(f.limit + 1)
    # The page first, then the audit rows it needs: a planner may not push the limit through a join.
    chosen = page.subquery()
    query = (
        select(chosen, audit_log.c.rules)
        .join(audit_log, audit_log.c.seq == chosen.c.seq)
        .order_by(chosen.c.seq.desc())
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    for row in rows:
        row["rules"] = row["rules"].split() if row["rules"] else []
    return rows, (rows[-1]["seq"] if more else None)


def decision(engine: Engine, seq: int) -> dict[str, Any] | None:
    """One audit record in full, with its hashes and its place in the chain."""
    with engine.connect() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).one_or_none()
        if row is None:
            return None
        head = conn.execute(select(audit_head.c.seq)).scalar() or 0
        following = conn.execute(select(audit_log.c.prev_hash).where(audit_log.c.seq == seq + 1)).scalar()
    body = json.loads(row.record)
    return {
        "seq": row.seq,
        "record": body,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "head_seq": head,
        "linked_by_next": following == row.hash if following is not None else None,
    }


def choices(engine: Engine) -> dict[str, list[str]]:
    """Values the filter form offers (platforms, outcomes, policy versions, rules seen)."""
    with engine.connect() as conn:
        platforms = conn.execute(select(D.c.platform).group_by(D.c.platform)).scalars().all()
        versions = conn.execute(
            select(D.c.policy_version).where(D.c.policy_version.is_not(None)).group_by(D.c.policy_version)
        ).scalars()
        rules = conn.execute(
            select(console_rule_hits.c.rule).group_by(console_rule_hits.c.rule).limit(500)
        ).scalars()
        return {
            "platforms": sorted(platforms),
            "versions": sorted(versions, key=_version_order),
            "rules": sorted(rules),
        }


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(D)).scalar_one()


def _version_order(v: str) -> tuple[int, Any]:
    return (0, int(v)) if v.isdigit() else (1, v)
