"""ServiceNow inbound: the business rule's signature, basic auth, and delivery identification."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from requests.structures import CaseInsensitiveDict

from platforms.base import Delivery
from platforms.errors import PayloadError, SignatureError
from platforms.servicenow import Settings, provider
from platforms.servicenow.webhook import (
    HANDLED_EVENTS,
    IGNORED_EVENTS,
    mac,
    signature,
    verify,
    verify_basic_auth,
    verify_installation,
)
from tests.support.fixtures import fixture_bytes, load_fixture

SECRET = "kT3rN9-example-shared-secret_0123456789"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TIMESTAMP = str(int(NOW.timestamp()))  # "1793610000"
BODY = fixture_bytes("servicenow", "incident_updated__priority")
INC46 = "a9e30c7dc61122760116894de7bcc7bd"
INC50 = "ef43c6d40a0a0b5700c77f9bf387afe3"


def signed(body: bytes = BODY, secret: str = SECRET, timestamp: str = TIMESTAMP) -> dict[str, str]:
    """Headers as the business rule sends them, computed here independently of webhook.py."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return {"X-Escalator-Timestamp": timestamp, "X-Escalator-Signature": base64.b64encode(digest).decode()}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- the MAC the business rule computes ----------------------------------------


def test_mac_is_hmac_sha256_in_base64_rfc4231_case_2():
    # RFC 4231, test case 2: key "Jefe", the HMAC-SHA256 in hex.
    expected = bytes.fromhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert mac("Jefe", b"what do ya want for nothing?") == base64.b64encode(expected).decode()


def test_signature_agrees_with_what_generate_mac_computes_in_the_jvm():
    # CertificateEncryption.generateMac(key, "HmacSHA256", data) takes the key base64-encoded,
    # decodes it, and returns the MAC base64-encoded. The script passes gs.base64Encode(secret),
    # so the HMAC key is the secret's own UTF-8 bytes. This value was computed with
    # javax.crypto.Mac("HmacSHA256") over Base64.decode(Base64.encode(secret)), exactly so,
    # for this key, timestamp and body (tests/fixtures/servicenow/README.md).
    body = b'{"sys_id":"a9e30c7dc61122760116894de7bcc7bd","sys_mod_count":"0"}'
    assert signature(SECRET, "1793610000", body) == "84qafmWvNYaIKHkDKZPoiIY/fyoBdjDPOJVyVU3cVls="
    headers = {
        "X-Escalator-Timestamp": "1793610000",
        "X-Escalator-Signature": signature(SECRET, "1793610000", body),
    }
    verify(headers, body, SECRET, NOW)


def test_the_timestamp_is_part_of_the_signed_text():
    assert signature(SECRET, "1793610000", BODY) == mac(SECRET, b"1793610000." + BODY)
    assert signature(SECRET, "1793610001", BODY) != signature(SECRET, "1793610000", BODY)


# --- verify --------------------------------------------------------------------


def test_valid_signature_passes():
    verify(signed(), BODY, SECRET, NOW)


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_header_names_are_case_insensitive_even_in_a_plain_dict(case):
    verify({case(k): v for k, v in signed().items()}, BODY, SECRET, NOW)


def test_works_with_a_case_insensitive_mapping():
    verify(CaseInsensitiveDict(signed()), BODY, SECRET, NOW)


def test_signed_with_another_secret():
    with pytest.raises(SignatureError, match="does not match the timestamp and body"):
        verify(signed(secret="another secret"), BODY, SECRET, NOW)


def test_body_changed_after_signing():
    tampered = BODY.replace(b'"urgency": "1"', b'"urgency": "3"', 1)
    assert tampered != BODY
    with pytest.raises(SignatureError, match="does not match"):
        verify(signed(), tampered, SECRET, NOW)


def test_timestamp_changed_after_signing_is_a_bad_signature_not_a_fresh_delivery():
    headers = signed(timestamp=str(int(NOW.timestamp()) - 3600))
    headers["X-Escalator-Timestamp"] = TIMESTAMP  # a replay with a fresh timestamp
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers, BODY, SECRET, NOW)


@pytest.mark.parametrize("missing", ["X-Escalator-Timestamp", "X-Escalator-Signature"])
def test_missing_header(missing):
    headers = signed()
    del headers[missing]
    with pytest.raises(SignatureError, match=f"{missing} header is missing"):
        verify(headers, BODY, SECRET, NOW)


@pytest.mark.parametrize(
    "timestamp", ["", "2026-11-02T09:00:00Z", "1793610000.5", "-1793610000", "17e8", "1" * 13]
)
def test_malformed_timestamp(timestamp):
    with pytest.raises(SignatureError, match="not Unix epoch seconds"):
        verify(signed(timestamp=timestamp), BODY, SECRET, NOW)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not base64!",
        base64.b64encode(b"x" * 31).decode(),
        base64.b64encode(b"x" * 33).decode(),
        "sha256=abc",
    ],
)
def test_malformed_signature(value):
    headers = {**signed(), "X-Escalator-Signature": value}
    with pytest.raises(SignatureError, match="not the base64 of a 32-byte HMAC-SHA256"):
        verify(headers, BODY, SECRET, NOW)


def test_signature_differing_in_one_byte_is_rejected():
    digest = bytearray(base64.b64decode(signed()["X-Escalator-Signature"]))
    digest[-1] ^= 1
    headers = {**signed(), "X-Escalator-Signature": base64.b64encode(bytes(digest)).decode()}
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers, BODY, SECRET, NOW)


def test_stale_timestamp_is_refused():
    old = str(int((NOW - timedelta(seconds=301)).timestamp()))
    with pytest.raises(SignatureError, match="301s old; deliveries older than 300s are refused"):
        verify(signed(timestamp=old), BODY, SECRET, NOW)


