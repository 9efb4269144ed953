"""The one config file: where the database is, which policy runs, how to reach each platform.

    escalator serve --config escalator.yaml

Secrets come from the environment with ${VAR} (or ${VAR:-default}). With no file at all the
embedded default runs: SQLite in the working directory, the example policy, dry-run.
Every error names the file, line and key, and says what is wrong.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from channels.registry import TICKET_NOTE, ChannelSettings
from connector.audit.settings import AuditSettings
from console.settings import ConsoleConfig
from platforms.registry import PLATFORMS
from policies.source import LineOf, line_finder, parse_yaml  # one YAML reader for policy and config

EXAMPLE_POLICY = Path(__file__).resolve().parent.parent / "policies" / "examples" / "global-support.yaml"
DEFAULT_DATABASE = "sqlite:///escalator.db"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The config file is unreadable or wrong; the message lists every problem as FILE:LINE: key: what."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    threads: int = Field(16, ge=1, le=256, description="request threads; most wait on the group commit")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger webhook bodies get 413")
    public_url: str | None = Field(
        None, description="where the platforms reach Escalator, e.g. https://escalator.example.com "
        "(`escalator install` registers <public_url>/webhooks/<platform>)",
    )  # fmt: skip
    trusted_proxies: int = Field(
        0, ge=0, le=5,
        description="reverse proxies in front of Escalator (nginx: 1) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed, so that the console's log-in limit and its audit records see "
        "the client's address, not the proxy's. 0: those headers are ignored (any client can write them)",
    )  # fmt: skip


class WorkerConfig(_Strict):
    threads: int = Field(
        8, ge=0, le=64,
        description="deliveries whose CPU part (reading, judging, planning, the audit record) runs at once; "
        "a delivery waiting for its platform gives its turn away. "
        "0: this process only accepts webhooks (run `escalator work` elsewhere)",
    )  # fmt: skip
    concurrency: int = Field(
        64, ge=1, le=256,
        description="deliveries handled at once by one worker process, each waiting for its platform in "
        "its own thread: the platform requests in flight (one at a time per ticket, in order)",
    )  # fmt: skip
    listen: bool = Field(
        True,
        description="learn of new work at once: PostgreSQL LISTEN/NOTIFY, or a Unix socket beside the SQLite "
        "file. false: poll only (e.g. PostgreSQL behind PgBouncer in transaction mode, where LISTEN is lost)",
    )
    liveness: bool = Field(
        True,
        description="hold a lock for as long as this worker process lives, so the others hand back its "
        "work within seconds when it dies (not after lease_seconds). false behind PgBouncer in "
        "transaction mode: the lock needs a session of its own",
    )
    poll_seconds: float = Field(
        1.0, gt=0,
        description="how often an idle worker looks for due events even when not woken: the safety net "
        "for a lost wake-up signal (a retry or a rate-limited write is looked at when it comes due)",
    )  # fmt: skip
    shutdown_seconds: float = Field(
        5.0, gt=0, le=300,
        description="on stop, deliveries in flight get this long to finish; then the process exits and "
        "what was cut off is taken again after its lease (a note in flight is looked for first)",
    )  # fmt: skip
    batch: int = Field(20, ge=1, le=1000)
    lease_seconds: float = Field(
        60.0, gt=0,
        description="a dead worker's deliveries (and their tickets) are taken again after this long; a "
        "live worker renews its leases every third of it, however long a platform takes to answer",
    )  # fmt: skip
    backoff_initial_seconds: float = Field(2.0, gt=0)
    backoff_max_seconds: float = Field(900.0, gt=0)
    max_attempts_after_internal_error: int = Field(
        5, ge=1, description="an event that hits a bug is recorded as failed after this many attempts"
    )
    max_lease_expiries: int = Field(
        2, ge=1,
        description="a delivery whose worker died holding it (its lease ran out) this often is recorded "
        "as failed instead of being taken again: a delivery that kills its worker cannot stall its ticket",
    )  # fmt: skip
    nice: int = Field(
        10, ge=0, le=19,
        description="the worker process runs this much below normal CPU priority: when cores are short, "
        "acknowledging webhooks comes first and the durable inbox waits (0: same priority)",
    )  # fmt: skip
    metrics_port: int | None = Field(
        None, ge=1, le=65535,
        description="serve the worker process's own /metrics (decisions, platform requests, timers) here",
    )  # fmt: skip


class SchedulerConfig(_Strict):
    """The SLA clock: an interval job that fires due timers into the inbox (runs with the workers)."""

    tick_seconds: float = Field(1.0, gt=0, le=60, description="how often due timers are looked for")
    batch: int = Field(
        500, ge=1, le=10_000, description="timers fired per transaction; a tick repeats until none is due"
    )
    late_after_seconds: float = Field(
        30.0, gt=0, description="a timer fired this long after it was due is marked late in the audit"
    )


# The channels the example policy's P1 protocol notifies, unconfigured: with no `notifications` section
# its messages are rendered, queued and audited as dry runs, never sent. A config's own section replaces them.
EXAMPLE_CHANNELS: dict[str, Any] = {
    "oncall": {"type": "slack", "channel": "#support-oncall"},
    "managers": {"type": "email", "sender": "escalator@example.com", "to": ["support-managers@example.com"]},
}


class NotificationsConfig(_Strict):
    """Where people are told (Slack, Teams, e-mail, webhooks), and how the outbox retries a channel."""

    channels: dict[str, ChannelSettings] = Field(
        default_factory=lambda: dict(EXAMPLE_CHANNELS), validate_default=True
    )
    poll_seconds: float = Field(0.25, gt=0, description="how often the outbox sender looks for due messages")
    batch: int = Field(50, ge=1, le=1000)
    threads: int = Field(4, ge=1, le=64, description="messages to different tickets or channels sent at once")
    lease_seconds: float = Field(
        60.0, gt=0,
        description="a dead worker's notification is taken again after this long; a live worker renews "
        "its leases every third of it (or of worker.lease_seconds, the shorter)",
    )  # fmt: skip
    backoff_initial_seconds: float = Field(5.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    give_up_after_hours: float = Field(
        24.0, gt=0, description="a message the channel kept refusing for this long is recorded as failed"
    )

    @model_validator(mode="after")
    def _names_and_languages(self) -> NotificationsConfig:
        from babel import Locale, UnknownLocaleError

        for name, settings in self.channels.items():
            if name == TICKET_NOTE:
                raise ValueError(f"'{TICKET_NOTE}' is reserved (it means an internal note on the ticket)")
            if settings.language:
                try:
                    Locale.parse(settings.language.replace("-", "_"))
                except (UnknownLocaleError, ValueError) as exc:
                    raise ValueError(f"channel '{name}': unknown language '{settings.language}'") from exc
        return self


class ReconcileConfig(_Strict):
    """The job that finds changes whose webhook never arrived (runs with the workers; see reconcile.py)."""

    enabled: bool = True
    interval_seconds: float = Field(300.0, ge=10, description="how often each platform is asked what changed")
    overlap_seconds: float = Field(
        120.0, ge=0, description="each pass reads this far before the last one ended"
    )
    settle_seconds: float = Field(
        60.0, ge=0, description="changes younger than this are left to their webhook"
    )
    max_rate_limit_waits: int = Field(5, ge=0, description="429 answers waited out per pass before giving up")


class InboxConfig(_Strict):
    retention_days: float = Field(
        30.0, gt=0, description="finished deliveries (and their bodies, which `escalator replay` reads) are "
        "kept this long",
    )  # fmt: skip
    max_delivery_delay_hours: float = Field(
        24.0, gt=0,
        description="an event that says it happened longer than this before it arrived (a replayed or "
        "backfilled change, a recorded payload) is counted from its arrival: SLA clocks of a ticket first "
        "seen that way start when Escalator saw it, not years ago",
    )  # fmt: skip


class RateWindow(_Strict):
    """At most `requests` writes in any `seconds` (a sliding window, as strict as any the platform keeps)."""

    requests: int = Field(ge=1)
    seconds: float = Field(gt=0)


class PlatformRateLimits(_Strict):
    """One platform's write limits: per account (every ticket's writes share them) and per ticket."""

    account: list[RateWindow] = []
    ticket: list[RateWindow] = []


# The platforms' published write limits (../shared/DESIGN.md, "The platforms' contracts").
# Zendesk: Update Ticket 100/min per account, 30 updates per 10 min per ticket.
# Jira Cloud: per-issue write limits (RateLimit-Reason jira-per-issue-on-write; 20 per 2 s and 100 per
# 30 s as Atlassian's rate-limiting page gave them); the account's budget is cost-based and unpublished
# for API-token traffic, so it is learnt from the answers' RateLimit headers and Retry-After instead.
# ServiceNow: per-hour rules are the admin's own (System Web Services > Rate Limit Rules); none by default.
PUBLISHED_RATE_LIMITS: dict[str, dict[str, Any]] = {
    "zendesk": {"account": [{"requests": 100, "seconds": 60}], "ticket": [{"requests": 30, "seconds": 600}]},
    "jira": {"ticket": [{"requests": 20, "seconds": 2}, {"requests": 100, "seconds": 30}]},
    "servicenow": {},
}


class RateLimitsConfig(_Strict):
    """Proactive write pacing (connector/ratelimit.py), shared by every replica through the database.

    A platform named here replaces its published limits; one left out keeps them."""

    enabled: bool = Field(
        True, description="false: write as fast as the platform takes it (429s are retried)"
    )
    platforms: dict[str, PlatformRateLimits] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_platforms(self) -> RateLimitsConfig:
        if unknown := set(self.platforms) - set(PLATFORMS):
            names = ", ".join(sorted(unknown))
            raise ValueError(f"unknown platform(s) {names} (known: {', '.join(PLATFORMS)})")
        return self

    @property
    def longest_window(self) -> float:
        """Seconds of the longest window in force on any platform (idle windows are dropped after it)."""
        windows = [w for p in PLATFORMS for w in (*self.of(p).account, *self.of(p).ticket)]
        return max((w.seconds for w in windows), default=0.0)

    def of(self, platform: str) -> PlatformRateLimits:
        """The limits in force for `platform` (none when pacing is off)."""
        if not self.enabled:
            return PlatformRateLimits()
        configured = self.platforms.get(platform)
        if configured is not None:
            return configured
        return PlatformRateLimits.model_validate(PUBLISHED_RATE_LIMITS.get(platform, {}))


Platforms = create_model(  # type: ignore[call-overload]
    "Platforms",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{key: (reg.settings | None, None) for key, reg in PLATFORMS.items()},
)


class Config(_Strict):
    database: str = DEFAULT_DATABASE
    policy: str = str(EXAMPLE_POLICY)
    dry_run: bool | None = Field(None, description="default: true when no platform has write credentials")
    log_format: Literal["text", "json"] = "text"
    server: ServerConfig = ServerConfig()
    worker: WorkerConfig = WorkerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    inbox: InboxConfig = InboxConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    platforms: Platforms = Platforms()  # type: ignore[valid-type]
    console: ConsoleConfig = ConsoleConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    audit: AuditSettings = AuditSettings()

    def platform(self, key: str) -> Any | None:
        """The settings of one platform, or None when it is not configured."""
        return getattr(self.platforms, key, None)

    @property
    def configured_platforms(self) -> dict[str, Any]:
        return {k: s for k in PLATFORMS if (s := self.platform(k)) is not None}

    @property
    def effective_dry_run(self) -> bool:
        if self.dry_run is not None:
            return self.dry_run
        return not any(getattr(s, "can_write", False) for s in self.configured_platforms.values())


def load_config(path: str | Path | None) -> Config:
    """Read and validate the config file; None gives the embedded default."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    # The policy's YAML reader: it keeps lines, and dates stay text (`2026-12-32` is not a crash).
    tree, problems = parse_yaml(text, str(path))
    if problems:
        lines = [f"{p.path}:{p.line}: not valid YAML: {p.message.removeprefix('YAML syntax error: ')}"
                 for p in problems]  # fmt: skip
        raise ConfigError("\n".join(lines))
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of keys (database, policy, platforms, …)")
    problems: list[str] = []
    line_of = line_finder(tree)
    data = _substitute_env(line_of, tree, (), path, problems)
    if problems:
        raise ConfigError("\n".join(problems))
    # Every relative path in the file means "next to this file", whatever the working directory.
    base = path.parent
    if isinstance(data.get("policy"), str):
        data["policy"] = resolve_path(data["policy"], base)
    if isinstance(data.get("database"), str):
        data["database"] = resolve_sqlite_url(data["database"], base)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(exc, line_of, path))) from exc


