"""Proactive write pacing: a platform's published write limits, kept before it has to refuse.

Each limit is a sliding window ("at most N writes in any T seconds") counted in 60 slots and kept in
the `rate_windows` table, so every replica shares it; a write is granted under the rows' lock, so two
workers together never exceed it. Under a limit the line is ordered, not first come: a delivery's
rank (priority, then escalation before a note before label tidying; `rank_of`) is stored on its inbox
row, and a write is granted only when the window has room for it AND for every better-ranked write
already waiting (and for deliveries not judged yet, which may be better). Otherwise the delivery goes
back to pending until the window expects room for it, without counting an attempt, and the inbox
claims due rows by rank. The platform's word wins over our estimate: a Retry-After or an exhausted
RateLimit-Remaining blocks the window until then, and a lower Remaining than we count is taken as used.

What a grant costs (`Limiter`): the account's row, which every write to a platform would queue for,
is locked only where it holds a real limit of ours, and then seldom while far below it (leases).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine

from connector.config import PlatformRateLimits, RateLimitsConfig
from connector.model import Decision, Plan, Priority
from platforms.base import RateLimitHeaders

Key = tuple[str, float, int]  # bucket, window seconds, requests allowed
SLOTS = 60  # a window is counted in this many slots; a write counts for one slot longer than the window
ACCOUNT = "account"
# A platform with no account limit of ours (ServiceNow's rules are the admin's; Jira's budget is
# unpublished) still keeps one account window: it counts nothing that matters, and carries the block a
# 429's Retry-After imposes on every write to that platform.
BLOCK_ONLY = (60.0, 1_000_000_000)


def ticket_bucket(ticket_id: str) -> str:
    return f"ticket:{ticket_id}"


# --- rank: who goes first under a limit -----------------------------------------------------------

_PRIORITY_RANK = {Priority.P1: 1, Priority.P2: 2, Priority.P3: 3, Priority.P4: 4}
UNKNOWN_PRIORITY = 5
BEST_RANK = 10  # a P1 escalation: no delivery not judged yet can stand before it


def rank_of(decision: Decision | None, plan: Plan) -> int:
    """Lower goes first: ten per priority (P1 10s … none 50s), then within one priority an escalation
    (assignee or group) 0, a priority change or a note 1, labels and fields alone 2."""
    priority = decision.priority_after or decision.priority_before if decision is not None else None
    level = _PRIORITY_RANK.get(priority, UNKNOWN_PRIORITY) if priority is not None else UNKNOWN_PRIORITY
    if plan.assignee is not None or plan.group is not None:
        kind = 0
    elif plan.priority is not None or plan.note is not None:
        kind = 1
    else:
        kind = 2
    return level * 10 + kind


# --- one sliding window ------------------------------------------------------------------------


@dataclass
class SlidingWindow:
    """At most `limit` writes in any `seconds`, counted per slot of seconds/SLOTS.

    A write in slot s counts until slot s + SLOTS + 1 begins: any real interval of `seconds`
    overlaps at most SLOTS + 1 slots, so the platform never sees more than `limit` in one,
    however it draws its window (fixed or sliding)."""

    limit: int
    seconds: float
    first_slot: int
    counts: list[int]
    blocked_until: datetime | None = None

    @property
    def width(self) -> float:
        return self.seconds / SLOTS

    def slot(self, at: datetime) -> int:
        return math.floor(at.timestamp() / self.width)

    def slot_start(self, slot: int) -> datetime:
        return datetime.fromtimestamp(slot * self.width, UTC)

    def trim(self, now: datetime) -> None:
        """Forget slots that left the window; counts then runs from first_slot to now's slot."""
        current = self.slot(now)
        oldest = current - SLOTS
        if oldest > self.first_slot:
            self.counts = self.counts[oldest - self.first_slot :]
            self.first_slot = oldest
        if not self.counts:
            self.first_slot = oldest
        missing = current - (self.first_slot + len(self.counts)) + 1
        if missing > 0:
            self.counts.extend([0] * missing)

    def used(self, now: datetime) -> int:
        self.trim(now)
        return sum(self.counts)

    def room_at(self, need: int, now: datetime) -> datetime:
        """The earliest time `need` more writes fit (now when they fit now), ignoring any block: when
        the need-th of a line served as fast as the window allows would go."""
        used = self.used(now)
        if used + need <= self.limit:
            return now
        # The times the first `limit` places of the line open: the room left now, then each counted
        # write's slot leaving the window; a later place opens a window after the one `limit` before it.
        opens = [now] * (self.limit - used)
        for offset, count in enumerate(self.counts):
            if len(opens) >= self.limit:
                break
            opens += [self.slot_start(self.first_slot + offset + SLOTS + 1)] * count
        rounds, place = divmod(need - 1, self.limit)
        return opens[min(place, len(opens) - 1)] + timedelta(seconds=(self.seconds + self.width) * rounds)

    def take(self, count: int, now: datetime) -> None:
        self.trim(now)
        self.counts[-1] += count

    def give_back(self, slot: int, count: int, now: datetime) -> None:
        """`count` writes counted in `slot` never went (a lease's unused slots): uncount them."""
        self.trim(now)
        if self.first_slot <= slot < self.first_slot + len(self.counts):
            self.counts[slot - self.first_slot] = max(0, self.counts[slot - self.first_slot] - count)

    def blocked_at(self, now: datetime) -> datetime:
        """When a block the platform imposed ends (now when there is none)."""
        return self.blocked_until if self.blocked_until is not None and self.blocked_until > now else now

    def block(self, until: datetime) -> None:
        if self.blocked_until is None or until > self.blocked_until:
            self.blocked_until = until

    def learn_remaining(self, remaining: int, now: datetime, reset_seconds: float | None = None) -> bool:
        """The platform counts fewer writes left than we do (others share the account): count the
        difference as used, until the platform's reset when it named one (else for a window).
        True when that changed anything."""
        free = self.limit - self.used(now)
        if remaining >= free:
            return False
        current = self.slot(now)
        slot = current
        if reset_seconds is not None:  # the slot whose writes leave the window at the reset
            slot = min(current, self.slot(now + timedelta(seconds=reset_seconds)) - SLOTS - 1)
            if slot < self.first_slot:
                return False  # they would have left already
        self.counts[slot - self.first_slot] += free - remaining
        return True


