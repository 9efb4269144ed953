"""Jira inbound: signature verification and delivery identification."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from requests.structures import CaseInsensitiveDict

from platforms.base import Delivery
from platforms.errors import PayloadError, SignatureError
from platforms.jira import provider
from platforms.jira.change_id import change_id
from platforms.jira.webhook import HANDLED_EVENTS, IGNORED_EVENTS, payload_digest, verify
from tests.support.fixtures import fixture_bytes, load_fixture

SECRET = "It's a Secret to Everybody"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
BODY = fixture_bytes("jira", "issue_updated__priority")


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- verify ------------------------------------------------------------------


def test_valid_signature_passes():
    verify({"X-Hub-Signature": sign(BODY)}, BODY, SECRET, NOW)


@pytest.mark.parametrize("name", ["x-hub-signature", "X-HUB-SIGNATURE"])
def test_header_name_is_case_insensitive_even_in_a_plain_dict(name):
    verify({name: sign(BODY)}, BODY, SECRET, NOW)


def test_works_with_a_case_insensitive_mapping():
    verify(CaseInsensitiveDict({"x-hub-signature": sign(BODY)}), BODY, SECRET, NOW)


def test_upper_case_hex_digest_is_accepted():
    scheme, digest = sign(BODY).split("=")
    verify({"X-Hub-Signature": f"{scheme}={digest.upper()}"}, BODY, SECRET, NOW)


def test_missing_header():
    with pytest.raises(SignatureError, match="header is missing"):
        verify({"Content-Type": "application/json"}, BODY, SECRET, NOW)


@pytest.mark.parametrize("value", ["sha1=" + "a" * 40, "md5=" + "a" * 64])
def test_wrong_scheme(value):
    with pytest.raises(SignatureError, match="only sha256 is accepted"):
        verify({"X-Hub-Signature": value}, BODY, SECRET, NOW)


@pytest.mark.parametrize("value", ["", "sha256", sign(BODY)[len("sha256=") :]])
def test_not_scheme_equals_digest(value):
    with pytest.raises(SignatureError, match="not of the form sha256=<hex>"):
        verify({"X-Hub-Signature": value}, BODY, SECRET, NOW)


@pytest.mark.parametrize(
    "digest", ["", "zz" * 32, "ab" * 31, "ab" * 33, sign(BODY)[len("sha256=") :][:-1] + " "]
)
def test_digest_not_64_hex(digest):
    with pytest.raises(SignatureError, match="not 64 hex digits"):
        verify({"X-Hub-Signature": "sha256=" + digest}, BODY, SECRET, NOW)


def test_signed_with_another_secret():
    with pytest.raises(SignatureError, match="does not match"):
        verify({"X-Hub-Signature": sign(BODY, "another secret")}, BODY, SECRET, NOW)


def test_body_changed_after_signing():
    tampered = BODY.replace(b'"High"', b'"Low"', 1)
    assert tampered != BODY
    with pytest.raises(SignatureError, match="does not match"):
        verify({"X-Hub-Signature": sign(BODY)}, tampered, SECRET, NOW)


def test_digest_differing_only_in_last_digit_is_rejected():
    good = sign(BODY)
    last = "0" if good[-1] != "0" else "1"
    with pytest.raises(SignatureError, match="does not match"):
        verify({"X-Hub-Signature": good[:-1] + last}, BODY, SECRET, NOW)


def test_empty_secret_refuses_everything():
    with pytest.raises(SignatureError, match="no Jira webhook secret"):
        verify({"X-Hub-Signature": sign(BODY, "")}, BODY, "", NOW)


# --- identify ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "event_type"),
    [
        ("issue_created__basic", "jira:issue_created"),
        ("issue_updated__priority", "jira:issue_updated"),
        ("comment_created__basic", "comment_created"),
    ],
)
def test_each_handled_event(fixture, event_type):
    payload = load_fixture("jira", fixture)
    delivery = provider.identify({"X-Atlassian-Webhook-Identifier": "42-1"}, payload)
    # An issue change is named by the change, a new comment by the comment (what the reconcile job
    # also names them), whatever the header says.
    if event_type.startswith("jira:issue_"):
        expected = change_id(payload["issue"])
    else:
        expected = f"10040/comment/{payload['comment']['id']}"
    assert delivery == Delivery(delivery_id=expected, event_type=event_type, ticket_id="10040", ignored=False)


def test_an_issue_change_is_named_by_issue_id_and_updated_instant_whatever_the_zone():
    payload = load_fixture("jira", "issue_updated__priority")
    first = provider.identify({"X-Atlassian-Webhook-Identifier": "a"}, payload).delivery_id
    # A retry with another identifier, and the REST rendering of the same instant in another zone:
    payload["issue"]["fields"]["updated"] = "2019-02-16T22:15:16.037+0100"
    assert provider.identify({"X-Atlassian-Webhook-Identifier": "b"}, payload).delivery_id == first
    assert first == "10040@1550351716037"
    payload["issue"]["fields"]["updated"] = "2019-02-16T22:15:17.000+0100"  # a later change
    assert provider.identify({}, payload).delivery_id != first


def without_changes() -> dict:
    """An issue_updated that changes no field and adds no comment: named by Jira's header, if any."""
    return {**load_fixture("jira", "issue_updated__priority"), "changelog": {"id": "1", "items": []}}


