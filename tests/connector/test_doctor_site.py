"""`escalator doctor` checks the policy against the live site, one request per kind, with the sites'
answers in their recorded shapes: every name the site lacks is a FAIL that says what to change."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import responses

from connector.config import Config
from connector.doctor import FAIL, OK, diagnose
from tests.support.fixtures import fixture_bytes, load_fixture

SECRET = "a-webhook-secret-long-enough"  # doctor fails one shorter than 16 bytes

JIRA, ZENDESK, SERVICENOW = (
    "https://acme.atlassian.net",
    "https://acme.zendesk.com",
    "https://acme.service-now.com",
)


def config(tmp_path, **platforms) -> Config:
    return Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "platforms": platforms})


def problems(found, subject: str) -> list[str]:
    return [f.message for f in found if f.subject == subject and f.level == FAIL]


def without(items: list[dict], key: str, value: str) -> list[dict]:
    kept = [item for item in items if item.get(key) != value]
    assert len(kept) == len(items) - 1, value
    return kept


@responses.activate
def test_jira_names_a_missing_priority_a_tier_account_that_does_not_exist_and_a_missing_field(tmp_path):
    me = load_fixture("jira", "api/myself")
    responses.get(f"{JIRA}/rest/api/2/myself", json=me)
    # Server's default scheme: none of Highest / High / Medium / Low exist
    responses.get(
        f"{JIRA}/rest/api/2/priority",
        json=json.loads(fixture_bytes("jira", "api/priority_list__server_default")),
    )
    fields = json.loads(fixture_bytes("jira", "api/field_list"))
    responses.get(f"{JIRA}/rest/api/2/field", json=without(fields, "id", "customfield_10050"))
    users = load_fixture("jira", "api/user_bulk")
    users["values"] = without(users["values"], "accountId", "557058:l3-security-account-id")
    responses.get(f"{JIRA}/rest/api/2/user/bulk", json=users)
    jira = {
        "url": JIRA,
        "email": "b@acme.test",
        "api_token": "t",
        "webhook_secret": SECRET,
        "account_id": me["accountId"],
    }

    found = problems(diagnose(config(tmp_path, jira=jira)), "jira")

    have = "it has: Blocker, Critical, Major, Minor, Trivial"
    p1 = f"platforms.jira.priorities.P1: 'Highest' is not a priority on the site ({have}): "
    assert p1 + "use one of those names, or add 'Highest' to the site's priority scheme" in found
    assert sum("is not a priority on the site" in m for m in found) == 4
    assert ("platforms.jira.fields.revenue_impact: 'customfield_10050' is not a field on the site "
            f"(GET {JIRA}/rest/api/2/field): use the id of an existing field") in found  # fmt: skip
    l3 = "platforms.jira.tiers.L3.assignee: '557058:l3-security-account-id' is not a user on the site "
    assert l3 + f"(GET {JIRA}/rest/api/2/user/bulk): use the id of the person who works that tier" in found
    assert len(found) == 6
    assert len(responses.calls) == 4  # myself, then one request per kind
    bulk = parse_qs(urlsplit(responses.calls[3].request.url).query)
    assert sorted(bulk["accountId"]) == sorted(
        u["accountId"] for u in load_fixture("jira", "api/user_bulk")["values"]
    )


@responses.activate
def test_zendesk_names_a_missing_group_and_a_missing_ticket_field(tmp_path):
    responses.get(f"{ZENDESK}/api/v2/users/me.json", json=load_fixture("zendesk", "api/users_me"))
    groups = load_fixture("zendesk", "api/groups")
    groups["groups"] = without(groups["groups"], "id", 360000000104)
    responses.get(f"{ZENDESK}/api/v2/groups.json", json=groups)
    ticket_fields = load_fixture("zendesk", "api/ticket_fields")
    ticket_fields["ticket_fields"] = without(ticket_fields["ticket_fields"], "id", 360000000201)
    responses.get(f"{ZENDESK}/api/v2/ticket_fields.json", json=ticket_fields)
    zendesk = {
        "url": ZENDESK,
        "email": "b@acme.test",
        "api_token": "t",
        "webhook_secret": SECRET,
        "user_id": "6164070000001",
    }

    found = problems(diagnose(config(tmp_path, zendesk=zendesk)), "zendesk")

    assert found == [
        f"platforms.zendesk.fields.affected_customers: '360000000201' is not a field on the site "
        f"(GET {ZENDESK}/api/v2/ticket_fields.json): use the id of an existing field",
        f"platforms.zendesk.tiers.management.group: '360000000104' is not a group on the site "
        f"(GET {ZENDESK}/api/v2/groups.json): use the id of the group that works that tier",
    ]


@responses.activate
def test_servicenow_names_a_missing_assignment_group_and_a_missing_labels_field(tmp_path):
    responses.get(
        f"{SERVICENOW}/api/now/table/sys_user",
        json=load_fixture("servicenow", "api/table_get_sys_user__by_user_name"),
    )
    groups = load_fixture("servicenow", "api/table_get_sys_user_group__by_sys_ids")
    groups["result"] = without(groups["result"], "sys_id", "0" * 30 + "c2")  # Berlin's L2 team
    responses.get(f"{SERVICENOW}/api/now/table/sys_user_group", json=groups)
    columns = load_fixture("servicenow", "api/table_get_sys_dictionary__incident_columns")
    columns["result"] = without(columns["result"], "element", "u_escalator_labels")
    responses.get(f"{SERVICENOW}/api/now/table/sys_dictionary", json=columns)
    user = load_fixture("servicenow", "api/table_get_sys_user__by_user_name")["result"][0]["user_name"]
    servicenow = {"url": SERVICENOW, "user": user, "password": "p", "webhook_secret": SECRET}

    found = problems(diagnose(config(tmp_path, servicenow=servicenow)), "servicenow")

    table = f"{SERVICENOW}/api/now/table"
    assert found == [
        f"platforms.servicenow.labels_field: 'u_escalator_labels' is not a field on the site "
        f"(GET {table}/sys_dictionary): use the id of an existing field, or create the field",
        f"platforms.servicenow.tiers.L2.follow_the_sun[1].group: '{'0' * 30}c2' is not a group on the site "
        f"(GET {table}/sys_user_group): use the id of the group that works that tier",
    ]
    (call,) = [c for c in responses.calls if "/sys_user_group" in c.request.url]
    query = parse_qs(urlsplit(call.request.url).query)["sysparm_query"][0]
    assert query.startswith("sys_idIN") and query.count(",") == 5  # every group in one request


@responses.activate
def test_a_site_that_refuses_a_lookup_is_a_warning_not_a_verdict(tmp_path):
    me = load_fixture("jira", "api/myself")
    responses.get(f"{JIRA}/rest/api/2/myself", json=me)
    responses.get(
        f"{JIRA}/rest/api/2/priority", status=403, json={"errorMessages": ["You are not an administrator"]}
    )
    responses.get(f"{JIRA}/rest/api/2/field", json=json.loads(fixture_bytes("jira", "api/field_list")))
    responses.get(f"{JIRA}/rest/api/2/user/bulk", json=load_fixture("jira", "api/user_bulk"))
    jira = {
        "url": JIRA,
        "email": "b@acme.test",
        "api_token": "t",
        "webhook_secret": SECRET,
        "account_id": me["accountId"],
    }

    found = [(f.level, f.message) for f in diagnose(config(tmp_path, jira=jira)) if f.subject == "jira"]

    assert found[1][0] == "warn" and "could not check the policy's priority names" in found[1][1]
    assert "You are not an administrator" in found[1][1]
    assert [level for level, _ in found[2:]] == [OK, OK]
