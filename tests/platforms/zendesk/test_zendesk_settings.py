"""Zendesk settings and the provider's declared surface."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from platforms.base import CAP_ASSIGNEE, CAP_GROUP, CAP_INTERNAL_NOTES, CAP_LABELS, CAP_PRIORITY
from platforms.zendesk import Settings, ZendeskClient, provider


def test_subdomain_names_the_zendesk_url():
    s = Settings(subdomain="Acme")
    assert s.subdomain == "acme" and s.url is None
    assert s.base_url == "https://acme.zendesk.com"


def test_url_trailing_slash_is_stripped_and_any_http_base_works():
    assert Settings(url="https://acme.zendesk.com/").base_url == "https://acme.zendesk.com"
    assert Settings(url="http://127.0.0.1:8765//").base_url == "http://127.0.0.1:8765"
    assert Settings(url="https://proxy.example/zendesk").base_url == "https://proxy.example/zendesk"


def test_one_of_url_or_subdomain_is_required():
    with pytest.raises(ValidationError, match="set either 'url'.*or 'subdomain'"):
        Settings()


def test_url_and_subdomain_together_are_refused():
    with pytest.raises(ValidationError, match="not both"):
        Settings(url="https://acme.zendesk.com", subdomain="acme")


def test_blank_values_from_unset_environment_variables_count_as_absent():
    s = Settings(url="", subdomain="acme", email="", api_token="", user_id="", webhook_secret=" ")
    assert s.base_url == "https://acme.zendesk.com"
    assert (s.email, s.api_token, s.user_id, s.webhook_secret) == (None, None, None, None)
    with pytest.raises(ValidationError, match="set either"):
        Settings(url="", subdomain="")


@pytest.mark.parametrize("url", ["acme.zendesk.com", "ftp://acme.zendesk.com", "https://", "https://x/?a=1"])
def test_url_must_be_an_http_base_url(url):
    with pytest.raises(ValidationError, match="url"):
        Settings(url=url)


@pytest.mark.parametrize("subdomain", ["acme.zendesk.com", "https://acme", "-acme", "ac me", "acme-"])
def test_subdomain_must_be_a_bare_label(subdomain):
    with pytest.raises(ValidationError, match="bare subdomain"):
        Settings(subdomain=subdomain)


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        Settings(subdomain="acme", token="x")


def test_defaults():
    s = Settings(subdomain="acme")
    assert (s.timeout, s.max_signature_age_seconds) == (15.0, 300.0)
    assert (s.email, s.api_token, s.webhook_secret, s.user_id) == (None, None, None, None)
    assert s.can_write is False


def test_user_id_given_as_a_number_is_kept_as_text():
    assert Settings(subdomain="acme", user_id=6164070000001).user_id == "6164070000001"


def test_can_write_needs_email_and_token():
    assert Settings(subdomain="acme", email="e@x", api_token="t").can_write
    assert not Settings(subdomain="acme", email="e@x").can_write
    assert not Settings(subdomain="acme", api_token="t").can_write


def test_secrets_stay_out_of_repr():
    s = Settings(subdomain="acme", email="e@x", api_token="sekrit-token", webhook_secret="sekrit-hook")
    assert "sekrit" not in repr(s) and "sekrit" not in str(s)


@pytest.mark.parametrize("field", ["timeout", "max_signature_age_seconds"])
def test_durations_must_be_positive(field):
    with pytest.raises(ValidationError, match=field):
        Settings(subdomain="acme", **{field: 0})


def test_settings_are_frozen():
    s = Settings(subdomain="acme")
    with pytest.raises(ValidationError, match="frozen"):
        s.subdomain = "other"


def test_provider_surface():
    assert provider.key == "zendesk"
    assert provider.capabilities == frozenset(
        {CAP_PRIORITY, CAP_ASSIGNEE, CAP_GROUP, CAP_LABELS, CAP_INTERNAL_NOTES}
    )


def test_client_constructor_does_no_io_and_keeps_our_identity():
    client = ZendeskClient(Settings(subdomain="acme", user_id="6164070000001"))
    assert client.own_account_id == "6164070000001"
    assert client._http is None and client._zenpy is None  # built lazily, on the first send
    assert ZendeskClient(Settings(subdomain="acme")).own_account_id is None
