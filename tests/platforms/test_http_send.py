"""platforms/http.py `send`: each client's request reaches the session's HTTPAdapter exactly as
`session.request` (what the clients called before) would have sent it: method, URL, headers
(auth, content type, cookies the platform set), body, and timeout, verify, proxies, stream, cert;
and what comes back is what `Session.send` would return: hooks run, cookies kept, redirects followed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses

from platforms.base import OutboundRequest
from platforms.http import send
from platforms.jira.client import JiraClient
from platforms.jira.settings import Settings as JiraSettings
from platforms.servicenow.client import ServiceNowClient
from platforms.servicenow.settings import Settings as ServiceNowSettings
from platforms.zendesk.client import ZendeskClient
from platforms.zendesk.settings import Settings as ZendeskSettings

JIRA = "https://acme.atlassian.net/rest/api/2/issue/OPS-7"
ZENDESK = "https://acme.zendesk.com/api/v2/tickets/7.json"
SERVICENOW = "https://acme.service-now.com/api/now/table/incident/0123abcd"


def _jira() -> tuple[Any, OutboundRequest, Callable[[requests.Session, OutboundRequest], Any]]:
    client = JiraClient(JiraSettings(url="https://acme.atlassian.net", email="bot@acme.test", api_token="t"))
    request = OutboundRequest("PUT", JIRA, {"fields": {"priority": {"name": "Highest"}}, "x": "é"})
    return client, request, lambda s, r: s.request(r.method, r.url, data=json.dumps(r.json))


def _zendesk():
    client = ZendeskClient(ZendeskSettings(subdomain="acme", email="bot@acme.test", api_token="t", timeout=7))
    request = OutboundRequest("PUT", ZENDESK, {"ticket": {"priority": "urgent", "tags": ["a", "ü"]}})
    return client, request, lambda s, r: s.request(r.method, r.url, json=r.json, timeout=7)


def _servicenow():
    client = ServiceNowClient(ServiceNowSettings(instance="acme", user="bot", password="p"))
    request = OutboundRequest("PATCH", SERVICENOW, {"urgency": "1", "work_notes": "naïve"})
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    return (
        client,
        request,
        lambda s, r: s.request(r.method, r.url, data=json.dumps(r.json), headers=headers, timeout=15.0),
    )


SETTINGS = ("timeout", "verify", "proxies", "stream", "cert")


def _seen(request: requests.PreparedRequest, kwargs: dict[str, Any]) -> tuple:
    settings = {k: kwargs.get(k) for k in SETTINGS}
    return request.method, request.url, dict(request.headers), request.body, settings


@pytest.mark.parametrize("case", [_jira, _zendesk, _servicenow], ids=["jira", "zendesk", "servicenow"])
@responses.activate
def test_a_request_reaches_the_adapter_as_session_request_would_send_it(case, monkeypatch):
    client, request, before = case()
    seen: list[tuple] = []
    real = requests.adapters.HTTPAdapter.send  # (as `responses` patched it)

    def spy(self, prepared, **kwargs):
        seen.append(_seen(prepared, kwargs))
        return real(self, prepared, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    answer = {"result": {"sys_id": "0123abcd"}} if case is _servicenow else {}
    responses.add(request.method, request.url, json=answer, headers={"Set-Cookie": "token=abc; Path=/"})
    client.send(request)  # the session's jar is empty: no Cookie header
    session = client._session()
    assert session.cookies.get("token") == "abc"  # the answer's cookie was kept, as before
    client.send(request)  # now with the cookie
    before(session, request)  # what the client called before, on the same session
    first, ours, theirs = seen
    assert ours == theirs
    assert "Cookie" not in first[2] and ours[2]["Cookie"] == "token=abc"
    assert first[2] == {k: v for k, v in ours[2].items() if k != "Cookie"}
    assert ours[2]["Authorization"].startswith("Basic ")
    assert [c.request.body for c in responses.calls] == [ours[3]] * 3


@responses.activate
def test_a_header_changed_on_the_session_is_sent_from_then_on():
    session = requests.Session()
    session.trust_env = False
    responses.get("https://acme.test/a", json={})
    send(session, "get", "https://acme.test/a", timeout=3)
    session.headers["X-Extra"] = "1"
    send(session, "GET", "https://acme.test/a", timeout=3, headers={"Accept": "text/plain"})
    first, second = (c.request for c in responses.calls)
    assert first.method == "GET" and "X-Extra" not in first.headers
    assert second.headers["X-Extra"] == "1" and second.headers["Accept"] == "text/plain"


@responses.activate
def test_a_session_that_reads_the_environment_goes_the_ordinary_way(monkeypatch):
    session = requests.Session()  # trust_env: requests reads the environment per request
    calls = []
    real = requests.Session.request
    monkeypatch.setattr(requests.Session, "request", lambda s, *a, **k: calls.append(a) or real(s, *a, **k))
    responses.get("https://acme.test/a", json={})
    send(session, "GET", "https://acme.test/a", timeout=3)
    assert calls == [("GET", "https://acme.test/a")]