# --- the limiter over the shared store ------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """Who stands in line before a write: better-ranked deliveries waiting for the same platform's
    windows, and deliveries not judged yet (they may be better)."""

    ranked: int
    unjudged: int
    asleep: bool = False  # ranked deliveries sleep on an estimate (of any rank)


@dataclass(frozen=True)
class Wait:
    """Not now: ask again at `at`, standing in line with `rank`."""

    at: datetime
    rank: int


# Added to the rank of a delivery that waits for its own ticket's limit: it does not hold up the line.
OWN_TICKET_WAIT = 1000


class LeasedWindows:
    """One ticket's own windows as the worker holding the ticket's lease read them (the claim returns
    them with the ticket's memory: the `tickets` row's `write_windows`), counted here in memory and
    saved with the decision's record (`to_json`). Only the lease's holder counts in them, so they
    need neither a row lock nor a transaction of their own: that cost five round trips a write.

    What this gives up: a worker that dies between its write and its record loses that write's
    count (its redelivery counts again), and a worker still writing after its lease ran out counts
    beside the next holder. Either is one delivery's writes, against limits of tens per window."""

    def __init__(self, stored: dict[str, Any] | None):
        self._stored = stored or {}
        self._windows: dict[float, SlidingWindow] = {}
        self.changed = False

    def of(self, keys: list[Key]) -> list[SlidingWindow]:
        """The windows of `keys` (bucket, seconds, limit): as stored, or empty for a ticket's first."""
        found = []
        for _, seconds, limit in keys:
            window = self._windows.get(seconds)
            if window is None:
                stored = self._stored.get(_window_name(seconds))
                window = SlidingWindow(limit, seconds, 0, [])
                if stored is not None:
                    until = stored.get("blocked_until")
                    window = SlidingWindow(
                        limit, seconds, stored["first_slot"], list(stored["counts"]),
                        datetime.fromisoformat(until) if until else None,
                    )  # fmt: skip
                self._windows[seconds] = window
            window.limit = limit  # the config's, which a reload may have changed
            found.append(window)
        return found

    def take(self, keys: list[Key], cost: int, now: datetime) -> None:
        for window in self.of(keys):
            window.take(cost, now)
        self.changed = True

    def to_json(self, now: datetime) -> dict[str, Any] | None:
        """What the `tickets` row keeps: each window trimmed to now; none left once nothing counts."""
        kept = dict(self._stored)
        for seconds, window in self._windows.items():
            window.trim(now)
            name = _window_name(seconds)
            if not any(window.counts) and window.blocked_at(now) <= now:
                kept.pop(name, None)
                continue
            until = window.blocked_until.isoformat() if window.blocked_until is not None else None
            kept[name] = {"first_slot": window.first_slot, "counts": window.counts, "blocked_until": until}
        return kept or None


