"""Jira settings and the provider's declared surface."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from platforms.base import CAP_ASSIGNEE, CAP_GROUP, CAP_INTERNAL_NOTES, CAP_LABELS, CAP_PRIORITY
from platforms.jira import JiraClient, Settings, provider


def test_url_trailing_slash_is_stripped():
    assert Settings(url="https://acme.atlassian.net/").url == "https://acme.atlassian.net"
    assert Settings(url="http://localhost:8080/jira//").url == "http://localhost:8080/jira"


@pytest.mark.parametrize(
    "url", ["acme.atlassian.net", "ftp://acme.atlassian.net", "https://", "https://x/?a=1"]
)
def test_url_must_be_an_http_base_url(url):
    with pytest.raises(ValidationError, match="url"):
        Settings(url=url)


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        Settings(url="https://acme.atlassian.net", token="x")


def test_defaults():
    s = Settings(url="https://acme.atlassian.net")
    assert (s.notes, s.timeout, s.email, s.api_token, s.webhook_secret, s.account_id) == (
        "internal",
        15.0,
        None,
        None,
        None,
        None,
    )
    assert s.can_write is False


def test_notes_is_internal_or_comment():
    assert Settings(url="https://a.b", notes="comment").notes == "comment"
    with pytest.raises(ValidationError):
        Settings(url="https://a.b", notes="public")


def test_can_write_needs_email_and_token():
    assert Settings(url="https://a.b", email="e@x", api_token="t").can_write
    assert not Settings(url="https://a.b", email="e@x").can_write
    assert not Settings(url="https://a.b", api_token="t").can_write


def test_secrets_stay_out_of_repr():
    s = Settings(url="https://a.b", email="e@x", api_token="sekrit-token", webhook_secret="sekrit-hook")
    assert "sekrit" not in repr(s) and "sekrit" not in str(s)


def test_timeout_must_be_positive():
    with pytest.raises(ValidationError):
        Settings(url="https://a.b", timeout=0)


def test_provider_surface():
    assert provider.key == "jira"
    assert provider.capabilities == frozenset({CAP_PRIORITY, CAP_ASSIGNEE, CAP_LABELS, CAP_INTERNAL_NOTES})
    assert CAP_GROUP not in provider.capabilities


def test_client_constructor_does_no_io_and_keeps_our_identity():
    client = JiraClient(Settings(url="https://a.b", account_id="escalator-bot-account-id"))
    assert client.own_account_id == "escalator-bot-account-id"
    assert client._jira is None  # built lazily, on the first send
