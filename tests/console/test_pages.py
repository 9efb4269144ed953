"""What the pages show: decisions filtered and paged, one decision in full, a ticket's life, the SLA board."""

from __future__ import annotations

import re
from datetime import UTC

from console import board, decisions, facts
from console.decisions import Filters
from tests.console import seed
from tests.console.conftest import bearer


def seqs(console, **given) -> list[int]:
    facts.catch_up(console.rt.engine)
    rows, _ = decisions.list_decisions(console.rt.engine, Filters(**given))
    return [r["seq"] for r in rows]


def test_filters_by_platform_key_rule_outcome_version_and_time(shared_console):
    c = shared_console
    assert seqs(c)[-9:] == [9, 8, 7, 6, 5, 4, 3, 2, 1]  # other tests' logins come after
    assert seqs(c, platform="zendesk") == [7, 3]
    assert seqs(c, key="SUP-2") == [6, 5]
    assert seqs(c, key="501") == [3]  # a Zendesk ticket's id is its key
    assert seqs(c, rule="sla-breach-escalates") == [7, 6, 4]
    assert seqs(c, outcome="failed") == [5]
    assert seqs(c, version=str(c.rt.policy.current.version)) == [
        9,
        8,
        7,
        6,
        5,
        4,
        3,
        2,
        1,
    ]  # logins: no policy
    assert seqs(c, version="no-such-version") == []
    assert seqs(c, since=seed.at(4, 0), until=seed.at(10, 0)) == [6, 5, 4]
    assert seqs(c, platform="jira", rule="security-goes-to-l3", outcome="applied") == [1]


def test_keyset_pages_cover_everything_once(shared_console):
    facts.catch_up(shared_console.rt.engine)
    seen, before = [], None
    while True:
        rows, before = decisions.list_decisions(shared_console.rt.engine, Filters(limit=4, before=before))
        seen += [r["seq"] for r in rows]
        if before is None:
            break
    assert seen[-9:] == [9, 8, 7, 6, 5, 4, 3, 2, 1] and len(seen) == len(set(seen))


def test_the_decisions_page_links_the_next_page_and_each_record(shared_console):
    client = shared_console.login("vera")
    page = client.get("/console/decisions?limit=3&platform=jira")
    assert page.status_code == 200
    assert re.findall(r'class="seq">(\d+)<', page.text) == ["9", "8", "6"]
    older = re.search(r'href="([^"]+)" id="older"', page.text).group(1).replace("&amp;", "&")
    assert "before=6" in older and "platform=jira" in older
    assert re.findall(r'class="seq">(\d+)<', client.get(older).text) == ["5", "2", "1"]


def test_a_decision_opens_in_full(shared_console):
    client = shared_console.login("vera")
    page = client.get("/console/decisions/5").text
    assert "Jira answered 400: Field &#39;priority&#39; cannot be set" in page  # the platform's answer
    assert "security-goes-to-l3" in page and "escalated L1 → L3" in page
    record = decisions.decision(shared_console.rt.engine, 5)
    assert record["hash"] in page and record["prev_hash"] in page
    assert re.search(r"record 5 of \d+", page) and "Next record links here</dt><dd>yes" in page
    assert client.get("/console/decisions/99").status_code == 404


def test_a_ticket_is_found_by_key_on_any_platform(shared_console):
    client = shared_console.login("vera")
    found = client.get("/console/tickets?q=INC0001")
    assert found.headers["Location"] == "/console/tickets/servicenow/sn1"
    assert "No ticket with the key" in client.get("/console/tickets?q=NOPE-1").text


def test_the_ticket_page_shows_clocks_in_the_calendars_zone_timers_and_changes(shared_console):
    client = shared_console.login("vera")
    page = client.get("/console/tickets/jira/10002").text
    # P2, emea (Berlin, 08-18 working days): started Thu 5 Nov 10:00 CET, 8 working hours → 18:00 CET.
    assert "2026-11-05 18:00 CET" in page and "2026-11-05 17:00:00 UTC" in page
    assert 'href="https://acme.atlassian.net/browse/SUP-2"' in page
    assert "L1 → L2" in page  # the tier change with its reason
    # The notification the breach sent, linked to its decision; the channel's answer masked.
    notices = page[page.index('id="notifications"') :]
    assert "support-leads" in notices and "sent" in notices and 'href="/console/decisions/6"' in notices
    assert seed.REQUESTER_EMAIL not in page
    page = client.get("/console/tickets/jira/10004").text
    assert "first_response:sla.breached:100" in page and "resolution:sla.warning:75" in page
    assert "2026-11-12 10:03 UTC" in page  # P1 runs on the `always` calendar (UTC)


