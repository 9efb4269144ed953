"""How one platform names the policy's priorities, tiers and custom fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from connector.model import Priority, Ticket

KNOWN_PLATFORMS = ("jira", "zendesk", "servicenow")


@dataclass(frozen=True)
class TierTarget:
    """Who a tier is on one platform: an assignee, a group, and/or extra fields to set."""

    assignee: str | None = None
    group: str | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def matches(self, ticket: Ticket) -> bool:
        """True when the ticket sits with this target's assignee or group."""
        return bool(
            (self.assignee and ticket.assignee == self.assignee)
            or (self.group and ticket.group == self.group)
        )


@dataclass(frozen=True)
class PlatformMapping:
    """The policy's names on one platform. `tiers` keeps the policy's tier order, lowest first."""

    platform: str
    priorities: Mapping[Priority, str | Mapping[str, Any]]
    tiers: Mapping[str, TierTarget] = field(default_factory=lambda: MappingProxyType({}))
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def priority_of(self, platform_value: str | None) -> Priority | None:
        """The policy priority for the platform's priority name (case-insensitive), None when unmapped."""
        if platform_value is None:
            return None
        wanted = platform_value.strip().casefold()
        for priority, value in self.priorities.items():
            if isinstance(value, str) and value.casefold() == wanted:
                return priority
        return None

    def tier_of(self, ticket: Ticket) -> str | None:
        """The highest tier whose assignee or group the ticket has now, None when none matches."""
        for tier, target in reversed(list(self.tiers.items())):
            if target.matches(ticket):
                return tier
        return None
