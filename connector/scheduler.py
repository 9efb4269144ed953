"""The SLA clock: one APScheduler interval job that fires due timers into the inbox.

APScheduler is the clock, not the queue. Deadlines live in our `timers` table (durable,
shared by replicas); a one-shot APScheduler job per ticket would be lost on restart, and one
missed by more than `misfire_grace_time` is silently dropped. So there is exactly one job,
an interval tick, and it claims whatever is due — including timers that came due while the
connector was down, which fire once at start-up, marked late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from connector import reconcile, wakeup
from connector.audit import schedule as audit_schedule
from connector.runtime import Runtime
from connector.store import retention, timers
from connector.store.db import log_round_failed

log = logging.getLogger("escalator.scheduler")


def tick(rt: Runtime) -> int:
    """Fire every timer due now (in batches); returns how many fired."""
    cfg = rt.config.scheduler
    late_after = timedelta(seconds=cfg.late_after_seconds)
    total = 0
    while True:
        fired = timers.fire_due(rt.engine, now=rt.clock(), limit=cfg.batch, late_after=late_after)
        for timer in fired:
            timeliness = "late" if timer.late else "on_time"
            rt.metrics.timers_fired.labels(timer.platform, timer.kind, timeliness).inc()
            rt.metrics.timer_lateness_seconds.observe((timer.fired_at - timer.due).total_seconds())
        total += len(fired)
        if len(fired) < cfg.batch:
            return total


class SlaScheduler:
    """Runs `tick` every `scheduler.tick_seconds` in a background thread.

    The job store is in memory and private to this process (APScheduler's stores must never be
    shared); `max_instances=1` and `coalesce` keep a slow tick from piling up behind itself.
    `on_fired` is called after a tick that fired something (the worker pool wakes up at once).
    """

    def __init__(self, rt: Runtime, *, on_fired: Callable[[], None] | None = None):
        self.rt = rt
        self.on_fired = on_fired
        # Fired timers and reconciled changes are new inbox rows like webhooks: every replica's
        # worker hears of them (NOTIFY, or the datagrams beside a SQLite file), not only ours.
        self._doorbell = wakeup.doorbell(rt.engine)
        self._scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone="UTC",
        )

    def start(self) -> None:
        self._run()  # at once: timers that came due while we were down must not wait a tick
        self._scheduler.add_job(
            self._run,
            "interval",
            seconds=self.rt.config.scheduler.tick_seconds,
            id="sla-tick",
            name="fire due SLA timers",
        )
        if audit_schedule.enabled(self.rt):  # signed audit checkpoints ride the same clock
            self._scheduler.add_job(
                self._checkpoint, "interval", seconds=60, id="audit-checkpoint", name="audit checkpoint"
            )
        reconcile.schedule(self._scheduler, self.rt, on_stored=self._stored)  # missed webhooks
        self._scheduler.add_job(
            self._prune, "interval", hours=1, id="inbox-retention", name="prune finished deliveries"
        )
        self._scheduler.start()

    def stop(self) -> None:
        """Stop the clock without waiting for a job that is running (a long reconcile): whatever
        it leaves undone, the next tick or the next worker does."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._doorbell.close()

    def _stored(self) -> None:
        """New work is in the inbox: wake every worker that listens, and ours at once."""
        self._doorbell.ring(self.rt.engine)
        if self.on_fired is not None:
            self.on_fired()

    def _checkpoint(self) -> None:
        try:
            audit_schedule.tick(self.rt)
        except Exception as exc:  # the database may be briefly unavailable; the next tick tries again
            log_round_failed(log, self.rt.engine, exc, "audit checkpoint tick failed; trying again next tick")

    def _prune(self) -> None:
        days = self.rt.config.inbox.retention_days
        longest = self.rt.config.rate_limits.longest_window
        try:
            done = retention.tidy(
                self.rt.engine, now=self.rt.clock(), retention_days=days, longest_window=longest
            )
        except Exception as exc:  # the database may be briefly unavailable; the next hour tries again
            log_round_failed(log, self.rt.engine, exc, "pruning the inbox failed; trying again in an hour")
            return
        if done.pruned:
            log.info("pruned %d deliveries finished more than %g days ago", done.pruned, days)
        if done.compressed or done.windows:
            log.info("compressed %d finished deliveries' bodies; dropped %d idle rate-limit windows",
                     done.compressed, done.windows)  # fmt: skip

    def _run(self) -> None:
        try:
            fired = tick(self.rt)
        except Exception as exc:  # the database may be briefly unavailable; the next tick tries again
            log_round_failed(log, self.rt.engine, exc, "SLA tick failed; trying again next tick")
            return
        if fired:
            log.info("fired %d SLA timer(s)", fired)
            self._stored()