def test_the_sla_board_lists_at_risk_and_breached_soonest_first(shared_console):
    c = shared_console
    rows = board.board(c.rt.engine, c.rt.policy.current, c.clock())
    assert [(r["ticket_key"], r["metric"], r["status"]) for r in rows] == [
        ("SUP-2", "resolution", "breached"),
        ("502", "first_response", "breached"),
        ("SUP-4", "first_response", "at_risk"),
    ]
    # 502 runs on apac (Jakarta 09-17): Tue 10 Nov 16:00 WIB + 4 working hours → Wed 12:00 WIB.
    assert rows[1]["due_local"] == "2026-11-11 12:00 WIB"
    only = board.board(c.rt.engine, c.rt.policy.current, c.clock(), filters={"priority": "P1"})
    assert [r["ticket_key"] for r in only] == ["SUP-4"]
    assert [
        r["ticket_key"]
        for r in board.board(c.rt.engine, c.rt.policy.current, c.clock(), filters={"calendar": "apac"})
    ] == ["502"]
    page = c.login("vera").get("/console/sla").text
    assert '<meta http-equiv="refresh" content="30">' in page
    assert page.index(">SUP-2<") < page.index(">502<") < page.index(">SUP-4<")


def test_reports_page_has_a_chart_csv_and_query_for_each(shared_console):
    client = shared_console.login("vera")
    page = client.get("/console/reports").text
    assert page.count("<svg") >= 6
    for name in ("escalations", "attainment", "durations", "fcr", "causes", "breaches"):
        assert f"/console/reports/{name}.csv" in page
        one = client.get(f"/console/reports/{name}")
        assert one.status_code == 200 and 'id="query"' in one.text
    csv = client.get("/console/reports/escalations.csv")
    assert csv.mimetype == "text/csv"
    assert csv.text.splitlines()[1] == "2026-11-02,L2,servicenow,1"


def test_integrity_shows_the_chain_verifies_and_diffs_policies(shared_console):
    client = shared_console.login("vera")
    page = client.get("/console/integrity")
    assert "never run from the console" in page.text
    sha = shared_console.rt.policy.current.sha256
    assert sha in page.text
    from tests.console.conftest import csrf_of

    answer = client.post(
        "/console/integrity/verify", data={"csrf_token": csrf_of(page.text)}, follow_redirects=True
    )
    assert "audit chain intact" in answer.text
    same = client.get(f"/console/integrity?old={sha}&new={sha}").text
    assert "The two texts are the same." in same
    assert "no policy text kept" in client.get(f"/console/integrity?old={sha}&new={'0' * 64}").text


def test_the_sla_board_reads_kept_instants_and_does_no_calendar_arithmetic_for_them(
    sqlite_console, monkeypatch
):
    # The board at a million records was slow from calendar arithmetic per at-risk ticket: a breach's
    # instant is now kept on its clock when it fires, a running clock's in its armed timers, and open
    # tickets are found by `tickets.sla_open`, which every write of the SLA state keeps.
    from sqlalchemy import insert

    from connector.store import tickets as tickets_store
    from connector.store.db import writing
    from connector.store.tables import tickets, timers
    from connector.store.tickets import sla_open

    c = sqlite_console
    kept = seed.at(11, 15, 7)  # not what the arithmetic gives: proves the board read it
    breached = seed.clock(seed.at(10, 9), None, True, [75]) | {"due": kept.isoformat()}
    state = seed.sla("P3", "apac", seed.at(10, 9), None, first_response=breached)
    running = seed.sla("P2", "emea", seed.at(12, 8), None, resolution=seed.clock(seed.at(12, 8)))
    resolved = seed.sla("P2", "emea", seed.at(12, 8), seed.at(12, 9), resolution=seed.clock(seed.at(12, 8)))
    with writing(c.rt.engine) as conn:
        for tid, sla_state in (("601", state), ("602", running), ("603", resolved)):
            row = dict(platform="zendesk", ticket_id=tid, ticket_key=tid, tier="L3", priority_pinned=False)
            conn.execute(insert(tickets).values(row))
            tickets_store.save_sla(conn, "zendesk", tid, sla_state)
        for tid, percent, due in (
            ("602", 75, seed.at(12, 9)),
            ("602", 100, seed.at(12, 11)),
            ("603", 75, seed.at(12, 9)),
        ):
            conn.execute(insert(timers).values(
                platform="zendesk", ticket_id=tid, key=f"resolution:x:{percent}", kind="sla.warning",
                metric="resolution", percent=percent, target_seconds=8 * 3600.0, calendar="emea", due_at=due,
                armed_at=seed.at(12, 8)))  # fmt: skip
    assert [sla_open(s) for s in (state, running, resolved)] == [True, True, None]

    def no_arithmetic(*_args, **_kwargs):
        raise AssertionError("the board computed an instant the store keeps")

    monkeypatch.setattr(board, "clock_states", no_arithmetic)
    rows = board.board(
        c.rt.engine, c.rt.policy.current, c.clock(), filters={"platform": "zendesk", "tier": "L3"}
    )
    assert [(r["ticket_key"], r["metric"], r["status"], r["due_local"]) for r in rows] == [
        ("601", "first_response", "breached", "2026-11-11 22:07 WIB"),  # its kept instant, apac's zone
        ("602", "resolution", "at_risk", "2026-11-12 12:00 CET"),  # warned by its armed 75 % timer
    ]  # 603 is resolved: not open, not read


