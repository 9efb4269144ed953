"""`last_reply`: the ticket's latest public comment as templates and conditions see it — masked,
bounded, with a role instead of a name, and zero values when there is none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from connector.model import AddNote, Comment, EventKind, Person, Reply, TicketState
from policies import Policy, check_policy, evaluate, load_policy, sla
from policies.sla import SlaState
from policies.variables import REPLY_EXCERPT
from tests.policies.policy_helpers import EXAMPLE, NOW, event, policy_source, requester_comment, write_policy

TEMPLATE = "[{{ last_reply.by }}|{{ last_reply.at }}|{{ last_reply.text }}]"
RULES = (
    f"  - {{name: quote, on: [comment.added, ticket.updated], then: [{{note: '{TEMPLATE}'}}]}}\n"
    "  - {name: waiting, on: ticket.updated, when: 'last_reply.by == \"requester\"',"
    " then: [{label: waiting}]}"
)


def load(tmp_path: Path) -> Policy:
    return load_policy(write_policy(tmp_path, policy_source(RULES)))


def note_of(policy: Policy, e, state: TicketState) -> str:
    (note,) = [a for a in evaluate(policy, e, state, NOW).actions if isinstance(a, AddNote)]
    return note.text


def test_no_reply_gives_empty_values(tmp_path: Path) -> None:
    assert note_of(load(tmp_path), event(EventKind.TICKET_UPDATED), TicketState()) == "[||]"


def test_the_remembered_reply_is_quoted_with_a_role_not_a_name(tmp_path: Path) -> None:
    remembered = Reply(datetime(2024, 5, 6, 11, 30, tzinfo=UTC), False, "Sam Agent", "We are on it.")
    text = note_of(load(tmp_path), event(EventKind.TICKET_UPDATED), TicketState(last_reply=remembered))
    assert text == "[agent|2024-05-06T11:30:00Z|We are on it.]"
    assert "Sam" not in text


def test_the_events_own_public_comment_is_the_latest_masked_and_cut(tmp_path: Path) -> None:
    policy = load(tmp_path)
    long = "Mail ada@example.com or call +44 20 7946 0958 from 192.168.1.20. " + "More detail here. " * 20
    e = requester_comment(long)
    remembered = Reply(datetime(2024, 5, 6, 9, 0, tzinfo=UTC), False, "Sam Agent", "Older reply.")
    decision = evaluate(policy, e, TicketState(last_reply=remembered), NOW)
    (note,) = [a for a in decision.actions if isinstance(a, AddNote)]
    by, _, text = note.text.strip("[]").split("|")
    assert by == "requester"
    assert text.startswith("Mail <e-mail> or call <phone> from <ip-address>. More detail here.")
    assert text.endswith(" …") and len(text) <= REPLY_EXCERPT
    # a condition reads it too
    waiting = TicketState(last_reply=Reply(NOW, True, "", "x"))
    later = evaluate(policy, event(EventKind.TICKET_UPDATED), waiting, NOW)
    assert "waiting" in later.rules


def test_an_excerpt_stored_before_masking_never_leaks_a_cut_address(tmp_path: Path) -> None:
    # Older SLA states kept the cut text unmasked: "jane.doe@shop.exa…" is no address the mask knows.
    cut = "Please write to jane.doe@shop.exa…"
    remembered = Reply(NOW, True, "Jane Doe", cut)
    text = note_of(load(tmp_path), event(EventKind.TICKET_UPDATED), TicketState(last_reply=remembered))
    assert text.endswith("|Please write to …]") and "jane" not in text


def test_the_sla_state_keeps_the_reply_masked_before_it_is_cut(tmp_path: Path) -> None:
    policy = load_policy(EXAMPLE)
    text = "x" * 130 + " reach me at someone.long.name@example.com"  # the cut would fall inside the address
    author = Person(id="cust-1", name="Ada Customer")
    e = event(
        EventKind.COMMENT_ADDED,
        comment=Comment(id="c-9", text=text, author=author, public=True, by_requester=True),
        actor=author,
    )
    state = sla.advance(policy, SlaState(), e, None, NOW)
    assert state.last_reply is not None and "someone" not in state.last_reply.excerpt
    assert state.last_reply.excerpt == "x" * 130 + " reach me at <e-mail>"
    assert SlaState.from_json(state.to_json()).last_reply == state.last_reply


def test_last_reply_is_not_for_impact_or_clock_conditions(tmp_path: Path) -> None:
    source = policy_source("  - {name: r, on: ticket.created, then: [{label: x}]}").replace(
        "- {{is: low}}".replace("{{", "{").replace("}}", "}"),
        "- {when: 'last_reply.by == \"requester\"', is: low}\n    - {is: low}",
        1,
    )
    problems = check_policy(write_policy(tmp_path, source))
    assert any("'last_reply' is not available here" in p.message for p in problems), problems
