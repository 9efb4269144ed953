"""GDPR duties on the audit log: erase one person (Art. 17) and keep records no longer than needed
(Art. 5(1)(e)), while what remains still verifies.

- `forget` deletes the person's row in `audit_people` (the only link from a pseudonym to them) and
  their clear text elsewhere in the database: the ticket memory (requester id, snapshot) and the
  webhook bodies kept in the inbox. The chain holds pseudonyms only, so no record or hash changes.
- `prune` signs a checkpoint at the cut, then removes every record before it: the remaining chain
  starts at a hash a signed checkpoint vouches for.
Both append an audit record of their own.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select, update

from connector.audit.chain import append
from connector.audit.checkpoints import Sink, make
from connector.audit.keys import AuditKeys
from connector.audit.people import forget_known, person
from connector.store.db import write_lock, writing
from connector.store.tables import audit_head, audit_log, audit_people, inbox, outbox, tickets

ERASED = "[erased]"
# Keys under which a bare number is a person's id (Zendesk user ids are numbers).
_PERSON_WORDS = ("requester", "author", "actor", "assignee", "submitter", "user", "updater", "reporter",
                 "creator", "caller", "opened_by", "updated_by")  # fmt: skip


class PrivacyError(Exception):
    """A forget or prune that cannot be done as asked; nothing was changed."""


def operator() -> str:
    """Who runs the command, for the audit record (stored as a pseudonym)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Forgotten:
    pseudonyms: tuple[str, ...]
    tickets: int
    inbox: int

    def __str__(self) -> str:
        if not self.pseudonyms and not self.tickets and not self.inbox:
            return "nobody by that id in the audit log, ticket memory or inbox: nothing to erase"
        return (
            f"erased: {len(self.pseudonyms)} pseudonym mapping(s) ({', '.join(self.pseudonyms) or '-'}), "
            f"{self.tickets} ticket record(s), {self.inbox} webhook body(ies) and notification(s); "
            "the chain is unchanged"
        )


def forget(
    engine: Engine, keys: AuditKeys, platform: str, person_id: str, *, now: datetime, actor: str
) -> Forgotten:
    """Erase one person of one platform everywhere Escalator keeps them; audited."""
    if not person_id.strip():
        raise PrivacyError("--person must name the person's id on the platform")
    # Lock order, as a decision's record takes them (connector/pipeline.py): the rows of tickets,
    # inbox and outbox first, the chain's head next, the people last. Taking the head before the
    # rows would let a record that holds a ticket's row and waits for the head deadlock with this.
    people_of = select(audit_people.c.pseudonym, audit_people.c.name).where(
        audit_people.c.platform == platform,
        or_(
            audit_people.c.lookup == keys.lookup(platform, person_id),
            audit_people.c.person_id == person_id,
        ),
    )
    with writing(engine) as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left behind
        clear = {person_id} | {m.name for m in conn.execute(people_of) if m.name}
        ticket_rows = conn.execute(
            select(tickets.c.ticket_id, tickets.c.requester_id, tickets.c.snapshot).where(
                tickets.c.platform == platform
            )
        ).all()
        for row in ticket_rows:  # the requester's name and e-mail, as the ticket memory knows them
            requester = (row.snapshot or {}).get("requester") or {}
            if str(requester.get("id")) == person_id:
                clear |= {v for v in (requester.get("name"), requester.get("email")) if v}
        changed_tickets = 0
        for row in ticket_rows:
            snapshot = _scrub(row.snapshot, person_id, clear) if row.snapshot else row.snapshot
            requester_id = None if row.requester_id == person_id else row.requester_id
            if snapshot != row.snapshot or requester_id != row.requester_id:
                conn.execute(
                    update(tickets)
                    .where(tickets.c.platform == platform, tickets.c.ticket_id == row.ticket_id)
                    .values(snapshot=snapshot, requester_id=requester_id)
                )
                changed_tickets += 1
        changed_bodies = _scrub_inbox(conn, platform, person_id, clear)
        changed_bodies += _scrub_outbox(conn, platform, person_id, clear)
        # The head now: no record can name the person anew until this commits, so the rows read
        # under it are all there are.
        conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1).with_for_update()).all()
        mapping = conn.execute(people_of).all()
        if mapping:
            conn.execute(
                delete(audit_people).where(audit_people.c.pseudonym.in_([m.pseudonym for m in mapping]))
            )
        forgotten = Forgotten(tuple(m.pseudonym for m in mapping), changed_tickets, changed_bodies)
        record = _admin_record(platform, "audit.forget", actor)
        record["erased"] = {"pseudonyms": list(forgotten.pseudonyms), "tickets": changed_tickets,
                            "inbox_bodies": changed_bodies}  # fmt: skip
        append(conn, record, at=now, keys=keys)
    forget_known(engine)  # this process's memory of pseudonyms goes too (others find the row gone)
    _compact(engine)
    return forgotten


