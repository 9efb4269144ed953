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


def pseudonymise(conn: Connection, value: Any, keys: AuditKeys, *, seq: int, now: datetime) -> Any:
    """`value` with every Someone replaced by their pseudonym (created on first sight).

    One walk finds the people, one statement upserts them all, and only the parts that hold
    someone are copied: a decision's record names two or three people among some sixty values."""
    found: dict[tuple[str, str], Someone] = {}
    _find(value, found)
    if not found:
        return value
    return _replaced(value, _upsert(conn, list(found.values()), keys, seq=seq, now=now))


def _find(value: Any, found: dict[tuple[str, str], Someone]) -> None:
    if isinstance(value, Someone):
        found.setdefault((value.platform, value.id), value)  # the first sighting's name, as before
    elif isinstance(value, Mapping):
        for item in value.values():
            _find(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _find(item, found)


def _replaced(value: Any, names: Mapping[tuple[str, str], str]) -> Any:
    if isinstance(value, Someone):
        return names[(value.platform, value.id)]
    if isinstance(value, Mapping):
        return {k: _replaced(v, names) for k, v in value.items()} if has_people(value) else value
    if isinstance(value, list | tuple):
        return [_replaced(v, names) for v in value] if has_people(value) else value
    return value


def _upsert(
    conn: Connection, people: list[Someone], keys: AuditKeys, *, seq: int, now: datetime
) -> dict[tuple[str, str], str]:
    """One statement: each person's pseudonym, their row created or its last sighting moved on."""
    rows = [
        {
            "pseudonym": "psn:" + secrets.token_hex(12),
            "platform": who.platform,
            "lookup": keys.lookup(who.platform, who.id),
            "person_id": who.id,
            "name": who.name,
            "first_seen": now,
            "last_seen_seq": seq,
        }
        for who in people
    ]
    if len(rows) == 1:  # the statement for one row is cheaper than the many-rows form
        [row] = rows
        return {
            (row["platform"], row["person_id"]): conn.execute(
                _upsert_statement(conn.dialect.name), row
            ).scalar_one()
        }
    answered = conn.execute(_upsert_statement(conn.dialect.name, many=True), rows).all()
    return {
        (row["platform"], row["person_id"]): pseudonym
        for row, (pseudonym,) in zip(rows, answered, strict=True)
    }


@functools.cache
def _upsert_statement(dialect_name: str, *, many: bool = False):
    """Built once per backend: building it per person cost more than running it. `many`: for a
    list of rows, answering in their order (SQLAlchemy sends them as one INSERT … VALUES)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    insert = dialect.insert(audit_people)
    if not many:
        insert = insert.values({column: bindparam(column) for column in _COLUMNS})
    upsert = insert.on_conflict_do_update(
        index_elements=[audit_people.c.platform, audit_people.c.lookup],
        set_={
            "last_seen_seq": insert.excluded.last_seen_seq,
            "name": func.coalesce(insert.excluded.name, audit_people.c.name),
        },
    )
    return upsert.returning(audit_people.c.pseudonym, sort_by_parameter_order=many)


_COLUMNS = ("pseudonym", "platform", "lookup", "person_id", "name", "first_seen", "last_seen_seq")
