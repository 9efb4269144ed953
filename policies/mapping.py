"""How one platform names the policy's priorities, tiers and custom fields."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from connector.model import Priority, Ticket

if TYPE_CHECKING:
    from .follow_the_sun import Rota

KNOWN_PLATFORMS = ("jira", "zendesk", "servicenow")

# The values each platform's API accepts for a priority (Jira's scheme is customisable: any name).
ZENDESK_PRIORITIES = ("urgent", "high", "normal", "low")
# ServiceNow computes an incident's priority from impact and urgency (1 high … 3 low); the policy sets those.
SERVICENOW_PRIORITY_FIELDS = ("impact", "urgency")
SERVICENOW_LEVELS = ("1", "2", "3")


@dataclass(frozen=True)
class TierTarget:
    """Who a tier is on one platform: an assignee, a group, and/or extra fields to set."""

    assignee: str | None = None
    group: str | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    rota: Rota | None = None  # follow the sun: regional teams instead of one assignee / group

    def matches(self, ticket: Ticket) -> bool:
        """True when the ticket sits with this target's assignee or group (any team's, for a rota)."""
        if self.rota is not None:
            return self.rota.holder(ticket) is not None
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
    # Where labels live on a platform without a labels field (ServiceNow): a comma-separated list in it.
    labels_field: str | None = None
    # Every platform name each level reads from (`P1: [Highest, Blocker]`), the written one first;
    # `priorities` holds the written one. Empty: each level reads from its written name only.
    names: Mapping[Priority, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def names_of(self, priority: Priority) -> tuple[str, ...]:
        """The platform names that read as `priority` (none for a mapping of fields)."""
        if priority in self.names:
            return self.names[priority]
        value = self.priorities.get(priority)
        return (value,) if isinstance(value, str) else ()

    def priority_of(self, platform_value: str | None) -> Priority | None:
        """The policy priority for the platform's priority name (case-insensitive), None when unmapped."""
        if platform_value is None:
            return None
        return self._by_name.get(platform_value.strip().casefold())

    @functools.cached_property
    def _by_name(self) -> Mapping[str, Priority]:
        """Each platform name (casefolded) → the first priority, in the policy's order, that reads from it:
        looked up on every event, built once (the mapping is immutable)."""
        found: dict[str, Priority] = {}
        for priority in self.priorities:
            for name in self.names_of(priority):
                found.setdefault(name.casefold(), priority)
        return found

    def priority_of_ticket(self, ticket: Ticket) -> Priority | None:
        """The ticket's policy priority: by its priority name, or (ServiceNow) by the fields that make it.

        A mapping entry matches when every one of its fields equals the ticket's, compared as strings
        (`{impact: 1, urgency: 1}` matches fields {"impact": "1", "urgency": "1"}).
        """
        by_name = self.priority_of(ticket.platform_priority)
        if by_name is not None:
            return by_name
        have = ticket.fields
        for priority, value in self.priorities.items():
            if (
                isinstance(value, Mapping)
                and value
                and all(key in have and _text(have[key]) == _text(wanted) for key, wanted in value.items())
            ):
                return priority
        if self.platform == "servicenow":
            return servicenow_computed(ticket.platform_priority)
        return None

    def tier_of(self, ticket: Ticket) -> str | None:
        """The highest tier whose assignee or group the ticket has now, None when none matches."""
        for tier, target in reversed(list(self.tiers.items())):
            if target.matches(ticket):
                return tier
        return None


def _text(value: Any) -> str:
    """A raw field value as text for comparison: ServiceNow sends "1", a policy may say 1."""
    if isinstance(value, Mapping):  # a reference or choice field: {"value": "1", "display_value": …}
        value = value.get("value", "")
    return str(value).strip()


def servicenow_computed(value: str | None) -> Priority | None:
    """The instance's own computed priority (1 - Critical … 5 - Planning) as a level, for an
    impact/urgency pair the policy does not list: 1–4 are P1–P4, 5 (the default 3 × 3) reads as P4.
    None when the value is not one of them."""
    digits = (value or "").strip().split(" ", 1)[0]
    if digits in ("1", "2", "3", "4"):
        return Priority(f"P{digits}")
    return Priority.P4 if digits == "5" else None
