"""SLA timers re-armed under a reloaded policy.

Armed timers are rows whose due instants were computed under the policy of the ticket's last
event. A reload that moves a target (first response 15m → 30m), a warning share or a calendar
changes what they should be, and a ticket with no further event would keep the old instants:
a stale timer is dropped when it fires, so its replacement would never be armed. Two paths
put that right:

- after a reload, the worker walks every ticket with SLA clocks and reconciles its timers with
  the new policy (`retarget_all`, run in the background by `Retargeter`);
- a fired timer found stale re-arms its ticket's timers under the policy of the moment
  (the pipeline calls `rearm`). That also covers a restart with an edited policy file, though a
  tightened target is then noticed only at its old instant: SIGHUP re-arms at once.

Warnings whose new instant has already passed are marked sent, so a tightened target sends
the breach, not a burst of late warnings; a warning whose instant did not move is left alone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from connector import handover
from connector.model import Ticket
from connector.runtime import Runtime
from connector.store import tickets, timers
from connector.store.db import writing
from policies import Policy, sla
from policies.sla import SlaState

log = logging.getLogger("escalator.retarget")


def rearm(
    conn: Connection,
    policy: Policy,
    platform: str,
    ticket_id: str,
    clocks: SlaState,
    now: datetime,
    held: tuple[str | None, Ticket | None] | None = None,
) -> int:
    """Re-arm one ticket's timers under `policy` inside the caller's transaction (which holds the
    ticket: its row lock, or the worker's lease); how many timers were armed, moved or removed.
    `held` is the ticket's tier and snapshot (its follow-the-sun handover), read here when not given."""
    existing = timers.in_place(conn, platform, ticket_id)  # read once: for the warnings and to reconcile
    moved = sla.retarget(policy, clocks, now, {key: row.due_at for key, row in existing.items()})
    if held is None:
        stored = tickets.load(conn, platform, ticket_id)
        held = (stored.state.tier, stored.snapshot)
    wanted = (*sla.timers(policy, moved), *handover.wanted(policy, platform, *held, moved, now))
    changed = timers.reconcile(conn, platform, ticket_id, wanted, now, existing=existing)
    if moved != clocks or changed:
        # Saved without the worker's digest of the timers it armed (timers.ARMED_KEY): it is stale
        # now, and the worker's next decision on the ticket reconciles in full.
        tickets.save_sla(conn, platform, ticket_id, moved.to_json())
    return changed


@dataclass(frozen=True)
class Summary:
    tickets: int  # tickets with SLA clocks looked at
    changed: int  # of those, tickets whose timers were armed, moved or removed


def retarget_all(rt: Runtime, *, page: int = 50) -> Summary:
    """Reconcile every ticket's timers with the current policy, one short transaction per page."""
    policy = rt.policy.current
    after = ("", "")
    seen = changed = 0
    while True:
        now = rt.clock()
        with writing(rt.engine) as conn:
            rows = tickets.with_sla(conn, after, page)
            for platform, ticket_id, data, tier, snapshot in rows:
                if not data:
                    continue
                seen += 1
                clocks = SlaState.from_json(data)
                changed += rearm(conn, policy, platform, ticket_id, clocks, now, (tier, snapshot)) > 0
        if len(rows) < page:
            return Summary(seen, changed)
        after = rows[-1][:2]


class Retargeter:
    """Runs `retarget_all` in a background thread when asked. A request made during a pass runs
    one more pass after it (with the newest policy); requests made meanwhile are folded into it."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        self._wanted.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sla-retarget", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            self._run()

    def _run(self) -> Summary | None:
        try:
            summary = retarget_all(self.rt)
        except Exception:  # the database may be briefly away; fired timers still re-arm themselves
            log.exception("re-arming SLA timers after the policy reload failed")
            return None
        log.info(
            "SLA timers re-armed under %s: %d of %d tickets with SLA clocks changed",
            self.rt.policy.current.summary(), summary.changed, summary.tickets,
        )  # fmt: skip
        return summary
