"""The pure evaluator: (policy, event, state, now) → Decision. No I/O; equal inputs give equal outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cel

from connector.model import (
    Action,
    AddLabel,
    AddNote,
    AssignTier,
    Decision,
    EventKind,
    Notify,
    Priority,
    RemoveLabel,
    SetPriority,
    TicketEvent,
    TicketState,
)

from .markup import note_escape
from .policy import NEXT_TIER, Escalate, Level, NoteTemplate, NotifyTemplate, Policy
from .templates import RENDER_ERRORS, pick_language, render_note
from .variables import (
    comment_variables,
    event_variables,
    last_reply_variables,
    sla_variables,
    ticket_variables,
)

# In a decision's priority_why whenever raise_only kept a person's priority (replay reads it back).
PERSON_SET = "priority set by a person; raise_only keeps it"


def evaluate(policy: Policy, event: TicketEvent, state: TicketState, now: datetime) -> Decision:
    """Apply the policy to one event (time events carry their clock in `event.sla`); `now` is not read:
    SLA clocks are kept by `policies.sla.advance`, which the caller runs with the decision's priority."""
    ticket = event.ticket
    tier_before = state.tier or policy.tiers[0]
    mapping = policy.platforms.get(ticket.ref.platform)
    variables: dict[str, Any] = {
        "ticket": ticket_variables(event, tier_before, policy.fields, mapping.fields if mapping else {}),
        "event": event_variables(event),
        "comment": comment_variables(event),
        "sla": sla_variables(event.sla, _timezone(policy, event)),
        "last_reply": last_reply_variables(event, state.last_reply),
    }
    kind = str(getattr(event.kind, "value", event.kind))
    reads = policy.reads.event(kind)
    context = reads.context(variables)  # converted to CEL values once, shared by every condition
    reasons: list[str] = []
    if event.sla is not None:
        reasons.append(_sla_reason(variables["sla"]))

    # 1. impact × urgency → base priority, then raises
    prio = policy.priority
    impact = _choose("impact", prio.impact, context, reasons)
    urgency = _choose("urgency", prio.urgency, context, reasons)
    computed = prio.matrix[impact][urgency]
    why = [f"impact {impact} × urgency {urgency} → {computed.value}"]
    seen: Mapping[str, Any] | None = None  # `decision` as the conditions see it

    def decide(priority: str, priority_from: str) -> None:
        # Set again only when what the conditions read of it changed: each change makes the context
        # convert it and rebuild its CEL environment.
        nonlocal seen
        now_seen = reads.seen(
            "decision",
            {"priority": priority, "impact": impact, "urgency": urgency, "priority_from": priority_from},
        )
        if now_seen is not None and now_seen != seen:
            context.add_variable("decision", now_seen)
            seen = now_seen

    decide(computed.value, "matrix")
    for entry in prio.raises:
        if entry.when.test(context, reasons):
            raised = computed.raised(entry.by)
            because = f" ({entry.why})" if entry.why else ""
            why.append(
                f"raised {entry.by}{because} → {raised.value}"
                if raised != computed
                else f"raise {entry.by}{because}: already P1"
            )
            computed = raised

    # 2. what the mode lets us set. A created ticket lists every initial field as "changed" (Jira's changelog
    # does), so only a later event that changes the priority means a person just chose it.
    # A priority name the platform mapping does not list (Server's "Blocker", a custom "Not Prioritized")
    # is not "no priority": raise_only leaves it as it is, as it leaves a person's choice.
    person_set = event.kind is not EventKind.TICKET_CREATED and event.changed("priority") is not None
    keep: str | None = None
    if policy.mode == "raise_only" and (state.priority_pinned or person_set):
        keep = PERSON_SET
    elif policy.mode == "raise_only" and ticket.priority is None and ticket.platform_priority:
        keep = (
            f"priority '{ticket.platform_priority}' is not in the {ticket.ref.platform} mapping; "
            "left as it is"
        )
    target = _allowed(policy.mode, keep, ticket.priority, computed, why)
    source = _source(keep, target, ticket.priority, computed)

    # 3. rules in file order
    decide(_name(target), source)
    fired: list[str] = []
    escalations: list[str] = []
    steps: list[tuple[str, Any]] = []
    for rule in policy.rules:
        if kind not in rule.on or (rule.when is not None and not rule.when.test(context, reasons)):
            continue
        fired.append(rule.name)
        reasons.append(f"rule '{rule.name}' fired" + (f": {rule.when.source}" if rule.when else ""))
        for step in rule.then:
            if isinstance(step, SetPriority):
                new = _rule_priority(policy.mode, keep, target, step.priority, rule.name, why)
                if new != target:
                    target, source = new, "rule"
                    decide(_name(target), source)
            elif isinstance(step, Escalate):
                escalations.append(step.tier)
            else:
                steps.append((rule.name, step))
        if rule.stop:
            reasons.append(f"rule '{rule.name}' has stop: later rules were not evaluated")
            break

    tier_after = _escalate(policy.tiers, tier_before, escalations)
    if tier_after != tier_before:
        reasons.append(f"escalated {tier_before} → {tier_after}")

    # 4. the decision: priority and tier first, then the rules' actions in order, minus what the ticket shows
    actions: list[Action] = []
    if target is not None and target != ticket.priority:
        actions.append(SetPriority(target))
    if tier_after != tier_before:
        actions.append(AssignTier(tier_after))
    # What the rules' texts read: built only when a rule writes one.
    note_context: dict[str, Any] = {}
    reader = Reader(policy.default_language, "", "UTC")
    if any(isinstance(step, NoteTemplate | NotifyTemplate) for _, step in steps):
        occurred = event.occurred_at or (event.sla.fired_at if event.sla else None)
        note_context = {
            **variables,
            "event": {**variables["event"], "at": occurred.isoformat() if occurred else ""},
            "decision": {
                "priority": _name(target),
                "priority_before": _name(ticket.priority),
                "tier": tier_after,
                "tier_before": tier_before,
                "impact": impact,
                "urgency": urgency,
                "priority_from": source,
            },
            "policy": {"name": policy.name, "version": policy.version},
        }
        zone = _ticket_timezone(policy, target, context) if event.sla is None else _timezone(policy, event)
        reader = Reader(policy.default_language, ticket.requester.language if ticket.requester else "", zone)
    notifications: list[Notify] = []
    rendered: dict[tuple[int, str, str], str] = {}  # a text several channels share is rendered once
    for rule_name, step in steps:
        if isinstance(step, NotifyTemplate):
            notify = _notify(step, rule_name, event, policy, note_context, reader, reasons, rendered)
            if notify is not None and notify not in notifications:
                notifications.append(notify)
            continue
        action = _action(step, rule_name, note_context, reader, reasons, note_escape(ticket.ref.platform))
        if action is None or action in actions:
            continue
        if isinstance(action, AddLabel) and action.label in ticket.labels:
            continue
        if isinstance(action, RemoveLabel) and action.label not in ticket.labels:
            continue
        actions.append(action)
    return Decision(
        priority_before=ticket.priority,
        priority_after=target,
        priority_why="; ".join(why),
        tier_before=tier_before,
        tier_after=tier_after,
        actions=tuple(actions),
        rules=tuple(fired),
        reasons=tuple(reasons),
        notifications=tuple(notifications),
    )


