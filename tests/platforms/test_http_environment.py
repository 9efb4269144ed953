"""The clients read the proxy and CA-bundle environment once per session, as requests would per request."""

from __future__ import annotations

import pytest
import responses

from platforms.jira.client import JiraClient
from platforms.jira.settings import Settings as JiraSettings
from platforms.servicenow.client import ServiceNowClient
from platforms.servicenow.settings import Settings as ServiceNowSettings
from platforms.zendesk.client import ZendeskClient
from platforms.zendesk.settings import Settings as ZendeskSettings

PROXY = "http://proxy.internal:3128"


def clients():
    return [
        JiraClient(JiraSettings(url="https://acme.atlassian.net", email="bot@acme.test", api_token="t")),
        ZendeskClient(ZendeskSettings(subdomain="acme", email="bot@acme.test", api_token="t")),
        ServiceNowClient(ServiceNowSettings(instance="acme", user="bot", password="p")),
    ]


@pytest.mark.parametrize("client", clients(), ids=["jira", "zendesk", "servicenow"])
def test_a_proxy_and_a_ca_bundle_from_the_environment_are_used_without_reading_it_per_request(
    client, monkeypatch
):
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    session = client._session()
    assert session.trust_env is False
    assert session.proxies["https"] == PROXY
    assert session.verify == "/etc/ssl/corporate.pem"


def test_no_proxy_naming_the_host_keeps_its_requests_direct(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "acme.atlassian.net")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = clients()[0]._session()
    assert "https" not in session.proxies and session.verify is True


@responses.activate
def test_a_write_still_goes_out_with_the_session_s_auth():
    client = clients()[1]
    responses.put("https://acme.zendesk.com/api/v2/tickets/1.json", json={"ticket": {"id": 1}})
    client._session().put("https://acme.zendesk.com/api/v2/tickets/1.json", json={})
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