def _window_name(seconds: float) -> str:
    return f"{seconds:g}"


@dataclass(frozen=True)
class Ask:
    """One delivery's request for `cost` writes; `leased`: its ticket's windows, when the asking
    worker holds the ticket's lease (else they are counted in the shared table, under a lock)."""

    platform: str
    ticket_id: str | None
    item_id: int
    rank: int
    received_at: datetime
    cost: int
    leased: LeasedWindows | None = None


T = TypeVar("T")


def _again_if_raced(attempt: Callable[[], T]) -> T:
    """`attempt()`, again when another worker made a window it found missing (its first count, a
    429's block) at the same moment: counted once, then read as the other left it."""
    from connector.store.ratewindows import Raced

    for _ in range(RACES):
        try:
            return attempt()
        except Raced:
            continue
    return attempt()


class Limiter:
    """The write limits in force (config `rate_limits`) over the shared `rate_windows` table.

    Cheap where there is room: a platform's account windows are locked and counted only when they
    hold a real limit of ours. Far below it (room for the line, the deliveries not judged yet and a
    lease, within half the limit), a grant takes a lease of more slots beside its own: counted in the
    shared windows at once (every replica sees them as used), held in this process's memory until the
    windows' current slot ends, and granted from there without the account's row lock to the next
    asks that find no one waiting and the lease's own room enough for every delivery not judged yet
    (so the line would grant them too: a burst landing sends each ask back to the line). A write
    counts in the slot it goes in, as before; what a lease did not grant goes back to the windows
    with the next ask that locks them. Every grant still reads the account's block (a Retry-After
    another replica was given) and counts its ticket's windows."""

    def __init__(self, engine: Engine, config: RateLimitsConfig):
        self.engine = engine
        self.config = config

    def limits(self, platform: str) -> PlatformRateLimits:
        return self.config.of(platform)

    def admit(self, ask: Ask, now: datetime) -> Wait | None:
        """None: the writes are granted (and counted). Else how long the delivery waits, and its rank."""
        return _again_if_raced(lambda: self._admit(ask, now))

    def _admit(self, ask: Ask, now: datetime) -> Wait | None:
        limits = self.limits(ask.platform)
        account = [(ACCOUNT, w.seconds, w.requests) for w in limits.account]
        ticket = [(ticket_bucket(ask.ticket_id), w.seconds, w.requests) for w in limits.ticket]
        if ask.ticket_id is None:
            ticket = []
        if not account:  # nothing of the account's is counted: its block (a Retry-After) is only read
            if not self.config.enabled:
                return None
            return self._admit_counted_elsewhere(ask, now, ticket, [(ACCOUNT, *BLOCK_ONLY)], lease=None)
        from connector.store import ratewindows

        # Better-ranked deliveries due within two windows stand in line; one in a long backoff does not.
        horizon = 2 * max(w.seconds for w in limits.account)
        # Nothing not judged yet can be better than the best rank: its line is read without them.
        best = ask.rank <= BEST_RANK
        waiting = ratewindows.waiting(self.engine, ask.platform, ask, now, horizon, unjudged=not best)
        leases = _leases_of(self.engine)
        lease = leases.reserve(ask.platform, account, ask.cost, now)
        if lease is not None:
            unknown = waiting.unjudged if ask.rank > BEST_RANK else 0  # nothing is better than the best
            if not waiting.ranked and unknown <= lease.left:
                # No one waits, and the lease alone holds room for every delivery not judged yet:
                # the line would grant it too. (A line, or a burst landing: each grant is weighed.)
                return self._admit_counted_elsewhere(ask, now, ticket, account, lease=lease)
            leases.release(lease, ask.cost)
        return self._admit_in_line(ask, now, account, ticket, leases, waiting)

    def _admit_counted_elsewhere(self, ask: Ask, now: datetime, ticket: list, account: list,
                                 lease: _Lease | None) -> Wait | None:  # fmt: skip
        """The account's windows hold no limit of ours, or this process's lease holds the ask's slots
        in them: only the ticket's windows are counted (locked, unless the ask's worker holds the
        ticket's lease); the account's are read for a block."""
        from connector.store import ratewindows

        leased = ask.leased.of(ticket) if ask.leased is not None else None

        reserved = [lease] if lease is not None else []  # the lease's slot, until it is used or released

        def release(*, drop: bool = False) -> None:
            if reserved:
                leases = _leases_of(self.engine)
                leases.release(reserved.pop(), ask.cost)
                if drop:
                    leases.drop(ask.platform)

        if leased is not None and lease is None:  # nothing to lock or count: the account's block read
            holding = _leases_of(self.engine).blocks.peek(self.engine, ask.platform, account, now)
        else:
            holding = ratewindows.locked(self.engine, ask.platform, [] if leased is not None else ticket, now,
                                         peek=account, writes=lease is not None)  # fmt: skip
        try:
            with holding as held:
                own = leased if leased is not None else list(held.windows.values())
                blocked = max((w.blocked_at(now) for w in [*own, *held.peeked.values()]), default=now)
                own_at = max((w.room_at(ask.cost, now) for w in own), default=now)
                if own_at > now:  # its own ticket's limit: it stands aside, out of the account's line
                    release()
                    return Wait(max(own_at, blocked), ask.rank + OWN_TICKET_WAIT)
                if blocked > now:  # the platform said wait (to another replica, maybe): the lease ends
                    release(drop=True)
                    return Wait(blocked, ask.rank)
                if leased is None:
                    for window in own:
                        window.take(ask.cost, now)
                if lease is not None:  # a line exists on this platform: the delivery leaves it
                    held.granted(ask.item_id, ask.rank)
        except BaseException:
            release()
            raise
        if ask.leased is not None and ticket:  # counted once the grant committed (a race asks again)
            ask.leased.take(ticket, ask.cost, now)
        return None

    def _admit_in_line(self, ask: Ask, now: datetime, account: list, ticket: list, leases: _Leases,
                       waiting: Waiting) -> Wait | None:  # fmt: skip
        """The account's windows locked and counted, the line read: a grant only when there is room
        for it and every better-ranked write waiting (and for deliveries not judged yet)."""
        from connector.store import ratewindows

        owed = leases.take_owed(ask.platform)
        new_lease = None
        leased = ask.leased.of(ticket) if ask.leased is not None else None
        locking = account + ticket if leased is None else account
        try:
            with ratewindows.locked(self.engine, ask.platform, locking, now) as held:
                _give_back(held, owed, now)
                account_windows = [w for (bucket, _), w in held.windows.items() if bucket == ACCOUNT]
                own = [w for (bucket, _), w in held.windows.items() if bucket != ACCOUNT]
                own = leased if leased is not None else own
                blocked = max(w.blocked_at(now) for w in [*account_windows, *own])
                own_at = max((w.room_at(ask.cost, now) for w in own), default=now)
                if own_at > now:  # its own ticket's limit: it stands aside, out of the account's line
                    return Wait(max(own_at, blocked), ask.rank + OWN_TICKET_WAIT)
                unknown = waiting.unjudged if ask.rank > BEST_RANK else 0  # nothing is better than the best
                if waiting.ranked and blocked <= now:
                    # Better-ranked work may sleep on an estimate made before this room came: it goes now
                    # (as much of it as the room serves, leaving room for the deliveries being judged).
                    room = min(w.limit - w.used(now) for w in account_windows) - unknown
                    if room > 0:
                        held.wake_better(ask, now, room)
                line_at = max(w.room_at(waiting.ranked + ask.cost, now) for w in account_windows)
                if max(line_at, blocked) > now:
                    return Wait(max(line_at, blocked), ask.rank)  # its place in line comes then
                ahead = waiting.ranked + unknown + ask.cost
                everyone_at = max(w.room_at(ahead, now) for w in account_windows)
                if everyone_at > now:
                    # Deliveries not judged yet may be better: it counts them as ahead. Should they not
                    # be, whoever asks when the room comes wakes it (wake_better), so it keeps its place.
                    return Wait(everyone_at, ask.rank)
                # Room for everyone in line before it: none of them waits for its write. Room beyond
                # them serves deliveries asleep on an estimate made while more stood before them (the
                # unjudged, counted as ahead): nobody else asks for them before their estimate.
                left = min(w.limit - w.used(now) for w in account_windows) - ahead
                if waiting.asleep and left > 0:
                    ahead += held.wake_asleep(ask, now, left)
                extra = _lease_size(account_windows, ahead, now)
                if leased is None:
                    for window in own:
                        window.take(ask.cost, now)
                for window in account_windows:
                    window.take(ask.cost + extra, now)
                if extra:
                    new_lease = _Lease.of(account, account_windows, extra, now)
                held.granted(ask.item_id, ask.rank)
        except BaseException:
            leases.owe(ask.platform, owed)  # not given back: the next ask that locks them does
            raise
        if ask.leased is not None and ticket:  # counted once the grant committed (a race asks again)
            ask.leased.take(ticket, ask.cost, now)
        if new_lease is not None:
            leases.put(ask.platform, new_lease)
        return None

    def observe(self, platform: str, ticket_id: str | None, headers: RateLimitHeaders | None,
                now: datetime, leased: LeasedWindows | None = None) -> None:  # fmt: skip
        """Adapt to what an answer said of the limit: fewer remaining than we count, or none left.
        `leased`: the ticket's windows, when the worker holds its lease (as for `Ask`)."""
        if headers is None or headers.remaining is None:
            return
        limits = self.limits(platform)
        windows = limits.ticket if headers.per_ticket else limits.account
        least = min((w.requests for w in windows), default=1)
        if not self.config.enabled or headers.remaining >= least:
            return  # nothing to learn: the platform has more left than any window of ours allows
        leases = _leases_of(self.engine)
        if not headers.per_ticket and leases.covered(platform, headers.remaining, least, now):
            return  # far below the limit, by the platform's count too: the lease goes on
        self._adapt(platform, ticket_id, headers, now, block=None, leased=leased)

    def refused(self, platform: str, ticket_id: str | None, retry_after: float | None,
                headers: RateLimitHeaders | None, now: datetime,
                leased: LeasedWindows | None = None) -> None:  # fmt: skip
        """A 429: nothing more goes out until its Retry-After (or the limit's reset) has passed."""
        if not self.config.enabled:
            return
        wait = retry_after if retry_after is not None else (headers.reset_seconds if headers else None)
        if wait is None:
            wait = min((w.seconds / SLOTS for w in self.limits(platform).account), default=1.0)
        self._adapt(platform, ticket_id, headers, now, block=now + timedelta(seconds=wait), leased=leased)

    def _adapt(self, platform: str, ticket_id: str | None, headers: RateLimitHeaders | None,
               now: datetime, *, block: datetime | None, leased: LeasedWindows | None) -> None:  # fmt: skip
        limits = self.limits(platform)
        if headers is not None and headers.per_ticket and ticket_id is not None and leased is not None:
            keys = [(ticket_bucket(ticket_id), w.seconds, w.requests) for w in limits.ticket]
            if keys:  # the ticket's own windows, in the lease's memory: saved with the record
                self._learn(leased.of(keys), headers, now, block)
                leased.changed = True
            return
        _again_if_raced(lambda: self._adapt_once(platform, ticket_id, headers, now, block=block))

    def _adapt_once(self, platform: str, ticket_id: str | None, headers: RateLimitHeaders | None,
                    now: datetime, *, block: datetime | None) -> None:  # fmt: skip
        from connector.store import ratewindows

        limits = self.limits(platform)
        per_ticket = headers is not None and headers.per_ticket
        if per_ticket and ticket_id is not None:
            keys = [(ticket_bucket(ticket_id), w.seconds, w.requests) for w in limits.ticket]
        else:
            keys = self._account_keys(limits)
        if not keys:
            return
        leases = _leases_of(self.engine)
        owed = []
        if not (per_ticket and ticket_id is not None):  # the account's word: our lease of it ends
            leases.drop(platform)
            owed = leases.take_owed(platform)
        try:
            with ratewindows.locked(self.engine, platform, keys, now) as held:
                _give_back(held, owed, now)
                self._learn(list(held.windows.values()), headers, now, block)
        except BaseException:
            leases.owe(platform, owed)
            raise
        finally:
            leases.blocks.forget(platform)  # what it stored holds for this process's next write at once

    @staticmethod
    def _learn(windows: list[SlidingWindow], headers: RateLimitHeaders | None, now: datetime,
               block: datetime | None) -> None:  # fmt: skip
        for window in windows:
            if headers is not None and headers.remaining is not None:
                if window.limit < BLOCK_ONLY[1]:  # a real limit of ours: count what others used
                    window.learn_remaining(headers.remaining, now, headers.reset_seconds)
                if headers.remaining <= 0 and headers.reset_seconds:
                    window.block(now + timedelta(seconds=headers.reset_seconds))
            if block is not None:
                window.block(block)

    def _account_keys(self, limits: PlatformRateLimits) -> list[tuple[str, float, int]]:
        keys = [(ACCOUNT, w.seconds, w.requests) for w in limits.account]
        if not keys and self.config.enabled:
            keys = [(ACCOUNT, *BLOCK_ONLY)]
        return keys


