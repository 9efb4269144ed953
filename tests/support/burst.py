"""A burst of Zendesk tickets of known priorities, each needing one write: for the rate limiter's tests
and bench/burst.py. The policy reads the priority from a `sev1`..`sev4` tag, escalates a P1 to L2 and
tags every new ticket `triaged`, so a P4 is a label-only write (the lowest rank) and a P1 an escalation."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.drivers import Spec, ZendeskDriver

BURST_POLICY = """\
policy: burst
version: 1
priority:
  matrix:
    high: {high: P1, medium: P2, low: P3}
    medium: {high: P2, medium: P3, low: P4}
    low: {high: P3, medium: P4, low: P4}
  impact:
    - {when: '"sev1" in ticket.labels || "sev2" in ticket.labels', is: high}
    - {when: '"sev3" in ticket.labels', is: medium}
    - {is: low}
  urgency:
    - {when: '"sev1" in ticket.labels', is: high}
    - {when: '"sev2" in ticket.labels || "sev3" in ticket.labels', is: medium}
    - {is: low}
  mode: enforce
tiers: [L1, L2]
rules:
  - name: p1-goes-to-l2
    on: [ticket.created]
    when: 'decision.priority == "P1"'
    then: [{escalate: L2}]
  - name: triaged
    on: [ticket.created]
    when: 'true'
    then: [{label: triaged}]
platforms:
  zendesk:
    priorities: {P1: urgent, P2: high, P3: normal, P4: low}
    tiers: {L1: {group: "360000000101"}, L2: {group: "360000000122"}}
"""

# Zendesk's own names for the priorities the tags lead to.
PRIORITY_OF = {"urgent": "P1", "high": "P2", "normal": "P3", "low": "P4"}


def write_policy(folder: Path) -> Path:
    path = folder / "burst-policy.yaml"
    path.write_text(BURST_POLICY, encoding="utf-8")
    return path


def severity(n: int) -> int:
    """The burst's mix, interleaved so arrival order is no help: 1 in 4 of each, P4 first."""
    return 4 - n % 4


def burst_spec(n: int) -> Spec:
    """Ticket n of a burst: arrives as P4 in L1, tagged with its severity."""
    return Spec(n, title=f"Burst ticket {n}", labels=(f"sev{severity(n)}",), priority="P4", tier="L1")


def zendesk_driver(rt) -> ZendeskDriver:
    return ZendeskDriver(rt.policy.current.platforms["zendesk"])
