"""Outbound side: a `Plan` → the one Zendesk Update Ticket request, sending it, and reading a ticket."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import requests
from zenpy import Zenpy

from connector.model import Plan, Ticket, TicketRef
from platforms.base import (
    SITE_FIELDS,
    SITE_GROUPS,
    SITE_USERS,
    Identity,
    OutboundRequest,
    SentRequest,
    SiteNames,
    marked_note,
    note_mark_line,
)
from platforms.errors import (
    ConflictError,
    NotConfigured,
    PlatformError,
    RejectedByPlatform,
)
from platforms.http import (
    answer_error,
    api_answer,
    body_text,
    environment_read_once,
    json_object,
    keep_connections,
    network_errors,
    rate_limit_headers,
    send,
)
from platforms.zendesk.normalise import normalise_ticket
from platforms.zendesk.settings import Settings

# Rate limited, or a request timeout: the same request may succeed later. (5xx too.)
_TRANSIENT_STATUSES = frozenset({408, 429})


class ZendeskClient:
    """One configured Zendesk account: renders plans and sends them through a zenpy-authenticated session.

    We use zenpy only to authenticate a session ("<email>/token" basic auth, its
    User-Agent) and send the request we rendered ourselves, to the configured base URL:
    - zenpy's API methods sleep through a 429 (its `_call_api` waits out Retry-After,
      second by second, and retries); zenpy 2.0.57 has no flag to raise instead, so the
      worker's transaction would hang. We never call them, and `ratelimit_budget=0`
      makes them raise at once should anyone do so.
    - zenpy's own session mounts an adapter that silently resends a PUT up to 3 times on
      503 and on connection errors; we hand it a plain session so one decision is one
      request and the worker retries with backoff, honouring Retry-After.
    - zenpy builds https://<subdomain>.zendesk.com URLs; a proxy or a local fake needs ours.
    """

    identity_setting = "user_id"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.own_account_id: str | None = settings.user_id
        self._zenpy: Zenpy | None = None
        self._http: requests.Session | None = None
        self._lock = threading.Lock()

    # --- render (pure) -------------------------------------------------------

    def ticket_url(self, ref: TicketRef) -> str:
        return f"{self.settings.base_url}/api/v2/tickets/{quote(ref.id, safe='')}.json"

    def render(self, plan: Plan) -> list[OutboundRequest]:
        """One PUT /api/v2/tickets/{id}.json carrying only what the plan changes; [] for an empty plan.

        Zendesk takes everything in one update, an internal note included (`comment`
        with `public: false`), so there is never a second request.
        """
        if plan.is_empty:
            return []
        ticket: dict[str, Any] = {}
        if plan.priority is not None:
            ticket["priority"] = plan.priority
        if plan.group is not None:
            ticket["group_id"] = api_id(plan.group)
        if plan.assignee is not None:
            ticket["assignee_id"] = api_id(plan.assignee)
        if plan.labels_add or plan.labels_remove:
            # `tags` replaces the whole list. A tag a person adds between our read and our
            # write would be lost, which is what `safe_update` below turns into a 409.
            ticket["tags"] = sorted(plan.labels_after)
        if plan.fields:
            ticket["custom_fields"] = [
                {"id": api_id(field_id), "value": value}
                for field_id, value in sorted(plan.fields.items(), key=lambda item: str(item[0]))
            ]
        if plan.note is not None:
            ticket["comment"] = {
                "body": marked_note(plan.note.text, plan.note.mark),
                "public": not plan.note.internal,
            }
        if plan.ticket_version is not None:
            # Zendesk refuses (409) the update if the ticket changed after this stamp; the
            # worker then re-reads it (`fetch`), plans again and retries.
            ticket["safe_update"] = True
            ticket["updated_stamp"] = plan.ticket_version
        return [
            OutboundRequest("PUT", self.ticket_url(plan.ticket), {"ticket": ticket}, purpose="update ticket")
        ]

    # --- send / fetch --------------------------------------------------------

    def send(self, request: OutboundRequest) -> SentRequest:
        """Send one rendered request; raises TransientPlatformError, ConflictError or RejectedByPlatform."""
        response = self._call(request.method, request.url, request.json)
        return SentRequest(request, response.status_code, rate_limit_headers(response.headers))

    def note_landed(self, ref: TicketRef, mark: str) -> bool:
        """Whether a comment ending in `mark`'s line is on the ticket: one GET of its newest comments
        (List Comments, newest first)."""
        url = (
            f"{self.settings.base_url}/api/v2/tickets/{quote(ref.id, safe='')}/comments.json?sort_order=desc"
        )
        body = json_object(self._call("GET", url, None)) or {}
        line = note_mark_line(mark)
        return any(
            isinstance(c, dict) and line in str(c.get("body") or c.get("plain_body") or "")
            for c in body.get("comments") or []
        )

    def fetch(self, ref: TicketRef) -> Ticket:
        """The ticket as it is now: GET /api/v2/tickets/{id}.json (errors as in `send`)."""
        url = self.ticket_url(ref)
        response = self._call("GET", url, None)
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformError(f"Zendesk answered GET {url} with a body that is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("ticket"), dict):
            raise PlatformError(f"Zendesk answered GET {url} without a 'ticket' object")
        return normalise_ticket(body["ticket"])

    def whoami(self) -> Identity:
        """GET /api/v2/users/me.json: the user the API token acts as."""
        url = f"{self.settings.base_url}/api/v2/users/me.json"
        user = (json_object(self._call("GET", url, None)) or {}).get("user")
        if not isinstance(user, dict):
            raise PlatformError(f"Zendesk answered GET {url} without a 'user' object")
        if user.get("id") is None:  # Zendesk answers unrecognised credentials with the anonymous user
            raise RejectedByPlatform(
                f"Zendesk answered GET {url} with the anonymous user: check email and api_token", status=200
            )
        return Identity(str(user["id"]), f"{user.get('name') or ''} ({user.get('role') or 'no role'})")

    def site_names(self, kind: str, wanted: frozenset[str]) -> SiteNames | None:
        """Groups (GET /api/v2/groups.json), ticket fields (GET /api/v2/ticket_fields.json) and users
        (GET /api/v2/users/show_many.json with every id): one request each. Priorities are fixed."""
        base = f"{self.settings.base_url}/api/v2"
        if kind == SITE_GROUPS:
            return self._ids(f"{base}/groups.json?per_page=100", "groups")
        if kind == SITE_FIELDS:
            return self._ids(f"{base}/ticket_fields.json?per_page=100", "ticket_fields")
        if kind == SITE_USERS and wanted:
            ids = ",".join(sorted(wanted))
            return self._ids(f"{base}/users/show_many.json?ids={quote(ids, safe=',')}", "users")
        return None

    def _ids(self, url: str, key: str) -> SiteNames:
        body = json_object(self._call("GET", url, None)) or {}
        entries = body.get(key)
        if not isinstance(entries, list):
            raise PlatformError(f"Zendesk answered GET {url} without a '{key}' list")
        found = frozenset(str(e["id"]) for e in entries if isinstance(e, dict) and e.get("id") is not None)
        return SiteNames(found, f"GET {url.split('?')[0]}", complete=not body.get("next_page"))

    def _call(self, method: str, url: str, body: Any) -> requests.Response:
        if not self.settings.can_write:
            raise NotConfigured("Zendesk: 'email' and 'api_token' are required to read and write tickets")
        session = self._session()
        what = f"{method} {url}"
        with network_errors("Zendesk", what, self.settings.timeout):
            response = send(session, method, url, json=body, timeout=self.settings.timeout)
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, what)
        return api_answer("Zendesk", response, what, "a login page or a proxy in front of it, or a url that "
                          "is not the account's (https://<subdomain>.zendesk.com)?")  # fmt: skip

    def _session(self) -> requests.Session:
        """A plain session that zenpy authenticates, built on first use (building it makes no request)."""
        with self._lock:
            if self._http is None:
                assert self.settings.email is not None and self.settings.api_token is not None
                session = requests.Session()  # default adapters: no hidden retries
                self._zenpy = Zenpy(
                    email=self.settings.email,
                    token=self.settings.api_token,
                    session=session,
                    timeout=self.settings.timeout,
                    ratelimit_budget=0,
                )
                self._http = environment_read_once(keep_connections(session), self.settings.base_url)
            return self._http


def api_id(value: str) -> int | str:
    """Zendesk ids are integers in its API; our plans carry them as text."""
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def error_from_response(response: requests.Response, what: str) -> PlatformError:
    """Our error for one failed Zendesk answer: conflict, transient (retry later) or rejected (don't)."""
    message = zendesk_message(response)
    if response.status_code == 409:
        text = f"Zendesk answered 409 to {what}" + (f": {message}" if message else "")
        return ConflictError(text, status=409)
    return answer_error("Zendesk", response, what, message, transient=_TRANSIENT_STATUSES)


def zendesk_message(response: requests.Response) -> str:
    """Zendesk's own explanation: `error`, `description` and per-field `details`, else the text.

    Shapes seen: {"error": "RecordInvalid", "description": "Record validation errors",
    "details": {"priority": [{"description": "Priority: is invalid", "error": "InvalidValue"}]}},
    {"error": "Couldn't authenticate you"} and {"error": {"title": "Forbidden", "message": "…"}}.
    """
    body = json_object(response)
    if body is None:
        return body_text(response)
    parts: list[str] = []
    error = body.get("error")
    if isinstance(error, dict):
        parts += [str(error[key]) for key in ("title", "message") if error.get(key)]
    elif isinstance(error, str) and error:
        parts.append(error)
    if isinstance(body.get("description"), str) and body["description"]:
        parts.append(body["description"])
    head = ": ".join(parts)
    details = body.get("details")
    problems: list[str] = []
    if isinstance(details, dict):
        for field, entries in details.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                said = (entry.get("description") or entry.get("error")) if isinstance(entry, dict) else entry
                problems.append(f"{field}: {said}")
    message = "; ".join([head, *problems] if head else problems)
    return message or body_text(response)
