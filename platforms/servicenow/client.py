"""Outbound side: a `Plan` → the exact Table API request(s), sending them, and reading an incident back."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pysnow
import requests

from connector.model import Plan, Ticket, TicketRef
from platforms.base import (
    CAP_ASSIGNEE,
    CAP_GROUP,
    CAP_INTERNAL_NOTES,
    CAP_LABELS,
    CAP_PRIORITY,
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
    NotConfigured,
    PlatformError,
    TransientPlatformError,
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
    retry_after_header,
    send,
)
from platforms.servicenow.normalise import normalise_record
from platforms.servicenow.settings import Settings

# 429 is ServiceNow's rate limit (per-hour rules); 408 comes from proxies and load balancers.
# Nothing else below 500 is worth retrying: the Table API has no optimistic locking, so a
# 409 is not a "re-read and re-plan" conflict but an answer like any other 4xx.
_TRANSIENT_STATUSES = frozenset({408, 429})
# The headers of every request we send (besides the session's: auth, User-Agent).
_JSON = {"Accept": "application/json", "Content-Type": "application/json"}

# What every installation can do (the provider declares these). No CAP_LABELS: incidents
# have no labels field; an installation with `label_entry` adds it (see `capabilities`).
PROVIDER_CAPABILITIES = frozenset({CAP_PRIORITY, CAP_ASSIGNEE, CAP_GROUP, CAP_INTERNAL_NOTES})


class ServiceNowClient:
    """One configured ServiceNow instance: renders plans and sends them through pysnow's session.

    We use `pysnow.Client` only for its authenticated session (basic auth, JSON headers)
    and send the request we rendered ourselves, to our configured base URL: pysnow's
    `Resource.update()` is a GET followed by a PUT (two calls, and a PUT where we mean a
    PATCH), and its URL builder cannot express a base URL with a path (a proxy prefix).
    """

    identity_setting = "user"

    def __init__(self, settings: Settings):
        self.settings = settings
        # Business rules report `sys_updated_by` as a user_name: the same as our login.
        self.own_account_id: str | None = settings.user
        self._snow: pysnow.Client | None = None
        self._lock = threading.Lock()

    @property
    def capabilities(self) -> frozenset[str]:
        """The provider's capabilities, plus labels when tags are written as label_entry records."""
        if self.settings.label_entry:
            return PROVIDER_CAPABILITIES | {CAP_LABELS}
        return PROVIDER_CAPABILITIES

    # --- render (pure) -------------------------------------------------------

    def render(self, plan: Plan) -> list[OutboundRequest]:
        """One PATCH of the incident carrying only what changes, then one POST per added tag.

        `plan.fields` is sent as given, values as strings (impact and urgency arrive here
        from the policy mapping, e.g. P1 → {impact: 1, urgency: 1}). Priority is never sent,
        neither `plan.priority` nor a "priority" field: the instance computes it from impact
        and urgency, and a written priority would be recomputed anyway. A note is a
        `work_notes` entry when internal, an "Additional comments" entry otherwise.

        Labels (only with `label_entry`): incidents have no labels field; a ServiceNow tag is
        a label_entry record. Adding one is a single POST, naming the tag by its name thanks
        to sysparm_input_display_value. Removing one needs its label_entry sys_id (a GET,
        then a DELETE), which a pure render cannot know, so `plan.labels_remove` is not sent:
        the labels capability covers adds only.
        """
        incident_url = f"{self._table_url('incident')}/{quote(plan.ticket.id, safe='')}"
        body: dict[str, str] = {
            name: _as_text(value) for name, value in plan.fields.items() if name != "priority"
        }
        if plan.group is not None:
            body["assignment_group"] = plan.group
        if plan.assignee is not None:
            body["assigned_to"] = plan.assignee
        if plan.note is not None:
            body["work_notes" if plan.note.internal else "comments"] = marked_note(
                plan.note.text, plan.note.mark
            )

        rendered: list[OutboundRequest] = []
        if body:
            rendered.append(OutboundRequest("PATCH", incident_url, body, purpose="update incident"))
        if self.settings.label_entry:
            # After the PATCH on purpose: if a POST fails and the plan is retried, the PATCH
            # before it is idempotent except for its note, and confirmed requests are skipped.
            for label in sorted(plan.labels_add):
                rendered.append(
                    OutboundRequest(
                        "POST",
                        f"{self._table_url('label_entry')}?sysparm_input_display_value=true",
                        {"label": label, "table": "incident", "table_key": plan.ticket.id,
                         "title": plan.ticket.key},
                        purpose=f"add tag {label}",
                    )
                )  # fmt: skip
        return rendered

    # --- send ----------------------------------------------------------------

    def send(self, request: OutboundRequest) -> SentRequest:
        """Send one rendered request; TransientPlatformError or RejectedByPlatform on failure."""
        response = self._request(request.method, request.url, request.json)
        return SentRequest(request, response.status_code, rate_limit_headers(response.headers))

    def note_landed(self, ref: TicketRef, mark: str) -> bool:
        """Whether a journal entry (work note or comment) of the incident carries `mark`'s line: one
        Table API GET on sys_journal_field, where ServiceNow keeps every journal entry."""
        query = f"element_id={ref.id}^valueLIKE{note_mark_line(mark)}"
        url = (f"{self._table_url('sys_journal_field')}?sysparm_query={quote(query, safe='=^')}"
               "&sysparm_fields=sys_id&sysparm_limit=1")  # fmt: skip
        body = json_object(self._request("GET", url, None)) or {}
        return bool(body.get("result"))

    def fetch(self, ref: TicketRef) -> Ticket:
        """The incident as it is now: one GET of its Table API record."""
        url = f"{self._table_url('incident')}/{quote(ref.id, safe='')}?sysparm_exclude_reference_link=true"
        response = self._request("GET", url, None)
        try:
            record = response.json()
        except ValueError as exc:
            raise TransientPlatformError(f"ServiceNow answered GET {url} with a non-JSON body") from exc
        settings = self.settings
        return normalise_record(record, base_url=settings.base_url, extra_fields=settings.extra_fields)

    def whoami(self) -> Identity:
        """The sys_user record of our login (one GET). Business rules report sys_updated_by as the
        user_name, so that is the identity; an ACL that hides sys_user still proves the login works."""
        user = self.settings.user or ""
        url = (
            f"{self._table_url('sys_user')}?sysparm_query={quote('user_name=' + user, safe='')}"
            "&sysparm_fields=user_name,name&sysparm_limit=1"
        )
        rows = (json_object(self._request("GET", url, None)) or {}).get("result")
        if not isinstance(rows, list):
            raise PlatformError(f"ServiceNow answered GET {url} without a 'result' list")
        name = rows[0].get("name", "") if rows and isinstance(rows[0], dict) else ""
        return Identity(user, str(name))

    def site_names(self, kind: str, wanted: frozenset[str]) -> SiteNames | None:
        """Assignment groups (sys_user_group), users (sys_user) and incident columns (sys_dictionary, the
        incident's own and those it inherits from task): one Table API GET each, for every wanted id."""
        if not wanted or kind not in (SITE_GROUPS, SITE_USERS, SITE_FIELDS):
            return None
        listed = ",".join(sorted(wanted))
        if kind == SITE_FIELDS:
            table, key, query = "sys_dictionary", "element", f"nameINincident,task^elementIN{listed}"
        else:
            table, key, query = (
                ("sys_user_group" if kind == SITE_GROUPS else "sys_user"),
                "sys_id",
                f"sys_idIN{listed}",
            )
        url = (
            f"{self._table_url(table)}?sysparm_query={quote(query, safe='')}"
            f"&sysparm_fields={key}&sysparm_limit={max(len(wanted) * 2, 10)}"
        )
        rows = (json_object(self._request("GET", url, None)) or {}).get("result")
        if not isinstance(rows, list):
            raise PlatformError(f"ServiceNow answered GET {url} without a 'result' list")
        found = frozenset(str(r[key]) for r in rows if isinstance(r, dict) and r.get(key))
        return SiteNames(found, f"GET {self._table_url(table)}")

    def _request(self, method: str, url: str, body: Any) -> requests.Response:
        if not self.settings.can_write:
            raise NotConfigured("ServiceNow: 'user' and 'password' are required to read and write incidents")
        what = f"{method} {url}"
        data = json.dumps(body) if body is not None else None
        with network_errors("ServiceNow", what, self.settings.timeout):
            response = send(
                self._session(), method, url, data=data, headers=_JSON, timeout=self.settings.timeout
            )
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, what)
        # A hibernating developer instance answers 200 with HTML too.
        return api_answer("ServiceNow", response, what, "is the instance hibernating or behind a login page?")

    def _table_url(self, table: str) -> str:
        return f"{self.settings.base_url}/api/now/table/{table}"

    def _session(self) -> requests.Session:
        """pysnow's authenticated session, built on first use (building it makes no request).

        pysnow wants a host or an instance name; ours may be any base URL, so it gets the
        host of that URL only to be satisfied: every request goes to the full URL we built.
        """
        with self._lock:
            if self._snow is None:
                assert self.settings.user is not None and self.settings.password is not None
                parts = urlsplit(self.settings.base_url)
                self._snow = pysnow.Client(
                    host=parts.netloc,
                    use_ssl=parts.scheme == "https",
                    user=self.settings.user,
                    password=self.settings.password,
                )
                self._snow.session.headers["User-Agent"] = "Escalator"
                keep_connections(self._snow.session)
                environment_read_once(self._snow.session, self.settings.base_url)
            return self._snow.session


def error_from_response(response: requests.Response, what: str) -> PlatformError:
    """Our error for one failed ServiceNow answer: transient (retry later) or rejected (don't)."""
    return answer_error(
        "ServiceNow", response, what, servicenow_message(response),
        transient=_TRANSIENT_STATUSES, retry_after=_retry_after,
    )  # fmt: skip


def servicenow_message(response: requests.Response) -> str:
    """ServiceNow's own explanation: `error.message` and `error.detail`, else the text."""
    body = json_object(response)
    error = body.get("error") if body is not None else None
    if not isinstance(error, dict):
        return body_text(response)
    parts = [str(error[key]) for key in ("message", "detail") if error.get(key)]
    return ": ".join(parts) if parts else body_text(response)


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After; else the rate limit's X-RateLimit-Reset (the Unix time the hourly count resets)."""
    retry_after = retry_after_header(response)
    if retry_after is not None:
        return retry_after
    reset = response.headers.get("X-RateLimit-Reset", "").strip()
    if reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None


def _as_text(value: Any) -> str:
    """A field value as the Table API takes it: a string ("1", "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
