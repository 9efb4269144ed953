"""`escalator doctor`: what an admin checks before going live, in one command.

Each finding is ok, warn (works, but not as the admin may think) or FAIL (deliveries or
decisions will be refused or lost). Nothing is written: the database is not created or
migrated, and the platforms are only asked who the credentials belong to (one GET each),
which also proves the URL, the credentials and the echo identity (`account_id`, `user_id`,
`user`) that keeps Escalator from answering its own edits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from connector.config import Config
from connector.doctor_site import site_findings
from connector.runtime import Installation
from connector.store.db import make_engine
from connector.store.schema import SchemaState
from connector.store.schema import head as schema_head
from platforms.errors import PlatformError, RejectedByPlatform, TransientPlatformError
from policies import Policy, PolicyError, load_policy

OK, WARN, FAIL = "ok", "warn", "FAIL"

# Webhook secrets anyone can read in our examples and docs, or guess: never a live secret.
EXAMPLE_SECRETS = frozenset(
    {"dev-secret", "secret", "webhook-secret", "webhook_secret", "changeme", "change-me", "example",
     "test", "password", "escalator", "it-is-a-secret", "your-secret", "s3cret"}
)  # fmt: skip
MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class Finding:
    level: str
    subject: str  # "config", "policy", "database" or a platform key
    message: str

    def __str__(self) -> str:
        return f"{self.level:<4}  {self.subject}: {self.message}"


def diagnose(config: Config, *, online: bool = True) -> list[Finding]:
    """Every finding, in the order an admin would fix them."""
    findings: list[Finding] = []
    if config.effective_dry_run:
        why = "dry_run is on" if config.dry_run else "dry_run is on (no platform has write credentials)"
        findings.append(Finding(WARN, "config", f"{why}: decisions are audited, nothing is written"))
    policy = _policy(config, findings)
    _database(config.database, findings)
    _audit(config, findings)
    if (why := config.console.sessions_per_process) is not None:
        findings.append(Finding(WARN, "console", why))
    if not config.configured_platforms:
        hint = "add platforms.jira (or zendesk, servicenow) with its url and webhook_secret"
        findings.append(Finding(WARN, "config", f"no platform is configured: {hint}"))
    for key, settings in config.configured_platforms.items():
        findings += _platform(key, settings, policy, online=online)
    return findings


def _policy(config: Config, findings: list[Finding]) -> Policy | None:
    try:
        policy = load_policy(config.policy)
    except PolicyError as exc:
        findings.append(Finding(FAIL, "policy", f"does not load:\n{exc}"))
        return None
    findings.append(Finding(OK, "policy", policy.summary()))
    return policy


def _database(url: str, findings: list[Finding]) -> None:
    from alembic.runtime.migration import MigrationContext

    shown = make_url(url).render_as_string(hide_password=True)
    database = make_url(url).database if url.startswith("sqlite") else None
    if database and database != ":memory:" and not Path(database).exists():
        # Connecting would create the file; the diagnosis writes nothing.
        missing = f"{shown} does not exist yet: `escalator serve` creates it"
        findings.append(Finding(WARN, "database", missing))
        return
    head = schema_head()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:  # any driver error: the admin needs its text, not a traceback
        findings.append(Finding(FAIL, "database", f"cannot connect to {shown}: {exc}"))
        return
    finally:
        engine.dispose()
    schema = SchemaState(current, head)
    if schema.up_to_date:
        findings.append(Finding(OK, "database", f"{shown}, schema at {head}"))
    elif not schema.known:  # serve would refuse it: this code cannot use the database
        findings.append(Finding(FAIL, "database", f"{shown}, {schema}"))
    else:
        behind = f"{shown}, schema at {current or 'none'}: `escalator serve` migrates it to {head}"
        findings.append(Finding(WARN, "database", behind))


def _audit(config: Config, findings: list[Finding]) -> None:
    """Audit keys always; the append-only guard and checkpoints when the database is current."""
    from connector.audit import health

    found, keys = health.keys(config.audit)
    if any(f.subject == "database" and f.level == OK for f in findings):
        engine = make_engine(config.database)
        try:
            found += health.database(engine, config.audit, keys)
        finally:
            engine.dispose()
    findings += [Finding(level, "audit", message) for level, message in found]


def _platform(key: str, settings, policy: Policy | None, *, online: bool) -> list[Finding]:
    out: list[Finding] = []

    def say(level: str, message: str) -> None:
        out.append(Finding(level, key, message))

    installation = Installation.of(key, settings)
    secret = installation.webhook_secret
    if not secret:
        say(FAIL, f"platforms.{key}.webhook_secret is not set: every delivery is refused with 401")
    elif problem := weak_secret(secret):
        make = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
        say(FAIL, f"platforms.{key}.webhook_secret {problem}: anyone could sign deliveries; make one with "
                  f"{make} and set it on both sides")  # fmt: skip
    if policy is not None and key not in policy.platforms:
        say(FAIL, f"policy '{policy.name}' has no platforms.{key} section: every {key} event would fail")
    if not installation.can_write:
        say(WARN, "no write credentials: decisions are audited as dry runs")
        return out
    client = installation.client()
    setting = f"platforms.{key}.{client.identity_setting}"
    if not online:
        if not client.own_account_id:
            say(WARN, f"{setting} is not set: Escalator cannot tell its own edits from a person's")
        return out
    try:
        me = client.whoami()
    except RejectedByPlatform as exc:
        say(FAIL, f"the credentials do not work: {exc}")
        return out
    except TransientPlatformError as exc:
        if exc.status is not None and 200 <= exc.status < 300:  # a page, not the API: the URL, or a login
            say(FAIL, str(exc))
        else:  # 429, 5xx, a timeout: says nothing about the credentials
            say(FAIL, f"could not ask who the credentials belong to (try again): {exc}")
        return out
    except PlatformError as exc:  # unreachable URL, an answer that is not the platform's API
        say(FAIL, f"{exc}: is platforms.{key}'s URL the platform's?")
        return out
    who = f"{me.id}" + (f" ({me.name})" if me.name else "")
    if not client.own_account_id:
        fix = f"the credentials act as {who}: set {setting}: {me.id!r}"
        say(WARN, f"{setting} is not set: Escalator cannot tell its own edits from a person's; {fix}")
    elif client.own_account_id != me.id:
        loop = "Escalator's own edits would come back as a person's and be answered again"
        say(FAIL, f"{setting} is {client.own_account_id!r} but the credentials act as {who}: {loop}")
    else:
        say(OK, f"the credentials act as {who}, the same account as {setting}")
    if policy is not None and key in policy.platforms:
        for level, message in site_findings(key, client, policy.platforms[key]):
            say(level, message)
    return out


def weak_secret(secret: str) -> str | None:
    """Why a webhook secret must not go live (an example value, too short), or None."""
    if secret.strip().lower() in EXAMPLE_SECRETS:
        return "is an example value from the docs"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is {len(secret.encode())} bytes, shorter than {MIN_SECRET_BYTES}"
    return None


def report(findings: list[Finding]) -> tuple[str, int]:
    """The text for the terminal and the exit status (1 when anything FAILs)."""
    fails = sum(f.level == FAIL for f in findings)
    warns = sum(f.level == WARN for f in findings)
    summary = f"doctor: {fails} problem{'s' * (fails != 1)}, {warns} warning{'s' * (warns != 1)}"
    return "\n".join([*map(str, findings), summary]), 1 if fails else 0
