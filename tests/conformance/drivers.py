"""One driver per platform: the same canonical ticket story, told in each platform's own payloads.

A driver builds signed deliveries shaped exactly like the recorded fixtures (it starts from one
and edits it), registers the platform's write endpoint with `responses`, and decodes the write
requests back into a platform-neutral `Effect`, so one table of expectations covers every adapter.
Adding a fourth platform means one more driver here and passing tests/conformance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import responses

from tests.support.fixtures import load_fixture

SECRET = "conformance-secret"
STORY_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the harness's FakeClock start: emea's L2 is on
JIRA_URL = "https://acme.atlassian.net"
ZENDESK_URL = "https://acme.zendesk.com"
SERVICENOW_URL = "https://acme.service-now.com"
JIRA_BOT, ZENDESK_BOT, SERVICENOW_BOT = "escalator-bot-account-id", "9000000000001", "escalator.bot"

_COMMENT_IDS = itertools.count(20001)


@dataclass(frozen=True)
class Spec:
    """A ticket as the story sees it, before any platform names it."""

    n: int  # makes ids unique per test
    title: str = "Checkout is down for all our stores"
    labels: tuple[str, ...] = ()
    priority: str = "P4"  # what the platform shows now
    tier: str = "L1"  # whose queue it sits in now
    status: str = "open"  # open | pending (canonical names)
    created: datetime | None = None  # None: created at the moment of the event
    team: str | None = (
        None  # the follow-the-sun team of `tier` it sits with (None: the one open at the start)
    )


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Effect:
    """What the platform was asked to change, in the policy's own terms."""

    priority: str | None = None
    tier: str | None = None
    labels_added: frozenset[str] = frozenset()
    note_internal: bool | None = None  # None: no note
    note_text: str = ""
    team: str | None = field(default=None, compare=False)  # the follow-the-sun team it went to, if any


@dataclass
class Write:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)


class Driver:
    platform: str
    settings: dict[str, Any]
    requester = "customer-1"

    def __init__(self, mapping):
        self.mapping = mapping  # the example policy's section for this platform
        self._stamps: dict[int, int] = {}

    def stamp(self, spec: Spec, now: datetime, unit: timedelta = timedelta(milliseconds=1)) -> datetime:
        """The ticket's `updated` for its next change: each change moves it on, as on the platform (the
        delivery id of a Jira or Zendesk change is the ticket and this instant)."""
        count = self._stamps[spec.n] = self._stamps.get(spec.n, -1) + 1
        return now + count * unit

    # story events -------------------------------------------------------------
    def created(self, spec: Spec, now: datetime) -> Delivery: ...
    def priority_changed(self, spec: Spec, before: str, now: datetime) -> Delivery: ...
    def echo(self, spec: Spec, now: datetime) -> Delivery: ...
    def ticket_id(self, spec: Spec) -> str: ...
    def edited(self, spec: Spec, field: str, before: str, now: datetime) -> Delivery:
        """A person's edit of `field` ("status" or "labels"); the ticket now shows `spec`."""
        raise NotImplementedError

    def commented(self, spec: Spec, text: str, now: datetime) -> Delivery: ...
    def ignored(self, now: datetime) -> Delivery: ...

    # the write side -----------------------------------------------------------
    def register_write(self, mock: responses.RequestsMock, status: int = 200, **answer: Any) -> None: ...
    def register_no_note(self, mock: responses.RequestsMock) -> None:
        """The ticket read for a note that may have gone out (its write's answer unknown): none there."""
        raise NotImplementedError

    def error_body(self, message: str) -> dict[str, Any]:
        """The platform's error envelope around `message`."""
        raise NotImplementedError

    def effect(self, writes: list[Write], before: Spec) -> Effect:
        """The write requests read back in the policy's terms; `before` is the ticket they changed."""

    def writes_per_decision(self, effect: Effect) -> int:
        return 1

    # helpers -------------------------------------------------------------------
    def sign(self, body: bytes, now: datetime, delivery_id: str | None = None) -> dict[str, str]: ...

    def deliver(self, body: dict[str, Any], now: datetime, delivery_id: str | None = None) -> Delivery:
        raw = json.dumps(body).encode()
        return Delivery(raw, {"Content-Type": "application/json", **self.sign(raw, now, delivery_id)})

    def writes(self, mock: responses.RequestsMock) -> list[Write]:
        out = []
        for call in mock.calls:
            request = call.request
            body = json.loads(request.body) if request.body else {}
            out.append(Write(request.method, re.sub(r"^https?://[^/]+", "", request.url), body))
        return out

    def priority_value(self, p: str) -> Any:
        return self.mapping.priorities[p]

    def tier_target(self, tier: str, at: datetime = STORY_START, team: str | None = None):
        """Who `tier` is on this platform; for a follow-the-sun tier, `team` or the team chosen at `at`."""
        target = self.mapping.tiers[tier]
        if target.rota is None:
            return target
        return target.rota.team(team).target if team else target.rota.choose(at).team.target

    def priority_named(self, value: Any) -> str | None:
        for p, mapped in self.mapping.priorities.items():
            if mapped == value or (isinstance(mapped, str) and str(value).casefold() == mapped.casefold()):
                return p.value
        return None

    def tier_of(self, *, assignee: str | None = None, group: str | None = None) -> str | None:
        for tier, target in self.mapping.tiers.items():
            teams = [t.target for t in target.rota.teams] if target.rota is not None else [target]
            if any((assignee and t.assignee == assignee) or (group and t.group == group) for t in teams):
                return tier
        return None

    def team_of(self, *, assignee: str | None = None, group: str | None = None) -> str | None:
        """The follow-the-sun team (of any tier) with this assignee or group."""
        for target in self.mapping.tiers.values():
            for team in target.rota.teams if target.rota is not None else ():
                if (assignee and team.target.assignee == assignee) or (group and team.target.group == group):
                    return team.name
        return None


