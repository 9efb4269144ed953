"""Outbound side: a `Plan` → the exact Jira REST request(s), and sending them."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import quote

import requests
from jira import JIRA
from jira.exceptions import JIRAError
from jira.resilientsession import raise_on_error

from connector.model import Plan, Ticket, TicketRef
from platforms.base import (
    SITE_FIELDS,
    SITE_PRIORITIES,
    SITE_USERS,
    Identity,
    OutboundRequest,
    SentRequest,
    SiteNames,
)
from platforms.errors import (
    NotConfigured,
    PayloadError,
    PlatformError,
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
from platforms.jira.normalise import ticket_from_issue
from platforms.jira.settings import Settings

# Jira retries its own webhooks on these, and they mean the same for our writes:
# timeout, conflict (concurrent edit of the issue), too early, rate limited.
_TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})

# The JSM entity property that makes a comment internal (agents only). On a project
# without JSM the property is stored but has no effect: the comment is then a normal one.
_INTERNAL_COMMENT_PROPERTY = {"key": "sd.public.comment", "value": {"internal": True}}
# Our own comment property: which decision a note belongs to (read back with expand=properties).
MARK_PROPERTY = "escalator.decision"


class JiraClient:
    """One configured Jira site: renders plans and sends them through the `jira` library's session.

    We use `jira.JIRA` only for its session (auth, base headers, timeout) and send the
    request we rendered ourselves: `Issue.update()` re-reads the issue after writing
    (two calls, and a read we do not need), and its `assignee=` shortcut sends `name`,
    which Jira Cloud rejects since usernames were removed for privacy (GDPR).
    """

    identity_setting = "account_id"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.own_account_id: str | None = settings.account_id
        self._jira: JIRA | None = None
        self._lock = threading.Lock()

    # --- render (pure) -------------------------------------------------------

    def render(self, plan: Plan) -> list[OutboundRequest]:
        """One PUT for the edit, plus one POST when the note must be a JSM-internal comment.

        `plan.group` is ignored: Jira has no native group assignment (no CAP_GROUP);
        a tier that needs a team field maps to a custom field in `plan.fields` instead.
        """
        # The key, or the id when the event named the issue by id only (Server's bare comment event).
        issue_url = (
            f"{self.settings.url}/rest/api/2/issue/{quote(plan.ticket.key or plan.ticket.id, safe='')}"
        )
        note = plan.note
        note_as_internal_comment = note is not None and note.internal and self.settings.notes == "internal"

        fields: dict[str, Any] = dict(plan.fields)
        if plan.priority is not None:
            fields["priority"] = {"name": plan.priority}
        if plan.assignee is not None:
            # Cloud: accountId, never name/key (Cloud ignores or rejects usernames). Server / Data
            # Center has no accountIds: its REST API assigns by username.
            who = "name" if self.settings.deployment == "server" else "accountId"
            fields["assignee"] = {who: plan.assignee}

        update: dict[str, list[dict[str, Any]]] = {}
        label_ops = [{"add": label} for label in sorted(plan.labels_add)]
        label_ops += [{"remove": label} for label in sorted(plan.labels_remove)]
        if label_ops:
            # add/remove operations, not a full `labels` list: a label a person adds
            # between our read and our write survives.
            update["labels"] = label_ops
        if note is not None and not note_as_internal_comment:
            comment: dict[str, Any] = {"body": note.text}
            if note.mark:
                comment["properties"] = [_mark_property(note.mark)]
            update["comment"] = [{"add": comment}]

        requests_: list[OutboundRequest] = []
        body: dict[str, Any] = {}
        if fields:
            body["fields"] = fields
        if update:
            body["update"] = update
        if body:
            requests_.append(OutboundRequest("PUT", issue_url, body, purpose="edit issue"))
        if note_as_internal_comment:
            assert note is not None
            # Last on purpose: if it fails and the plan is retried, the PUT before it
            # is idempotent (set priority, add/remove labels) and sends no comment.
            requests_.append(
                OutboundRequest(
                    "POST",
                    f"{issue_url}/comment",
                    {
                        "body": note.text,
                        "properties": [
                            _INTERNAL_COMMENT_PROPERTY,
                            *([_mark_property(note.mark)] if note.mark else []),
                        ],
                    },
                    purpose="internal note",
                )
            )
        return requests_

    # --- send ----------------------------------------------------------------

    def send(self, request: OutboundRequest) -> SentRequest:
        """Send one rendered request; TransientPlatformError or RejectedByPlatform on failure."""
        data = json.dumps(request.json) if request.json is not None else None
        response = self._call(request.method, request.url, data)
        return SentRequest(request, response.status_code, rate_limit_headers(response.headers))

    def fetch(self, ref: TicketRef) -> Ticket:
        """The issue as it is now: one GET (e.g. to learn the reporter behind a trimmed comment event)."""
        url = f"{self.settings.url}/rest/api/2/issue/{quote(ref.key or ref.id, safe='')}"
        response = self._call("GET", url, None)
        try:
            return ticket_from_issue(response.json())
        except (ValueError, PayloadError) as exc:
            raise PlatformError(f"Jira answered GET {url} with an unreadable issue: {exc}") from exc

    def note_landed(self, ref: TicketRef, mark: str) -> bool:
        """Whether a comment carrying `mark` (our comment property) is on the issue: one GET of its
        newest comments with their properties."""
        url = (f"{self.settings.url}/rest/api/2/issue/{quote(ref.key or ref.id, safe='')}/comment"
               "?expand=properties&orderBy=-created&maxResults=100")  # fmt: skip
        body = json_object(self._call("GET", url, None)) or {}
        for comment in body.get("comments") or []:
            for prop in (comment.get("properties") or []) if isinstance(comment, dict) else []:
                if isinstance(prop, dict) and prop.get("key") == MARK_PROPERTY:
                    value = prop.get("value")
                    if isinstance(value, dict) and value.get("mark") == mark:
                        return True
        return False

    def whoami(self) -> Identity:
        """GET /rest/api/2/myself: the account the API token belongs to (Server: its username)."""
        url = f"{self.settings.url}/rest/api/2/myself"
        body = json_object(self._call("GET", url, None)) or {}
        key = "name" if self.settings.deployment == "server" else "accountId"
        if not isinstance(body.get(key), str):
            raise PlatformError(f"Jira answered GET {url} without an {key}")
        return Identity(body[key], str(body.get("displayName") or ""))

    def site_names(self, kind: str, wanted: frozenset[str]) -> SiteNames | None:
        """Priorities (GET /rest/api/2/priority), fields (GET /rest/api/2/field) and, on Cloud, users
        (GET /rest/api/2/user/bulk with every accountId): one request each. Jira has no groups."""
        base = f"{self.settings.url}/rest/api/2"
        if kind == SITE_PRIORITIES:
            url = f"{base}/priority"
            return SiteNames(frozenset(_names(self._list(url), "name")), f"GET {url}")
        if kind == SITE_FIELDS:
            url = f"{base}/field"
            return SiteNames(frozenset(_names(self._list(url), "id")), f"GET {url}")
        if kind == SITE_USERS and self.settings.deployment == "cloud" and wanted:
            query = "&".join(f"accountId={quote(a, safe='')}" for a in sorted(wanted))
            url = f"{base}/user/bulk?maxResults={len(wanted)}&{query}"
            body = json_object(self._call("GET", url, None)) or {}
            values = body.get("values")
            if not isinstance(values, list):
                raise PlatformError(f"Jira answered GET {url} without a 'values' list")
            return SiteNames(frozenset(_names(values, "accountId")), f"GET {base}/user/bulk")
        return None

    def _list(self, url: str) -> list[Any]:
        response = self._call("GET", url, None)
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformError(f"Jira answered GET {url} with a body that is not JSON") from exc
        if not isinstance(body, list):
            raise PlatformError(f"Jira answered GET {url} with {type(body).__name__}, not a list")
        return body

    def _call(self, method: str, url: str, data: str | None) -> requests.Response:
        if not self.settings.can_write:
            raise NotConfigured("Jira: 'email' and 'api_token' are required to write to issues")
        session = self._session()
        what = f"{method} {url}"
        with network_errors("Jira", what, self.settings.timeout):
            # What the library's session.request does with max_retries=0, without its per-call
            # merging (platforms/http.py `send`): its headers (auth, Content-Type: application/json),
            # its timeout, one attempt, Atlassian's login-failure warning; an answer from 400 up fails.
            response = send(session, method, url, data=data, timeout=session.timeout)
        if response.ok:
            _warn_on_failed_login(response)
            return api_answer("Jira", response, what, "a login page or a proxy in front of it, or a url that "
                              "is not the site's?")  # fmt: skip
        try:  # the library's error for it, kept as the cause as when its session raised it
            raise_on_error(response, data=data, headers=session.headers.copy(), verify=session.verify)
        except JIRAError as exc:
            # We build our own message: the library's error dumps all headers and the body.
            raise error_from_response(response, what) from exc
        raise error_from_response(response, what)  # (not reached: the library raises from 400 up)

    def _session(self) -> requests.Session:
        """The `jira` library's session, built on first use.

        Building it makes no request: get_server_info=False skips GET serverInfo,
        validate stays False (no GET session), check_update=False skips the PyPI
        look-up. max_retries=0 because the worker retries, honouring Retry-After,
        instead of the library sleeping inside our transaction.
        """
        with self._lock:
            if self._jira is None:
                assert self.settings.email is not None and self.settings.api_token is not None
                self._jira = JIRA(
                    server=self.settings.url,
                    basic_auth=(self.settings.email, self.settings.api_token),
                    get_server_info=False,
                    max_retries=0,
                    options={"check_update": False},
                    timeout=self.settings.timeout,
                )
                keep_connections(self._jira._session)
                environment_read_once(self._jira._session, self.settings.url)
            return self._jira._session


def _warn_on_failed_login(response: requests.Response) -> None:
    """The library's ResilientSession logs this for an empty 2xx that says the login failed."""
    reason = response.headers.get("X-Seraph-LoginReason") or ""
    if len(response.content) == 0 and "AUTHENTICATED_FAILED" in reason:
        logging.getLogger("jira.resilientsession").warning(
            "Atlassian's bug https://jira.atlassian.com/browse/JRA-41559"
        )