@dataclass(frozen=True)
class Reader:
    """Who reads what the rules write: the policy's default language, the requester's, the time zone."""

    default: str
    requester: str
    timezone: str


def _choose(key: str, levels: tuple[Level, ...], context: cel.Context, reasons: list[str]) -> str:
    """The first level whose condition holds; the loader guarantees the last one has none."""
    for entry in levels:
        if entry.when is None:
            reasons.append(f"{key} {entry.level} (default)")
            return entry.level
        if entry.when.test(context, reasons):
            reasons.append(f"{key} {entry.level}: {entry.when.source}")
            return entry.level
    return levels[-1].level  # unreachable for a loaded policy; keeps the function total


def _allowed(
    mode: str, keep: str | None, current: Priority | None, computed: Priority, why: list[str]
) -> Priority | None:
    """Step 2: enforce takes the computed priority; raise_only only raises, and never over a person
    or over a priority the mapping does not know (`keep` says which)."""
    if mode == "enforce":
        return computed
    if keep is not None:
        why.append(keep)
        return current
    if computed.outranks(current):
        return computed
    if current is not None and current != computed:
        why.append(f"raise_only keeps {current.value} (never lowers)")
    return current


def _rule_priority(
    mode: str, keep: str | None, target: Priority | None, wanted: Priority, rule: str, why: list[str]
) -> Priority | None:
    """A rule's `priority:` under the same mode rule as the computed priority."""
    if mode == "enforce" or (keep is None and wanted.outranks(target)):
        if wanted != target:
            why.append(f"rule '{rule}' set {wanted.value}")
        return wanted
    if wanted != target:
        reason = keep or f"raise_only keeps {_name(target)}"
        why.append(f"rule '{rule}' wanted {wanted.value}; {reason}")
    return target