def _scrub(value: Any, person_id: str, clear: set[str], path: tuple[str, ...] = ()) -> Any:
    """`value` with the person's id, name and e-mail replaced, wherever they occur. An object that
    holds their id (a platform's user object) loses every text in it: user name, avatar, time zone."""
    if isinstance(value, dict):
        if any(isinstance(v, str) and v == person_id for v in value.values()):
            return _erase_texts(value)
        return {k: _scrub(v, person_id, clear, (*path, str(k).lower())) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, person_id, clear, path) for v in value]
    if isinstance(value, str):
        if value in clear:
            return ERASED
        for text in sorted(clear, key=len, reverse=True):
            if len(text) >= 3 and text in value:  # a name or e-mail inside a longer text
                value = value.replace(text, ERASED)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and str(value) == person_id:
        if any(word in part for part in path for word in _PERSON_WORDS):
            return ERASED
    return value


_IDENTITY_KEYS = {"name", "key", "displayname", "display_name", "emailaddress", "email", "username",
                  "user_name", "login", "accountid", "id", "sys_id"}  # fmt: skip


def _identities(value: Any, person_id: str) -> set[str]:
    """The person's other handles (user name, key, e-mail) from any object that holds their id."""
    found: set[str] = set()
    if isinstance(value, dict):
        if any(isinstance(v, str) and v == person_id for v in value.values()):
            found |= {v for k, v in value.items() if str(k).lower() in _IDENTITY_KEYS and isinstance(v, str)}
        for v in value.values():
            found |= _identities(v, person_id)
    elif isinstance(value, list):
        for v in value:
            found |= _identities(v, person_id)
    return {f for f in found if len(f) >= 3}


def _erase_texts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _erase_texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_erase_texts(v) for v in value]
    return ERASED if isinstance(value, str) else value


def _scrub_inbox(conn, platform: str, person_id: str, clear: set[str]) -> int:
    needles = [t.encode() for t in clear] + [json.dumps(t).strip('"').encode() for t in clear]
    changed, last = 0, 0
    while True:
        rows = conn.execute(
            select(inbox.c.id, inbox.c.body, inbox.c.last_error)
            .where(inbox.c.platform == platform, inbox.c.id > last)
            .order_by(inbox.c.id)
            .limit(500)
        ).all()
        for row in rows:
            last = row.id
            body = bytes(row.body)
            error = row.last_error
            if error and any(t in error for t in clear):  # a platform's message naming them
                conn.execute(
                    update(inbox)
                    .where(inbox.c.id == row.id)
                    .values(last_error=_scrub(error, person_id, clear))
                )
            if not any(n in body for n in needles):
                continue
            try:
                parsed = json.loads(body)
            except ValueError:  # not JSON (never accepted at the door): the whole body goes
                new = ERASED.encode()
            else:
                handles = clear | _identities(parsed, person_id)
                new = json.dumps(_scrub(parsed, person_id, handles), ensure_ascii=False).encode()
            if new != body:
                conn.execute(update(inbox).where(inbox.c.id == row.id).values(body=new))
                changed += 1
        if len(rows) < 500:
            return changed


