"""Appending to the audit chain: one hash-chained, signed record per decision, on every platform.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical JSON,
which holds everything the row's other columns hold (seq, id, at, platform, ticket, rules,
outcome), so changing, removing or reordering any record breaks every hash after it and a column
that disagrees with its record is named by `verify`. With a signing key, each hash is also signed
(Ed25519): a record appended by someone without the key is named as a forgery. The database refuses
UPDATE and DELETE on the table (DELETE only below the pruned base, see `audit prune`).

Record versions: v1 (before the `v` field) and v2 hash alike; v2 adds `v`, `software` and, when
signed, `key_id`, and holds pseudonyms instead of personal data (see connector/audit/people.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Dialect, Engine

from connector.audit import people
from connector.audit.keys import AuditKeys
from connector.store.db import RowInsert, placeholder, read_before_commit, row_insert, transaction_memo
from connector.store.prepared import dbapi_cursor
from connector.store.tables import audit_log
from connector.version import VERSION

GENESIS = "0" * 64
RECORD_VERSION = 2
OUTCOMES = ("applied", "dry_run", "no_change", "echo", "ignored", "failed", "retrying", "out_of_scope")
# An operator's action on an event (connector/events.py): put back in the queue, or discarded.
OPERATOR_OUTCOMES = ("requeued", "discarded")
_NO_KEYS = AuditKeys()
# The keys a running Escalator set for its engine (Runtime does): every appender signs and
# pseudonymises alike, also code that does not pass `keys` itself.
_ENGINE_KEYS: weakref.WeakKeyDictionary[Engine, AuditKeys] = weakref.WeakKeyDictionary()


def use_keys(engine: Engine, keys: AuditKeys) -> None:
    """Make `keys` the default for every record appended through `engine`."""
    _ENGINE_KEYS[engine] = keys


def canonical_json(value: Any) -> str:
    """The one serialisation that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# orjson writes what canonical_json writes, byte for byte, for dicts with text keys, lists, tuples,
# texts, whole numbers (to 64 bits), truth values, None and floats Python writes without an exponent
# (1e-4 <= |x| < 1e16, or 0). Anything else it would write differently (an Enum by its value, a
# datetime in its own format, 1e16 as 1e16) or refuses: such a record takes canonical_json.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _canonical_plain(value: Any) -> str:
    """canonical_json of a value `people.mark` found plain, five times faster."""
    try:
        return orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits, a key that is no text
        return canonical_json(value)


def chain_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{record_json}".encode()).hexdigest()


def signed_message(seq: int, digest: str) -> bytes:
    """What a record's signature covers: its place and its hash (which covers everything else)."""
    return f"escalator-audit-record\n{seq}\n{digest}".encode()


def pseudonym(value: str | None) -> str | None:
    """Legacy, unkeyed stand-in (records before v2). New code marks people with `person()`."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


# The columns of a record's row, in the order of append's INSERT.
_COLUMNS = ("seq", "record_id", "at", "platform", "ticket_id", "ticket_key", "rules", "outcome", "record",
            "prev_hash", "hash", "signature")  # fmt: skip


@dataclass(frozen=True)
class _Statements:
    """append's statements for one backend, run on the DBAPI cursor with SQLAlchemy's own bind
    processors (values are stored exactly as Core stores them): Core's per-statement overhead was
    more than half of an append's CPU. Built once per backend."""

    bump: str  # the head's seq moved on (the chain's write lock), answering the new seq and prev hash
    bump_by: str  # the same, by a count of records (append_many), answering the last one's seq
    set_head: str  # the head's new hash
    insert: str  # the record's row; on PostgreSQL with set_head in the same statement
    insert_sets_head: bool  # PostgreSQL; SQLite has no INSERT inside WITH (and no round trip to save)
    row: RowInsert  # the record's row (its SQL is `insert`'s, alone or inside a WITH)
    # PostgreSQL: the bump and the last sightings of `count` people this process knows, one statement.
    bump_and_seen: Callable[[int], str] | None = None


_STATEMENTS: dict[tuple[str, str, str], _Statements] = {}
# In a transaction's memo (db.transaction_memo): the chain's head (seq, hash) as its last append left
# it. Bumping the head locked its row until the commit, so no other appender moves it meanwhile.
_HEAD = "audit.head"


def _statements(dialect: Dialect) -> _Statements:
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    statements = _STATEMENTS.get(key)
    if statements is None:
        statements = _STATEMENTS[key] = _build_statements(dialect)
    return statements


