"""Everything a running Escalator shares: config, database, the live policy, the platforms, the clock."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from connector import cpu
from connector.audit.chain import use_keys
from connector.audit.keys import AuditKeyError, AuditKeys
from connector.config import Config, ConfigError
from connector.metrics import Metrics
from connector.store import liveness
from connector.store.db import make_engine, migrate
from connector.store.group_commit import GroupCommit
from connector.store.intake import Intake
from connector.store.tables import inbox
from platforms.base import PlatformClient, Provider
from platforms.registry import PLATFORMS
from policies import Policy, PolicyError, load_policy

log = logging.getLogger("escalator")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Installation:
    """One configured platform: how to read its webhooks and (lazily) a client to write back."""

    key: str
    provider: Provider
    settings: Any
    make_client: Callable[[Any], PlatformClient]
    _client: PlatformClient | None = None

    @property
    def webhook_secret(self) -> str | None:
        return getattr(self.settings, "webhook_secret", None)

    @property
    def can_write(self) -> bool:
        return bool(getattr(self.settings, "can_write", False))

    @property
    def capabilities(self) -> frozenset[str]:
        """What Escalator may change here: the client's own declaration when its settings widen
        the platform's (ServiceNow with `label_entry`), else the platform's."""
        return frozenset(getattr(self.client(), "capabilities", self.provider.capabilities))

    @classmethod
    def of(cls, key: str, settings: Any) -> Installation:
        """The installation of registered platform `key` with its config section `settings`."""
        registration = PLATFORMS[key]
        return cls(key, registration.provider, settings, registration.make_client)

    def client(self) -> PlatformClient:
        if self._client is None:
            self._client = self.make_client(self.settings)
        return self._client

    def wrap_client(self, wrap: type) -> None:
        """Put the proxy class `wrap` around the client, once (the worker's requests give the CPU
        turn away while they wait)."""
        client = self.client()
        if not isinstance(client, wrap):
            self._client = wrap(client)


class PolicyHolder:
    """The live policy. A reload that fails leaves the last good policy serving, and is remembered
    (for /readyz) until a reload succeeds.

    `channels`: the notification channels the config has; a policy that notifies another is refused.
    """

    def __init__(self, path: str, channels: Collection[str] | None = None, clock: Clock = utc_now):
        self.path = path
        self.channels = channels
        self._clock = clock
        self._policy: Policy = self._load()
        self.loaded_at: datetime = clock()
        self.last_reload_error: str | None = None
        self.last_reload_error_at: datetime | None = None
        self._lock = threading.Lock()

    def _load(self) -> Policy:
        policy = load_policy(self.path)
        if self.channels is not None and (problems := policy.channel_problems(self.channels)):
            raise PolicyError(problems)
        return policy

    @property
    def current(self) -> Policy:
        return self._policy

    def reload(self) -> Policy:
        """Load the file again; raises PolicyError (and keeps the old policy) when it is broken."""
        try:
            fresh = self._load()
        except PolicyError as exc:
            with self._lock:
                self.last_reload_error = one_line(exc)
                self.last_reload_error_at = self._clock()
            raise
        with self._lock:
            self._policy = fresh
            self.loaded_at = self._clock()
            self.last_reload_error = self.last_reload_error_at = None
        return fresh


def one_line(exc: Exception) -> str:
    """A multi-line error (a policy's FILE:LINE problems) as one log-friendly line."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def owner_name(pid: int, tag: str) -> str:
    """The name a process's leases carry: its host, its pid and a tag of its own (a pid is reused).
    `escalator serve` gives its worker process the tag, so it knows what a dead worker held. A long
    host name (a pod's, an FQDN) is cut to fit the lease columns; the pid and tag stay whole."""
    own = f":{pid}:{tag}"
    return socket.gethostname()[: inbox.c.lease_owner.type.length - len(own)] + own


@dataclass
class Runtime:
    config: Config
    engine: Engine
    policy: PolicyHolder
    installations: dict[str, Installation]
    clock: Clock = utc_now
    metrics: Metrics = field(default_factory=Metrics)
    # A one-off command's or a test's: no liveness lock (`escalator work` names itself with one).
    owner: str = field(default_factory=lambda: owner_name(os.getpid(), liveness.new_tag(lock=False)))
    intake: Intake = field(init=False)
    records: GroupCommit = field(init=False)  # the worker's decision records, committed together under load
    audit_keys: AuditKeys = field(init=False)  # signing and pseudonym keys, never in the database

    def __post_init__(self) -> None:
        try:
            self.audit_keys = AuditKeys.load(self.config.audit.signing_key, self.config.audit.pseudonym_key)
        except AuditKeyError as exc:
            raise ConfigError(f"audit: {exc}") from exc
        use_keys(self.engine, self.audit_keys)
        self.intake = Intake(self.engine)
        # A delivery waiting for another's transaction to take its record gives its CPU turn away.
        self.records = GroupCommit(
            self.engine, waiting=cpu.waiting, committed=self.metrics.records_per_commit.observe
        )

    @property
    def dry_run(self) -> bool:
        return self.config.effective_dry_run

    def close(self) -> None:
        """Release the database: the intake's connection, then the pool."""
        self.intake.close()
        self.engine.dispose()


def build_runtime(config: Config, *, clock: Clock = utc_now, engine: Engine | None = None) -> Runtime:
    """Open (and migrate) the database, load the policy, set up each configured platform."""
    engine = engine or make_engine(config.database)
    migrate(engine)
    configured = config.configured_platforms
    installations = {key: Installation.of(key, settings) for key, settings in configured.items()}
    return Runtime(
        config=config,
        engine=engine,
        policy=PolicyHolder(config.policy, set(config.notifications.channels), clock),
        installations=installations,
        clock=clock,
    )
