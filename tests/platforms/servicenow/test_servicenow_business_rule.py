"""business_rule.js, run under Node with fakes of the Glide APIs it calls (business_rule_harness.js).

What it proves: every fixture is byte-for-byte the JSON the script sends for the state it
describes; the script signs the way webhook.py verifies (generateMac with a base64 key);
its properties do what README.md says; and it stays ES5, which ServiceNow's Rhino needs.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import UTC, datetime

import pytest

from connector.model import EventKind
from platforms.errors import SignatureError
from platforms.servicenow import Settings, provider
from platforms.servicenow.webhook import verify, verify_installation
from tests.platforms.servicenow.harness import NODE, SCRIPT, SECRET, URL, run_business_rule, scenario_for
from tests.support.fixtures import fixture_names, load_fixture

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the harness clock
NAMES = fixture_names("servicenow")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: business_rule.js is not run")


def send(scenario: dict) -> tuple[dict, bytes]:
    """The one request the script made, and its body as bytes."""
    done = run_business_rule(scenario)
    assert done["logs"] == []
    [request] = done["requests"]
    return request, request["body"].encode("ascii")  # ASCII, or this raises


@needs_node
@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_is_what_the_business_rule_sends(name):
    payload = load_fixture("servicenow", name)
    request, body = send(scenario_for(payload))
    assert json.loads(body) == payload
    assert request["method"] == "POST" and request["endpoint"] == URL
    assert request["async"] is True  # executeAsync: the user's save does not wait for Escalator
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["timeout_ms"] == 10_000 and request["basic_auth"] is None


@needs_node
def test_what_the_script_signs_is_what_webhook_py_verifies():
    request, body = send(scenario_for(load_fixture("servicenow", "incident_updated__priority")))
    headers = request["headers"]
    assert headers["X-Escalator-Timestamp"] == "1793610000"  # epoch seconds of the harness clock
    verify(headers, body, SECRET, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers, body, "another secret", NOW)
    # … and Escalator reads what it was sent.
    payload = json.loads(body)
    event = provider.normalise(payload, provider.identify(headers, payload))
    assert event.kind is EventKind.TICKET_UPDATED and event.changed("priority") is not None


@needs_node
def test_non_ascii_text_is_escaped_so_the_signed_bytes_are_unambiguous():
    request, body = send(scenario_for(load_fixture("servicenow", "incident_updated__comment_by_caller")))
    assert b"\\u2014" in body and "\u2014" not in request["body"]
    assert (
        json.loads(body)["comment"]["text"]
        == "This is the third time \u2014 I want to speak to your manager."
    )
    verify(request["headers"], body, SECRET, NOW)


@needs_node
def test_basic_auth_comes_from_properties_and_matches_the_inbound_settings():
    scenario = scenario_for(
        load_fixture("servicenow", "incident_updated__priority"),
        **{"x_escalator.user": "servicenow", "x_escalator.password": "pa:ss"},
    )
    request, body = send(scenario)
    assert request["basic_auth"] == ["servicenow", "pa:ss"]
    # What RESTMessageV2.setBasicAuth puts on the wire:
    authorization = "Basic " + base64.b64encode(b"servicenow:pa:ss").decode()
    settings = Settings(
        instance="acme", webhook_secret=SECRET, inbound_user="servicenow", inbound_password="pa:ss"
    )
    verify_installation({**request["headers"], "Authorization": authorization}, body, settings, NOW)


@needs_node
def test_timeout_property():
    scenario = scenario_for(
        load_fixture("servicenow", "incident_updated__priority"), **{"x_escalator.timeout_seconds": "5"}
    )
    assert send(scenario)[0]["timeout_ms"] == 5_000


@needs_node
@pytest.mark.parametrize("missing", ["x_escalator.url", "x_escalator.secret"])
def test_without_url_or_secret_nothing_is_sent_and_the_admin_is_told(missing):
    scenario = scenario_for(load_fixture("servicenow", "incident_updated__priority"))
    del scenario["properties"][missing]
    done = run_business_rule(scenario)
    assert done["requests"] == []
    [(level, message)] = done["logs"]
    assert level == "warn"
    assert message == (
        "Escalator: set the system properties x_escalator.url and x_escalator.secret; INC0000050 was not sent"
    )


@needs_node
def test_disabled_sends_nothing_silently():
    scenario = scenario_for(
        load_fixture("servicenow", "incident_updated__priority"), **{"x_escalator.enabled": "false"}
    )
    assert run_business_rule(scenario) == {"requests": [], "logs": []}


@needs_node
def test_default_caller_fields_dot_walk_to_the_location():
    scenario = scenario_for(load_fixture("servicenow", "incident_updated__priority"))
    del scenario["properties"]["x_escalator.caller_fields"]  # the default: region=location.country, language
    scenario["records"]["sys_user"][0]["location"] = "108752c8c611227501d4ab0e392ba97f"
    scenario["records"]["cmn_location"] = [
        {"sys_id": "108752c8c611227501d4ab0e392ba97f", "country": "Germany"}
    ]
    caller = json.loads(send(scenario)[1])["caller"]
    assert caller["region"] == "Germany" and caller["language"] == "de" and caller["tier"] == ""


@needs_node
def test_an_empty_reference_on_the_way_gives_an_empty_value():
    scenario = scenario_for(load_fixture("servicenow", "incident_updated__priority"))
    scenario["properties"]["x_escalator.caller_fields"] = "region=location.country"
    scenario["records"]["sys_user"][0]["location"] = ""
    assert json.loads(send(scenario)[1])["caller"]["region"] == ""


@needs_node
def test_extra_fields_dot_walk_and_an_unknown_field_is_reported_not_sent():
    payload = load_fixture("servicenow", "incident_updated__priority")
    scenario = scenario_for(payload, **{"x_escalator.extra_fields": "category, company.u_tier ,u_nope"})
    scenario["current"]["company"] = "31bea3d53790200044e0bfc8bcbe5dec"
    scenario["records"]["core_company"] = [{"sys_id": "31bea3d53790200044e0bfc8bcbe5dec", "u_tier": "gold"}]
    done = run_business_rule(scenario)
    assert done["logs"] == [
        ["warn", 'Escalator: x_escalator.extra_fields names "u_nope", which incident does not have']
    ]
    sent = json.loads(done["requests"][0]["body"])
    assert sent["extra_fields"] == {"category": "hardware", "company.u_tier": "gold"}


@needs_node
def test_a_changed_extra_field_is_reported_as_a_change():
    payload = copy.deepcopy(load_fixture("servicenow", "incident_updated__priority"))
    payload["changes"].append({"field": "category", "previous": "software", "current": "hardware"})
    assert json.loads(send(scenario_for(payload))[1]) == payload


@needs_node
def test_a_wrong_caller_fields_entry_is_reported():
    scenario = scenario_for(
        load_fixture("servicenow", "incident_updated__priority"),
        **{"x_escalator.caller_fields": "segment=u_tier,language=preferred_language"},
    )
    done = run_business_rule(scenario)
    [(level, message)] = done["logs"]
    assert level == "warn"
    assert message == (
        'Escalator: x_escalator.caller_fields entry "segment=u_tier" '
        "is not region=, tier= or language=<field>"
    )
    assert json.loads(done["requests"][0]["body"])["caller"]["language"] == "de"


@needs_node
def test_private_tags_are_not_sent():
    payload = load_fixture("servicenow", "incident_updated__tagged")
    scenario = scenario_for(payload)
    scenario["records"]["label"][0]["viewable_by"] = "me"  # "escalated-l2", someone's private tag
    assert json.loads(send(scenario)[1])["tags"] == ["outage"]


def test_the_script_is_es5():
    # Rhino runs ServiceNow's server scripts: ES5, so none of the later syntax. Comments and
    # strings are blanked first, so only code is checked.
    source = SCRIPT.read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.DOTALL)
    code = re.sub(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", "''", code)
    found = {
        token: re.search(pattern, code)
        for token, pattern in {
            "let": r"\blet\s", "const": r"\bconst\s", "class": r"\bclass\s", "arrow function": r"=>",
            "template string": r"`", "spread": r"\.\.\.", "for-of": r"\bof\b", ".trim()": r"\.trim\(",
        }.items()
    }  # fmt: skip
    assert not {token for token, match in found.items() if match}, "business_rule.js must stay ES5"
    assert source.rstrip().endswith("})(current, previous);")  # the business rule wrapper ServiceNow expects