def _names(entries: list[Any], key: str) -> list[str]:
    return [str(e[key]) for e in entries if isinstance(e, dict) and isinstance(e.get(key), str | int)]


def _mark_property(mark: str) -> dict[str, Any]:
    return {"key": MARK_PROPERTY, "value": {"mark": mark}}


def error_from_response(response: requests.Response, what: str) -> PlatformError:
    """Our error for one failed Jira answer: transient (retry later) or rejected (don't)."""
    reason = response.headers.get("RateLimit-Reason")
    note = f" (RateLimit-Reason: {reason})" if reason else ""
    return answer_error(
        "Jira", response, what, jira_message(response), transient=_TRANSIENT_STATUSES, note=note
    )


def jira_message(response: requests.Response) -> str:
    """Jira's own explanation: `errorMessages` and `errors` {field: message}, else the text."""
    body = json_object(response)
    if body is None:
        return body_text(response)
    parts: list[str] = []
    messages = body.get("errorMessages")
    if isinstance(messages, list):
        parts += [str(m) for m in messages if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {msg}" for field, msg in errors.items()]
    for key in ("message", "errorMessage"):  # older and gateway-level errors
        if not parts and isinstance(body.get(key), str):
            parts.append(body[key])
    return "; ".join(parts) if parts else body_text(response)