# --- Jira ------------------------------------------------------------------------------


class JiraDriver(Driver):
    platform = "jira"
    settings = {"url": JIRA_URL, "email": "bot@acme.test", "api_token": "t", "webhook_secret": SECRET,
                "account_id": JIRA_BOT, "notes": "internal"}  # fmt: skip

    def key(self, spec: Spec) -> str:
        return f"SHOP-{spec.n}"

    def ticket_id(self, spec: Spec) -> str:
        return str(10000 + spec.n)

    def _issue(self, spec: Spec, now: datetime) -> dict[str, Any]:
        payload = load_fixture("jira", "issue_created__basic")
        payload["timestamp"] = int(now.timestamp() * 1000)
        issue = payload["issue"]
        issue["id"], issue["key"] = str(10000 + spec.n), self.key(spec)
        fields = issue["fields"]
        fields["summary"] = spec.title
        fields["created"] = (spec.created or now).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        fields["updated"] = self.stamp(spec, now).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        fields["status"] = {"name": spec.status.capitalize(), "id": "1"}
        fields["labels"] = list(spec.labels)
        fields["priority"] = {"name": self.priority_value(spec.priority), "id": "3"}
        fields["assignee"] = {
            "accountId": self.tier_target(spec.tier, team=spec.team).assignee,
            "displayName": spec.tier,
        }
        fields["reporter"] = {"accountId": self.requester, "displayName": "Casey Customer"}
        return payload

    def created(self, spec, now):
        return self.deliver(self._issue(spec, now), now)

    def _updated(self, spec, actor: str, items: list[dict[str, Any]], now):
        payload = self._issue(spec, now)
        payload["webhookEvent"], payload["issue_event_type_name"] = "jira:issue_updated", "issue_updated"
        payload["user"] = {"accountId": actor, "displayName": actor}
        payload["changelog"] = {"id": "1", "items": items}
        return self.deliver(payload, now)

    def priority_changed(self, spec, before, now):
        item = {"field": "priority", "fieldtype": "jira", "fieldId": "priority", "from": "1",
                "fromString": self.priority_value(before), "to": "3",
                "toString": self.priority_value(spec.priority)}  # fmt: skip
        return self._updated(spec, "agent-7", [item], now)

    def echo(self, spec, now):
        item = {"field": "labels", "fieldtype": "jira", "fieldId": "labels", "from": None,
                "fromString": "", "to": None, "toString": " ".join(spec.labels)}  # fmt: skip
        return self._updated(spec, JIRA_BOT, [item], now)

    def edited(self, spec, field, before, now):
        after = spec.status.capitalize() if field == "status" else " ".join(spec.labels)
        item = {"field": field, "fieldtype": "jira", "fieldId": field, "from": None,
                "fromString": before, "to": None, "toString": after}  # fmt: skip
        return self._updated(spec, "agent-7", [item], now)

    def commented(self, spec, text, now):
        payload = load_fixture("jira", "comment_created__asks_for_manager")
        payload["comment"]["body"] = text
        payload["comment"]["id"] = str(next(_COMMENT_IDS))  # each comment its own, as on a real site
        payload["comment"]["author"]["accountId"] = self.requester
        trimmed = self._issue(spec, now)["issue"]
        payload["issue"] = {"id": trimmed["id"], "key": trimmed["key"], "self": trimmed.get("self"),
                            "fields": {k: trimmed["fields"][k] for k in
                                       ("summary", "priority", "assignee", "status", "labels")}}  # fmt: skip
        return self.deliver(payload, now)

    def ignored(self, now):
        return self.deliver(load_fixture("jira", "issue_deleted__basic"), now)

    def sign(self, body, now, delivery_id=None):
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature": f"sha256={digest}",
                "X-Atlassian-Webhook-Identifier": delivery_id or str(uuid.uuid4())}  # fmt: skip

    def register_no_note(self, mock):
        comments = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+/comment\?")
        mock.add(responses.GET, comments, json={"comments": []})

    def register_write(self, mock, status=204, **answer):
        mock.add(responses.PUT, re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+$"),
                 status=status, **answer)  # fmt: skip
        # The internal note's POST comes after the edit; a refused edit stops before it.
        comment = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+/comment$")
        mock.add(responses.POST, comment, status=201, json={"id": "10100"})

    def error_body(self, message):
        return {"errorMessages": [message], "errors": {}}

    def writes_per_decision(self, effect):
        return 2 if effect.note_internal else 1  # a JSM-internal note is its own POST

    def effect(self, writes, before):
        priority = tier = team = None
        labels: set[str] = set()
        internal, text = None, ""
        for w in writes:
            if w.method == "PUT":
                fields = w.body.get("fields", {})
                if "priority" in fields:
                    priority = self.priority_named(fields["priority"]["name"])
                if "assignee" in fields:
                    tier = self.tier_of(assignee=fields["assignee"]["accountId"])
                    team = self.team_of(assignee=fields["assignee"]["accountId"])
                labels |= {op["add"] for op in w.body.get("update", {}).get("labels", []) if "add" in op}
                for op in w.body.get("update", {}).get("comment", []):
                    internal, text = False, op["add"]["body"]
            elif w.method == "POST":
                props = {p["key"]: p["value"] for p in w.body.get("properties", [])}
                internal = props.get("sd.public.comment", {}).get("internal", False)
                text = w.body["body"]
        return Effect(priority, tier, frozenset(labels), internal, text, team)


