"""The policy language: load a YAML policy (with FILE:LINE errors) and evaluate it purely."""

from __future__ import annotations

from .evaluate import evaluate
from .loader import check_policy, load_policy
from .mapping import KNOWN_PLATFORMS, PlatformMapping, TierTarget
from .policy import EVENT_KINDS, Policy
from .problems import PolicyError, Problem

__all__ = [
    "EVENT_KINDS",
    "KNOWN_PLATFORMS",
    "PlatformMapping",
    "Policy",
    "PolicyError",
    "Problem",
    "TierTarget",
    "check_policy",
    "evaluate",
    "load_policy",
]
