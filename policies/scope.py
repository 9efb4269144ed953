"""Which tickets the policy governs at all: the `scope` condition, on the ticket alone. Pure."""

from __future__ import annotations

from connector.model import TicketEvent

from .conditions import CEL_RUNTIME_ERRORS
from .policy import Policy
from .variables import ticket_variables


def out_of_scope(policy: Policy, event: TicketEvent) -> str | None:
    """None when the policy governs the event's ticket; otherwise why not.

    A scope that cannot be evaluated on this ticket (a runtime error) keeps the ticket out: a policy
    that cannot tell whether it governs a ticket must not write to it.
    """
    if policy.scope is None:
        return None
    mapping = policy.platforms.get(event.ticket.ref.platform)
    ticket = ticket_variables(event, "", policy.fields, mapping.fields if mapping else {})
    del ticket["tier"]  # a ticket condition, like the SLA clock conditions
    try:
        governed = policy.scope.program.execute(policy.reads.scope.context({"ticket": ticket})) is True
    except CEL_RUNTIME_ERRORS as exc:
        why = f"{type(exc).__name__}: {exc}"
        return f"scope could not be evaluated on this ticket ({why}): {policy.scope.source}"
    return None if governed else f"the policy's scope does not hold: {policy.scope.source}"
