"""Reconcile, per platform: a change whose webhook never came is found, processed once, and its late
webhook is a duplicate; the first pass does not backfill; watermarks survive a restart; a 429
while paging is waited out. The platforms' search APIs are stubbed with `responses` in their
documented shapes (built from the recorded fixtures)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import responses

from connector.config import Config
from connector.reconcile import reconcile
from connector.runtime import build_runtime
from connector.store.tables import inbox
from platforms.errors import TransientPlatformError
from tests.conformance.drivers import DRIVERS, JIRA_URL, SERVICENOW_URL, ZENDESK_URL, Spec
from tests.support.fixtures import load_fixture
from tests.support.harness import FakeClock, start

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_ZONE = ZoneInfo("Europe/Berlin")
CHANGED_AT = START + timedelta(minutes=2)
OVERLAP = 240  # seconds: the second pass after a change still reads it


# --- the platforms' search answers, in their documented shapes --------------------------------


class Jira:
    search = re.compile(re.escape(f"{JIRA_URL}/rest/api/3/search/jql"))

    def __init__(self, driver):
        self.driver = driver

    def change(self, spec: Spec, at: datetime) -> tuple[dict[str, Any], bytes, dict[str, str]]:
        """(the issue as the search returns it, the webhook body and headers of the same change)"""
        payload = self.driver._issue(spec, at)
        payload["webhookEvent"], payload["issue_event_type_name"] = "jira:issue_updated", "issue_updated"
        payload["user"] = {"accountId": "agent-7", "displayName": "agent-7"}
        item = {
            "field": "labels",
            "fieldtype": "jira",
            "from": None,
            "fromString": "",
            "to": None,
            "toString": " ".join(spec.labels),
        }
        payload["changelog"] = {"id": "1", "items": [item]}
        issue = dict(payload["issue"])
        # The REST answer renders `updated` in another zone than the webhook: the same instant.
        issue["fields"] = dict(
            issue["fields"], updated=at.astimezone(_ZONE).strftime("%Y-%m-%dT%H:%M:%S.000%z")
        )
        history = {
            "id": "1",
            "author": payload["user"],
            "created": issue["fields"]["updated"],
            "items": [item],
        }
        issue["changelog"] = {"startAt": 0, "maxResults": 1, "total": 1, "histories": [history]}
        delivery = self.driver.deliver(payload, at)
        return issue, delivery.body, delivery.headers

    def register(
        self, api: responses.RequestsMock, pages: list[list[dict[str, Any]]], *, throttle: bool
    ) -> None:
        api.add(
            responses.GET,
            f"{JIRA_URL}/rest/api/3/myself",
            json={**load_fixture("jira", "api/myself"), "timeZone": "Europe/Berlin"},
        )
        calls = {"n": 0}

        def answer(request):
            token = parse_qs(urlsplit(request.url).query).get("nextPageToken", ["0"])[0]
            index = int(token)
            calls["n"] += 1
            if throttle and index == 1 and calls["n"] == 2:
                return 429, {"Retry-After": "7"}, json.dumps({"errorMessages": ["Rate limit exceeded"]})
            last = index == len(pages) - 1
            page = {"issues": pages[index], "isLast": last}
            if not last:
                page["nextPageToken"] = str(index + 1)
            return 200, {"Content-Type": "application/json"}, json.dumps(page)

        api.add_callback(responses.GET, self.search, callback=answer)

    def window_start(self, api: responses.RequestsMock) -> str:
        query = parse_qs(urlsplit(_calls(api, "search/jql")[0]).query)
        return re.search(r'updated >= "([^"]+)"', query["jql"][0])[1]


class Zendesk:
    export = f"{ZENDESK_URL}/api/v2/incremental/tickets/cursor.json"
    comments_url = re.compile(re.escape(f"{ZENDESK_URL}/api/v2/tickets/") + r"\d+/comments\.json")

    def __init__(self, driver):
        self.driver = driver
        self.comments: list[dict[str, Any]] = []  # the newest first, as a missed change's look-up reads them

    def change(self, spec: Spec, at: datetime):
        body = self.driver._body(spec, "ticket.updated", "agent-7", at)
        ticket = load_fixture("zendesk", "api/ticket_get_response")["ticket"]
        shown = body["ticket"]
        ticket.update(
            id=int(shown["id"]),
            subject=shown["title"],
            status=shown["status"].lower(),
            priority=shown["priority"].lower(),
            tags=shown["tags"].split(),
            group_id=int(shown["group_id"]) if shown["group_id"] else None,
            assignee_id=None,
            created_at=shown["created_at"],
            updated_at=shown["updated_at"],
        )
        delivery = self.driver.deliver(body, at)
        return ticket, delivery.body, delivery.headers

    def register(self, api, pages, *, throttle):
        calls = {"n": 0}

        def answer(request):
            cursor = parse_qs(urlsplit(request.url).query).get("cursor", ["c0"])[0]
            index = int(cursor[1:])
            calls["n"] += 1
            if throttle and index == 1 and calls["n"] == 2:
                return 429, {"Retry-After": "7"}, "Too Many Requests"
            last = index == len(pages) - 1
            page = {
                "tickets": pages[index],
                "after_cursor": None if last else f"c{index + 1}",
                "after_url": None,
                "before_cursor": None,
                "before_url": None,
                "end_of_stream": last,
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(page)

        api.add_callback(responses.GET, self.export, callback=answer)
        api.add_callback(
            responses.GET,
            self.comments_url,
            callback=lambda request: (200, {}, json.dumps({"comments": self.comments[:1], "count": 0})),
        )

    def window_start(self, api) -> str:
        start = int(parse_qs(urlsplit(_calls(api, "incremental")[0]).query)["start_time"][0])
        return datetime.fromtimestamp(start, UTC).isoformat()


class ServiceNow:
    table = f"{SERVICENOW_URL}/api/now/table/incident"
    journal = f"{SERVICENOW_URL}/api/now/table/sys_journal_field"

    def __init__(self, driver):
        self.driver = driver
        self.journal_entries: list[dict[str, Any]] = []  # newest first

    def change(self, spec: Spec, at: datetime):
        self.driver._mods[spec.n] = 6  # the business rule's next call is mod count 7
        body = self.driver._body(spec, at, insert=False, actor="agent.seven")
        record = load_fixture("servicenow", "api/table_get_incident__by_sys_id")["result"]
        record = {k: (v["value"] if isinstance(v, dict) else v) for k, v in record.items()}
        record.update(
            {
                k: body[k]
                for k in (
                    "sys_id",
                    "number",
                    "sys_mod_count",
                    "sys_updated_on",
                    "sys_created_on",
                    "sys_updated_by",
                    "short_description",
                    "state",
                    "impact",
                    "urgency",
                    "priority",
                    "assignment_group",
                    "assigned_to",
                    "caller_id",
                )
            }
        )
        record["caller_id.user_name"] = body["caller"]["user_name"]
        record["u_escalator_labels"] = body["extra_fields"]["u_escalator_labels"]
        delivery = self.driver.deliver(body, at)
        return record, delivery.body, delivery.headers

    def register(self, api, pages, *, throttle):
        calls = {"n": 0}
        size = 100

        def answer(request):
            index = int(parse_qs(urlsplit(request.url).query)["sysparm_offset"][0]) // size
            calls["n"] += 1
            if throttle and index == 1 and calls["n"] == 2:
                return (
                    429,
                    {"Retry-After": "7"},
                    json.dumps(load_fixture("servicenow", "api/error__rate_limit_exceeded")),
                )
            rows = pages[index] if index < len(pages) else []
            # A full page means "there may be more": pad every page but the last to the page size.
            if index < len(pages) - 1:
                rows = rows + [{"sys_id": "f" * 32, "sys_updated_on": "2000-01-01 00:00:00"}] * (
                    size - len(rows)
                )
            return 200, {"Content-Type": "application/json"}, json.dumps({"result": rows})

        api.add_callback(responses.GET, self.table, callback=answer)
        api.add_callback(
            responses.GET,
            self.journal,
            callback=lambda request: (200, {}, json.dumps({"result": self.journal_entries[:1]})),
        )

    def window_start(self, api) -> str:
        query = parse_qs(urlsplit(_calls(api, "table/incident")[0]).query)["sysparm_query"][0]
        return re.match(r"sys_updated_on>=([^^]+)", query)[1]


SEARCHES = {"jira": Jira, "zendesk": Zendesk, "servicenow": ServiceNow}


def _calls(api: responses.RequestsMock, part: str) -> list[str]:
    return [c.request.url for c in api.calls if part in c.request.url]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=sorted(SEARCHES))
def platform(request) -> str:
    return request.param


def make_config(sqlite_url: str) -> Config:
    return Config.model_validate(
        {
            "database": sqlite_url,
            "dry_run": True,  # decisions are audited; nothing is written back
            "reconcile": {"overlap_seconds": OVERLAP, "settle_seconds": 60},
            "platforms": {name: dict(driver.settings) for name, driver in DRIVERS.items()},
        }
    )


@pytest.fixture
def esc(sqlite_url):
    escalator = start(make_config(sqlite_url), FakeClock(START))
    yield escalator
    escalator.rt.close()


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def scenario(esc, platform):
    driver = DRIVERS[platform](esc.rt.policy.current.platforms[platform])
    return driver, SEARCHES[platform](driver)


def rows(esc) -> list[Any]:
    with esc.rt.engine.connect() as conn:
        return conn.execute(inbox.select().order_by(inbox.c.id)).all()


def post(esc, platform: str, body: bytes, headers: dict[str, str]):
    return esc.http.post(f"/webhooks/{platform}", data=body, headers=headers)


# --- the tests ----------------------------------------------------------------------------------


def test_the_first_pass_starts_now_and_reads_nothing_back(esc, api, platform):
    first = reconcile(esc.rt, platform)
    assert first.start is None and "first pass" in first.note
    assert len(api.calls) == 0 and rows(esc) == []


def test_a_change_without_webhook_is_processed_once_and_its_late_webhook_is_a_duplicate(esc, api, platform):
    driver, search = scenario(esc, platform)
    reconcile(esc.rt, platform)  # the first pass sets the watermark at 09:00
    record, webhook_body, webhook_headers = search.change(Spec(1, labels=("outage",)), CHANGED_AT)
    search.register(api, [[record]], throttle=False)
    esc.clock.advance(6 * 60)

    found = reconcile(esc.rt, platform)
    assert (found.changed, found.missed, found.seen) == (1, 1, 0)
    [row] = rows(esc)
    assert esc.rt.metrics.reconciled.labels(platform)._value.get() == 1
    assert esc.work() == 1
    [record_] = esc.audit()
    assert record_["outcome"] == "dry_run"  # judged like any delivery: outage → P1, L2

    # The webhook of the same change arrives late: the inbox already has it under the same id.
    esc.clock.advance(30)
    answer = post(
        esc, platform, webhook_body, {**webhook_headers, **_fresh(driver, webhook_body, esc.clock())}
    )
    assert answer.status_code == 200 and answer.json["result"] == "duplicate", answer.json
    assert answer.json["delivery_id"] == row.delivery_id

    # The next pass reads the change again (the overlap) and knows it: nothing new.
    esc.clock.advance(5 * 60)
    again = reconcile(esc.rt, platform)
    assert again.changed == 1 and again.missed == 0 and len(rows(esc)) == 1
    assert esc.work() == 0 and len(esc.audit()) == 1


def test_a_change_whose_webhook_came_is_not_counted_as_missed(esc, api, platform):
    driver, search = scenario(esc, platform)
    reconcile(esc.rt, platform)
    record, webhook_body, webhook_headers = search.change(Spec(2, labels=("outage",)), CHANGED_AT)
    esc.clock.advance(2 * 60)
    assert (
        post(
            esc, platform, webhook_body, {**webhook_headers, **_fresh(driver, webhook_body, esc.clock())}
        ).status_code
        == 202
    )
    search.register(api, [[record]], throttle=False)
    esc.clock.advance(4 * 60)
    found = reconcile(esc.rt, platform)  # the webhook is still pending in the inbox
    assert (found.changed, found.missed, found.seen) == (1, 0, 1)
    esc.work()
    esc.clock.advance(5 * 60)
    assert reconcile(esc.rt, platform).missed == 0  # now processed: the snapshot knows it
    assert esc.rt.metrics.reconciled.labels(platform)._value.get() == 0


def test_watermarks_survive_a_restart(sqlite_url, api, platform):
    first = start(make_config(sqlite_url), FakeClock(START))
    reconcile(first.rt, platform)
    first.rt.close()

    later = build_runtime(make_config(sqlite_url), clock=FakeClock(START + timedelta(minutes=10)))
    try:
        search = SEARCHES[platform](DRIVERS[platform](later.policy.current.platforms[platform]))
        search.register(api, [[]], throttle=False)
        read = reconcile(later, platform)
        # The window starts at the first pass's "now" minus the overlap, not at the restart.
        assert read.start == START - timedelta(seconds=OVERLAP)
        assert read.end == START + timedelta(minutes=9)
        assert search.window_start(api).startswith(_shown(platform, read.start))
    finally:
        later.close()


def test_a_429_while_paging_is_waited_out(esc, api, platform):
    _, search = scenario(esc, platform)
    reconcile(esc.rt, platform)
    first, _, _ = search.change(Spec(3), CHANGED_AT)
    second, _, _ = search.change(Spec(4), CHANGED_AT + timedelta(seconds=5))
    search.register(api, [[first], [second]], throttle=True)
    esc.clock.advance(6 * 60)
    slept: list[float] = []
    found = reconcile(esc.rt, platform, sleep=slept.append)
    assert slept == [7.0]
    assert found.missed == 2 and found.waited == 7.0
    assert len(rows(esc)) == 2


def test_a_pass_that_fails_keeps_the_watermark(esc, api, platform):
    _, search = scenario(esc, platform)
    reconcile(esc.rt, platform)
    search.register(api, [[], []], throttle=True)
    esc.clock.advance(6 * 60)
    no_waits = esc.rt.config.reconcile.model_copy(update={"max_rate_limit_waits": 0})
    esc.rt.config = esc.rt.config.model_copy(update={"reconcile": no_waits})
    with pytest.raises(TransientPlatformError, match="429"):
        reconcile(esc.rt, platform, sleep=lambda _: None)
    api.reset()
    search.register(api, [[]], throttle=False)
    assert reconcile(esc.rt, platform).start == START - timedelta(seconds=OVERLAP)


def test_since_reads_from_the_given_time(esc, api, platform):
    driver, search = scenario(esc, platform)
    record, _, _ = search.change(Spec(5, labels=("outage",)), START - timedelta(hours=1))
    search.register(api, [[record]], throttle=False)
    found = reconcile(esc.rt, platform, since=START - timedelta(hours=2))
    assert found.missed == 1


def _fresh(driver, body: bytes, now: datetime) -> dict[str, str]:
    """Signature headers for `now` (the late webhook is signed when it is sent)."""
    headers = driver.sign(body, now)
    headers.pop("X-Atlassian-Webhook-Identifier", None)
    headers.pop("X-Zendesk-Webhook-Invocation-Id", None)
    return headers


def _shown(platform: str, at: datetime) -> str:
    if platform == "jira":
        return at.astimezone(_ZONE).strftime("%Y-%m-%d %H:%M")
    if platform == "zendesk":
        return at.isoformat()
    return at.strftime("%Y-%m-%d %H:%M:%S")


def test_the_worker_schedules_one_job_per_platform_and_the_first_run_is_at_once(esc):
    from apscheduler.schedulers.background import BackgroundScheduler

    from connector.reconcile import schedule

    scheduler = BackgroundScheduler(timezone="UTC")
    assert sorted(schedule(scheduler, esc.rt)) == ["jira", "servicenow", "zendesk"]
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"reconcile-jira", "reconcile-servicenow", "reconcile-zendesk"}
    assert all(job.trigger.interval == timedelta(seconds=300) for job in jobs.values())
    off = esc.rt.config.reconcile.model_copy(update={"enabled": False})
    esc.rt.config = esc.rt.config.model_copy(update={"reconcile": off})
    assert schedule(BackgroundScheduler(timezone="UTC"), esc.rt) == []


def test_the_reconcile_command(tmp_path, capsys):
    from connector.cli import main

    config = tmp_path / "escalator.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'r.db'}\nplatforms:\n  servicenow:\n"
        f"    url: {SERVICENOW_URL}\n    user: bot\n    password: p\n    webhook_secret: s\n"
    )
    assert main(["reconcile", "--config", str(config)]) == 0
    assert "servicenow: first pass: starts now" in capsys.readouterr().out
    assert main(["reconcile", "--config", str(config), "--platform", "jira"]) == 2
    assert "platform 'jira' is not configured" in capsys.readouterr().err


def test_jira_server_is_read_through_the_v2_search_paged_by_start_at(sqlite_url, api):
    config = make_config(sqlite_url)
    jira = config.platforms.jira.model_copy(update={"deployment": "server"})
    config = config.model_copy(update={"platforms": config.platforms.model_copy(update={"jira": jira})})
    esc = start(config, FakeClock(START))
    try:
        search = Jira(DRIVERS["jira"](esc.rt.policy.current.platforms["jira"]))
        reconcile(esc.rt, "jira")
        issues = [search.change(Spec(n), CHANGED_AT)[0] for n in (6, 7)]
        api.add(responses.GET, f"{JIRA_URL}/rest/api/2/myself", json={"name": "bot", "timeZone": "UTC"})

        def answer(request):
            at = int(parse_qs(urlsplit(request.url).query)["startAt"][0])
            return (
                200,
                {},
                json.dumps({"startAt": at, "maxResults": 1, "total": 2, "issues": issues[at : at + 1]}),
            )

        api.add_callback(
            responses.GET, re.compile(re.escape(f"{JIRA_URL}/rest/api/2/search")), callback=answer
        )
        esc.clock.advance(6 * 60)
        found = reconcile(esc.rt, "jira")
        assert found.missed == 2 and found.requests == 3
        assert not _calls(api, "/rest/api/3/")
    finally:
        esc.rt.close()


def _with_comments(issue: dict[str, Any], comments: list[dict[str, Any]], total: int | None = None) -> dict:
    """The issue as the search returns it with `fields.comment` (Jira's page of comments)."""
    listed = {
        "comments": comments,
        "maxResults": len(comments),
        "total": total or len(comments),
        "startAt": 0,
    }
    return {**issue, "fields": {**issue["fields"], "comment": listed}}


def _comment(cid: str, text: str, at: datetime, author: str) -> dict[str, Any]:
    stamp = at.astimezone(_ZONE).strftime("%Y-%m-%dT%H:%M:%S.000%z")
    comment = load_fixture("jira", "comment_created__asks_for_manager")["comment"]
    return {**comment, "id": cid, "body": text, "created": stamp, "updated": stamp,
            "author": {**comment["author"], "accountId": author}}  # fmt: skip


def test_a_jira_comment_whose_webhook_never_came_is_found_and_its_late_webhook_is_a_duplicate(esc, api):
    driver, search = scenario(esc, "jira")
    reconcile(esc.rt, "jira")
    issue, _, _ = search.change(Spec(3), CHANGED_AT)
    old = _comment("30001", "first look", START - timedelta(hours=2), "agent-7")  # before the window
    asks = _comment("30002", "Please escalate this to your manager now", CHANGED_AT, driver.requester)
    search.register(api, [[_with_comments(issue, [old, asks])]], throttle=False)
    esc.clock.advance(6 * 60)

    found = reconcile(esc.rt, "jira")
    assert (found.missed, found.comments) == (2, 1)  # the issue's change and the requester's comment
    ids = [row.delivery_id for row in rows(esc)]
    assert ids[1] == f"{issue['id']}/comment/30002" and len(ids) == 2
    esc.work()
    kinds = {r["trigger"]["delivery_id"]: r for r in esc.audit()}
    comment_record = kinds[ids[1]]
    assert comment_record["trigger"]["kind"] == "comment.added"
    assert comment_record["tier"]["to"] == "management"  # judged like the webhook: the requester asked

    # Its comment_created webhook arrives late: the same comment, so a duplicate.
    late = load_fixture("jira", "comment_created__asks_for_manager")
    late["comment"] = asks
    late["issue"] = {k: v for k, v in issue.items() if k != "changelog"}
    body = json.dumps(late).encode()
    answer = post(esc, "jira", body, _fresh(driver, body, esc.clock()))
    assert answer.json == {"result": "duplicate", "delivery_id": ids[1]}

    esc.clock.advance(5 * 60)  # the next pass reads it again (the overlap) and knows it
    assert reconcile(esc.rt, "jira").comments == 0 and len(rows(esc)) == 2


def test_when_the_search_shows_the_oldest_comments_only_the_newest_are_read(esc, api):
    driver, search = scenario(esc, "jira")
    reconcile(esc.rt, "jira")
    issue, _, _ = search.change(Spec(4), CHANGED_AT)
    oldest = [_comment(str(40000 + n), "old", START - timedelta(days=3), "agent-7") for n in range(20)]
    newest = _comment("40999", "any update?", CHANGED_AT, driver.requester)
    search.register(api, [[_with_comments(issue, oldest, total=21)]], throttle=False)
    api.add(
        responses.GET,
        f"{JIRA_URL}/rest/api/3/issue/{issue['id']}/comment",
        json={"comments": [newest, *oldest[:1]], "total": 21, "maxResults": 2, "startAt": 0},
        match=[responses.matchers.query_param_matcher({"orderBy": "-created", "maxResults": "100"})],
    )
    esc.clock.advance(6 * 60)

    found = reconcile(esc.rt, "jira")
    assert found.comments == 1
    assert rows(esc)[-1].delivery_id == f"{issue['id']}/comment/40999"


def test_a_zendesk_comment_of_a_missed_change_is_recovered_under_its_triggers_id(esc, api):
    driver, search = scenario(esc, "zendesk")
    reconcile(esc.rt, "zendesk")
    ticket, _, _ = search.change(Spec(5), CHANGED_AT)
    newest = load_fixture("zendesk", "api/ticket_comments__newest")["comments"][0]
    search.comments = [{**newest, "author_id": ticket["requester_id"], "created_at": ticket["updated_at"]}]
    search.register(api, [[ticket]], throttle=False)
    esc.clock.advance(6 * 60)

    found = reconcile(esc.rt, "zendesk")
    assert (found.missed, found.comments) == (2, 1)
    change, comment = [row.delivery_id for row in rows(esc)]
    assert comment == change + ":comment"  # what the comment trigger of that update is named
    esc.work()
    record = {r["trigger"]["delivery_id"]: r for r in esc.audit()}[comment]
    assert record["trigger"]["kind"] == "comment.added"
    assert record["tier"]["to"] == "management"  # the requester asked for a manager

    # The comment trigger's own delivery arrives late: a duplicate.
    body = driver._body(Spec(5), "ticket.comment_added", str(ticket["requester_id"]), CHANGED_AT)
    body["ticket"]["updated_at"] = ticket["updated_at"]  # the update that added the comment
    late = driver.deliver(body, CHANGED_AT)
    answer = post(esc, "zendesk", late.body, {**late.headers, **_fresh(driver, late.body, esc.clock())})
    assert answer.json == {"result": "duplicate", "delivery_id": comment}


def test_a_zendesk_comment_escalator_saw_is_not_recovered_again(esc, api):
    driver, search = scenario(esc, "zendesk")
    earlier = driver.deliver(
        driver._body(Spec(6), "ticket.updated", "agent-7", START - timedelta(minutes=30)), START
    )
    assert post(esc, "zendesk", earlier.body, earlier.headers).status_code == 202
    esc.work()  # Escalator saw the ticket as it was at 08:30
    reconcile(esc.rt, "zendesk")
    ticket, _, _ = search.change(Spec(6), CHANGED_AT)
    older = load_fixture("zendesk", "api/ticket_comments__newest")["comments"][0]
    search.comments = [{**older, "created_at": "2026-11-02T08:00:00Z"}]  # before 08:30: seen
    search.register(api, [[ticket]], throttle=False)
    esc.clock.advance(6 * 60)

    found = reconcile(esc.rt, "zendesk")
    assert (found.missed, found.comments) == (1, 0)


def test_a_servicenow_comment_of_a_missed_change_travels_with_it(esc, api):
    driver, search = scenario(esc, "servicenow")
    reconcile(esc.rt, "servicenow")
    record, _, _ = search.change(Spec(7), CHANGED_AT)
    entry = load_fixture("servicenow", "api/table_get_sys_journal_field__newest_comment")["result"][0]
    search.journal_entries = [{**entry, "sys_created_by": record["caller_id.user_name"]}]
    search.register(api, [[record]], throttle=False)
    esc.clock.advance(6 * 60)

    found = reconcile(esc.rt, "servicenow")
    assert (found.missed, found.comments) == (1, 0)  # one delivery: the change, carrying its comment
    [row] = rows(esc)
    assert json.loads(row.body)["comment"]["text"] == entry["value"]
    (journal,) = [u for u in _calls(api, "sys_journal_field")]
    query = parse_qs(urlsplit(journal).query)["sysparm_query"][0]
    assert query == f"name=incident^element_id={record['sys_id']}^element=comments^ORDERBYDESCsys_created_on"
    esc.work()
    (decided,) = esc.audit()
    assert decided["trigger"]["kind"] == "comment.added" and decided["tier"]["to"] == "management"


def test_a_zendesk_comment_with_an_unreadable_time_leaves_the_change_to_stand_alone(esc, api):
    _, search = scenario(esc, "zendesk")
    reconcile(esc.rt, "zendesk")
    ticket, _, _ = search.change(Spec(8), CHANGED_AT)
    newest = load_fixture("zendesk", "api/ticket_comments__newest")["comments"][0]
    search.comments = [{**newest, "created_at": "yesterday"}]
    search.register(api, [[ticket]], throttle=False)
    esc.clock.advance(6 * 60)

    found = reconcile(esc.rt, "zendesk")
    assert (found.missed, found.comments) == (1, 0)  # the change is queued; the comment cannot be named