def _scrub_outbox(conn, platform: str, person_id: str, clear: set[str]) -> int:
    """Notifications rendered from the ticket may name the person (a requester's name in a message)."""
    changed = 0
    rows = conn.execute(
        select(outbox.c.id, outbox.c.message, outbox.c.answer).where(outbox.c.platform == platform)
    ).all()
    for row in rows:
        message = _scrub(row.message, person_id, clear)
        answer = _scrub(row.answer, person_id, clear) if row.answer else row.answer
        if message != row.message or answer != row.answer:
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(message=message, answer=answer))
            changed += 1
    return changed


def _compact(engine: Engine) -> None:
    """SQLite: rewrite the file and empty the write-ahead log, so no erased byte stays on disk."""
    if engine.dialect.name != "sqlite":
        return
    with write_lock(engine), engine.connect() as conn:
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _admin_record(platform: str, action: str, actor: str) -> dict[str, Any]:
    return {
        "platform": platform,
        "ticket": {"id": None, "key": None, "url": None},
        "trigger": {"kind": action},
        "rules": [],
        "outcome": "applied",
        "actor": person("escalator", actor),
    }


# --- retention --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    through: int
    removed: int
    checkpoint: int | None
    where: str = ""

    def __str__(self) -> str:
        if not self.removed:
            return "nothing to prune: no record is older than the cut"
        return (
            f"pruned {self.removed} record(s) up to seq={self.through}; checkpoint #{self.checkpoint} "
            f"signed the cut ({self.where})"
        )


def prune(
    engine: Engine,
    keys: AuditKeys,
    sink: Sink | None,
    *,
    before: datetime | None,
    retention_days: int | None,
    now: datetime,
    actor: str,
) -> Pruned:
    """Remove the records older than `before` (default: the retention), signing the cut first."""
    if retention_days is None and before is None:
        raise PrivacyError("give --before DATE, or set audit.retention_days in the config")
    if retention_days is not None:
        oldest_allowed = now - timedelta(days=retention_days)
        if before is None:
            before = oldest_allowed
        elif before > oldest_allowed:
            raise PrivacyError(
                f"--before {before.isoformat()} would remove records younger than the retention "
                f"({retention_days} days: nothing after {oldest_allowed.isoformat()})"
            )
    if keys.signer is None:
        raise PrivacyError(
            "pruning needs the signing key (audit.signing_key): the cut must be signed, or what "
            "remains could not be told from a truncated log"
        )
    if sink is None:
        raise PrivacyError(
            "pruning needs audit.checkpoints.to (or --to): the signed cut must leave the database"
        )
    with engine.connect() as conn:
        base = conn.execute(select(audit_head.c.base_seq)).scalar_one()
        first_kept = conn.execute(select(func.min(audit_log.c.seq)).where(audit_log.c.at >= before)).scalar()
        through = (
            (first_kept - 1)
            if first_kept is not None
            else conn.execute(select(audit_head.c.seq)).scalar_one()
        )
    if through <= base:
        return Pruned(base, 0, None)
    with writing(engine) as conn:
        record = _admin_record("escalator", "audit.prune", actor)
        record["pruned"] = {"through_seq": through, "before": before.isoformat()}
        append(conn, record, at=now, keys=keys)
    checkpoint, where = make(
        engine, keys.signer, sink, now=now, kind="prune", prune_through=through, pruned_before=before
    )
    with writing(engine) as conn:
        cut_hash = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == through)).scalar_one()
        conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(base_seq=through, base_hash=cut_hash)
        )
        removed = conn.execute(delete(audit_log).where(audit_log.c.seq <= through)).rowcount
        # People seen only in removed records: their mapping goes too (kept no longer than the records).
        conn.execute(delete(audit_people).where(audit_people.c.last_seen_seq <= through))
    forget_known(engine)
    _compact(engine)
    return Pruned(through, removed, checkpoint.number, where)
