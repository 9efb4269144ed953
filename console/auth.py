"""Who may see the console: password logins with a signed session, bearer tokens for the API, CSRF
on every POST, a limit on failed logins, and an audit record for every login and operator action."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import Engine, delete, insert, select
from werkzeug.security import check_password_hash, generate_password_hash

from connector import audit
from connector.store.db import writing
from connector.store.tables import console_login_failures as F
from console.settings import ConsoleConfig

ROLES = ("viewer", "operator")


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
    Made when the console is mounted (prepare), not on import: hashing cost every process (a
    worker, a CLI command) 0.15-0.3 s of CPU at start-up, and only the web process checks logins."""
    return generate_password_hash(secrets.token_hex(8))


def prepare() -> None:
    """Before the first login: its unknown name would otherwise also pay for the dummy hash."""
    _dummy_hash()


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str  # "session" | "token"

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_login(settings: ConsoleConfig, name: str, password: str) -> Principal | None:
    user = settings.users.get(name)
    ok = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    return Principal(name, user.role, "session") if ok and user else None


def check_token(settings: ConsoleConfig, header: str | None) -> Principal | None:
    if not header or not header.startswith("Bearer "):
        return None
    digest = token_digest(header[len("Bearer ") :].strip())
    for name, token in settings.tokens.items():
        if hmac.compare_digest(digest, token.sha256):
            return Principal(name, token.role, "token")
    return None


class LoginThrottle:
    """At most `attempts` failed logins per (name, address) within `window` seconds, counted in the
    database (`console_login_failures`): every gunicorn worker and every replica on one store shares
    the count, so more processes do not mean more guesses."""

    def __init__(self, engine: Engine, attempts: int, window: float, clock: Callable[[], datetime]):
        self.engine, self.attempts, self.window, self.clock = engine, attempts, window, clock

    def blocked_for(self, name: str, address: str) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = self.clock()
        recent = (
            select(F.c.at)
            .where(F.c.name == name, F.c.address == address, F.c.at > now - timedelta(seconds=self.window))
            .order_by(F.c.at.desc())
            .limit(self.attempts)
        )
        with self.engine.connect() as conn:
            failures = conn.execute(recent).scalars().all()
        if len(failures) < self.attempts:
            return 0.0
        oldest = failures[-1]  # of the `attempts` latest: the one whose expiry allows the next try
        return max(0.0, (oldest + timedelta(seconds=self.window) - now).total_seconds())

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        with writing(self.engine) as conn:
            conn.execute(insert(F).values(name=name, address=address, at=now))
            # What no window can count any more goes (every key's, so forgotten guessers leave nothing).
            conn.execute(delete(F).where(F.c.at <= now - timedelta(seconds=self.window)))

    def succeeded(self, name: str, address: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(delete(F).where(F.c.name == name, F.c.address == address))


# --- CSRF: one random token per session, required in every POST form ------------------------------


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="the form's CSRF token is missing or wrong: reload the page and try again")


# --- who is asking ----------------------------------------------------------------------------------


def current_principal() -> Principal | None:
    return g.get("principal")


def load_session_principal(settings: ConsoleConfig) -> Principal | None:
    name, role = session.get("user"), session.get("role")
    user = settings.users.get(name) if name else None
    # A user removed from the config (or whose role changed) loses the old session's rights.
    if user is None or user.role != role:
        return None
    return Principal(name, role, "session")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_principal() is None:
            return redirect(url_for("console.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def operator_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        principal = current_principal()
        if principal is None:
            return redirect(url_for("console.login", next=request.full_path))
        if not principal.is_operator:
            abort(403, description="only an operator may do this")
        return view(*args, **kwargs)

    return wrapped


def client_address() -> str:
    """The address a request came from: the one a trusted proxy forwarded (server.trusted_proxies), when
    it is an address at all, else the connection's own. A proxy that passes the client's header on, or
    one proxy too many trusted, hands over whatever the client wrote (200 characters failed the log-in
    limit's insert on PostgreSQL, whose column holds 64)."""
    forwarded = request.remote_addr or ""
    try:
        return str(ipaddress.ip_address(forwarded))
    except ValueError:
        original = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR")
        return original or "?"


def record(kind: str, actor: Any, outcome: str, **detail: Any) -> None:
    """An audit record for a console login or operator action (platform "console")."""
    rt = current_app.extensions["escalator"]
    body = {
        "platform": "console",
        "kind": kind,
        "trigger": {"kind": kind},
        "actor": actor,
        "address": audit.pseudonym(client_address()),
        "outcome": outcome,
        "rules": [],
        **detail,
    }
    with writing(rt.engine) as conn:
        audit.append(conn, body, at=rt.clock())
