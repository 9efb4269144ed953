"""Personal data in the audit log: pseudonyms in the records, the people behind them in their own table.

A record never holds a person's id or name. It holds a pseudonym (`psn:` + 24 random hex digits)
that the `audit_people` table maps back to the person. That table is outside the hash chain, so
erasing a row (`escalator audit forget`) leaves every record and hash as it was: the pseudonyms in
the chain then point at nobody. The pseudonym is random rather than a keyed hash of the id on
purpose: a keyed hash could be recomputed by whoever holds the key, which would re-link an erased
person to their records; a random token cannot. The keyed HMAC (`AuditKeys.lookup`) is what finds a
person's row, so the table's index does not give ids away to someone without the key.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func
from sqlalchemy.dialects import postgresql, sqlite

from connector.audit.keys import AuditKeys
from connector.store.tables import audit_people


@dataclass(frozen=True)
class Someone:
    """A person named in an audit record; `append` stores a pseudonym in their place."""

    platform: str
    id: str
    name: str | None = None


def person(platform: str, person_id: str | None, name: str | None = None) -> Someone | None:
    """Mark personal data for the audit log (None when there is nobody)."""
    if not person_id:
        return None
    return Someone(platform, str(person_id), name or None)


def has_people(value: Any) -> bool:
    if isinstance(value, Someone):
        return True
    if isinstance(value, Mapping):
        return any(has_people(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_people(v) for v in value)
    return False


def pseudonymise(
    conn: Connection, value: Any, keys: AuditKeys, *, seq: int, now: datetime, seen: dict | None = None
) -> Any:
    """`value` with every Someone replaced by their pseudonym (created on first sight)."""
    seen = {} if seen is None else seen
    if isinstance(value, Someone):
        ident = (value.platform, value.id)
        if ident not in seen:
            seen[ident] = _upsert(conn, value, keys, seq=seq, now=now)
        return seen[ident]
    if isinstance(value, Mapping):
        return {k: pseudonymise(conn, v, keys, seq=seq, now=now, seen=seen) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [pseudonymise(conn, v, keys, seq=seq, now=now, seen=seen) for v in value]
    return value


def _upsert(conn: Connection, who: Someone, keys: AuditKeys, *, seq: int, now: datetime) -> str:
    """One statement: the person's pseudonym, their row created or its last sighting moved on."""
    params = {
        "pseudonym": "psn:" + secrets.token_hex(12),
        "platform": who.platform,
        "lookup": keys.lookup(who.platform, who.id),
        "person_id": who.id,
        "name": who.name,
        "first_seen": now,
        "last_seen_seq": seq,
    }
    return conn.execute(_upsert_statement(conn.dialect.name), params).scalar_one()


@functools.cache
def _upsert_statement(dialect_name: str):
    """Built once per backend: building it per person cost more than running it."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    insert = dialect.insert(audit_people).values({column: bindparam(column) for column in _COLUMNS})
    return insert.on_conflict_do_update(
        index_elements=[audit_people.c.platform, audit_people.c.lookup],
        set_={
            "last_seen_seq": insert.excluded.last_seen_seq,
            "name": func.coalesce(insert.excluded.name, audit_people.c.name),
        },
    ).returning(audit_people.c.pseudonym)


_COLUMNS = ("pseudonym", "platform", "lookup", "person_id", "name", "first_seen", "last_seen_seq")