def _build_statements(dialect: Dialect) -> _Statements:
    row = row_insert(dialect, audit_log, _COLUMNS)
    insert = row.sql
    mark = placeholder(dialect.paramstyle)
    set_head = f"UPDATE audit_head SET hash = {mark} WHERE id = 1"
    bump = "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash"
    bump_by = f"UPDATE audit_head SET seq = seq + {mark} WHERE id = 1 RETURNING seq, hash"
    if dialect.name == "postgresql":
        # The INSERT in a WITH runs once, to completion, whether or not the UPDATE reads it.
        # The head's seq is set too: a transaction that has read the head appends its next records
        # without bumping it again (see _append), and the bump's own record sets it to what it is.
        with_head = (
            f"WITH appended AS ({insert} RETURNING seq) "
            f"UPDATE audit_head SET seq = (SELECT seq FROM appended), hash = {mark} WHERE id = 1"
        )
        return _Statements(bump, bump_by, set_head, with_head, True, row, _bump_and_seen)
    return _Statements(bump, bump_by, set_head, insert, False, row)


@functools.cache
def _bump_and_seen(count: int) -> str:
    """The head bumped (its lock taken first, as always), then the rows of `count` known people seen
    at its new seq: the new seq, the previous hash and how many of those rows were found. The people's
    UPDATE reads the bump's seq, so it runs after it."""
    seen = people.seen_again_sql("format", count, seq="(SELECT seq FROM head)")
    return (
        "WITH head AS (UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash), "
        f"seen AS ({seen} RETURNING 1) "
        "SELECT head.seq, head.hash, (SELECT count(*) FROM seen) FROM head"
    )


def append(
    conn: Connection,
    record: Mapping[str, Any],
    *,
    at: datetime,
    keys: AuditKeys | None = None,
    record_id: str | None = None,
) -> dict[str, Any]:
    """Append one record inside the caller's transaction and return it with id, seq and hashes.

    People in `record` are marked with `person(...)`; they are stored as pseudonyms. With
    `keys.signer` the record is signed; without `keys`, those `use_keys` set for the engine.
    Bumping the single head row first takes a write lock on every backend, so concurrent
    appenders (threads or replicas) queue up and the chain stays linear. The bump returns the
    new seq and the previous hash (UPDATE … RETURNING). That lock is held until the caller's
    transaction ends: append last, after the transaction's other writes, so appenders queue only
    for the append itself. `record_id`: the record's id when the caller needs it before (a new
    UUID otherwise).
    """
    _check_outcome(record)
    keys = keys or _ENGINE_KEYS.get(conn.engine, _NO_KEYS)
    if not conn.in_transaction():
        conn.begin()  # what a Core statement's autobegin would do: the caller's commit() ends it
    statements = _statements(conn.dialect)
    cursor = dbapi_cursor(conn)
    try:
        return _append(conn, cursor, statements, record, at, keys, record_id)
    finally:
        cursor.close()


def _append(conn, cursor, statements: _Statements, record, at, keys: AuditKeys, record_id) -> dict[str, Any]:
    marked = people.mark(record)
    memo = transaction_memo(conn)  # PostgreSQL, pipelined: the head, once this transaction read it
    held = memo.get(_HEAD) if memo is not None else None
    if held is not None:  # this transaction holds the head: the record goes on from what it left
        seq, prev_hash = held[0] + 1, held[1]
        names = _held_head_names(conn, marked.people, keys, seq, at)
    else:
        seq, prev_hash, names = _bump(conn, cursor, statements, marked.people, keys, at)
    digest, values, out = _sealed(statements, marked.placed(names), marked.plain, seq, prev_hash, at, keys,
                                  record_id)  # fmt: skip
    if statements.insert_sets_head:
        cursor.execute(statements.insert, [*values, digest])
    else:
        cursor.execute(statements.insert, values)
        cursor.execute(statements.set_head, [digest])
    if memo is not None:
        memo[_HEAD] = (seq, digest)
    return out


def _bump(conn, cursor, statements: _Statements, who: list[people.Someone], keys: AuditKeys,
          at: datetime) -> tuple[int, str, dict[tuple[str, str], str]]:  # fmt: skip
    """The head bumped (its lock taken until the commit): the record's seq, the previous hash and the
    pseudonyms of the people it names."""
    # PostgreSQL can move known people's last sightings on in the head's bump; SQLite asks later.
    known = who and statements.bump_and_seen
    names = people.known_pseudonyms(conn, keys, who) if known else None
    if names:
        # PostgreSQL, everyone known: their last sightings move on in the bump's statement.
        cursor.execute(statements.bump_and_seen(len(who)), people.seen_again_values(who, names))
        seq, prev_hash, seen = _one(cursor)
        if seen != len(who):  # a row erased, pruned or never committed: the upsert
            names = people.settle(conn, who, keys, seq=seq, now=at)
        return seq, prev_hash, names
    cursor.execute(statements.bump)
    seq, prev_hash = _one(cursor)
    return seq, prev_hash, people.pseudonymise_people(conn, who, keys, seq=seq, now=at) if who else {}


