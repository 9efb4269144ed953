"""The API against its own OpenAPI document (schemathesis): no 5xx, every answer matches the schema."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.console.conftest import bearer, make_console


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    made = make_console(f"sqlite:///{tmp_path_factory.mktemp('api') / 'escalator.db'}")
    made.failed_event()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", made.app, headers=bearer("ops"))
    yield schema
    made.rt.close()


def test_the_api_keeps_its_document(api_schema):
    """Every operation, with generated parameters: schemathesis's checks (no 5xx, status codes,
    content types and bodies as documented)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def keeps_its_document(case):
            case.call_and_validate(headers=bearer("ops"))

        keeps_its_document()


def test_the_document_is_served_and_names_every_route(sqlite_console):
    client = sqlite_console.client()
    document = client.get("/api/v1/openapi.json", headers=bearer("reader")).json
    assert document["openapi"].startswith("3.")
    routes = {
        re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", r.rule.removeprefix("/api/v1"))
        for r in sqlite_console.app.url_map.iter_rules()
        if r.rule.startswith("/api/v1") and r.rule != "/api/v1/openapi.json"
    }
    assert routes == set(document["paths"])


def test_a_path_no_route_matches_is_answered_in_json_under_the_api_only(sqlite_console):
    """Found by schemathesis: a ticket id holding a slash matched no route, and Flask's HTML 404 page
    answered where the document promises JSON."""
    client = sqlite_console.client()
    for path in ("/api/v1/tickets/jira/%5B/x%0A", "/api/v1/nothing-here"):
        answer = client.get(path, headers=bearer("reader"))
        assert answer.status_code == 404 and answer.content_type == "application/json", path
        assert answer.json["error"]
    wrong_method = client.delete("/api/v1/decisions", headers=bearer("reader"))
    assert wrong_method.status_code == 405 and wrong_method.json["error"]
    assert "GET" in wrong_method.headers["Allow"]
    elsewhere = client.get("/not-the-api")
    assert elsewhere.status_code == 404 and elsewhere.content_type.startswith("text/html")


def test_an_operator_token_retries_and_a_discard_needs_a_reason(sqlite_console):
    event = sqlite_console.failed_event()
    client = sqlite_console.client()
    answer = client.post(f"/api/v1/events/{event}/discard", json={}, headers=bearer("ops"))
    assert answer.status_code == 400 and "why" in answer.json["error"]
    # Whitespace or control characters alone are no reason (U+0085, U+001F: found by schemathesis):
    # the server and the document's pattern agree on it.
    document = client.get("/api/v1/openapi.json", headers=bearer("reader")).json
    why = document["paths"]["/events/{event_id}/discard"]["post"]["requestBody"]["content"]
    pattern = why["application/json"]["schema"]["properties"]["why"]["pattern"]
    assert re.fullmatch(pattern, "x") and re.search(pattern, " é ")
    for blank in ("\u0085 ", "\u001f", "\u3000\ufeff\t"):
        answer = client.post(f"/api/v1/events/{event}/discard", json={"why": blank}, headers=bearer("ops"))
        assert answer.status_code == 400 and "why" in answer.json["error"], blank
        assert not re.search(pattern, blank)
    answer = client.post(f"/api/v1/events/{event}/retry", headers=bearer("ops"))
    assert answer.status_code == 200, answer.json
    again = client.post(f"/api/v1/events/{event}/retry", headers=bearer("ops"))
    assert again.status_code == 409 and "not been tried yet" in again.json["error"]


def test_a_board_filter_with_a_nul_matches_nothing(console):  # SQLite and PostgreSQL
    # The board filters in SQL now; PostgreSQL refuses a NUL in a parameter (found by schemathesis).
    client = console.client()
    for name in ("platform", "priority", "tier", "calendar"):
        answer = client.get(f"/api/v1/sla/board?{name}=P1%00", headers=bearer("reader"))
        assert answer.status_code == 200 and answer.json["items"] == [], name