# --- leases: slots of the account's windows taken ahead, granted from memory ---------------------

RACES = 3  # an ask counted again this often when other workers keep making its windows first
LEASE_SHARE = 10  # a lease takes at most this share of a window's limit (a tenth) …
MIN_LEASE = 2  # … and is not taken for fewer slots than this


def _lease_size(windows: list[SlidingWindow], ahead: int, now: datetime) -> int:
    """Slots to take ahead beside a grant: within half of every window's limit once the grant and
    everyone in line before it (`ahead`, the grant included) are counted; none near a limit, where
    each grant is weighed against the line."""
    far = min(w.limit // 2 - w.used(now) - ahead for w in windows)
    size = min(min(w.limit // LEASE_SHARE for w in windows), far)
    return size if size >= MIN_LEASE else 0


@dataclass
class _Lease:
    """Slots of a platform's account windows counted in each window's current slot, granted from
    memory while every one of those slots lasts, so each write still counts in the slot it goes in."""

    keys: tuple[tuple[str, float, int], ...]
    slots: dict[tuple[str, float], int]  # window → the slot the lease is counted in
    start: datetime
    until: datetime
    left: int
    returned: bool = False

    @classmethod
    def of(cls, keys: list, windows: list[SlidingWindow], size: int, now: datetime) -> _Lease:
        """The lease just taken (counted in each window's last slot: now's, or a later one a
        replica with a clock ahead of ours counted in), granted from while now's slot lasts."""
        slots = {(ACCOUNT, w.seconds): w.first_slot + len(w.counts) - 1 for w in windows}
        start = max(w.slot_start(w.slot(now)) for w in windows)
        until = min(w.slot_start(min(w.slot(now), slots[(ACCOUNT, w.seconds)]) + 1) for w in windows)
        return cls(tuple(keys), slots, start, until, size)


# How long this process goes by the account's block (a Retry-After the platform gave any replica) as
# it read it, for a write that locks nothing: reading it again for each such write (Jira's, whose
# per-issue windows the worker holds with the ticket's lease) was a round trip to the database a
# write, ~8 % of the worker's CPU at 100 new outages a second. A block this process stores itself
# holds at once; one another replica stored, within this long.
BLOCK_READ_SECONDS = 1.0


class _Blocks:
    """The account's block windows of each platform as this process last read them, and when."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read: dict[str, tuple[datetime, dict]] = {}

    @contextmanager
    def peek(self, engine: Engine, platform: str, account: list, now: datetime) -> Iterator[Any]:
        """ratewindows.locked with nothing to lock, only `account` peeked: from memory when read within
        BLOCK_READ_SECONDS (by `now`)."""
        from connector.store import ratewindows

        with self._lock:
            read = self._read.get(platform)
        if read is not None and read[0] <= now < read[0] + timedelta(seconds=BLOCK_READ_SECONDS):
            yield ratewindows.Held(None, platform, {}, read[1])
            return
        with ratewindows.locked(engine, platform, [], now, peek=account) as held:
            with self._lock:
                self._read[platform] = (now, held.peeked)
            yield held

    def forget(self, platform: str) -> None:
        """This process stored a block (or the end of one): the next write reads it."""
        with self._lock:
            self._read.pop(platform, None)


class _Leases:
    """One process's leases on one database: per platform the current one, and the ended ones
    whose unused slots go back to the windows with the next ask that locks them; and the account
    blocks it read (`blocks`)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.blocks = _Blocks()
        self._lock = threading.Lock()
        self._current: dict[str, _Lease] = {}
        self._owed: dict[str, list[_Lease]] = {}

    def reserve(self, platform: str, keys: list, cost: int, now: datetime) -> _Lease | None:
        """The current lease with `cost` slots taken from it, or None (none left, or it ended)."""
        with self._lock:
            lease = self._current.get(platform)
            if lease is None:
                return None
            if lease.keys != tuple(keys) or not lease.start <= now < lease.until:
                self._end(platform)
                return None
            if lease.left < cost:
                return None
            lease.left -= cost
            return lease

    def covered(self, platform: str, remaining: int, least: int, now: datetime) -> bool:
        """The platform's `remaining` leaves this process's current lease nothing to change: it
        has half of the tightest limit (`least`) left, where leases live, and room for every slot the
        lease may still grant. What others sharing the account used is learnt once the platform counts
        more than half of the limit used: leases are taken only below half, so near the limit every
        answer is weighed as before."""
        with self._lock:
            lease = self._current.get(platform)
            if lease is None or not lease.start <= now < lease.until:
                return False
            return remaining >= max(lease.left, least // 2)

    def release(self, lease: _Lease, cost: int) -> None:
        """Slots reserved and not used: back to the lease (or, given back already, lost till they age)."""
        with self._lock:
            if not lease.returned:
                lease.left += cost

    def put(self, platform: str, lease: _Lease) -> None:
        with self._lock:
            current = self._current.get(platform)
            if current is not None and current.slots == lease.slots and current.keys == lease.keys:
                current.left += lease.left  # two grants took one in the same slot
                return
            self._end(platform)
            self._current[platform] = lease

    def drop(self, platform: str) -> None:
        with self._lock:
            self._end(platform)

    def _end(self, platform: str) -> None:
        lease = self._current.pop(platform, None)
        if lease is not None:
            self._owed.setdefault(platform, []).append(lease)

    def take_owed(self, platform: str) -> list[_Lease]:
        """The ended leases' unused slots, to give back (the leases keep none: a late release is lost)."""
        with self._lock:
            owed = self._owed.pop(platform, [])
            debts = [dataclasses.replace(lease) for lease in owed if lease.left]
            for lease in owed:
                lease.left, lease.returned = 0, True
            return debts

    def owe(self, platform: str, debts: list[_Lease]) -> None:
        """Debts taken and not given back (the transaction failed): the next ask gives them back."""
        if debts:
            with self._lock:
                self._owed.setdefault(platform, []).extend(debts)


_LEASES: weakref.WeakKeyDictionary[Engine, _Leases] = weakref.WeakKeyDictionary()
_LEASES_GUARD = threading.Lock()


def _leases_of(engine: Engine) -> _Leases:
    leases = _LEASES.get(engine)
    if leases is not None and leases.pid == os.getpid():
        return leases
    with _LEASES_GUARD:  # a forked process starts with none: its parent's stay counted, unused
        leases = _LEASES.get(engine)
        if leases is None or leases.pid != os.getpid():
            leases = _LEASES[engine] = _Leases()
        return leases


def _give_back(held, debts: list[_Lease], now: datetime) -> None:
    """Unused slots of ended leases leave the locked windows they were counted in."""
    for debt in debts:
        for key, slot in debt.slots.items():
            if (window := held.windows.get(key)) is not None:
                window.give_back(slot, debt.left, now)
