"""A value a note template writes is literal text in the platform's note field; the template's own
markup (a Jira mention) is left as the policy's author wrote it. A ticket's title, a reply and a label
come from whoever raised the ticket: quoted into a note the bot signs, they must not become a link, an
image every agent's browser fetches, or HTML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from channels.message import Message
from channels.teams import render as teams_card
from connector.model import AddNote, EventKind, Notify, TicketState
from policies import evaluate, load_policy
from policies.markup import jira_wiki, markdown_text, servicenow_journal
from tests.policies.policy_helpers import NOW, event, policy_source, write_policy

EVIL = "Refund [verify your account|https://evil.example] !https://evil.example/p.png! {color:red}x{color}"
RULES = (
    "  - {name: quote, on: ticket.created, then: [{note: 'Reported: {{ ticket.title }} "
    "[~accountid:{{ ticket.assignee }}]'}, {notify: [{channel: oncall, text: 'P1: {{ ticket.title }}'}]}]}"
)


def _decided(tmp_path: Path, platform: str, title: str) -> tuple[str, str]:
    """The note's text and the channel message's, for a new ticket titled `title` on `platform`."""
    policy = load_policy(write_policy(tmp_path, policy_source(RULES)))
    e = event(EventKind.TICKET_CREATED, platform=platform, assignee="557058:0f1e-2d3c")
    e = dataclasses.replace(e, ticket=dataclasses.replace(e.ticket, title=title))
    decision = evaluate(policy, e, TicketState(), NOW)
    (note,) = [a for a in decision.actions if isinstance(a, AddNote)]
    (message,) = decision.notifications
    assert isinstance(message, Notify)
    return note.text, dict(message.texts)["en"]


def test_on_jira_a_title_is_literal_wiki_text_and_the_templates_mention_still_mentions(tmp_path):
    note, message = _decided(tmp_path, "jira", EVIL)
    assert note == (
        r"Reported: Refund \[verify your account\|https://evil.example\] \!https://evil.example/p.png\! "
        r"\{color:red\}x\{color\} [~accountid:557058:0f1e-2d3c]"
    )
    assert message == f"P1: {EVIL}"  # a channel escapes a message's whole text for its own markup


def test_on_servicenow_a_code_tag_in_a_title_stays_text(tmp_path):
    note, _ = _decided(tmp_path, "servicenow", "Help [code]<img src=x onerror=alert(1)>[/CODE] please")
    assert "[code]" not in note.lower() and "[/code]" not in note.lower()
    assert note.startswith("Reported: Help [\u200bcode]<img src=x onerror=alert(1)>[\u200b/CODE] please")


def test_on_zendesk_a_markdown_link_or_image_in_a_title_stays_text(tmp_path):
    # Zendesk reads a comment's body as Markdown: [text](url) is a link there, ![](url) an image.
    title = "Refund [verify your account](https://evil.example) ![](https://evil.example/p.png) [x][1]"
    note, _ = _decided(tmp_path, "zendesk", title)
    assert "](" not in note and "][" not in note
    assert note.replace("\u200b", "") == f"Reported: {title} [~accountid:557058:0f1e-2d3c]"
    assert _decided(tmp_path, "zendesk", "Checkout (EU) is down [urgent]")[0].startswith(
        "Reported: Checkout (EU) is down [urgent]"
    )  # text with brackets and parentheses that opens no link is left as it is


@pytest.mark.parametrize(
    "value, literal",
    [
        (r"a\b", r"a\\b"),
        ("[x|http://e]", r"\[x\|http://e\]"),
        ("!img.png!", r"\!img.png\!"),
        ("{panel}", r"\{panel\}"),
        ("*bold* _it_ -x- 557058:0f1e", "*bold* _it_ -x- 557058:0f1e"),  # how it looks only: left alone
    ],
)
def test_jira_wiki_escapes_what_makes_links_images_macros_and_tables(value, literal):
    assert jira_wiki(value) == literal


def test_servicenow_journal_breaks_every_spelling_of_the_code_tag():
    for tag in ("[code]", "[CODE]", "[ code ]", "[/code]", "[/ Code]"):
        assert servicenow_journal(tag) != tag and servicenow_journal(tag).replace("\u200b", "") == tag


def test_a_teams_card_shows_a_markdown_link_in_a_title_as_text():
    text = "see [here](https://e.x) or [there][1]\n\n[1]: https://evil.example"
    message = Message("m-1", "zendesk", "7", "7", "[verify](https://evil.example)", text)
    card = teams_card(message)["attachments"][0]["content"]
    texts = [block["text"] for block in card["body"]]
    assert all("](" not in t and "][" not in t and "]:" not in t for t in texts)
    assert texts[1].replace("\u200b", "") == text


def test_markdown_text_breaks_links_images_and_references_only():
    assert (
        markdown_text("[a](b) ![c](d) [e][f] [g]: h").replace("\u200b", "|")
        == "[a]|(b) ![c]|(d) [e]|[f] [g]|: h"
    )
    assert markdown_text("plain (text) [tag] *bold*") == "plain (text) [tag] *bold*"
