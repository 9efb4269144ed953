"""The policy language: load a YAML policy (with FILE:LINE errors) and evaluate it purely.

SLA clocks: `policies.sla` (advance, timers) and `policies.calendars` (business-hours arithmetic).
"""

from __future__ import annotations

from . import handover
from .calendars import Calendar
from .evaluate import evaluate
from .loader import check_policy, load_policy
from .mapping import KNOWN_PLATFORMS, PlatformMapping, TierTarget
from .policy import EVENT_KINDS, METRICS, Policy, SlaPolicy, SlaTarget
from .problems import ERROR, WARNING, PolicyError, Problem
from .sla import SlaState, Timer

__all__ = [
    "ERROR",
    "EVENT_KINDS",
    "KNOWN_PLATFORMS",
    "METRICS",
    "WARNING",
    "Calendar",
    "PlatformMapping",
    "Policy",
    "PolicyError",
    "Problem",
    "SlaPolicy",
    "SlaState",
    "SlaTarget",
    "TierTarget",
    "Timer",
    "check_policy",
    "handover",
    "evaluate",
    "load_policy",
]