# --- Zendesk (trigger-driven webhooks, our shipped template) -----------------------------


class ZendeskDriver(Driver):
    platform = "zendesk"
    settings = {"url": ZENDESK_URL, "email": "bot@acme.test", "api_token": "t", "webhook_secret": SECRET,
                "user_id": ZENDESK_BOT}  # fmt: skip
    requester = "6130869168922"

    def ticket_id(self, spec: Spec) -> str:
        return str(4000 + spec.n)

    def _body(self, spec: Spec, event: str, actor: str, now: datetime) -> dict[str, Any]:
        body = load_fixture("zendesk", "ticket.created__trigger")
        body["event"] = event
        ticket = body["ticket"]
        ticket.update(
            id=str(4000 + spec.n), title=spec.title, status=spec.status.capitalize(),
            created_at=(spec.created or now).strftime("%Y-%m-%dT%H:%M:%SZ"),
            updated_at=self.stamp(spec, now, unit=timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            priority=self.priority_value(spec.priority).capitalize(), tags=" ".join(spec.labels),
            assignee_id="", group_id=self.tier_target(spec.tier, team=spec.team).group,
            link=f"{ZENDESK_URL}/agent/tickets/{4000 + spec.n}", fields={},
        )  # fmt: skip
        body["requester"].update(id=self.requester, tier="", region="emea")
        body["current_user"] = {"id": actor, "name": actor}
        body["comment"]["author_id"] = self.requester
        return body

    def created(self, spec, now):
        return self.deliver(self._body(spec, "ticket.created", self.requester, now), now)

    def priority_changed(self, spec, before, now):
        return self.deliver(self._body(spec, "ticket.priority_changed", "6130907993114", now), now)

    def echo(self, spec, now):
        return self.deliver(self._body(spec, "ticket.updated", ZENDESK_BOT, now), now)

    def edited(self, spec, field, before, now):
        return self.deliver(self._body(spec, "ticket.updated", "6130907993114", now), now)

    def commented(self, spec, text, now):
        body = self._body(spec, "ticket.comment_added", self.requester, now)
        body["comment"].update(id=str(7000 + spec.n), body=text, public="true", author_id=self.requester)
        return self.deliver(body, now)

    def ignored(self, now):
        return self.deliver(load_fixture("zendesk", "user.deleted__captured"), now)

    def sign(self, body, now, delivery_id=None):
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = hmac.new(SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
        return {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
                "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                "X-Zendesk-Webhook-Invocation-Id": delivery_id or str(uuid.uuid4())}  # fmt: skip

    def register_no_note(self, mock):
        comments = re.compile(re.escape(f"{ZENDESK_URL}/api/v2/tickets/") + r"\d+/comments\.json")
        mock.add(responses.GET, comments, json={"comments": []})

    def register_write(self, mock, status=200, **answer):
        if status < 300 and "json" not in answer and "body" not in answer:
            answer["json"] = load_fixture("zendesk", "api/ticket_update_put_response_200")
        mock.add(responses.PUT, re.compile(re.escape(f"{ZENDESK_URL}/api/v2/tickets/") + r"\d+\.json$"),
                 status=status, **answer)  # fmt: skip

    def error_body(self, message):
        return {"error": "Forbidden", "description": message}

    def effect(self, writes, before):
        (w,) = [w for w in writes if w.method == "PUT"][-1:]
        ticket = w.body["ticket"]
        note = ticket.get("comment")
        return Effect(
            self.priority_named(ticket["priority"]) if "priority" in ticket else None,
            self.tier_of(group=str(ticket["group_id"])) if "group_id" in ticket else None,
            frozenset(ticket.get("tags", ())) - set(before.labels),  # tags is the full list
            None if note is None else not note["public"],
            "" if note is None else note["body"],
            self.team_of(group=str(ticket["group_id"])) if "group_id" in ticket else None,
        )


# --- ServiceNow (our business rule's payload) ----------------------------------------------


class ServiceNowDriver(Driver):
    platform = "servicenow"
    settings = {"url": SERVICENOW_URL, "user": SERVICENOW_BOT, "password": "p", "webhook_secret": SECRET,
                "extra_fields": ["u_escalator_labels"]}  # fmt: skip
    requester = "casey.customer"
    _mods: dict[int, int]

    def __init__(self, mapping):
        super().__init__(mapping)
        self._mods = {}

    def ticket_id(self, spec: Spec) -> str:
        return f"{spec.n:032x}"  # a sys_id

    def _body(self, spec: Spec, now: datetime, *, insert: bool, actor: str, changes=()) -> dict[str, Any]:
        body = load_fixture("servicenow", "incident_inserted__basic" if insert else
                            "incident_updated__comment_by_caller")  # fmt: skip
        mod = self._mods[spec.n] = self._mods.get(spec.n, -1) + 1
        value = self.priority_value(spec.priority)
        body.update(
            sys_id=self.ticket_id(spec), number=f"INC{spec.n:07d}", sys_mod_count=str(mod),
            sys_updated_by=actor, short_description=spec.title,
            state={"open": "2", "pending": "3"}[spec.status],
            sys_created_on=(spec.created or now).strftime("%Y-%m-%d %H:%M:%S"),
            sys_updated_on=now.strftime("%Y-%m-%d %H:%M:%S"),
            impact=str(value["impact"]), urgency=str(value["urgency"]), priority=spec.priority[1],
            assignment_group=self.tier_target(spec.tier, team=spec.team).group, assigned_to="",
            caller_id="5b7c200d0a640069006b3845b5d0fa7c",
            extra_fields={"u_escalator_labels": ",".join(sorted(spec.labels))},
            changes=list(changes), comment=None,
        )  # fmt: skip
        body["caller"].update(user_name=self.requester, tier="", region="emea")
        return body

    def created(self, spec, now):
        return self.deliver(self._body(spec, now, insert=True, actor=self.requester), now)

    def priority_changed(self, spec, before, now):
        was, value = self.priority_value(before), self.priority_value(spec.priority)
        changes = [{"field": f, "previous": str(was[f]), "current": str(value[f])}
                   for f in ("impact", "urgency") if was[f] != value[f]]  # fmt: skip
        changes.append({"field": "priority", "previous": before[1], "current": spec.priority[1]})
        return self.deliver(self._body(spec, now, insert=False, actor="itil.agent", changes=changes), now)

    def echo(self, spec, now):
        change = {"field": "u_escalator_labels", "previous": "", "current": ",".join(sorted(spec.labels))}
        return self.deliver(self._body(spec, now, insert=False, actor=SERVICENOW_BOT, changes=[change]), now)

    def edited(self, spec, field, before, now):
        if field == "status":
            states = {"open": "2", "pending": "3"}
            change = {"field": "state", "previous": states[before], "current": states[spec.status]}
        else:
            labels = ",".join(sorted(spec.labels))
            change = {"field": "u_escalator_labels", "previous": before, "current": labels}
        return self.deliver(self._body(spec, now, insert=False, actor="itil.agent", changes=[change]), now)

    def commented(self, spec, text, now):
        body = self._body(spec, now, insert=False, actor=self.requester)
        body["comment"] = {"sys_id": f"{spec.n:031x}c", "text": text, "author": self.requester,
                           "created": now.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        return self.deliver(body, now)

    def ignored(self, now):
        return self.deliver(load_fixture("servicenow", "incident_deleted__basic"), now)

    def sign(self, body, now, delivery_id=None):
        stamp = str(int(now.timestamp()))
        digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).digest()
        return {"X-Escalator-Signature": base64.b64encode(digest).decode(), "X-Escalator-Timestamp": stamp}

    def deliver(self, body, now, delivery_id=None):
        # ServiceNow's delivery id is in the body (sys_id:sys_mod_count): a redelivery is the same body.
        return super().deliver(body, now, None)

    def register_no_note(self, mock):
        journal = re.compile(re.escape(f"{SERVICENOW_URL}/api/now/table/sys_journal_field") + r"\?")
        mock.add(responses.GET, journal, json={"result": []})

    def register_write(self, mock, status=200, **answer):
        if status < 300 and "json" not in answer and "body" not in answer:
            answer["json"] = load_fixture("servicenow", "api/table_patch_incident__urgency")
        url = re.compile(re.escape(f"{SERVICENOW_URL}/api/now/table/incident/") + r"\w+$")
        mock.add(responses.PATCH, url, status=status, **answer)

    def error_body(self, message):
        return {"error": {"message": "Operation Failed", "detail": message}, "status": "failure"}

    def effect(self, writes, before):
        (w,) = [w for w in writes if w.method == "PATCH"][-1:]
        body = w.body
        priority = None
        if "impact" in body or "urgency" in body:
            # Only what changes is sent; the rest of the pair is what the ticket had.
            sent = {k: str(body[k]) for k in ("impact", "urgency") if k in body}
            pair = {k: str(v) for k, v in {**self.priority_value(before.priority), **sent}.items()}
            named = {p.value: {k: str(x) for k, x in v.items()} for p, v in self.mapping.priorities.items()}
            priority = next((p for p, v in named.items() if v == pair), None)
        labels = frozenset(filter(None, body.get("u_escalator_labels", "").split(",")))
        internal = True if "work_notes" in body else (False if "comments" in body else None)
        return Effect(
            priority,
            self.tier_of(group=body["assignment_group"]) if "assignment_group" in body else None,
            labels - set(before.labels),  # the field holds the full list
            internal,
            body.get("work_notes") or body.get("comments") or "",
            self.team_of(group=body["assignment_group"]) if "assignment_group" in body else None,
        )


DRIVERS = {"jira": JiraDriver, "zendesk": ZendeskDriver, "servicenow": ServiceNowDriver}


# --- the story's tickets and steps ---------------------------------------------------------------

OUTAGE = Spec(1, labels=("outage",), priority="P4", tier="L1")
SECURITY = Spec(2, title="Someone else's orders show up in my account", labels=("security",))
MINOR = Spec(3, title="A typo on the help page", labels=("minor",), priority="P4")
QUESTION = Spec(4, title="Where is my invoice?", priority="P4")


def post(esc, driver: Driver, delivery: Delivery):
    return esc.http.post(f"/webhooks/{driver.platform}", data=delivery.body, headers=delivery.headers)


def decide(esc, driver: Driver, delivery: Delivery) -> dict[str, Any]:
    """Deliver, let the worker run, return the newest audit record."""
    answer = post(esc, driver, delivery)
    assert answer.status_code == 202, answer.json
    esc.work()
    return esc.audit()[-1]


def after(spec: Spec, effect: Effect) -> Spec:
    """The ticket once the platform took `effect` (what the next event of the story shows)."""
    return Spec(
        spec.n, spec.title, tuple(sorted(set(spec.labels) | effect.labels_added)),
        effect.priority or spec.priority, effect.tier or spec.tier,
    )  # fmt: skip
