"""`escalator simulate`: what Escalator would do with one webhook payload, with no database, no
worker and no platform call.

It runs the worker's own judgement (connector/judgement.py) on the payload, as for a ticket
Escalator has not seen before (or at the tier given), renders the exact requests the platform
client would send, and lists the SLA timers it would arm. An admin can try a policy change on
recorded payloads before reloading it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.config import Config
from connector.judgement import Judgement, judge
from connector.model import TicketState, action_to_dict
from connector.plan import with_note_mark
from connector.runtime import Installation
from connector.store.tickets import StoredTicket
from platforms.base import OutboundRequest
from platforms.errors import PayloadError
from platforms.registry import PLATFORMS
from policies import Policy, sla
from policies.sla import Timer


class SimulationError(Exception):
    """The payload or the arguments cannot be simulated; the message says why."""


class _FileHeaders(Mapping[str, str]):
    """A payload file has no HTTP headers: every header the adapter reads while identifying the
    delivery (its delivery id) reads "simulated"."""

    def __getitem__(self, name: str) -> str:
        return "simulated"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class Simulation:
    platform: str
    event_type: str
    policy: Policy
    judgement: Judgement | None  # None: the event type is one Escalator ignores
    requests: tuple[OutboundRequest, ...]
    timers: tuple[Timer, ...]
    placeholder_url: bool  # the platform is not configured: URLs use a placeholder base
    at: datetime | None = None  # the instant simulated: a timer due by then is already overdue

    def overdue(self, timer: Timer) -> bool:
        """True when `timer` would fire on the worker's next tick (its due instant has passed)."""
        return self.at is not None and timer.due <= self.at


def simulate(
    config: Config, policy: Policy, platform: str, body: bytes, now: datetime, *, tier: str | None = None
) -> Simulation:
    registration = PLATFORMS.get(platform)
    if registration is None:
        raise SimulationError(f"unknown platform '{platform}' (known: {', '.join(PLATFORMS)})")
    settings = config.platform(platform)
    placeholder = settings is None
    if placeholder:
        settings = registration.settings(url=f"https://{platform}.example.invalid")
    installation = Installation.of(platform, settings)
    mapping = policy.platforms.get(platform)
    if mapping is None:
        raise SimulationError(f"policy '{policy.name}' has no platforms.{platform} section")
    if tier is not None and tier not in policy.tiers:
        raise SimulationError(f"tier '{tier}' is not one of the policy's tiers ({', '.join(policy.tiers)})")
    try:
        payload = json.loads(body)
        delivery = installation.provider.identify(_FileHeaders(), payload)
        if delivery.ignored:
            return Simulation(platform, delivery.event_type, policy, None, (), (), placeholder)
        event = installation.provider.normalise(payload, delivery)
    except ValueError as exc:
        raise SimulationError(f"the payload is not JSON: {exc}") from exc
    except PayloadError as exc:
        raise SimulationError(f"not a {platform} payload Escalator reads: {exc}") from exc

    stored = StoredTicket(TicketState(tier=tier), requester_id=None)
    verdict = judge(policy, mapping, installation.capabilities, stored, event, now)
    plan = with_note_mark(verdict.plan, platform, delivery.delivery_id)  # as the worker marks it
    requests = tuple(installation.client().render(plan)) if not plan.is_empty else ()
    return Simulation(
        platform,
        delivery.event_type,
        policy,
        verdict,
        requests,
        sla.timers(policy, verdict.clocks),
        placeholder,
        now,
    )


def as_json(sim: Simulation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "platform": sim.platform,
        "event_type": sim.event_type,
        "policy": {"name": sim.policy.name, "version": sim.policy.version, "sha256": sim.policy.sha256},
    }
    if sim.judgement is None:
        return {**out, "ignored": True}
    decision, ticket = sim.judgement.decision, sim.judgement.event.ticket
    return {
        **out,
        "ticket": {"id": ticket.ref.id, "key": ticket.ref.key, "title": ticket.title},
        "out_of_scope": sim.judgement.out_of_scope,
        "rules": list(decision.rules),
        "reasons": list(decision.reasons),
        "priority": {
            "from": decision.priority_before.value if decision.priority_before else None,
            "to": decision.priority_after.value if decision.priority_after else None,
            "why": decision.priority_why,
        },
        "tier": {"from": decision.tier_before, "to": decision.tier_after},
        "actions": [action_to_dict(a) for a in decision.actions],
        "requests": [{"method": r.method, "url": r.url, "json": r.json} for r in sim.requests],
        "timers": [
            {
                "key": t.key,
                "due": t.due.isoformat(),
                "target_seconds": t.target.total_seconds(),
                "calendar": t.calendar,
                "overdue": sim.overdue(t),
            }
            for t in sim.timers
        ],
    }


def as_text(sim: Simulation) -> str:
    data = as_json(sim)
    head = f"{sim.platform} {sim.event_type} under policy {sim.policy.name} v{sim.policy.version}"
    if sim.judgement is None:
        return f"{head}\nignored: Escalator records this event type and does nothing with it"
    ticket = data["ticket"]
    priority, tier = data["priority"], data["tier"]
    lines = [
        head,
        f"ticket:   {ticket['key'] or ticket['id']}  {ticket['title']}",
        f"rules:    {', '.join(data['rules']) or 'none'}",
        f"priority: {priority['from'] or '-'} → {priority['to'] or '-'} ({priority['why']})",
        f"tier:     {tier['from'] or '-'} → {tier['to'] or '-'}",
    ]
    if sim.judgement.event.ticket_partial:
        lines.append("note:     the payload names the ticket without carrying it: the worker reads it once")
    lines += [f"note:     {note}" for note in sim.judgement.event.notes]
    lines += [f"reason:   {reason}" for reason in data["reasons"]]
    if not sim.requests:
        lines.append("requests: none (the ticket already shows the decision)")
    else:
        note = " (placeholder URL: the platform is not configured)" if sim.placeholder_url else ""
        lines.append(f"requests: {len(sim.requests)}{note}")
        for request in sim.requests:
            lines.append(f"  {request.method} {request.url}")
            if request.json is not None:
                body = json.dumps(request.json, indent=2, ensure_ascii=False, sort_keys=True)
                lines += [f"    {line}" for line in body.splitlines()]
    overdue = sum(t["overdue"] for t in data["timers"])
    late = f" ({overdue} already overdue: they fire on the next tick)" if overdue else ""
    lines.append(f"timers:   {len(sim.timers) or 'none'}{late}")
    lines += [
        f"  {t['key']} due {t['due']} ({t['calendar']})" + ("  OVERDUE" if t["overdue"] else "")
        for t in data["timers"]
    ]
    if sim.judgement.out_of_scope:
        lines.append(f"scope:    out of scope: {sim.judgement.out_of_scope}")
    return "\n".join(lines)
