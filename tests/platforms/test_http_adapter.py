"""platforms/adapter.py `HostAdapter`: what the platform sessions send through, over real sockets. It
remembers the pool lookup and skips the cookie jar for answers that set no cookie; what goes out and
what comes back (cookies kept and sent, redirects, proxies, TLS verification, timeouts) is HTTPAdapter's."""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
import requests
import responses

from platforms.adapter import HostAdapter
from platforms.base import OutboundRequest
from platforms.http import environment_read_once, keep_connections, send
from platforms.jira.client import JiraClient
from platforms.jira.settings import Settings as JiraSettings
from platforms.servicenow.client import ServiceNowClient
from platforms.servicenow.settings import Settings as ServiceNowSettings
from platforms.zendesk.client import ZendeskClient
from platforms.zendesk.settings import Settings as ZendeskSettings
from tests.support.fake_http import JsonHandler, SlowJira


class _Platform(JsonHandler):
    """Sets a session cookie on /login, redirects /old to /echo (setting a cookie on the way), and
    otherwise answers what it was sent: the request line's target and the Cookie header."""

    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves a session's requests
    server: _Server

    def do_GET(self):
        self.server.connections.add(self.client_address)
        if self.path == "/login":
            self.send_response(200)
            self.send_header("Set-Cookie", "JSESSIONID=s1; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/old":
            self.send_response(302)
            self.send_header("Location", "/echo")
            self.send_header("Set-Cookie", "hop=1; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.answer(200, json.dumps({"target": self.path, "cookie": self.headers.get("Cookie")}).encode())

    do_PUT = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.connections: set[tuple[str, int]] = set()
        super().__init__(("127.0.0.1", 0), _Platform)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def platform() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.shutdown()
    server.server_close()


def _session(url: str) -> requests.Session:
    """A session as the clients make theirs."""
    return environment_read_once(keep_connections(requests.Session()), url)


def _get(session: requests.Session, url: str, timeout: float = 5) -> requests.Response:
    return send(session, "GET", url, timeout=timeout)


@pytest.mark.parametrize(
    "client",
    [
        JiraClient(JiraSettings(url="https://acme.atlassian.net", email="bot@acme.test", api_token="t")),
        ZendeskClient(ZendeskSettings(subdomain="acme", email="bot@acme.test", api_token="t")),
        ServiceNowClient(ServiceNowSettings(instance="acme", user="bot", password="p")),
    ],
    ids=["jira", "zendesk", "servicenow"],
)
def test_each_client_s_session_sends_through_a_host_adapter_with_the_library_s_settings(client):
    plain = requests.adapters.HTTPAdapter()
    for prefix in ("http://", "https://"):
        adapter = client._session().adapters[prefix]
        assert type(adapter) is HostAdapter
        assert adapter._pool_maxsize == 256 and adapter._pool_connections == plain._pool_connections
        assert adapter.max_retries.total == plain.max_retries.total == 0


def test_a_cookie_an_answer_sets_is_kept_and_sent_on_the_next_request(platform):
    session = _session(platform.url)
    login = _get(session, f"{platform.url}/login")
    assert login.cookies.get("JSESSIONID") == "s1"  # the answer's own jar, as HTTPAdapter fills it
    assert session.cookies.get("JSESSIONID") == "s1"
    assert _get(session, f"{platform.url}/echo").json()["cookie"] == "JSESSIONID=s1"


def test_a_jira_server_session_cookie_is_sent_with_the_next_write(platform):
    """Jira Server / Data Center answers with a JSESSIONID: the next write carries it."""
    client = JiraClient(JiraSettings(url=platform.url, email="bot", api_token="t", deployment="server"))
    client._call("GET", f"{platform.url}/login", None)
    answer = client._call("PUT", f"{platform.url}/rest/api/2/issue/OPS-1", '{"fields": {}}')
    assert answer.json() == {"target": "/rest/api/2/issue/OPS-1", "cookie": "JSESSIONID=s1"}


def test_a_redirect_is_followed_with_the_cookie_it_set(platform):
    answer = _get(_session(platform.url), f"{platform.url}/old")
    assert [r.status_code for r in answer.history] == [302]
    assert answer.json() == {"target": "/echo", "cookie": "hop=1"}


def test_requests_to_one_host_share_one_pool_until_the_adapter_drops_it(platform):
    session = _session(platform.url)
    for _ in range(3):
        _get(session, f"{platform.url}/echo?n=1")
    assert len(platform.connections) == 1
    session.get_adapter(platform.url).close()  # the pool manager forgets its pool: a new one opens
    assert _get(session, f"{platform.url}/echo").status_code == 200
    assert len(platform.connections) == 2
    keep_connections(session, 12)  # a new pool manager: its pool is the one used from then on
    assert _get(session, f"{platform.url}/echo").status_code == 200
    assert len(platform.connections) == 3
    pools = session.get_adapter(platform.url).poolmanager.pools
    assert [pools[key].pool.maxsize for key in pools.keys()] == [12]


def test_the_pool_is_the_one_httpadapter_would_pick_for_each_setting():
    adapter = HostAdapter()
    proxy = {"https": "http://proxy.internal:3128"}
    cases = [
        ("https://acme.atlassian.net/rest/api/2/issue/OPS-1", True, None, {}),
        ("https://acme.atlassian.net/rest/api/2/issue/OPS-2?x=1", True, None, {}),
        ("https://acme.atlassian.net/rest/api/2/issue/OPS-1", False, None, {}),
        ("https://acme.atlassian.net/x", "/etc/ssl/corporate.pem", None, {}),
        ("https://acme.atlassian.net/x", True, ("c.pem", "k.pem"), {}),
        ("https://acme.atlassian.net/x", True, None, proxy),
        ("https://ACME.atlassian.net:443/x", True, None, {}),
        ("http://acme.atlassian.net/x", True, None, {}),
        ("https://acme.zendesk.com/x", True, None, {}),
    ]
    for url, verify, cert, proxies in cases * 2:
        request = requests.Request("GET", url).prepare()
        ours = adapter.get_connection_with_tls_context(request, verify, proxies, cert)
        theirs = requests.adapters.HTTPAdapter.get_connection_with_tls_context(
            adapter, request, verify, proxies, cert
        )
        assert ours is theirs, (url, verify, cert, proxies)


def test_a_proxy_gets_the_full_url_and_a_direct_request_its_path(platform):
    session = _session(platform.url)
    assert _get(session, f"{platform.url}/echo?a=1#frag").json()["target"] == "/echo?a=1"
    session.proxies["http"] = platform.url  # the fake answers as a forward proxy too
    assert _get(session, "http://platform.invalid/echo?a=1").json()["target"] == (
        "http://platform.invalid/echo?a=1"
    )


def test_tls_verification_still_looks_for_its_ca_bundle_on_each_request():
    session = _session("https://127.0.0.1:9")
    session.verify = "/nonexistent/ca.pem"
    for _ in range(2):
        with pytest.raises(OSError, match="invalid path: /nonexistent/ca.pem"):
            _get(session, "https://127.0.0.1:9/x")


def test_a_platform_that_does_not_answer_in_time_is_a_read_timeout():
    slow = SlowJira(first_answer_after=5)
    try:
        with pytest.raises(requests.ReadTimeout):
            send(_session(slow.url), "PUT", f"{slow.url}/rest/api/2/issue/OPS-1", data="{}", timeout=0.2)
    finally:
        slow.close()


@pytest.mark.parametrize("path", ["/login", "/echo"], ids=["sets-a-cookie", "sets-none"])
def test_an_answer_is_built_as_httpadapter_builds_it(platform, path):
    session = _session(platform.url)
    answer = send(session, "GET", f"{platform.url}{path}", timeout=5)
    adapter = session.get_adapter(platform.url)
    ours = adapter.build_response(answer.request, answer.raw)
    theirs = requests.adapters.HTTPAdapter.build_response(adapter, answer.request, answer.raw)
    assert vars(ours).keys() == vars(theirs).keys()
    for name in vars(theirs).keys() - {"cookies", "elapsed"}:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.cookies.get_dict() == theirs.cookies.get_dict()


@responses.activate
def test_responses_still_answers_instead_of_the_network():
    responses.put("https://acme.zendesk.com/api/v2/tickets/1.json", json={"ticket": {"id": 1}})
    client = ZendeskClient(ZendeskSettings(subdomain="acme", email="bot@acme.test", api_token="t"))
    client.send(OutboundRequest("PUT", "https://acme.zendesk.com/api/v2/tickets/1.json", {"ticket": {}}))
    assert type(client._session().get_adapter("https://acme.zendesk.com")) is HostAdapter
    assert len(responses.calls) == 1


def test_a_pickled_session_still_sends(platform):
    session = pickle.loads(pickle.dumps(_session(platform.url)))
    assert _get(session, f"{platform.url}/echo").status_code == 200


@pytest.mark.parametrize("path", ["/old", "/login", "/echo"], ids=["redirect", "sets-a-cookie", "plain"])
def test_send_returns_what_session_request_returns(platform, path):
    """Answer, history, the answer's and the session's cookies, as `session.request` leaves them."""
    ours_session, theirs_session = _session(platform.url), _session(platform.url)
    ours = send(ours_session, "GET", f"{platform.url}{path}", timeout=5)
    theirs = theirs_session.request("GET", f"{platform.url}{path}", timeout=5)
    assert (ours.status_code, ours.url, ours.content) == (theirs.status_code, theirs.url, theirs.content)
    assert [(r.status_code, r.url) for r in ours.history] == [(r.status_code, r.url) for r in theirs.history]
    assert ours.cookies.get_dict() == theirs.cookies.get_dict()
    assert ours_session.cookies.get_dict() == theirs_session.cookies.get_dict()
    assert ours.raw.closed or ours.raw.isclosed()  # read whole: its connection went back to the pool
    assert ours.elapsed.total_seconds() > 0


def test_the_session_s_response_hooks_run_on_each_answer(platform):
    session = _session(platform.url)
    seen = []
    session.hooks["response"].append(lambda answer, **kw: seen.append((answer.status_code, kw["timeout"])))
    send(session, "GET", f"{platform.url}/old", timeout=5)
    assert seen == [(302, 5), (200, 5)]  # the redirect's answer too, as Session.send runs them


@pytest.mark.parametrize("auth", [("bot@acme.test", "tökén"), requests.auth.HTTPBasicAuth("bot", "p")])
@responses.activate
def test_basic_auth_is_the_header_requests_would_set(auth):
    responses.put("https://acme.test/a", json={})
    session = _session("https://acme.test")
    session.auth = auth
    send(session, "PUT", "https://acme.test/a", timeout=3, data="{}")
    session.request("PUT", "https://acme.test/a", timeout=3, data="{}")
    ours, theirs = (c.request.headers for c in responses.calls)
    assert ours["Authorization"] == theirs["Authorization"] and ours["Authorization"].startswith("Basic ")


@responses.activate
def test_any_other_auth_still_runs_on_each_request():
    responses.get("https://acme.test/a", json={})
    session = _session("https://acme.test")
    counted = []

    def bearer(request):
        counted.append(1)
        request.headers["Authorization"] = f"Bearer {len(counted)}"
        return request

    session.auth = bearer
    for _ in range(2):
        send(session, "GET", "https://acme.test/a", timeout=3)
    assert [c.request.headers["Authorization"] for c in responses.calls] == ["Bearer 1", "Bearer 2"]
