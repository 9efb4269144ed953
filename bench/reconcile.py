"""Reconcile cost per 1,000 changed tickets, per platform: requests to the platform, and Escalator's own time.

    .venv/bin/python bench/reconcile.py [--tickets 1000]

For each platform, the search API is answered in process (`responses`) with N tickets changed in the
window, in the platform's documented page shape and page size (Jira 100 per page, Zendesk's export
1,000, ServiceNow 100). Two passes are timed on a scratch SQLite database:
- "missed": none of the changes had a webhook, so each is compared with the (absent) snapshot and
  stored in the inbox as its delivery;
- "seen": the same window read again (the overlap): every change is already known, nothing is stored.
The platform's own answer time and its rate limits (Zendesk's export: 10 requests a minute) come on
top; the request count says how much of that budget a pass takes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import responses

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project, as the checkout has it

from connector.config import Config  # noqa: E402
from connector.reconcile import reconcile  # noqa: E402
from connector.runtime import build_runtime  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SETTINGS = {
    "jira": {
        "url": "https://acme.atlassian.net",
        "email": "b@acme.test",
        "api_token": "t",
        "webhook_secret": "s",
    },
    "zendesk": {
        "url": "https://acme.zendesk.com",
        "email": "b@acme.test",
        "api_token": "t",
        "webhook_secret": "s",
    },
    "servicenow": {
        "url": "https://acme.service-now.com",
        "user": "bot",
        "password": "p",
        "webhook_secret": "s",
    },
}


def fixture(platform: str, name: str) -> dict:
    return json.loads((FIXTURES / platform / f"{name}.json").read_text(encoding="utf-8"))


def records(platform: str, count: int) -> list[dict]:
    out = []
    for n in range(count):
        at = START + timedelta(seconds=60 + n % 200)
        if platform == "jira":
            issue = json.loads(json.dumps(fixture("jira", "issue_created__outage")["issue"]))
            issue["id"], issue["key"] = str(50000 + n), f"SUP-{n}"
            issue["fields"]["created"] = issue["fields"]["updated"] = at.strftime(
                "%Y-%m-%dT%H:%M:%S.000+0000"
            )
            out.append(issue)
        elif platform == "zendesk":
            ticket = dict(fixture("zendesk", "api/ticket_get_response")["ticket"], id=n + 1)
            ticket["created_at"] = ticket["updated_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(ticket)
        else:
            record = fixture("servicenow", "api/table_get_incident__by_sys_id")["result"]
            record = {k: (v["value"] if isinstance(v, dict) else v) for k, v in record.items()}
            record.update(
                sys_id=f"{n:032x}", sys_mod_count="3", sys_updated_on=at.strftime("%Y-%m-%d %H:%M:%S")
            )
            out.append(record)
    return out


def serve(mock: responses.RequestsMock, platform: str, rows: list[dict]) -> None:
    base = SETTINGS[platform]["url"]
    if platform == "jira":
        mock.add(responses.GET, f"{base}/rest/api/3/myself", json={"accountId": "x", "timeZone": "UTC"})

        def jira(request):
            index = int(parse_qs(urlsplit(request.url).query).get("nextPageToken", ["0"])[0])
            page = rows[index * 100 : (index + 1) * 100]
            last = (index + 1) * 100 >= len(rows)
            body = {"issues": page, "isLast": last, **({} if last else {"nextPageToken": str(index + 1)})}
            return 200, {}, json.dumps(body)

        mock.add_callback(
            responses.GET, re.compile(re.escape(f"{base}/rest/api/3/search/jql")), callback=jira,
            content_type="application/json",
        )  # fmt: skip
    elif platform == "zendesk":

        def zendesk(request):
            index = int(parse_qs(urlsplit(request.url).query).get("cursor", ["0"])[0])
            page = rows[index * 1000 : (index + 1) * 1000]
            last = (index + 1) * 1000 >= len(rows)
            body = {"tickets": page, "after_cursor": None if last else str(index + 1), "end_of_stream": last}
            return 200, {}, json.dumps(body)

        mock.add_callback(
            responses.GET,
            re.compile(re.escape(f"{base}/api/v2/incremental/tickets/cursor.json")),
            callback=zendesk,
            content_type="application/json",
        )
        # Each missed change's comment is read (one request per change): none here.
        mock.add(responses.GET, re.compile(re.escape(f"{base}/api/v2/tickets/") + r"\d+/comments\.json"),
                 json={"comments": []})  # fmt: skip
    else:

        def servicenow(request):
            offset = int(parse_qs(urlsplit(request.url).query)["sysparm_offset"][0])
            return 200, {}, json.dumps({"result": rows[offset : offset + 100]})

        mock.add_callback(
            responses.GET, re.compile(re.escape(f"{base}/api/now/table/incident")), callback=servicenow,
            content_type="application/json",
        )  # fmt: skip
        mock.add(responses.GET, re.compile(re.escape(f"{base}/api/now/table/sys_journal_field")),
                 json={"result": []})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    args = parser.parse_args()
    print(f"reconcile, {args.tickets} changed tickets per platform (per 1,000 below)")
    for platform in SETTINGS:
        with tempfile.TemporaryDirectory() as tmp:
            clock = {"now": START}
            config = Config.model_validate(
                {
                    "database": f"sqlite:///{tmp}/r.db",
                    "dry_run": True,
                    "platforms": {platform: SETTINGS[platform]},
                }
            )
            rt = build_runtime(config, clock=lambda clock=clock: clock["now"])
            reconcile(rt, platform)  # the first pass: the watermark
            rows = records(platform, args.tickets)
            with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
                serve(mock, platform, rows)
                clock["now"] = START + timedelta(minutes=10)
                started = time.perf_counter()
                missed = reconcile(rt, platform)
                missed_s = time.perf_counter() - started
                clock["now"] = START + timedelta(minutes=11)
                started = time.perf_counter()
                seen = reconcile(rt, platform, since=START)
                seen_s = time.perf_counter() - started
            rt.close()
        per = 1000 / args.tickets
        print(
            f"  {platform:<10} missed: {missed.missed} stored, {missed.requests * per:.0f} requests, "
            f"{missed_s * per * 1000:.0f} ms   seen again: {seen.seen} known, {seen.requests * per:.0f} "
            f"requests, {seen_s * per * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
