"""Zendesk inbound: signature verification and delivery identification, for both body styles."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from requests.structures import CaseInsensitiveDict

from platforms.base import Delivery
from platforms.errors import PayloadError, SignatureError
from platforms.zendesk import provider
from platforms.zendesk.change_id import change_id
from platforms.zendesk.webhook import (
    HANDLED_EVENT_TYPES,
    IGNORED_EVENT_TYPES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from tests.support.fixtures import fixture_bytes, load_fixture

SECRET = "wMZJU7Dlw7pdGPBAs7fz3lVSjF5Hef8mqD7avv5n7zs="  # the shape of a real signing secret
STAMP = "2023-09-18T23:38:13Z"  # the header value as recorded, ISO-8601 UTC
NOW = datetime(2023, 9, 18, 23, 38, 14, tzinfo=UTC)
BODY = fixture_bytes("zendesk", "user.deleted__captured")
INVOCATION = "01HANA2B5D5W9XSJS3NE5SQA1J"  # as recorded


def sign(body: bytes, stamp: str = STAMP, secret: str = SECRET) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    ).decode()


def signed(body: bytes = BODY, stamp: str = STAMP, **extra: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(body, stamp), TIMESTAMP_HEADER: stamp, **extra}


# --- verify ------------------------------------------------------------------


def test_valid_signature_over_the_captured_body_passes():
    verify(signed(), BODY, SECRET, NOW)


def test_valid_signature_over_a_trigger_body_passes():
    body = fixture_bytes("zendesk", "ticket.comment_added__trigger_asks_for_manager")
    verify(signed(body), body, SECRET, NOW)


def test_header_names_are_case_insensitive_even_in_a_plain_dict():
    headers = {SIGNATURE_HEADER.lower(): sign(BODY), TIMESTAMP_HEADER.upper(): STAMP}
    verify(headers, BODY, SECRET, NOW)


def test_works_with_a_case_insensitive_mapping():
    verify(CaseInsensitiveDict(signed()), BODY, SECRET, NOW)


def test_the_timestamp_is_signed_too():
    # The same body signed at another time does not verify with this timestamp: a replay
    # cannot borrow a fresh timestamp.
    other = "2023-09-18T23:38:12Z"
    headers = {SIGNATURE_HEADER: sign(BODY, other), TIMESTAMP_HEADER: STAMP}
    with pytest.raises(SignatureError, match="does not match the timestamp and body"):
        verify(headers, BODY, SECRET, NOW)


def test_signed_with_another_secret():
    headers = {SIGNATURE_HEADER: sign(BODY, secret="another secret"), TIMESTAMP_HEADER: STAMP}
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers, BODY, SECRET, NOW)


def test_body_changed_after_signing():
    tampered = BODY.replace(b"end-user", b"admin", 1)
    assert tampered != BODY
    with pytest.raises(SignatureError, match="does not match"):
        verify(signed(), tampered, SECRET, NOW)


def test_the_recorded_signature_does_not_verify_under_our_secret():
    # The captured header was made with a secret we do not have: proof the check is real.
    recorded = {SIGNATURE_HEADER: "TmnyajSgXX2+tMqZ98RmknPqglKM+XJsgum1GkwFsW0=", TIMESTAMP_HEADER: STAMP}
    with pytest.raises(SignatureError, match="does not match"):
        verify(recorded, BODY, SECRET, NOW)


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_missing_header(missing):
    headers = signed()
    del headers[missing]
    with pytest.raises(SignatureError, match=f"{missing} header is missing"):
        verify(headers, BODY, SECRET, NOW)


@pytest.mark.parametrize(
    "value",
    ["", "not base64!", base64.b64encode(b"short").decode(), "sha256=" + "ab" * 32, "ab" * 32],
)
def test_malformed_signature(value):
    with pytest.raises(SignatureError, match="not the base64 of a 32-byte HMAC-SHA256"):
        verify({SIGNATURE_HEADER: value, TIMESTAMP_HEADER: STAMP}, BODY, SECRET, NOW)


@pytest.mark.parametrize("stamp", ["", "yesterday", "1695080293", "2023-09-18", "2023-09-18T23:38:13"])
def test_malformed_timestamp(stamp):
    with pytest.raises(SignatureError, match="not an ISO-8601 date-time with a UTC offset"):
        verify(signed(stamp=stamp), BODY, SECRET, NOW)


def test_stale_timestamp_is_refused():
    later = datetime(2023, 9, 18, 23, 43, 14, tzinfo=UTC)  # 301 s after signing
    with pytest.raises(
        SignatureError, match=r"is 301s old; deliveries signed more than 300s ago are refused"
    ):
        verify(signed(), BODY, SECRET, later)


def test_exactly_five_minutes_old_still_passes():
    verify(signed(), BODY, SECRET, datetime(2023, 9, 18, 23, 43, 13, tzinfo=UTC))


def test_timestamp_in_the_future_is_refused():
    earlier = datetime(2023, 9, 18, 23, 30, 0, tzinfo=UTC)  # 493 s before the stamp
    with pytest.raises(SignatureError, match=r"is 493s in the future; more than 300s ahead is refused"):
        verify(signed(), BODY, SECRET, earlier)


def test_a_little_clock_skew_ahead_passes():
    verify(signed(), BODY, SECRET, NOW - timedelta(seconds=90))


def test_max_age_can_be_tightened():
    with pytest.raises(SignatureError, match="more than 0.5s ago"):
        verify(signed(), BODY, SECRET, NOW, max_age_seconds=0.5)


def test_offset_timestamps_are_compared_in_utc():
    stamp = "2023-09-19T01:38:13+02:00"  # the same instant as STAMP
    verify(signed(stamp=stamp), BODY, SECRET, NOW)


def test_empty_secret_refuses_everything():
    with pytest.raises(SignatureError, match="no Zendesk webhook secret"):
        verify(signed(), BODY, "", NOW)


# --- identify: event subscriptions -------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "event_type"),
    [
        ("ticket.created__subscription", "zen:event-type:ticket.created"),
        ("ticket.priority_changed__subscription_by_person", "zen:event-type:ticket.priority_changed"),
        ("ticket.status_changed__subscription", "zen:event-type:ticket.status_changed"),
        ("ticket.tags_changed__subscription", "zen:event-type:ticket.tags_changed"),
        ("ticket.agent_assignment_changed__subscription", "zen:event-type:ticket.agent_assignment_changed"),
        ("ticket.group_assignment_changed__subscription", "zen:event-type:ticket.group_assignment_changed"),
        ("ticket.comment_added__subscription_asks_for_manager", "zen:event-type:ticket.comment_added"),
    ],
)
def test_each_handled_event_type(fixture, event_type):
    delivery = provider.identify(
        {"X-Zendesk-Webhook-Invocation-Id": INVOCATION}, load_fixture("zendesk", fixture)
    )
    assert delivery == Delivery(INVOCATION, event_type, "4021", ignored=False)


def test_without_the_header_the_event_id_is_the_delivery_id():
    payload = load_fixture("zendesk", "ticket.created__subscription")
    assert provider.identify({}, payload).delivery_id == "2b9b3a4e-6d1f-4f0e-9a53-0d4b1c2e7f01"


def test_the_invocation_header_wins_over_the_event_id_whatever_its_case():
    payload = load_fixture("zendesk", "ticket.created__subscription")
    assert provider.identify({"x-zendesk-webhook-invocation-id": "inv-1"}, payload).delivery_id == "inv-1"


def test_event_without_header_or_id_is_a_payload_error():
    payload = load_fixture("zendesk", "ticket.created__subscription")
    del payload["id"]
    with pytest.raises(PayloadError, match="no X-Zendesk-Webhook-Invocation-Id header and no 'id'"):
        provider.identify({}, payload)


def test_the_captured_user_event_is_ignored_not_an_error():
    delivery = provider.identify(
        {"X-Zendesk-Webhook-Invocation-Id": INVOCATION}, load_fixture("zendesk", "user.deleted__captured")
    )
    assert delivery == Delivery(INVOCATION, "zen:event-type:user.deleted", None, ignored=True)


def test_an_ignored_ticket_event_still_names_its_ticket():
    delivery = provider.identify({}, load_fixture("zendesk", "ticket.subject_changed__subscription"))
    assert delivery.ignored and delivery.ticket_id == "4021"
    assert delivery.event_type == "zen:event-type:ticket.subject_changed"


def test_ticket_id_falls_back_to_the_subject():
    payload = load_fixture("zendesk", "ticket.status_changed__subscription")
    del payload["detail"]["id"]
    assert provider.identify({}, payload).ticket_id == "4021"


def test_ticket_id_sent_as_a_number_is_text():
    payload = load_fixture("zendesk", "ticket.created__subscription")
    payload["detail"]["id"] = 4021
    assert provider.identify({}, payload).ticket_id == "4021"


def test_handled_event_naming_no_ticket():
    payload = load_fixture("zendesk", "ticket.created__subscription")
    del payload["detail"]["id"]
    payload["subject"] = "zen:user:6164069643162"
    with pytest.raises(PayloadError, match="names no ticket"):
        provider.identify({}, payload)


@pytest.mark.parametrize("ident", ["abc", True, -1, "12 3"])
def test_handled_event_with_a_wrong_ticket_id(ident):
    payload = load_fixture("zendesk", "ticket.created__subscription")
    payload["detail"]["id"] = ident
    with pytest.raises(PayloadError, match="'detail.id' is not a ticket id"):
        provider.identify({}, payload)


def test_handled_and_ignored_lists_do_not_overlap():
    assert not set(HANDLED_EVENT_TYPES) & set(IGNORED_EVENT_TYPES)
    assert all(t.startswith("zen:event-type:ticket.") for t in (*HANDLED_EVENT_TYPES, *IGNORED_EVENT_TYPES))


# --- identify: trigger template ----------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "event_type", "ticket_id"),
    [
        ("ticket.created__trigger", "trigger:ticket.created", "7"),
        ("ticket.updated__trigger_echo", "trigger:ticket.updated", "4021"),
        ("ticket.priority_changed__trigger_lowered_by_person", "trigger:ticket.priority_changed", "4021"),
        ("ticket.comment_added__trigger_asks_for_manager", "trigger:ticket.comment_added", "4021"),
    ],
)
def test_each_trigger_event(fixture, event_type, ticket_id):
    payload = load_fixture("zendesk", fixture)
    delivery = provider.identify({"X-Zendesk-Webhook-Invocation-Id": INVOCATION}, payload)
    # Named by the update itself (what the reconcile job also names it), not by the invocation.
    comment = event_type == "trigger:ticket.comment_added"
    expected = change_id(ticket_id, payload["ticket"]["updated_at"], comment=comment)
    assert expected is not None and expected.startswith(f"{ticket_id}@")
    assert delivery == Delivery(expected, event_type, ticket_id, ignored=False)


def test_a_trigger_delivery_is_named_by_ticket_and_updated_at_to_the_second():
    payload = load_fixture("zendesk", "ticket.updated__trigger_echo")
    payload["ticket"]["updated_at"] = "2026-11-02T09:02:00Z"
    first = provider.identify({"X-Zendesk-Webhook-Invocation-Id": "a"}, payload)
    again = provider.identify({"X-Zendesk-Webhook-Invocation-Id": "b"}, payload)  # a retry
    assert first.delivery_id == again.delivery_id == "4021@1793610120"
    # The comment trigger of the same update is another delivery.
    payload["event"] = "ticket.comment_added"
    assert provider.identify({}, payload).delivery_id == "4021@1793610120:comment"


def test_trigger_delivery_without_seconds_needs_the_invocation_header():
    payload = load_fixture("zendesk", "ticket.created__trigger")
    payload["ticket"]["updated_at"] = "2013-12-12T05:35Z"  # an account that renders no seconds
    assert provider.identify({"X-Zendesk-Webhook-Invocation-Id": "inv"}, payload).delivery_id == "inv"
    with pytest.raises(PayloadError, match="trigger delivery has no X-Zendesk-Webhook-Invocation-Id header"):
        provider.identify({}, payload)


@pytest.mark.parametrize("event", ["ticket.deleted", "", None, 7, "zen:event-type:ticket.created"])
def test_trigger_with_an_unknown_event_value(event):
    payload = load_fixture("zendesk", "ticket.created__trigger")
    payload["event"] = event
    with pytest.raises(PayloadError, match="the trigger must send one of ticket.created, ticket.updated"):
        provider.identify({"X-Zendesk-Webhook-Invocation-Id": "1"}, payload)


@pytest.mark.parametrize("ident", ["", "{{ticket.id}}", "7a", None])
def test_trigger_with_a_wrong_ticket_id(ident):
    payload = load_fixture("zendesk", "ticket.created__trigger")
    payload["ticket"]["id"] = ident
    with pytest.raises(PayloadError, match="'ticket.id' is not a ticket id"):
        provider.identify({"X-Zendesk-Webhook-Invocation-Id": "1"}, payload)


def test_trigger_without_ticket_object():
    payload = load_fixture("zendesk", "ticket.created__trigger")
    payload["ticket"] = "7"
    with pytest.raises(PayloadError, match="no 'ticket' object"):
        provider.identify({"X-Zendesk-Webhook-Invocation-Id": "1"}, payload)


# --- identify: neither ---------------------------------------------------------


@pytest.mark.parametrize("payload", [[], "ticket.created", 42, None])
def test_payload_that_is_not_an_object(payload):
    with pytest.raises(PayloadError, match="not a JSON object"):
        provider.identify({}, payload)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"ticket_id": "7", "ticket_title": "Hello world"},
        {"type": "ticket.created", "detail": {"id": "1"}},
    ],
)
def test_neither_body_style(payload):
    with pytest.raises(PayloadError, match="neither an event .* nor Escalator's trigger template"):
        provider.identify({"X-Zendesk-Webhook-Invocation-Id": "1"}, payload)


def test_the_provider_takes_secret_and_replay_window_from_the_settings():
    from platforms.zendesk import Settings

    settings = Settings(subdomain="acme", webhook_secret=SECRET, max_signature_age_seconds=30)
    provider.verify(signed(), BODY, settings, NOW + timedelta(seconds=20))
    with pytest.raises(SignatureError, match="old"):
        provider.verify(signed(), BODY, settings, NOW + timedelta(seconds=40))
