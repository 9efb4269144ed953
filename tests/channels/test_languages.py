"""Texts per language: the requester's language picks a public note's text, a channel's `language`
its messages; a missing translation falls back to the policy's default_language; dates follow the
reader's language (Babel). `policy check` wants the default language in every multi-language text."""

from __future__ import annotations

import pytest
import responses

from connector.config import Config
from connector.outbox import OutboxSender
from policies import check_policy
from tests.channels.conftest import Story, email_channel, escalator, slack_channel
from tests.conformance.drivers import OUTAGE, ZendeskDriver, after, decide
from tests.policies.policy_helpers import write_policy
from tests.support.harness import FakeClock, start


def zendesk_esc(db_url: str):
    config = Config.model_validate(
        {"database": db_url, "dry_run": False, "platforms": {"zendesk": dict(ZendeskDriver.settings)}}
    )
    return start(config, FakeClock())


def resolved_note(esc, api, language: str) -> tuple[bool, str]:
    """A P1 on Zendesk whose requester's language is `language`, then solved: the public note sent."""
    driver = ZendeskDriver(esc.rt.policy.current.platforms["zendesk"])
    driver.register_write(api)
    now = esc.clock()
    body = driver._body(OUTAGE, "ticket.created", driver.requester, now)
    body["requester"]["language"] = language  # what Zendesk's {{ticket.requester.language}} renders
    decide(esc, driver, driver.deliver(body, now))
    spec = after(OUTAGE, driver.effect(driver.writes(api), OUTAGE))
    api.calls.reset()
    esc.clock.advance(3600)
    solved = driver._body(spec, "ticket.updated", "6130907993114", esc.clock())
    solved["ticket"]["status"] = "Solved"
    solved["requester"]["language"] = language
    record = decide(esc, driver, driver.deliver(solved, esc.clock()))
    assert record["rules"] == ["p1-resolved-report"], record["reasons"]
    effect = driver.effect(driver.writes(api), spec)
    return effect.note_internal is False, effect.note_text


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.mark.parametrize("language", ["Indonesian", "id"])
def test_an_indonesian_requester_gets_the_indonesian_public_note(sqlite_url, api, language):
    esc = zendesk_esc(sqlite_url)
    public, text = resolved_note(esc, api, language)
    assert public and text.startswith(
        "Kabar baik: masalah yang Anda laporkan (Checkout is down for all our stores)"
    )
    esc.rt.close()


def test_a_missing_translation_falls_back_to_the_default_language(sqlite_url, api):
    esc = zendesk_esc(sqlite_url)
    public, text = resolved_note(esc, api, "German")  # the policy has no German text
    assert public and text.startswith("Good news: the problem you reported (Checkout is down")
    esc.rt.close()


def test_a_channel_speaks_its_own_language_with_dates_in_it(sqlite_url, slack, smtp, api):
    esc = escalator(
        sqlite_url, {"oncall": slack_channel(slack, language="id"), "managers": email_channel(smtp)}
    )
    story = Story(esc, api)
    story.open_p1()
    OutboxSender(esc.rt).send_due()
    (notice,) = slack.posts
    text = notice["blocks"][1]["text"]["text"]
    assert text.startswith("P1 SHOP-1: Checkout is down for all our stores. Dampak high, urgensi high")
    assert "Pembaruan berikutnya paling lambat 2 Nov 2026 10.00.00 UTC." in text
    assert notice["blocks"][2]["elements"][0]["text"] == "*Prioritas:* P1"
    mail = smtp.mails[0]  # the channel without a language: the default one
    assert "Next update due Nov 2, 2026, 10:00:00\u202fAM UTC." in mail.get_body(("plain",)).get_content()
    esc.rt.close()


TEXTS = """
policy: p
version: 1
default_language: en
priority:
  matrix: {high: {high: P1}}
  impact: [{is: high}]
  urgency: [{is: high}]
tiers: [L1, L2]
rules:
  - name: r
    on: ticket.created
    then:
      - note:
          text:
            id: "Halo"
            de: "Hallo"
      - notify:
          channel: oncall
          text: {en: "hi", xx_YY: "??"}
"""


def test_policy_check_wants_the_default_language_and_known_locales(tmp_path):
    problems = [(p.line, p.message) for p in check_policy(write_policy(tmp_path, TEXTS))]
    assert problems == [
        (15, "rule 'r': no text in the default language 'en' (given: id, de)"),
        (20, "rule 'r': unknown language 'xx_YY' (a locale such as en, id, de, pt_BR)"),
    ]


def test_an_unknown_default_language_is_refused(tmp_path):
    text = TEXTS.replace("default_language: en", "default_language: klingon")
    (first, *_) = check_policy(write_policy(tmp_path, text))
    assert (first.line, first.message) == (
        4,
        "default_language: unknown language 'klingon' (a locale such as en, id, de, pt_BR)",
    )
