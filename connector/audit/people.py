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
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func
from sqlalchemy.dialects import postgresql, sqlite

from connector.audit.keys import AuditKeys
from connector.store.db import placeholder
from connector.store.prepared import Prepared, dbapi_cursor
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


def pseudonymise(conn: Connection, value: Any, keys: AuditKeys, *, seq: int, now: datetime) -> Any:
    """`value` (a record, or a bare person) with every Someone replaced by their pseudonym, created on
    first sight: what chain.append does to a record, on its own.

    One walk copies the parts that hold someone (a decision's record names two or three people
    among some sixty values) and notes where each person stands; one statement then moves their
    last sighting on (or creates them), and the pseudonyms are put in place."""
    if isinstance(value, Someone):
        return pseudonymise_people(conn, [value], keys, seq=seq, now=now)[(value.platform, value.id)]
    marked = mark(value)
    return marked.placed(
        pseudonymise_people(conn, marked.people, keys, seq=seq, now=now) if marked.people else {}
    )


@dataclass
class Marked:
    """A record walked, before any pseudonym is known (`mark`): its copy with each Someone still in
    place, the people in it (each once, with their first sighting's name) and whether it is plain."""

    value: Any
    places: list[tuple[Any, Any, Someone]]
    people: list[Someone]
    plain: bool

    def placed(self, names: Mapping[tuple[str, str], str]) -> Any:
        """The copy with each person's pseudonym in their places."""
        for container, key, who in self.places:
            container[key] = names[(who.platform, who.id)]
        return self.value


def mark(value: Any) -> Marked:
    places: list[tuple[Any, Any, Someone]] = []
    odd: list[Any] = []
    out = _copied(value, places, odd)
    found: dict[tuple[str, str], Someone] = {}
    for _, _, who in places:
        found.setdefault((who.platform, who.id), who)  # the first sighting's name, as before
    return Marked(out, places, list(found.values()), not odd and isinstance(value, Mapping | list | tuple))


def known_pseudonyms(
    conn: Connection, keys: AuditKeys, people: list[Someone]
) -> dict[tuple[str, str], str] | None:
    """The pseudonyms of `people` when this process knows every one of them (see _KNOWN), else None.
    Their rows must still be seen again at the record's seq (`seen_again_sql`), which tells whether
    each row is still there."""
    known = _known(conn, keys)
    names: dict[tuple[str, str], str] = {}
    for who in people:
        pseudonym = known.get((who.platform, who.id))
        if pseudonym is None:
            return None
        names[(who.platform, who.id)] = pseudonym
    return names


def settle(
    conn: Connection, people: list[Someone], keys: AuditKeys, *, seq: int, now: datetime
) -> dict[tuple[str, str], str]:
    """The pseudonyms when seeing known people again found fewer rows than people: the upsert."""
    names = _upsert(conn, people, keys, seq=seq, now=now)
    _remember(conn, keys, names)
    return names


# What holds nobody and is written alike by json and orjson, told apart at once (most of a record).
_PLAIN = frozenset({str, int, bool, type(None)})


def _copied(value: Any, places: list[tuple[Any, Any, Someone]], odd: list[Any]) -> Any:
    """`value` itself when it holds nobody; else a copy of it (dicts and lists, tuples become lists)
    in which each Someone is still in place and noted in `places` as (container, key, person).
    Values of other types, and floats Python writes with an exponent (or nan, inf), go to `odd`."""
    kind = type(value)
    if kind is dict or (kind not in _SEQUENCES and isinstance(value, Mapping)):
        pairs, copy = value.items(), dict
    elif kind in _SEQUENCES or isinstance(value, list | tuple):
        pairs, copy = enumerate(value), list
    else:
        return value
    out = None
    for key, item in pairs:
        kind = type(item)
        if kind in _PLAIN:
            continue
        if kind is dict or kind in _SEQUENCES or (kind is not Someone and isinstance(item, _CONTAINERS)):
            new = _copied(item, places, odd)
            if new is not item:
                if out is None:
                    out = copy(value)
                out[key] = new
        elif kind is float:
            if not 1e-4 <= abs(item) < 1e16 and item != 0.0:
                odd.append(item)
        elif isinstance(item, Someone):
            if out is None:
                out = copy(value)
            places.append((out, key, item))
        else:
            odd.append(item)
    return value if out is None else out


# Told apart by their exact type first: an isinstance check against Mapping (an ABC) costs more.
_SEQUENCES = frozenset({list, tuple})
_CONTAINERS = (Mapping, list, tuple)


# Pseudonyms this process has written or read, per database and pseudonym key: (platform, person
# id) → pseudonym. A person met again then costs one UPDATE of their row's last sighting, without
# the keyed lookup and the upsert. The row stays the truth: an UPDATE that finds fewer rows than it
# named (erased by `audit forget`, pruned, or created in a transaction that was rolled back, in this
# process or another) sends those people through the upsert, which gives them the row's pseudonym
# or a new one, as before. Bounded; emptied when full and when this process erases someone.
_KNOWN: weakref.WeakKeyDictionary[Any, dict[bytes | None, dict[tuple[str, str], str]]] = (
    weakref.WeakKeyDictionary()
)
KNOWN_MAX = 20_000
_known_lock = threading.Lock()


def _known(conn: Connection, keys: AuditKeys) -> dict[tuple[str, str], str]:
    engine = conn.engine
    per_engine = _KNOWN.get(engine)
    if per_engine is None:
        with _known_lock:
            per_engine = _KNOWN.setdefault(engine, {})
    known = per_engine.get(keys.pseudonym_key)
    if known is None:
        known = per_engine.setdefault(keys.pseudonym_key, {})
    return known


