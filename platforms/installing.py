"""What `escalator install` shares across platforms: a plan of admin API requests, its dry-run
text, and running it.

A platform's `install.py` reads what exists (GETs through `AdminApi`) and returns an
`InstallPlan`: the writing requests that would make the platform match the config, in order. A
request may need an id that only an earlier request's answer gives (Zendesk triggers name the
webhook just created); such a value is a `Ref`, shown as `{webhook.id}` in a dry run and filled in
when the plan runs. Platform knowledge only: no store, no Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

from platforms.errors import PlatformError, parse_retry_after
from platforms.http import body_text, json_object, network_errors

# Where Escalator marks what it created, so uninstall removes only that.
MARKER = "Managed by `escalator install`"
MASK = "********"


class InstallError(Exception):
    """The platform refused, or cannot do what install needs; the message says what to do."""


@dataclass(frozen=True)
class Ref:
    """A value read from the answer of an earlier step of the same plan (`step`), at `path`."""

    step: str
    path: tuple[str, ...]

    def __str__(self) -> str:
        return "{" + ".".join((self.step, *self.path)) + "}"


Kind = Literal["create", "update", "delete", "read"]


@dataclass(frozen=True)
class Step:
    """One request of a plan. `secret_values` are masked when shown; `reveal` names a secret in
    the answer that the admin must receive (Zendesk's signing secret)."""

    name: str
    kind: Kind
    method: str
    url: str | Ref | tuple[str | Ref, ...]
    json: Any = None
    purpose: str = ""
    secret_values: tuple[str, ...] = ()
    reveal: tuple[str, ...] | None = None


@dataclass
class InstallPlan:
    platform: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was found as it should be, warnings
    revealed: str | None = None  # a secret already read while planning, for the admin

    @property
    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.kind != "read"]


@dataclass
class Outcome:
    sent: list[Step] = field(default_factory=list)
    revealed: str | None = None


def fingerprint(value: str) -> str:
    """A short keyed digest of a secret, kept beside it so a later run can tell whether it changed
    (a password2 property reads back encrypted). Keyed by the value itself: it reveals nothing."""
    return hmac.new(value.encode("utf-8"), b"escalator-install", hashlib.sha256).hexdigest()[:16]


def resolve(value: Any, answers: Mapping[str, Any]) -> Any:
    """`value` with every Ref replaced by what the named step's answer holds."""
    if isinstance(value, Ref):
        found: Any = answers.get(value.step)
        for key in value.path:
            if not isinstance(found, Mapping) or key not in found:
                raise InstallError(f"the answer to step '{value.step}' has no {'.'.join(value.path)}")
            found = found[key]
        return str(found)
    if isinstance(value, tuple):
        return "".join(str(resolve(part, answers)) for part in value)
    if isinstance(value, Mapping):
        return {k: resolve(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, answers) for v in value]
    return value


def show(value: Any) -> Any:
    """`value` for a dry run: Refs as their placeholders."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, tuple):
        return "".join(str(show(part)) for part in value)
    if isinstance(value, Mapping):
        return {k: show(v) for k, v in value.items()}
    if isinstance(value, list):
        return [show(v) for v in value]
    return value


def describe(plan: InstallPlan, *, action: str = "install") -> str:
    """The dry-run text: every request the plan would send, exactly, secrets masked."""
    lines = [f"{plan.platform}: {action} --dry-run"]
    lines += [f"  {note}" for note in plan.notes]
    if not plan.writes:
        lines.append("  nothing to change")
    for step in plan.steps:
        lines.append(f"{step.method} {show(step.url)}    # {step.purpose or step.kind}")
        if step.json is not None:
            text = json.dumps(show(step.json), indent=2, ensure_ascii=False, sort_keys=True)
            for secret in step.secret_values:
                if secret:
                    text = text.replace(json.dumps(secret)[1:-1], MASK)
            lines += [f"  {line}" for line in text.splitlines()]
    return "\n".join(lines)


Hint = Callable[[int, str, str], str | None]


class AdminApi:
    """An authenticated session on one platform's admin API. Every refusal becomes an InstallError
    that says what to do (`hint(status, what, message)` gives the platform's own advice)."""

    def __init__(
        self,
        platform: str,
        base_url: str,
        auth: tuple[str, str],
        *,
        timeout: float = 15.0,
        hint: Hint | None = None,
        session: requests.Session | None = None,
    ):
        self.platform = platform
        self.base_url = base_url
        self.timeout = timeout
        self.hint = hint
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": "Escalator install"})
        self.sent: list[tuple[str, str]] = []  # (method, url) of every request, reads included

    def get(self, path: str, **params: str) -> Any:
        return self.call("GET", self.base_url + path, None, params=params or None)

    def call(self, method: str, url: str, body: Any, *, params: Mapping[str, str] | None = None) -> Any:
        what = f"{method} {url}"
        with _as_install_error(), network_errors(self.platform, what, self.timeout):
            response = self.session.request(method, url, json=body, params=params, timeout=self.timeout)
        self.sent.append((method, response.url if params else url))
        if 200 <= response.status_code < 300:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise InstallError(
                    f"{self.platform} answered {what} with {response.status_code} but not JSON "
                    f"({response.headers.get('Content-Type') or 'no content type'}): "
                    "is the URL the platform's?"
                ) from None
        raise InstallError(self._refusal(response, what))

    def _refusal(self, response: requests.Response, what: str) -> str:
        status = response.status_code
        message = _message(response)
        text = f"{self.platform} answered {status} to {what}" + (f": {message}" if message else "")
        advice = self.hint(status, what, message) if self.hint else None
        if advice is None and status == 401:
            advice = "the credentials in the config were not accepted: check them (escalator doctor)"
        if advice is None and status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            advice = "rate limited: run install again" + (f" in {wait:.0f}s" if wait else " later")
        return text + (f"\n  → {advice}" if advice else "")


class _as_install_error:
    """Network failures (our PlatformErrors) become InstallErrors: install has no retry loop."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, PlatformError):
            raise InstallError(str(exc)) from exc
        return False


def _message(response: requests.Response) -> str:
    body = json_object(response)
    if body is None:
        return body_text(response)
    parts: list[str] = []
    for key in ("errorMessages", "errors", "error", "description", "details", "message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            parts.append(value)
        elif isinstance(value, list):
            parts += [
                str(v.get("title") or v.get("detail") or v) if isinstance(v, dict) else str(v) for v in value
            ]
        elif isinstance(value, dict):
            parts += [f"{k}: {v}" for k, v in value.items() if v]
    return "; ".join(p for p in parts if p) or body_text(response)


def run(api: AdminApi, plan: InstallPlan) -> Outcome:
    """Send the plan's steps in order, filling each Ref from the answers before it."""
    outcome = Outcome(revealed=plan.revealed)
    answers: dict[str, Any] = {}
    for step in plan.steps:
        url = resolve(step.url, answers)
        body = resolve(step.json, answers) if step.json is not None else None
        answers[step.name] = api.call(step.method, url, body)
        outcome.sent.append(step)
        if step.reveal is not None:
            outcome.revealed = resolve(Ref(step.name, step.reveal), answers)
    return outcome


def same(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when every key we set has the value we want (keys the platform adds are ignored)."""
    return all(_normal(existing.get(k)) == _normal(v) for k, v in wanted.items())


def _normal(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value
