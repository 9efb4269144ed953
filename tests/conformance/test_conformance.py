"""The adapter conformance suite: the same story on every platform gives the same decision and the
platform-correct request. Each test runs once per platform in DRIVERS, through the real Flask app,
inbox, worker, example policy and audit log, with the platform's HTTP faked by `responses`."""

from __future__ import annotations

from datetime import timedelta

from tests.conformance.drivers import MINOR, OUTAGE, QUESTION, SECURITY, Effect, Spec, after, decide, post

# --- decisions: the same on every platform --------------------------------------------------


def test_new_p1_outage_ticket_goes_to_l2_with_a_label_and_an_internal_note(esc, driver, api):
    driver.register_write(api)
    record = decide(esc, driver, driver.created(OUTAGE, esc.clock()))

    assert record["outcome"] == "applied"
    assert (record["priority"]["to"], record["tier"]["from"], record["tier"]["to"]) == ("P1", "L1", "L2")
    assert record["rules"] == ["outage-goes-to-l2", "p1-notice"]
    writes = driver.writes(api)
    effect = driver.effect(writes, OUTAGE)
    assert effect == Effect("P1", "L2", frozenset({"escalated-l2"}), True, effect.note_text)
    assert "total outage" in effect.note_text and "outage-goes-to-l2" in effect.note_text
    assert len(writes) == driver.writes_per_decision(effect)
    assert [a["status"] < 300 for a in record["actions_applied"]] == [True] * len(writes)


def test_security_ticket_goes_to_l3(esc, driver, api):
    driver.register_write(api)
    record = decide(esc, driver, driver.created(SECURITY, esc.clock()))

    assert record["outcome"] == "applied" and record["rules"] == ["security-goes-to-l3"]
    assert (record["priority"]["to"], record["tier"]["to"]) == ("P3", "L3")  # P4 raised one level: risk
    effect = driver.effect(driver.writes(api), SECURITY)
    assert (effect.priority, effect.tier, effect.labels_added, effect.note_internal) == (
        "P3", "L3", frozenset({"escalated-l3"}), True,
    )  # fmt: skip
    assert len(driver.writes(api)) == driver.writes_per_decision(effect)


def test_requester_asking_for_a_manager_goes_to_management(esc, driver, api):
    driver.register_write(api)
    first = decide(esc, driver, driver.created(QUESTION, esc.clock()))
    assert first["outcome"] == "no_change"
    api.calls.reset()

    text = "This is the third time I ask. I want to speak to your manager."
    record = decide(esc, driver, driver.commented(QUESTION, text, esc.clock()))

    assert record["outcome"] == "applied" and record["rules"] == ["customer-asks-for-manager"]
    assert record["trigger"]["kind"] == "comment.added"
    assert record["inputs"]["comment"]["by_requester"] is True
    effect = driver.effect(driver.writes(api), QUESTION)
    assert (effect.tier, effect.labels_added, effect.note_internal) == (
        "management", frozenset({"escalated-management"}), True,
    )  # fmt: skip


def test_a_priority_a_person_lowered_is_left_alone(esc, driver, api):
    driver.register_write(api)
    first = decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    now = after(OUTAGE, driver.effect(driver.writes(api), OUTAGE))
    api.calls.reset()

    lowered = Spec(now.n, now.title, now.labels, "P3", now.tier)
    record = decide(esc, driver, driver.priority_changed(lowered, before=now.priority, now=esc.clock()))

    assert first["outcome"] == "applied" and now.priority == "P1"
    assert record["outcome"] == "no_change"
    assert record["priority"]["to"] == "P3"  # raise_only: the person's choice stands
    assert driver.writes(api) == []


def test_an_echo_of_our_own_write_sends_nothing(esc, driver, api):
    driver.register_write(api)
    decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    now = after(OUTAGE, driver.effect(driver.writes(api), OUTAGE))
    api.calls.reset()

    record = decide(esc, driver, driver.echo(now, esc.clock()))

    assert record["outcome"] == "echo"
    assert driver.writes(api) == []