def test_the_ticket_page_shows_what_ticket_view_computes(shared_console):
    # One source of truth: the console's ticket page and API take clocks and timers from
    # connector.ticket_view, which `escalator ticket show` prints.
    from connector.ticket_view import ticket_view

    c = shared_console
    for platform, tid in (("jira", "10002"), ("jira", "10004"), ("zendesk", "502")):
        view = ticket_view(c.rt.engine, c.rt.policy.current, platform, tid, now=c.clock())
        answer = c.client().get(f"/api/v1/tickets/{platform}/{tid}", headers=bearer("reader")).json
        shown = {k["metric"]: (k["status"], k["due_at"]) for k in answer["clocks"]}
        for clock in view.clocks:
            due = clock.breached_at if clock.state == "breached" else clock.due
            assert shown[clock.metric][1] == (due.astimezone(UTC).isoformat() if due else None), clock
        assert [t["key"] for t in answer["timers"]] == [t.key for t in view.timers]
    sup2 = ticket_view(c.rt.engine, c.rt.policy.current, "jira", "SUP-2", now=c.clock())
    (resolution,) = [k for k in sup2.clocks if k.metric == "resolution"]
    assert resolution.state == "breached" and str(resolution.breached_at) == "2026-11-05 18:00:00+01:00"


def test_integrity_lists_signed_checkpoints_against_the_chain(sqlite_console, tmp_path):
    import io

    from sqlalchemy import select, update

    from connector.audit import checkpoints as cps
    from connector.audit.keys import generate, load_signer
    from connector.store.db import writing
    from connector.store.tables import audit_checkpoints, audit_head

    c = sqlite_console
    client = c.login("vera")
    page = client.get("/console/integrity").text
    assert "none yet" in page and "No checkpoint yet." in page
    generate(tmp_path / "audit.key", tmp_path / "audit.pub")
    signer = load_signer(str(tmp_path / "audit.key"))
    first, _ = cps.make(c.rt.engine, signer, cps.StreamSink(io.StringIO()), now=c.clock())
    c.login("otto")  # a login is an audit record: the second checkpoint has something to cover
    second, _ = cps.make(c.rt.engine, signer, cps.StreamSink(io.StringIO()), now=c.clock(), kind="scheduled")

    page = client.get("/console/integrity").text
    table = page[page.index('id="checkpoints"') :]
    assert "#2, " in page and f"through record {second.last_seq}" in page
    assert table.index(">2<") < table.index(">1<")  # newest first
    assert f"{first.first_seq}–{first.last_seq} ({first.last_seq - first.first_seq + 1})" in table
    assert table.count(">matches<") == 2 and signer.key_id in table and "scheduled" in table
    api = client.get("/api/v1/integrity", headers=bearer("reader")).json["checkpoints"]
    assert api["count"] == 2 and [i["number"] for i in api["items"]] == [2, 1]
    with c.rt.engine.connect() as conn:
        head = conn.execute(select(audit_head.c.seq)).scalar_one()
    assert api["records_since"] == head - second.last_seq

    # A checkpoint whose signed head the chain no longer carries is shown as broken, with why.
    with writing(c.rt.engine) as conn:
        conn.execute(
            update(audit_checkpoints).where(audit_checkpoints.c.number == 1).values(head_hash="0" * 64)
        )
    table = client.get("/console/integrity").text.split('id="checkpoints"')[1]
    assert ">broken<" in table and f"record {first.last_seq} no longer carries the hash" in table