def test_a_new_comment_is_one_delivery_whichever_webhook_reports_it():
    created = load_fixture("jira", "comment_created__basic")
    twin = {
        **without_changes(),
        "issue_event_type_name": "issue_commented",
        "comment": created["comment"],
    }
    ids = {provider.identify({"X-Atlassian-Webhook-Identifier": h}, p).delivery_id
           for h, p in (("a", created), ("b", twin))}  # fmt: skip
    assert ids == {f"10040/comment/{created['comment']['id']}"}
    edited = {**twin, "issue_event_type_name": "issue_comment_edited"}  # not a new reply: Jira's header
    assert provider.identify({"X-Atlassian-Webhook-Identifier": "c"}, edited).delivery_id == "c"


def test_delivery_id_header_is_found_whatever_its_case():
    payload = without_changes()
    assert provider.identify({"x-atlassian-webhook-identifier": "7"}, payload).delivery_id == "7"


def test_without_the_header_the_id_is_a_digest_of_the_canonical_payload():
    payload = without_changes()
    delivery = provider.identify({}, payload)
    assert delivery.delivery_id.startswith("sha256:")
    assert len(delivery.delivery_id) == len("sha256:") + 64
    # A redelivery of the same event, keys in another order, is the same delivery …
    reordered = dict(reversed(list(payload.items())))
    assert provider.identify({}, reordered).delivery_id == delivery.delivery_id
    # … and another event is not.
    later = {**payload, "timestamp": payload["timestamp"] + 1}
    assert provider.identify({}, later).delivery_id != delivery.delivery_id
    assert delivery.delivery_id == payload_digest(payload)


def test_ticket_id_is_a_string_even_when_sent_as_a_number():
    payload = load_fixture("jira", "issue_created__basic")
    payload["issue"]["id"] = 10040
    assert provider.identify({}, payload).ticket_id == "10040"


def test_unhandled_event_is_ignored_not_an_error():
    delivery = provider.identify(
        {"X-Atlassian-Webhook-Identifier": "9"}, load_fixture("jira", "issue_deleted__basic")
    )
    assert delivery == Delivery("9", "jira:issue_deleted", "10040", ignored=True)


def test_unknown_event_without_an_issue_is_ignored_too():
    delivery = provider.identify({}, {"webhookEvent": "worklog_updated", "worklog": {"id": "1"}})
    assert delivery.ignored and delivery.ticket_id is None and delivery.event_type == "worklog_updated"


def test_handled_and_ignored_lists_do_not_overlap():
    assert not set(HANDLED_EVENTS) & set(IGNORED_EVENTS)


@pytest.mark.parametrize("payload", [[], "jira:issue_created", 42, None])
def test_payload_that_is_not_an_object(payload):
    with pytest.raises(PayloadError, match="not a JSON object"):
        provider.identify({}, payload)


@pytest.mark.parametrize("event", [None, "", 7, ["jira:issue_created"]])
def test_no_webhook_event(event):
    payload = load_fixture("jira", "issue_created__basic")
    payload["webhookEvent"] = event
    with pytest.raises(PayloadError, match="no 'webhookEvent'"):
        provider.identify({}, payload)


def test_no_webhook_event_key_at_all():
    payload = load_fixture("jira", "issue_created__basic")
    del payload["webhookEvent"]
    with pytest.raises(PayloadError, match="no 'webhookEvent'"):
        provider.identify({}, payload)


@pytest.mark.parametrize("issue_id", [None, "", True, {"id": 1}])
def test_handled_event_without_issue_id(issue_id):
    payload = load_fixture("jira", "comment_created__basic")
    payload["issue"]["id"] = issue_id
    with pytest.raises(PayloadError, match="'issue.id' missing"):
        provider.identify({}, payload)


def test_handled_event_without_issue():
    payload = load_fixture("jira", "issue_updated__labels")
    del payload["issue"]
    with pytest.raises(PayloadError, match="no 'issue' object"):
        provider.identify({}, payload)


def test_the_provider_verifies_with_the_installations_secret():
    from platforms.jira import Settings

    settings = Settings(url="https://acme.atlassian.net", webhook_secret=SECRET)
    provider.verify({"X-Hub-Signature": sign(BODY)}, BODY, settings, NOW)
    with pytest.raises(SignatureError):
        provider.verify({"X-Hub-Signature": sign(BODY, "another secret")}, BODY, settings, NOW)
