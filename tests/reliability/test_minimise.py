"""Issue 11, finding 5: a platform's error message is stored with its personal data masked."""

from __future__ import annotations

import pytest

from connector.minimise import EMAIL_MASK, mask_personal_data
from connector.store.tables import inbox as inbox_table
from tests.conformance.drivers import Spec, post

# The platforms' own error shapes, each quoting a person (Jira: errors by field; Zendesk:
# RecordInvalid details; ServiceNow: the error envelope of its REST APIs).
REAL_ERRORS = {
    "jira": {"errorMessages": [], "errors": {"reporter": "User 'jane@customer.example' cannot be assigned."}},
    "zendesk": {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {"requester": [{"description": "Requester: jane.doe+vip@customer.example is suspended"}]},
    },
    "servicenow": {
        "error": {
            "message": "Operation Failed",
            "detail": "ACL Exception Update Failed for jane@customer.example",
        },
        "status": "failure",
    },
}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "reporter: User 'jane@customer.example' cannot be assigned.",
            f"reporter: User '{EMAIL_MASK}' cannot be assigned.",
        ),
        ("call +49 30 1234 5678 or (030) 1234-5678", "call <phone> or <phone>"),
        ("from 203.0.113.42 on ticket 12345678", "from <ip-address> on ticket 12345678"),
        ("the gateway is 203.0.113.42.", "the gateway is <ip-address>."),  # a sentence's full stop
        ("version 1.2.3.4.5 of the app", None),
        ("Jira answered 400 to PUT https://acme.atlassian.net/rest/api/2/issue/OPS-12", None),
        ("", None),
        (None, None),
    ],
)
def test_mask_personal_data(text, masked):
    assert mask_personal_data(text) == (text if masked is None else masked)


def test_a_platform_error_quoting_a_person_is_audited_masked(esc, driver, api):
    if esc.rt.engine.dialect.name != "sqlite":
        pytest.skip("masking is not about the database")
    driver.register_write(api, status=422, json=REAL_ERRORS[driver.platform])
    assert post(esc, driver, driver.created(Spec(41, labels=("outage",)), esc.clock())).status_code == 202
    esc.work()
    record = esc.audit()[-1]
    assert record["outcome"] == "failed"
    assert "@" not in record["detail"] and EMAIL_MASK in record["detail"], record["detail"]
    with esc.rt.engine.connect() as conn:
        (error,) = conn.execute(inbox_table.select().with_only_columns(inbox_table.c.last_error)).scalars()
    assert "customer.example" not in error and EMAIL_MASK in error
