"""Reconcile: find the ticket changes whose webhook never arrived, and process them like deliveries.

One pass per platform (a scheduled job every `reconcile.interval_seconds`, or `escalator reconcile`):
ask the platform which tickets changed between the persisted watermark (minus `overlap_seconds`)
and now minus `settle_seconds` (live webhooks get that long to win), compare each with what
Escalator last saw of the ticket (its stored snapshot), and store each change it never saw in the
inbox as the delivery its webhook would have been, under the same delivery id. A change whose
webhook did arrive is a duplicate there and costs nothing; one that was missed is counted in
`escalator_reconciled_total`: a rising count says webhooks are broken. The watermark moves only
after a whole window was read, so a failed pass is read again next time.

The first pass ever starts at "now" (no backfill) unless `escalator reconcile --since T` asks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType

from connector.runtime import Runtime
from connector.store import inbox, tickets, watermarks
from connector.store.db import writing
from platforms.errors import PlatformError
from platforms.jira import reconcile as jira_reader
from platforms.servicenow import reconcile as servicenow_reader
from platforms.zendesk import reconcile as zendesk_reader

log = logging.getLogger("escalator.reconcile")

READERS: dict[str, ModuleType] = {
    "jira": jira_reader,
    "zendesk": zendesk_reader,
    "servicenow": servicenow_reader,
}


@dataclass
class Pass:
    """What one reconcile pass of one platform did."""

    platform: str
    start: datetime | None = None  # the window read (None: nothing read)
    end: datetime | None = None
    changed: int = 0  # tickets the platform reported changed in the window
    seen: int = 0  # … whose change Escalator already had (snapshot or inbox)
    missed: int = 0  # … stored now as reconciled deliveries (comments included)
    comments: int = 0  # new comments whose webhook never came, stored now (where the platform lists them)
    requests: int = 0
    waited: float = 0.0  # seconds spent waiting out rate limits
    note: str = ""


def reconcile(
    rt: Runtime, platform: str, *, since: datetime | None = None, sleep: Callable[[float], None] = time.sleep
) -> Pass:
    """One pass for `platform`. PlatformError (after the pager's waits) leaves the watermark where it was."""
    installation = rt.installations.get(platform)
    if installation is None:
        raise PlatformError(f"platform '{platform}' is not configured")
    cfg = rt.config.reconcile
    now = rt.clock()
    result = Pass(platform)
    with rt.engine.connect() as conn:
        mark = watermarks.load(conn, platform)
    if since is not None:
        mark = since
    elif mark is None:
        with writing(rt.engine) as conn:
            watermarks.save(conn, platform, now, now)
        result.note = "first pass: starts now (use `escalator reconcile --since T` to look back)"
        return result
    end = now - timedelta(seconds=cfg.settle_seconds)
    start = mark - timedelta(seconds=cfg.overlap_seconds)
    if end <= mark:
        result.note = "nothing has settled since the last pass"
        return result
    result.start, result.end = start, end
    reader = READERS[platform]
    settings = installation.settings
    pager = reader.pager(settings, sleep=sleep, max_waits=cfg.max_rate_limit_waits)
    try:
        for record in reader.changed(pager, settings, start, end):
            result.changed += 1
            change, comments = _store(rt, platform, reader, settings, record, now, pager)
            if change:
                result.missed += 1
            else:
                result.seen += 1
            result.missed += comments
            result.comments += comments
            # A comment has its own webhook: looked for even when the ticket's change was seen.
            for found in getattr(reader, "comments", _none)(pager, record, settings, start, end):
                if _accept(rt, platform, found, now):
                    result.missed += 1
                    result.comments += 1
    finally:
        result.requests, result.waited = pager.requests, sum(pager.waited)
    with writing(rt.engine) as conn:
        watermarks.save(conn, platform, end, now)
    if result.missed:
        rt.metrics.reconciled.labels(platform).inc(result.missed)
        log.warning(
            "%s: %d change(s) arrived without a webhook; processing them now", platform, result.missed
        )
    return result


def _store(
    rt: Runtime, platform: str, reader: ModuleType, settings, record, now: datetime, pager
) -> tuple[bool, int]:
    """(whether the change was new to Escalator and is now in the inbox, how many missed comments
    that came with it were stored too)"""
    ticket_id = reader.ticket_id(record)
    with rt.engine.connect() as conn:
        snapshot = tickets.load(conn, platform, ticket_id).snapshot
    updated = reader.updated_at(record)
    seen = snapshot.updated_at if snapshot is not None else None
    if seen is not None and updated is not None and seen >= updated:
        return False, 0  # processed already (its webhook came and went)
    found = reader.delivery(record, snapshot, settings)
    if found is None:
        log.warning("%s: ticket %s changed but names no change id; skipped", platform, ticket_id)
        return False, 0
    if inbox.holds(rt.engine, platform, found.delivery_id):
        return False, 0  # its webhook came and waits for a worker
    with_comment = getattr(reader, "with_missed_comment", None)
    change, *comments = (
        [found] if with_comment is None else with_comment(pager, record, snapshot, settings, found)
    )
    return _accept(rt, platform, change, now), sum(_accept(rt, platform, one, now) for one in comments)


def _accept(rt: Runtime, platform: str, found, now: datetime) -> bool:
    """Store a reconciled delivery; False when its webhook (or an earlier pass) stored it already."""
    body = json.dumps(found.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    row = inbox.new_row(platform, found.delivery_id, found.event_type, found.ticket_id, False, body, now)
    return inbox.accept(rt.engine, row)


def _none(*_args) -> tuple[()]:
    """The comments of a platform whose search does not list them (see each reader)."""
    return ()


def reconcile_all(rt: Runtime, **options) -> list[Pass]:
    """One pass for every configured platform; a platform that fails is logged and skipped."""
    passes = []
    for platform in rt.installations:
        try:
            passes.append(reconcile(rt, platform, **options))
        except PlatformError as exc:
            log.error("%s: reconcile pass failed, the window is read again next time: %s", platform, exc)
            passes.append(Pass(platform, note=f"failed: {exc}"))
    return passes


def schedule(scheduler, rt: Runtime, *, on_stored: Callable[[], None] | None = None) -> list[str]:
    """Add one interval job per configured platform that can read (it has API credentials) to an
    APScheduler scheduler; the first run is at once, and sets the watermark to "now"."""
    cfg = rt.config.reconcile
    if not cfg.enabled:
        return []
    added = []
    for platform, installation in rt.installations.items():
        if not installation.can_write:
            log.info("%s: no API credentials, so no reconcile job", platform)
            continue
        scheduler.add_job(
            _scheduled, "interval", seconds=cfg.interval_seconds, args=(rt, platform, on_stored),
            id=f"reconcile-{platform}", name=f"reconcile {platform}", next_run_time=rt.clock(),
        )  # fmt: skip
        added.append(platform)
    return added


def _scheduled(rt: Runtime, platform: str, on_stored: Callable[[], None] | None) -> None:
    try:
        result = reconcile(rt, platform)
    except Exception:  # the job runs again next interval; one failure must not stop it for good
        log.exception("%s: reconcile pass failed; the same window is read again next time", platform)
        return
    if result.missed and on_stored is not None:
        on_stored()