def _held_head_names(
    conn: Connection, who: list[people.Someone], keys: AuditKeys, seq: int, at: datetime
) -> dict[tuple[str, str], str]:
    """The pseudonyms of a record appended under a head its transaction holds. People this process
    knows are seen again by a statement whose count is checked before the commit (no round trip of its
    own); a row gone meanwhile fails the transaction (people.SeenNoMore), so the record is written
    again, alone, and its people through the upsert."""
    if not who:
        return {}
    names = people.known_pseudonyms(conn, keys, who)
    if names is None:
        return people.pseudonymise_people(conn, who, keys, seq=seq, now=at)
    read_before_commit(conn, people.seen_again_later(conn, who, names, seq, keys))
    return names


def append_many(
    conn: Connection, entries: Sequence[tuple[Mapping[str, Any], datetime]], *, keys: AuditKeys | None = None
) -> list[dict[str, Any]]:
    """Append `entries` (record, at), in their order, inside the caller's transaction: what `append`
    does for each, with one bump of the head for all of them, their rows in one batch and the head's
    hash set once, instead of two statements a record. Records naming people go one by one (their
    pseudonyms are settled per record), as does a lone one."""
    if len(entries) < 2:
        return [append(conn, record, at=at, keys=keys) for record, at in entries]
    for record, _ in entries:
        _check_outcome(record)
    marked = [people.mark(record) for record, _ in entries]
    if any(m.people for m in marked):
        return [append(conn, record, at=at, keys=keys) for record, at in entries]
    keys = keys or _ENGINE_KEYS.get(conn.engine, _NO_KEYS)
    if not conn.in_transaction():
        conn.begin()
    statements = _statements(conn.dialect)
    cursor = dbapi_cursor(conn)
    try:
        cursor.execute(statements.bump_by, [len(entries)])
        last, prev_hash = _one(cursor)
        rows, appended = [], []
        for n, (m, (_, at)) in enumerate(zip(marked, entries, strict=True)):
            seq = last - len(entries) + 1 + n
            prev_hash, values, out = _sealed(
                statements, m.placed({}), m.plain, seq, prev_hash, at, keys, None
            )
            rows.append(values)
            appended.append(out)
        cursor.executemany(statements.row.sql, rows)
        cursor.execute(statements.set_head, [prev_hash])
    finally:
        cursor.close()
    memo = transaction_memo(conn)
    if memo is not None:
        memo[_HEAD] = (last, prev_hash)
    return appended


def _check_outcome(record: Mapping[str, Any]) -> None:
    known = OUTCOMES + OPERATOR_OUTCOMES
    if record.get("outcome") not in known:
        raise ValueError(f"audit outcome must be one of {known}, got {record.get('outcome')!r}")


def _sealed(statements: _Statements, record, plain: bool, seq: int, prev_hash: str, at: datetime,
            keys: AuditKeys, record_id: str | None) -> tuple[str, list[Any], dict[str, Any]]:  # fmt: skip
    """The record at `seq` after `prev_hash`: its hash, its row's values (as the DBAPI takes them) and
    the record as appended."""
    body = {
        **record,
        "id": record_id or str(uuid.uuid4()),
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "v": RECORD_VERSION,
        "software": VERSION,
    }
    if keys.signer is not None:
        body["key_id"] = keys.signer.key_id
    body_json = _canonical_plain(body) if plain else canonical_json(body)
    digest = chain_hash(prev_hash, body_json)
    signature = keys.signer.sign(signed_message(seq, digest)) if keys.signer is not None else None
    ticket = body.get("ticket") or {}
    row = dict(
        seq=seq,
        record_id=body["id"],
        at=at,
        platform=body["platform"],
        ticket_id=_text(ticket.get("id")),
        ticket_key=_text(ticket.get("key")),
        rules=" ".join(body.get("rules") or ()),
        outcome=body["outcome"],
        record=body_json,
        prev_hash=prev_hash,
        hash=digest,
        signature=signature,
    )
    values = statements.row.bound([row[name] for name in _COLUMNS])
    out = {**body, "prev_hash": prev_hash, "hash": digest}
    if signature is not None:
        out["signature"] = signature
    return digest, values, out


def _one(cursor) -> tuple:
    rows = cursor.fetchall()
    if len(rows) != 1:
        raise RuntimeError("the audit head row is missing: run `escalator db upgrade`")
    return rows[0]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