def _source(keep: str | None, target: Priority | None, current: Priority | None, computed: Priority) -> str:
    """Where the decided priority comes from, for notes: the matrix, a person, or the platform."""
    if keep == PERSON_SET:
        return "person"
    if keep is not None or (target == current and target != computed):
        return "platform"
    return "matrix"


def _escalate(tiers: tuple[str, ...], current: str, targets: list[str]) -> str:
    """The highest of the current tier and every target; `next` is one above the current (capped)."""
    if not targets:
        return current  # most events escalate nothing
    rank = {tier: i for i, tier in enumerate(tiers)}
    here = rank.get(current, -1)
    resolved = [tiers[min(here + 1, len(tiers) - 1)] if t == NEXT_TIER else t for t in targets]
    return max([current, *resolved], key=lambda t: rank.get(t, -1))


def _action(
    step: Any, rule: str, note_context: Mapping[str, Any], reader: Reader, reasons: list[str],
    escape: Callable[[str], str] | None,
) -> Action | None:  # fmt: skip
    if not isinstance(step, NoteTemplate):
        return step  # AddLabel, RemoveLabel, AssignUser, AssignGroup: already model actions
    # A public note speaks the requester's language; an internal one the team's (the default).
    wanted = reader.requester if not step.internal else reader.default
    language = pick_language(wanted, step.translations, reader.default)
    template = step.translations.get(language, step.template)
    try:
        text = render_note(
            template, {**note_context, "rule": {"name": rule}}, language=language, timezone=reader.timezone,
            escape=escape,
        )  # fmt: skip
    except RENDER_ERRORS as exc:
        reasons.append(f"rule '{rule}': note not written, its template failed ({type(exc).__name__}: {exc})")
        return None
    return AddNote(text, step.internal)


def _notify(
    step: NotifyTemplate, rule: str, event: TicketEvent, policy: Policy, note_context: Mapping[str, Any],
    reader: Reader, reasons: list[str], rendered: dict[tuple[int, str, str], str],
) -> Notify | None:  # fmt: skip
    """The message in every language of the policy (each channel reads its own), dates localised."""
    kind = (
        step.kind if step.kind == "report" else "update" if event.kind is EventKind.UPDATE_DUE else "notice"
    )
    texts = []
    for language in policy.languages:
        template = step.translations[pick_language(language, step.translations, reader.default)]
        memo = (id(template), language, rule)
        try:
            text = rendered.get(memo)
            if text is None:
                text = rendered[memo] = render_note(
                    template, {**note_context, "rule": {"name": rule}}, language=language,
                    timezone=reader.timezone,
                )  # fmt: skip
        except RENDER_ERRORS as exc:
            reasons.append(f"rule '{rule}': message to {step.channel} not sent, its template failed "
                           f"({type(exc).__name__}: {exc})")  # fmt: skip
            return None
        texts.append((language, text))
    return Notify(step.channel, tuple(texts), kind)


def _ticket_timezone(policy: Policy, priority: Priority | None, context: cel.Context) -> str:
    """The zone of the calendar the ticket's clocks run on: its priority's own calendar (P1: 24x7),
    else the first `pick_calendar` entry that holds."""
    if policy.sla is None:
        return "UTC"
    target = policy.sla.target(priority, "first_response") or policy.sla.target(priority, "resolution")
    name = target.calendar if target is not None and target.calendar else None
    if name is None:
        name = policy.sla.default_calendar
        for choice in policy.sla.pick:
            if choice.when is None or choice.when.test(context, []):
                name = choice.calendar
                break
    return policy.sla.calendar(name).timezone


def _timezone(policy: Policy, event: TicketEvent) -> str:
    """The time zone of the calendar a time event's clock ran on (for `sla.due_local` and dates in
    texts); other events: the default calendar's."""
    if policy.sla is None:
        return "UTC"
    name = event.sla.calendar if event.sla is not None else policy.sla.default_calendar
    calendar = policy.sla.calendars.get(name)
    return calendar.timezone if calendar is not None else "UTC"


def _sla_reason(sla: Mapping[str, Any]) -> str:
    what = {100: "breached"} if sla["metric"] != "update_every" else {100: "update due"}
    state = what.get(sla["percent"], f"{sla['percent']}% used")
    late = " (fired late)" if sla["late"] else ""
    return (
        f"sla {sla['metric']} {state}: target {sla['target']} on calendar {sla['calendar'] or '?'}, "
        f"due {sla['due']}, fired {sla['fired_at']}{late}"
    )


def _name(priority: Priority | None) -> str:
    return priority.value if priority is not None else ""