def resolve_path(value: str, base: Path) -> str:
    """A path from the config file: relative ones resolve against the config file's folder `base`."""
    expanded = Path(value).expanduser()
    return str(expanded if expanded.is_absolute() else (base / expanded).resolve())


def resolve_sqlite_url(url: str, base: Path) -> str:
    """`sqlite:///escalator.db` in a config file is the file next to it, like every relative path there.
    Absolute files (`sqlite:////var/lib/…`), in-memory databases and other URLs stay as they are."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix) :]
    file, sep, query = rest.partition("?")
    if not file or file.startswith("/") or file == ":memory:" or file.startswith("file:"):
        return url
    return prefix + resolve_path(file, base) + sep + query


def _substitute_env(line_of: LineOf, node: Any, loc: tuple, path: Path, problems: list[str]) -> Any:
    """Plain-Python copy of the YAML tree with ${VAR} replaced in every string."""
    if isinstance(node, dict):
        return {k: _substitute_env(line_of, v, (*loc, k), path, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_env(line_of, v, (*loc, i), path, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def replace(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None:
                if default is not None:
                    return default
                problems.append(
                    f"{path}:{line_of(loc)}: {'.'.join(map(str, loc))}: "
                    f"environment variable {name} is not set (set it, or write ${{{name}:-default}})"
                )
                return ""
            return value

        return _ENV_REF.sub(replace, node)
    return node


def _describe(exc: ValidationError, line_of: LineOf, path: Path) -> list[str]:
    out = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'" + _known_keys_hint(loc)
        elif error["type"] == "missing":
            message = "is required but missing"
        else:
            message = error["msg"]
            if "input" in error and not isinstance(error["input"], (dict, list)):
                message += f" (got {error['input']!r})"
        out.append(f"{path}:{line_of(loc)}: {key}: {message}")
    return out


def _known_keys_hint(loc: tuple) -> str:
    model: Any = Config
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        annotation = field.annotation
        model = next(
            (a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")), None
        )
        if model is None:
            return ""
    return f" (known keys: {', '.join(model.model_fields)})"
