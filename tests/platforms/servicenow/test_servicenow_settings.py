"""ServiceNow settings and the provider's declared surface."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from platforms.base import CAP_ASSIGNEE, CAP_GROUP, CAP_INTERNAL_NOTES, CAP_LABELS, CAP_PRIORITY
from platforms.servicenow import ServiceNowClient, Settings, provider


def test_instance_becomes_the_service_now_com_url():
    assert Settings(instance="acme").base_url == "https://acme.service-now.com"
    assert Settings(instance=" Dev12345 ").base_url == "https://dev12345.service-now.com"


def test_url_is_any_http_base_url_trailing_slash_stripped():
    assert Settings(url="http://127.0.0.1:8089/").base_url == "http://127.0.0.1:8089"
    assert Settings(url="https://proxy.example.com/snow//").base_url == "https://proxy.example.com/snow"


@pytest.mark.parametrize("values", [{}, {"url": "https://acme.service-now.com", "instance": "acme"}])
def test_exactly_one_of_url_and_instance(values):
    with pytest.raises(ValidationError, match="exactly one of 'url' or 'instance'"):
        Settings(**values)


@pytest.mark.parametrize(
    "url", ["acme.service-now.com", "ftp://acme.service-now.com", "https://", "https://x/?a=1"]
)
def test_url_must_be_an_http_base_url(url):
    with pytest.raises(ValidationError, match="url"):
        Settings(url=url)


@pytest.mark.parametrize("instance", ["https://acme.service-now.com", "acme.service-now.com", "-acme", "a_b"])
def test_instance_is_a_name_not_a_url(instance):
    with pytest.raises(ValidationError, match="instance name only"):
        Settings(instance=instance)


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        Settings(instance="acme", api_token="x")


def test_defaults():
    s = Settings(instance="acme")
    assert (s.user, s.password, s.webhook_secret, s.inbound_user, s.inbound_password) == (None,) * 5
    assert (s.label_entry, s.extra_fields, s.timeout, s.max_signature_age_seconds) == (False, (), 15.0, 300)
    assert s.can_write is False


def test_can_write_needs_user_and_password():
    assert Settings(instance="acme", user="escalator.bot", password="pw").can_write
    assert not Settings(instance="acme", user="escalator.bot").can_write
    assert not Settings(instance="acme", password="pw").can_write


def test_inbound_basic_auth_needs_both_parts():
    assert Settings(instance="acme", inbound_user="sn", inbound_password="pw").inbound_user == "sn"
    with pytest.raises(ValidationError, match="go together"):
        Settings(instance="acme", inbound_user="sn")


def test_extra_fields_are_field_names():
    assert Settings(instance="acme", extra_fields=["category", "company.u_tier"]).extra_fields == (
        "category",
        "company.u_tier",
    )
    with pytest.raises(ValidationError, match="not ServiceNow field names: 'Category'"):
        Settings(instance="acme", extra_fields=["Category"])


def test_secrets_stay_out_of_repr():
    s = Settings(
        instance="acme", user="escalator.bot", password="sekrit-pw", webhook_secret="sekrit-hook",
        inbound_user="sn", inbound_password="sekrit-inbound",
    )  # fmt: skip
    assert "sekrit" not in repr(s) and "sekrit" not in str(s)
    assert "escalator.bot" in repr(s)


@pytest.mark.parametrize("values", [{"timeout": 0}, {"max_signature_age_seconds": 0}])
def test_durations_must_be_positive(values):
    with pytest.raises(ValidationError):
        Settings(instance="acme", **values)


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings(instance="acme").label_entry = True


def test_provider_surface():
    assert provider.key == "servicenow"
    assert provider.capabilities == frozenset({CAP_PRIORITY, CAP_ASSIGNEE, CAP_GROUP, CAP_INTERNAL_NOTES})
    assert CAP_LABELS not in provider.capabilities


def test_client_constructor_does_no_io_and_keeps_our_identity():
    client = ServiceNowClient(Settings(instance="acme", user="escalator.bot", password="pw"))
    assert client.own_account_id == "escalator.bot"
    assert client._snow is None  # built lazily, on the first request


def test_blank_values_from_unset_environment_variables_count_as_absent():
    from platforms.servicenow import Settings

    settings = Settings(instance="acme", inbound_user="", inbound_password="", url="")
    assert settings.inbound_user is None and settings.inbound_password is None
    assert settings.base_url == "https://acme.service-now.com"