def test_timestamp_too_far_in_the_future_is_refused():
    ahead = str(int((NOW + timedelta(seconds=301)).timestamp()))
    with pytest.raises(SignatureError, match="301s in the future"):
        verify(signed(timestamp=ahead), BODY, SECRET, NOW)


@pytest.mark.parametrize("seconds", [-300, -1, 0, 1, 300])
def test_timestamps_within_five_minutes_either_way_pass(seconds):
    verify(signed(timestamp=str(int(NOW.timestamp()) + seconds)), BODY, SECRET, NOW)


def test_empty_secret_refuses_everything():
    with pytest.raises(SignatureError, match="no ServiceNow webhook secret"):
        verify(signed(secret=""), BODY, "", NOW)


# --- the installation-aware check: basic auth and the configured age --------------


def settings(**values) -> Settings:
    return Settings(**{"instance": "acme", "webhook_secret": SECRET, **values})


def test_basic_auth_is_not_required_unless_configured():
    verify_basic_auth({}, settings())
    verify_installation(signed(), BODY, settings(), NOW)


def test_basic_auth_when_configured():
    s = settings(inbound_user="servicenow", inbound_password="pa:ss")
    verify_basic_auth({"authorization": basic("servicenow", "pa:ss")}, s)  # a colon in the password is fine
    verify_installation({**signed(), "Authorization": basic("servicenow", "pa:ss")}, BODY, s, NOW)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Authorization header is missing"),
        ("Bearer abc", "not basic auth"),
        ("Basic ***", "not base64 of user:password"),
        (basic("servicenow", "wrong"), "do not match"),
        (basic("someone", "pa:ss"), "do not match"),
        ("Basic " + base64.b64encode(b"servicenow").decode(), "do not match"),  # no colon at all
    ],
)
def test_basic_auth_failures(authorization, message):
    s = settings(inbound_user="servicenow", inbound_password="pa:ss")
    headers = signed() if authorization is None else {**signed(), "Authorization": authorization}
    with pytest.raises(SignatureError, match=message):
        verify_installation(headers, BODY, s, NOW)


def test_installation_check_uses_the_configured_signature_age():
    old = str(int((NOW - timedelta(seconds=200)).timestamp()))
    verify_installation(signed(timestamp=old), BODY, settings(), NOW)
    with pytest.raises(SignatureError, match="200s old; deliveries older than 120s"):
        verify_installation(signed(timestamp=old), BODY, settings(max_signature_age_seconds=120), NOW)


def test_installation_check_without_a_secret_refuses():
    with pytest.raises(SignatureError, match="no ServiceNow webhook secret"):
        provider.verify(signed(), BODY, settings(webhook_secret=None), NOW)


# --- identify ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("incident_inserted__basic", Delivery(f"{INC46}:0", "incident.inserted", INC46)),
        ("incident_updated__priority", Delivery(f"{INC50}:7", "incident.updated", INC50)),
        ("incident_updated__comment_by_caller", Delivery(f"{INC50}:9", "incident.updated", INC50)),
    ],
)
def test_each_handled_event(fixture, expected):
    assert provider.identify({}, load_fixture("servicenow", fixture)) == expected


def test_a_delete_is_ignored_and_does_not_collide_with_the_update_before_it():
    delivery = provider.identify({}, load_fixture("servicenow", "incident_deleted__basic"))
    assert delivery == Delivery(f"{INC50}:12:delete", "incident.deleted", INC50, ignored=True)
    update = provider.identify({}, load_fixture("servicenow", "incident_updated__tagged"))
    assert update.delivery_id == f"{INC50}:12" != delivery.delivery_id


def test_another_table_is_ignored():
    payload = {**load_fixture("servicenow", "incident_updated__priority"), "table": "problem"}
    assert provider.identify({}, payload) == Delivery(
        f"{INC50}:7:update", "problem.updated", INC50, ignored=True
    )


def test_an_ignored_payload_without_ids_gets_a_digest():
    delivery = provider.identify({}, {"table": "problem", "operation": "update"})
    assert delivery.ignored and delivery.ticket_id is None and delivery.delivery_id.startswith("sha256:")


def test_a_payload_without_table_is_an_incident():
    payload = load_fixture("servicenow", "incident_updated__priority")
    del payload["table"]
    assert provider.identify({}, payload).event_type == "incident.updated"


def test_sys_mod_count_sent_as_a_number_is_accepted():
    payload = {**load_fixture("servicenow", "incident_updated__priority"), "sys_mod_count": 7}
    assert provider.identify({}, payload).delivery_id == f"{INC50}:7"


def test_handled_and_ignored_lists_do_not_overlap():
    assert not set(HANDLED_EVENTS) & set(IGNORED_EVENTS)


@pytest.mark.parametrize("payload", [[], "incident", 42, None])
def test_payload_that_is_not_an_object(payload):
    with pytest.raises(PayloadError, match="not a JSON object"):
        provider.identify({}, payload)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("operation", "upsert", "'operation' is 'upsert'"),
        ("operation", None, "'operation' is None"),
        ("table", "", "'table' is not a table name"),
        ("sys_id", "INC0000050", "'sys_id' is not a 32-digit hex sys_id"),
        ("sys_id", None, "'sys_id'"),
        ("sys_mod_count", "seven", "'sys_mod_count' is not a count"),
        ("sys_mod_count", -1, "'sys_mod_count'"),
        ("sys_mod_count", True, "'sys_mod_count'"),
    ],
)
def test_wrong_shapes(key, value, message):
    payload = {**load_fixture("servicenow", "incident_updated__priority"), key: value}
    with pytest.raises(PayloadError, match=message):
        provider.identify({}, payload)
