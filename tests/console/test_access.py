"""Who may see what: sessions, tokens, CSRF, the login limit, roles, and nothing secret on any page."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from connector.store.tables import console_decisions, console_index_state, console_login_failures, inbox
from console import facts
from tests.console import seed
from tests.console.conftest import (
    HASHES,
    PASSWORDS,
    SECRETS,
    TOKENS,
    bearer,
    csrf_of,
    make_console,
    make_console_for,
)

PAGES = [
    "/console/",
    "/console/decisions",
    "/console/decisions/1",
    "/console/tickets?q=SUP-1",
    "/console/tickets/jira/10001",
    "/console/sla",
    "/console/reports",
    "/console/reports/escalations",
    "/console/reports/fcr.csv",
    "/console/integrity",
    "/console/operations",
]
API = [
    "/api/v1/openapi.json",
    "/api/v1/decisions",
    "/api/v1/decisions/1",
    "/api/v1/tickets?q=SUP-1",
    "/api/v1/tickets/jira/10001",
    "/api/v1/sla/board",
    "/api/v1/reports",
    "/api/v1/reports/escalations",
    "/api/v1/integrity",
    "/api/v1/events",
]


def test_every_console_route_is_listed_here(sqlite_console):
    """A new page added without a test of its access fails here."""
    rules = {
        r.rule for r in sqlite_console.app.url_map.iter_rules() if r.rule.startswith(("/console", "/api/v1"))
    }
    covered = {"/console/login", "/console/logout", "/console/static/<path:filename>"}
    covered |= {
        "/console/integrity/verify",
        "/console/events/<int(min=1, max=4611686018427387904):event_id>/retry",
    }
    covered |= {"/console/events/<int(min=1, max=4611686018427387904):event_id>/discard"}
    covered |= {"/api/v1/events/<int(min=1, max=4611686018427387904):event_id>/retry"}
    covered |= {"/api/v1/events/<int(min=1, max=4611686018427387904):event_id>/discard"}
    for path in PAGES + API:
        path = path.split("?")[0]
        covered |= {r for r in rules if re.fullmatch(re.sub(r"<[^>]+>", "[^/]+", r), path)}
    covered |= {"/console/reports/<name>.csv", "/console/tickets/<platform>/<path:ticket_id>"}
    covered |= {"/api/v1/tickets/<platform>/<path:ticket_id>"}
    assert rules - covered == set()


def test_no_page_without_a_session(sqlite_console):
    client = sqlite_console.client()
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith("/console/login?next="), path
    assert client.post("/console/integrity/verify").status_code == 401


def test_no_api_answer_without_a_valid_token(sqlite_console):
    client = sqlite_console.client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKENS["reader"]}):
        for path in API:
            answer = client.get(path, headers=headers)
            assert answer.status_code == 401, path
            assert answer.json == {"error": "a bearer token is required: Authorization: Bearer <token>"}
    # A console session is not an API credential.
    logged_in = sqlite_console.login("otto")
    assert logged_in.get("/api/v1/decisions").status_code == 401


def test_a_token_opens_the_api(sqlite_console):
    client = sqlite_console.client()
    for path in API:
        assert client.get(path, headers=bearer("reader")).status_code == 200, path


def test_login_needs_the_csrf_token(sqlite_console):
    client = sqlite_console.client()
    client.get("/console/login")
    answer = client.post("/console/login", data={"name": "vera", "password": PASSWORDS["vera"]})
    assert answer.status_code == 400
    assert "CSRF token" in answer.text
    answer = client.post(
        "/console/login", data={"name": "vera", "password": PASSWORDS["vera"], "csrf_token": "x"}
    )
    assert answer.status_code == 400


def test_every_post_needs_the_csrf_token(sqlite_console):
    client = sqlite_console.login("otto")
    for path in ("/console/logout", "/console/integrity/verify"):
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 400, path
        assert client.post(path).status_code == 400, path
    with sqlite_console.rt.engine.connect() as conn:
        assert conn.execute(select(console_index_state.c.last_verify)).scalar() is None  # nothing ran
    assert client.get("/console/decisions").status_code == 200  # still logged in


def test_wrong_passwords_are_rate_limited(sqlite_console):
    client = sqlite_console.client()
    token = csrf_of(client.get("/console/login").text)
    for _ in range(5):
        answer = client.post(
            "/console/login", data={"name": "vera", "password": "guess", "csrf_token": token}
        )
        assert answer.status_code == 401
        assert "Wrong name or password." in answer.text
    # The sixth try is refused even with the right password, and says when to come back.
    answer = client.post(
        "/console/login", data={"name": "vera", "password": PASSWORDS["vera"], "csrf_token": token}
    )
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in answer.text
    # Another user is not locked out by vera's guesser.
    sqlite_console.login("otto")


def test_the_login_limit_is_shared_by_every_process_on_one_store(console):  # SQLite and PostgreSQL
    # Two gunicorn workers or two replicas: two runtimes and apps over one database. A guesser who
    # spreads attempts over them gets the same five as one who stays on one.
    other = make_console_for(console.rt.config.database)
    try:
        clients = [console.client(), other.client()]
        tokens = [csrf_of(c.get("/console/login").text) for c in clients]

        def attempt(n: int, password: str = "guess") -> int:
            data = {"name": "vera", "password": password, "csrf_token": tokens[n]}
            return clients[n].post("/console/login", data=data).status_code

        assert [attempt(0), attempt(1), attempt(0), attempt(1), attempt(1)] == [401] * 5
        assert attempt(0, PASSWORDS["vera"]) == 429  # the sixth, on the first process
        assert attempt(1, PASSWORDS["vera"]) == 429  # and on the second
        window = console.rt.config.console.login_window_seconds
        console.clock.advance(window + 1)
        other.clock.advance(window + 1)
        assert attempt(1, PASSWORDS["vera"]) == 302  # the window passed: the right password logs in
        with console.rt.engine.connect() as conn:  # a success clears the count; old failures are gone
            assert conn.execute(select(console_login_failures)).all() == []
    finally:
        other.rt.close()


def _login_as_vera(client, token: str, password: str, forwarded_for: str) -> int:
    """One log-in attempt through a proxy that says the client is at `forwarded_for`: its status."""
    data = {"name": "vera", "password": password, "csrf_token": token}
    headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"}
    return client.post("/console/login", data=data, headers=headers).status_code


def _addresses_counted(console) -> set[str]:
    with console.rt.engine.connect() as conn:
        return set(conn.execute(select(console_login_failures.c.address)).scalars())


def test_a_forwarded_address_is_not_believed_unless_a_proxy_is_trusted(sqlite_console):
    # Without `server.trusted_proxies` X-Forwarded-For is whatever the client wrote: a guesser who
    # writes a new address for every try still gets five, all counted where it really is.
    client = sqlite_console.client()
    token = csrf_of(client.get("/console/login").text)
    assert [_login_as_vera(client, token, "guess", f"203.0.113.{n}") for n in range(5)] == [401] * 5
    assert _login_as_vera(client, token, PASSWORDS["vera"], "203.0.113.99") == 429
    assert _addresses_counted(sqlite_console) == {"127.0.0.1"}


def test_behind_a_trusted_proxy_each_client_is_limited_by_its_own_address(sqlite_url):
    # Behind nginx every request comes from 127.0.0.1: counted by that address, one guesser would lock
    # a user out for everyone. With the proxy trusted, the address it forwards is the one counted.
    console = make_console(sqlite_url, server={"trusted_proxies": 1})
    try:
        guesser, vera = console.client(), console.client()
        tokens = [csrf_of(c.get("/console/login").text) for c in (guesser, vera)]
        # The proxy appends the address it saw: what the guesser wrote before it is not believed.
        spoofed = "198.51.100.1, 203.0.113.7"
        assert [_login_as_vera(guesser, tokens[0], "guess", spoofed) for _ in range(5)] == [401] * 5
        assert _login_as_vera(guesser, tokens[0], PASSWORDS["vera"], "203.0.113.7") == 429
        assert _login_as_vera(vera, tokens[1], PASSWORDS["vera"], "192.0.2.44") == 302
        assert _addresses_counted(console) == {"203.0.113.7"}
    finally:
        console.rt.close()


def test_a_forwarded_address_that_is_no_address_is_not_counted_as_one(db_url):  # SQLite and PostgreSQL
    # Behind a proxy that passes the client's header on as the last entry (or one proxy too many
    # trusted), X-Forwarded-For is whatever the client wrote: 200 characters failed the log-in with a
    # 500 on PostgreSQL (the address column holds 64); the proxy's own address is counted instead.
    console = make_console(db_url, server={"trusted_proxies": 1})
    try:
        client = console.client()
        token = csrf_of(client.get("/console/login").text)
        assert _login_as_vera(client, token, "guess", "x" * 200) == 401
        assert _login_as_vera(client, token, "guess", "not-an-address") == 401
        assert _addresses_counted(console) == {"127.0.0.1"}
    finally:
        console.rt.close()


def test_logins_are_audited(sqlite_console):
    client = sqlite_console.client()
    token = csrf_of(client.get("/console/login").text)
    client.post("/console/login", data={"name": "nobody@example.com", "password": "x", "csrf_token": token})
    sqlite_console.login("vera")
    facts.catch_up(sqlite_console.rt.engine)
    records = _console_records(sqlite_console)
    assert [(r["kind"], r["outcome"]) for r in records] == [
        ("console.login", "failed"),
        ("console.login", "applied"),
    ]
    # A console user is a person too: a keyed pseudonym that `audit forget` can erase.
    assert records[1]["actor"].startswith("psn:") and records[1]["role"] == "viewer"
    assert "vera" not in json.dumps(records[1])
    # A name typed into the form that is no user is pseudonymised: it may be an e-mail or a password.
    assert records[0]["actor"].startswith("sha256:") and "nobody" not in json.dumps(records[0])


def test_logout_ends_the_session(sqlite_console):
    client = sqlite_console.login("vera")
    page = client.get("/console/decisions")
    assert client.post("/console/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 302
    assert client.get("/console/decisions").status_code == 302


def test_the_session_cookie_is_secure_httponly_and_samesite(sqlite_console):
    client = sqlite_console.client()
    token = csrf_of(client.get("/console/login").text)
    answer = client.post(
        "/console/login", data={"name": "vera", "password": PASSWORDS["vera"], "csrf_token": token}
    )
    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_never_redirects_off_the_console(sqlite_console):
    client = sqlite_console.client()
    for target in ("https://evil.example/", "//evil.example/console", "/console\\@evil"):
        token = csrf_of(client.get("/console/login").text)
        data = {"name": "vera", "password": PASSWORDS["vera"], "csrf_token": token, "next": target}
        answer = client.post("/console/login", data=data)
        assert answer.headers["Location"] == "/console/decisions"


def test_operations_show_failed_events_with_the_platforms_message(sqlite_console):
    sqlite_console.failed_event()
    page = sqlite_console.login("vera").get("/console/operations")
    assert "Field &#39;priority&#39; cannot be set" in page.text
    assert "failed 1" in page.text  # the inbox backlog by status


def test_a_viewer_cannot_retry_or_discard(sqlite_console):
    event = sqlite_console.failed_event()
    client = sqlite_console.login("vera")
    page = client.get("/console/operations")
    assert "Field &#39;priority&#39; cannot be set" in page.text  # the platform's message is shown
    assert 'class="retry"' not in page.text and "Retry and discard are for operators." in page.text
    token = csrf_of(page.text)
    assert client.post(f"/console/events/{event}/retry", data={"csrf_token": token}).status_code == 403
    assert (
        client.post(f"/console/events/{event}/discard", data={"csrf_token": token, "why": "x"}).status_code
        == 403
    )
    api = sqlite_console.client()
    assert api.post(f"/api/v1/events/{event}/retry", headers=bearer("reader")).status_code == 403
    with sqlite_console.rt.engine.connect() as conn:
        assert conn.execute(select(inbox.c.status).where(inbox.c.id == event)).scalar_one() == "failed"


def test_an_operator_retries_and_discards_with_a_reason_and_both_are_audited(sqlite_console):
    first, second = sqlite_console.failed_event("first"), sqlite_console.failed_event("second")
    client = sqlite_console.login("otto")
    token = csrf_of(client.get("/console/operations").text)
    answer = client.post(f"/console/events/{first}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert f"Event {first} is queued again" in answer.text
    answer = client.post(
        f"/console/events/{second}/discard", data={"csrf_token": token}, follow_redirects=True
    )
    assert "say why the event is discarded" in answer.text  # no reason: refused, nothing changed
    answer = client.post(
        f"/console/events/{second}/discard",
        data={"csrf_token": token, "why": "duplicate of SUP-2"},
        follow_redirects=True,
    )
    assert f"Event {second} is discarded" in answer.text
    with sqlite_console.rt.engine.connect() as conn:
        statuses = dict(
            conn.execute(select(inbox.c.id, inbox.c.status).where(inbox.c.id.in_([first, second]))).all()
        )
    assert statuses == {first: "pending", second: "discarded"}
    facts.catch_up(sqlite_console.rt.engine)
    with sqlite_console.rt.engine.connect() as conn:
        outcomes = conn.execute(
            select(console_decisions.c.outcome).where(console_decisions.c.trigger_kind == "operator")
        ).scalars()
        assert list(outcomes) == ["requeued", "discarded"]


def test_no_secret_and_no_personal_data_on_any_page_or_api_answer(sqlite_console):
    sqlite_console.failed_event()
    client = sqlite_console.login("otto")
    api = sqlite_console.client()
    seen = []
    for path in PAGES + ["/console/decisions/4", "/console/tickets/zendesk/501", "/console/reports/causes"]:
        seen.append((path, client.get(path, follow_redirects=True).text))
    for path in API:
        seen.append((path, api.get(path, headers=bearer("reader")).text))
    forbidden = [
        *SECRETS.values(),
        *PASSWORDS.values(),
        *HASHES.values(),
        *TOKENS.values(),
        seed.REQUESTER_EMAIL,
    ]
    forbidden += ["alice", "password_hash", "api_token"]
    for path, text in seen:
        for secret in forbidden:
            assert secret not in text, f"{secret!r} shows on {path}"
    # The requester appears as its pseudonym only.
    assert any("sha256:" in text for _, text in seen)


@pytest.mark.parametrize("path", ["/console/decisions?since=yesterday", "/console/decisions?before=x"])
def test_a_wrong_filter_says_which_and_why(sqlite_console, path):
    client = sqlite_console.login("vera")
    answer = client.get(path)
    assert answer.status_code == 400
    assert ("since: not an ISO-8601" in answer.text) or ("before: not a whole number" in answer.text)


def _console_records(console):
    from connector import audit

    return [r for r in audit.records(console.rt.engine, platform="console")]
