"""Table definitions. Alembic migrations in connector/migrations are the source of truth
for the live schema; these mirror them for queries. Change both together."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = MetaData()


# SQLAlchemy's text for a DateTime on SQLite (its default storage format).
_SQLITE_DATETIME = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones: SQLAlchemy would store the wall-clock digits and drop the offset,
    so a `since` in +02:00 compared two hours off and values came back naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Escalator stores aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], object] | None:
        """On SQLite, process_bind_param and SQLAlchemy's own DateTime text in one step (a decision
        binds a dozen datetimes): the same text, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC."""
        processor = super().bind_processor(dialect)
        stored_as = getattr(self.impl_instance.dialect_impl(dialect), "_storage_format", None)
        if dialect.name != "sqlite" or stored_as != _SQLITE_DATETIME:
            return processor

        def utc_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: Escalator stores aware UTC datetimes only")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return utc_text


class DeliveryBody(TypeDecorator):
    """A webhook body: stored as received, and compressed once its delivery is finished
    (connector/store/retention.py); read back as received either way.

    Compressed bodies start with COMPRESSED, which no JSON text (the only bodies the door accepts)
    can: JSON starts with whitespace, `{` or `[`. Payloads compress 2-5x (Jira's issue JSON most)."""

    impl = LargeBinary
    cache_ok = True
    COMPRESSED = b"\x00zlib:"

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is not None and bytes(value[: len(self.COMPRESSED)]) == self.COMPRESSED:
            return zlib.decompress(bytes(value[len(self.COMPRESSED) :]))
        return value

    @classmethod
    def compressed(cls, body: bytes) -> bytes | None:
        """The stored form of a finished delivery's `body`; None when compressing would not shrink it."""
        if body.startswith(cls.COMPRESSED):
            return None
        packed = cls.COMPRESSED + zlib.compress(body, 6)
        return packed if len(packed) < len(body) else None


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
Id = BigInteger().with_variant(Integer, "sqlite")

# Every webhook delivery we accepted, until it is processed (and kept after, for the record).
inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("delivery_id", String(255), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("ticket_id", String(255), nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("body", DeliveryBody, nullable=False),
    Column("ignored", Boolean, nullable=False, default=False),  # an event type we record but never act on
    # pending → processing → done | ignored | failed   (pending again on a transient error)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    # Fingerprints of the requests the platform confirmed for this delivery: a retry (or a
    # restart after a crash) never sends the same request twice, even if the plan changed.
    Column("confirmed", JSON, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    # Leases that ran out with the row taken (its worker died); bounded by worker.max_lease_expiries.
    Column("lease_expiries", Integer, nullable=False, default=0, server_default="0"),
    # The fingerprint of the request being sent, set before it goes out and cleared once confirmed:
    # after a crash the worker asks the platform whether it landed before sending it again.
    Column("in_flight", String(64), nullable=True),
    # Where the write it needs stands in line for the platform's rate limit (connector/ratelimit.py:
    # lower goes first); NULL until it is judged. Claim takes unjudged rows first, then by rank.
    Column("rank", Integer, nullable=True),
    UniqueConstraint("platform", "delivery_id", name="uq_inbox_delivery"),
)
Index("ix_inbox_due", inbox.c.status, inbox.c.next_attempt_at)
Index("ix_inbox_ticket", inbox.c.platform, inbox.c.ticket_id, inbox.c.id)


# The claim reads the inbox through two partial indexes (migration 0013). A database uses a partial
# index only for a statement whose condition names the index's own values, so these are SQL literals,
# not parameters, here and in the statements (connector/store/inbox.py).
def pending(table: Any) -> Any:
    """`table` is the inbox or an alias of it: its row waits to be claimed."""
    return table.c.status == literal_column("'pending'")


def unfinished(table: Any) -> Any:
    """Its row waits or is being handled."""
    return table.c.status.in_([literal_column("'pending'"), literal_column("'processing'")])


def line_order(table: Any) -> tuple[Any, ...]:
    """The claim's order: not judged yet first, then by rank in the rate limiter's line, oldest first."""
    return func.coalesce(table.c.rank, literal_column("-1")), table.c.received_at, table.c.id


# The pending rows in the claim's order (with when each is due, read without the row): a claim reads
# its batch's worth, not every row waiting (2,000 waiting: 5 ms a claim before, 0.2 ms with it).
Index("ix_inbox_line", *line_order(inbox), inbox.c.next_attempt_at,
      sqlite_where=pending(inbox), postgresql_where=pending(inbox))  # fmt: skip
# Each ticket's unfinished rows: whether a row is the oldest of its ticket is one probe, however long
# the ticket's history.
Index("ix_inbox_open", inbox.c.platform, inbox.c.ticket_id, inbox.c.id,
      sqlite_where=unfinished(inbox), postgresql_where=unfinished(inbox))  # fmt: skip

# What Escalator remembers per ticket, plus the per-ticket lease that keeps events in order.
tickets = Table(
    "tickets",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("ticket_id", String(255), primary_key=True),
    Column("ticket_key", String(255), nullable=True),
    Column("requester_id", String(255), nullable=True),  # comment payloads may omit the reporter
    Column("tier", String(64), nullable=True),
    Column("priority", String(8), nullable=True),
    Column("priority_pinned", Boolean, nullable=False, default=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=True),
    Column("snapshot", JSON, nullable=True),  # the canonical ticket as last seen (connector/codec.py)
    # policies.sla.SlaState.to_json(); jsonb on PostgreSQL (migration 0010): the console reads into it
    Column("sla", JSON().with_variant(JSONB(), "postgresql"), nullable=True),
    # True while the ticket has SLA clocks and is not resolved, else NULL: the SLA board's index
    # (connector/store/tickets.py sets it with every write of `sla`).
    Column("sla_open", Boolean, nullable=True),
    # The ticket's own write windows (a platform's per-ticket limit; connector/ratelimit.py's
    # LeasedWindows.to_json), counted by the worker holding the ticket's lease (migration 0011).
    Column("write_windows", JSON, nullable=True),
)
Index("ix_tickets_sla_open", tickets.c.sla_open)

# One row per armed SLA timer (policies.sla.Timer) of a ticket. A fired row stays until its clock
# is re-armed (new due, fired_at cleared) or no longer wanted (deleted), so it never fires twice.
timers = Table(
    "timers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("ticket_id", String(255), nullable=False),
    Column("key", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("percent", Integer, nullable=False),
    Column("target_seconds", Float, nullable=False),
    Column("calendar", String(64), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("armed_at", UTCDateTime(), nullable=False),
    Column("fired_at", UTCDateTime(), nullable=True),
    UniqueConstraint("platform", "ticket_id", "key", name="uq_timers_ticket_key"),
)
Index(
    "ix_timers_due",
    timers.c.due_at,
    postgresql_where=timers.c.fired_at.is_(None),
    sqlite_where=timers.c.fired_at.is_(None),
)

# Append-only, hash-chained record of every decision (see connector/audit.py).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=False),
    Column("record_id", String(36), nullable=False, unique=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("ticket_id", String(255), nullable=True),
    Column("rules", Text, nullable=True),  # space-joined rule names, for filtering
    Column("outcome", String(16), nullable=False),
    Column("record", Text, nullable=False),  # canonical JSON of the whole record
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("ticket_key", String(255), nullable=True),  # every column is checked against `record`
    Column("signature", Text, nullable=True),  # Ed25519 over seq + hash, when a signing key is set
)
Index("ix_audit_platform_at", audit_log.c.platform, audit_log.c.at)
Index("ix_audit_ticket", audit_log.c.platform, audit_log.c.ticket_id)
Index("ix_audit_ticket_key", audit_log.c.platform, audit_log.c.ticket_key)

# One row: the head of the audit chain. Updating it first serialises appenders on every backend.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Id, nullable=False),
    Column("hash", String(64), nullable=False),
    # After `audit prune`: records up to base_seq are gone; base_hash is the last removed one's.
    Column("base_seq", Id, nullable=False, default=0),
    Column("base_hash", String(64), nullable=False),
)

# Pseudonym → person (connector/audit/people.py). Outside the chain: `audit forget` deletes a row.
audit_people = Table(
    "audit_people",
    metadata,
    Column("pseudonym", String(40), primary_key=True),
    Column("platform", String(32), nullable=False),
    Column("lookup", String(80), nullable=False),  # keyed HMAC of platform + person id
    Column("person_id", Text, nullable=False),
    Column("name", Text, nullable=True),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen_seq", Id, nullable=False),  # `audit prune` drops people only pruned records named
    UniqueConstraint("platform", "lookup", name="uq_audit_people_lookup"),
)
Index("ix_audit_people_last_seen", audit_people.c.last_seen_seq)

# The database's copy of each signed checkpoint (connector/audit/checkpoints.py); the copies that
# prove anything are the ones written outside the database.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("number", Id, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("first_seq", Id, nullable=False),
    Column("last_seq", Id, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("document", Text, nullable=False),
)

# --- the console's read model (console/facts.py): derived from audit_log, rebuildable, never hashed ---

# One row per audit record: the columns the console filters and reports on, out of the record's JSON.
console_decisions = Table(
    "console_decisions",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("ticket_id", String(255), nullable=True),
    Column("ticket_key", String(255), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("trigger_kind", String(32), nullable=True),
    Column("policy_name", String(255), nullable=True),
    Column("policy_version", String(64), nullable=True),
    Column("policy_sha256", String(64), nullable=True),
    Column("tier_from", String(64), nullable=True),
    Column("tier_to", String(64), nullable=True),
    Column("priority_from", String(8), nullable=True),
    Column("priority_to", String(8), nullable=True),
    Column("escalated", Boolean, nullable=False),  # tier moved, and the decision was applied or dry-run
    Column("sla_metric", String(32), nullable=True),
    Column("sla_calendar", String(64), nullable=True),
    Column("region", String(64), nullable=True),
)
Index("ix_console_decisions_platform", console_decisions.c.platform, console_decisions.c.seq)
Index("ix_console_decisions_outcome", console_decisions.c.outcome, console_decisions.c.seq)
Index("ix_console_decisions_version", console_decisions.c.policy_version, console_decisions.c.seq)
Index("ix_console_decisions_key", console_decisions.c.ticket_key, console_decisions.c.seq)
Index("ix_console_decisions_ticket", console_decisions.c.platform, console_decisions.c.ticket_id)
Index("ix_console_decisions_at", console_decisions.c.at)
Index("ix_console_decisions_kind", console_decisions.c.trigger_kind, console_decisions.c.at)
Index("ix_console_decisions_escalated", console_decisions.c.escalated, console_decisions.c.at)

# Which rules fired in which record (a record may name several).
console_rule_hits = Table(
    "console_rule_hits",
    metadata,
    Column("rule", String(255), primary_key=True),
    Column("seq", Id, primary_key=True, autoincrement=False),
)
Index("ix_console_rule_hits_seq", console_rule_hits.c.seq)

# The ticket labels present when an escalation was decided (the root-cause view).
console_escalation_labels = Table(
    "console_escalation_labels",
    metadata,
    Column("label", String(255), primary_key=True),
    Column("seq", Id, primary_key=True, autoincrement=False),
)

# How far the read model has read the audit log (one row, id 1).
console_index_state = Table(
    "console_index_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", Id, nullable=False),
    Column("last_verify", JSON, nullable=True),  # the last chain verification the console ran
)

# Each policy file text the console saw in force, by hash: for the versions list and their diffs.
console_policies = Table(
    "console_policies",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("version", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
)

# Notifications (connector/outbox.py): queued in the transaction of the decision that asked for them,
# sent by the worker's outbox sender, retried, and kept with what the channel answered.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # One delivery's notification to one channel: the same decision processed twice queues it once.
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("decision_id", String(36), nullable=False),  # the audit record of the decision that asked
    Column("platform", String(32), nullable=False),
    Column("ticket_id", String(255), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # notice | update | report
    Column("message", JSON, nullable=False),  # channels.Message.to_json(), or the report's request
    # pending → sent | failed | dry_run
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("answer", Text, nullable=True),  # the channel's last answer (status and text, shortened)
    Column("sent_at", UTCDateTime(), nullable=True),
)
Index("ix_outbox_pending", outbox.c.status, outbox.c.id)
Index("ix_outbox_ticket", outbox.c.platform, outbox.c.ticket_id)

# The thread a ticket has on a channel (Slack's ts, the first mail's Message-ID): later ones reply to it.
channel_threads = Table(
    "channel_threads",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("ticket_id", String(255), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("thread", String(255), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
)

# Per platform, the instant up to which the reconcile job compared changed tickets with what it had
# seen (connector/reconcile.py). Absent: the job has never run, and its first run starts at "now".
reconcile_watermarks = Table(
    "reconcile_watermarks",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("watermark", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# One sliding window of a platform's write limit (connector/ratelimit.py), shared by every replica:
# the writes granted per slot (a 60th of the window) for the last window, and a block the platform
# itself imposed (Retry-After, an exhausted RateLimit-Remaining). Updated under a row lock.
rate_windows = Table(
    "rate_windows",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("bucket", String(300), primary_key=True),  # "account", or "ticket:<id>"
    Column("seconds", Float, primary_key=True),  # the window's length
    Column("first_slot", BigInteger, nullable=False),  # number of the slot counts[0] counts
    Column("counts", JSON, nullable=False),
    Column("blocked_until", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index("ix_rate_windows_updated", rate_windows.c.updated_at)

# Failed console logins, one row each, so every worker process and replica counts the same attempts
# (console/auth.py LoginThrottle). Rows older than the throttle's window are deleted as it goes.
console_login_failures = Table(
    "console_login_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
)
Index(
    "ix_console_login_failures_key",
    console_login_failures.c.name,
    console_login_failures.c.address,
    console_login_failures.c.at,
)