def test_a_duplicate_delivery_is_processed_once(esc, driver, api):
    driver.register_write(api)
    delivery = driver.created(OUTAGE, esc.clock())
    assert post(esc, driver, delivery).status_code == 202
    again = post(esc, driver, delivery)
    assert (again.status_code, again.json["result"]) == (200, "duplicate")
    esc.work()

    assert [r["outcome"] for r in esc.audit()] == ["applied"]
    effect = driver.effect(driver.writes(api), OUTAGE)
    assert len(driver.writes(api)) == driver.writes_per_decision(effect)


def test_nothing_to_change_sends_nothing(esc, driver, api):
    driver.register_write(api)
    record = decide(esc, driver, driver.created(MINOR, esc.clock()))

    assert record["outcome"] == "no_change" and record["priority"]["to"] == "P4"
    assert driver.writes(api) == []


# --- faults: the same handling on every platform ----------------------------------------------


def test_429_then_success_waits_for_retry_after_and_sends_the_same_request_again(esc, driver, api):
    driver.register_write(api, status=429, headers={"Retry-After": "30"}, json=driver.error_body("slow down"))
    driver.register_write(api)
    answer = post(esc, driver, driver.created(OUTAGE, esc.clock()))
    assert answer.status_code == 202
    esc.work()

    (retrying,) = esc.audit()
    assert retrying["outcome"] == "retrying"
    assert retrying["retry_at"] >= (esc.clock() + timedelta(seconds=30)).isoformat()
    first_try = driver.writes(api)
    assert len(first_try) == 1  # stopped at the refused request

    esc.clock.advance(29)
    assert esc.work() == 0  # Retry-After is honoured
    esc.clock.advance(60)
    esc.work()
    assert [r["outcome"] for r in esc.audit()] == ["retrying", "applied"]
    writes = driver.writes(api)
    assert writes[1] == first_try[0]  # the very same request again
    effect = driver.effect(writes[1:], OUTAGE)
    assert len(writes) == 1 + driver.writes_per_decision(effect)


def test_a_login_page_answering_200_is_not_a_write_and_the_write_goes_again(esc, driver, api):
    # Single sign-on or a proxy in front of the site (or a url that is not its API) answers 200 with a
    # page: Jira's and Zendesk's writes counted it as done, and the audit said "applied".
    page = "<html><body>Sign in to continue</body></html>"
    driver.register_write(api, status=200, body=page, content_type="text/html; charset=utf-8")
    driver.register_write(api)
    driver.register_no_note(api)  # a note in that write may have gone through: it is looked for first
    post(esc, driver, driver.created(OUTAGE, esc.clock()))
    esc.work()
    (retrying,) = esc.audit()
    assert retrying["outcome"] == "retrying"
    assert "answered" in retrying["detail"] and "text/html; charset=utf-8, not JSON" in retrying["detail"]
    esc.clock.advance(120)
    esc.work()
    assert [r["outcome"] for r in esc.audit()] == ["retrying", "applied"]
    written = [w for w in driver.writes(api) if w.method != "GET"]
    assert len(written) == 1 + driver.writes_per_decision(driver.effect(written[1:], OUTAGE))


def test_a_4xx_is_recorded_as_failed_with_the_platforms_message(esc, driver, api):
    message = "You are not allowed to edit this ticket"
    driver.register_write(api, status=403, json=driver.error_body(message))
    post(esc, driver, driver.created(OUTAGE, esc.clock()))
    esc.work()

    (record,) = esc.audit()
    assert record["outcome"] == "failed"
    assert "403" in record["detail"] and message in record["detail"]
    esc.clock.advance(3600)
    assert esc.work() == 0  # not retried blindly
    assert len(driver.writes(api)) == 1