def forget_known(engine: Any) -> None:
    """Drop what this process remembers of the people in `engine`'s audit log (after an erasure)."""
    with _known_lock:
        _KNOWN.pop(engine, None)


def pseudonymise_people(
    conn: Connection, people: list[Someone], keys: AuditKeys, *, seq: int, now: datetime
) -> dict[tuple[str, str], str]:
    """Each person's pseudonym, their row's last sighting moved on to `seq` (and their name to the
    one given, if any), their row created when there is none."""
    names = known_pseudonyms(conn, keys, people)
    if names is not None and _seen_again(conn, people, names, seq) == len(people):
        return names
    return settle(conn, people, keys, seq=seq, now=now)


def _remember(conn: Connection, keys: AuditKeys, names: Mapping[tuple[str, str], str]) -> None:
    known = _known(conn, keys)
    if len(known) + len(names) > KNOWN_MAX:
        known.clear()
    known.update(names)


def _seen_again(
    conn: Connection, people: list[Someone], names: Mapping[tuple[str, str], str], seq: int
) -> int:
    """One UPDATE: the rows of `people` (by their known pseudonyms) seen at `seq`, each name as the
    upsert sets it (the given one, else the row's). How many rows it found."""
    return _seen_again_sent(conn, people, names, seq)()


def _seen_again_sent(
    conn: Connection, people: list[Someone], names: Mapping[tuple[str, str], str], seq: int
) -> Callable[[], int]:
    """_seen_again's UPDATE sent; its count when the function returned is called (once). Run on the
    DBAPI cursor (plain texts and a number: nothing for SQLAlchemy to convert), as append's statements;
    in a pipelined transaction the count comes with the next read's round trip."""
    cursor = dbapi_cursor(conn)
    try:
        cursor.execute(
            seen_again_sql(conn.dialect.paramstyle, len(people)), [seq, *seen_again_values(people, names)]
        )
    except BaseException:
        cursor.close()
        raise

    def count() -> int:
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    return count


class SeenNoMore(Exception):
    """A person this process knew by a pseudonym has no row any more (erased by `audit forget`, pruned,
    or never committed): the record that named them must be written again, its people through the
    upsert."""


def seen_again_later(
    conn: Connection, people: list[Someone], names: Mapping[tuple[str, str], str], seq: int, keys: AuditKeys
) -> Callable[[], None]:
    """_seen_again sent now; the check returned (to call before the commit) raises SeenNoMore when it
    found fewer rows than people, after forgetting their pseudonyms here."""
    count = _seen_again_sent(conn, people, names, seq)

    def check() -> None:
        found = count()
        if found != len(people):
            known = _known(conn, keys)
            for who in people:
                known.pop((who.platform, who.id), None)
            raise SeenNoMore(
                f"the audit record at seq {seq} named {len(people)} known people, {found} of whom still "
                "have a row (erased or pruned meanwhile): it is written again"
            )

    return check


def seen_again_values(people: list[Someone], names: Mapping[tuple[str, str], str]) -> list[Any]:
    """The values of `seen_again_sql` after its seq: (pseudonym, name) each, then the pseudonyms."""
    pseudonyms = [names[(who.platform, who.id)] for who in people]
    values: list[Any] = []
    for pseudonym, who in zip(pseudonyms, people, strict=True):
        values += (pseudonym, who.name)
    return values + pseudonyms


@functools.cache
def seen_again_sql(paramstyle: str, count: int, seq: str | None = None) -> str:
    """UPDATE of `count` known people's rows: last seen at a seq (a parameter, or the SQL `seq`),
    their names as the upsert sets them (the one given, else the row's)."""
    slot = placeholder(paramstyle)
    names = " ".join(f"WHEN {slot} THEN coalesce({slot}, name)" for _ in range(count))
    return (
        f"UPDATE audit_people SET last_seen_seq = {seq or slot}, name = CASE pseudonym {names} ELSE name END "
        f"WHERE pseudonym IN ({', '.join([slot] * count)})"
    )


def _upsert(
    conn: Connection, people: list[Someone], keys: AuditKeys, *, seq: int, now: datetime
) -> dict[tuple[str, str], str]:
    """Each person's pseudonym, their row created or its last sighting moved on: a statement each,
    read through the DBAPI cursor (a record is written in PostgreSQL's pipeline mode, where
    SQLAlchemy's own results cannot be read). Only people this process does not know come here."""
    upsert = _upsert_statement(conn.dialect.name)
    names = {}
    for who in people:
        row = {
            "pseudonym": "psn:" + secrets.token_hex(12),
            "platform": who.platform,
            "lookup": keys.lookup(who.platform, who.id),
            "person_id": who.id,
            "name": who.name,
            "first_seen": now,
            "last_seen_seq": seq,
        }
        names[(who.platform, who.id)] = upsert.first(conn, row).pseudonym
    return names


@functools.cache
def _upsert_statement(dialect_name: str) -> Prepared:
    """Built once per backend: building it per person cost more than running it."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    insert = dialect.insert(audit_people).values({column: bindparam(column) for column in _COLUMNS})
    upsert = insert.on_conflict_do_update(
        index_elements=[audit_people.c.platform, audit_people.c.lookup],
        set_={
            "last_seen_seq": insert.excluded.last_seen_seq,
            "name": func.coalesce(insert.excluded.name, audit_people.c.name),
        },
    )
    return Prepared(upsert.returning(audit_people.c.pseudonym))


_COLUMNS = ("pseudonym", "platform", "lookup", "person_id", "name", "first_seen", "last_seen_seq")
