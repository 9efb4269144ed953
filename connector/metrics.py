"""Prometheus metrics, registries per runtime (so tests and several apps never collide).

Two registries, one per process that serves them: `registry` is the web process's /metrics (webhook
answers), `worker_registry` the worker's `worker.metrics_port` (decisions, platform requests, timers).
Each process counts only its own families, so neither lists families that never get a sample there.
Policy reload failures happen in both and are listed by both.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # the web process's /metrics
        self.worker_registry = CollectorRegistry()  # the worker process's metrics port
        self._webhook_answers: dict[tuple[str, str], Any] = {}
        self.webhooks = Counter(
            "escalator_webhooks_total",
            "Webhook requests by platform and answer (accepted, duplicate, ignored, unauthorized, "
            "malformed, too_large, unknown_platform, unavailable, not_found, method_not_allowed, error).",
            ["platform", "result"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "escalator_decisions_total",
            "Decisions by platform and outcome.",
            ["platform", "outcome"],
            registry=self.worker_registry,
        )
        self.platform_requests = Counter(
            "escalator_platform_requests_total",
            "Requests sent to platforms by platform, method and HTTP status (or 'error').",
            ["platform", "method", "status"],
            registry=self.worker_registry,
        )
        self.workers_gone = Counter(
            "escalator_workers_gone_total",
            "Other worker processes this one found gone (their liveness lock free) and handed back what "
            "they held at once. Each is a worker that died: a crash, kill -9, the OOM killer.",
            registry=self.worker_registry,
        )
        self.timers_fired = Counter(
            "escalator_timers_fired_total",
            "SLA timers fired by platform, kind (sla.warning, sla.breached, update.due) and timeliness.",
            ["platform", "kind", "timeliness"],
            registry=self.worker_registry,
        )
        self.timer_lateness_seconds = Histogram(
            "escalator_timer_lateness_seconds",
            "From a timer's due instant to the tick that fired it.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=self.worker_registry,
        )
        self.reconciled = Counter(
            "escalator_reconciled_total",
            "Ticket changes the reconcile job found without a webhook (missed events), by platform. "
            "A rising count means webhooks are not arriving.",
            ["platform"],
            registry=self.registry,
        )
        self.records_per_commit = Histogram(
            "escalator_records_per_commit",
            "Decision records (and notes' in-flight marks) per transaction: deliveries that finish while "
            "another's record is written share the next commit (connector/store/group_commit.py).",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.worker_registry,
        )
        self.processing_seconds = Histogram(
            "escalator_event_processing_seconds",
            "From claim to audit record, per event.",
            ["platform"],
            registry=self.worker_registry,
        )

        self.policy_reload_failures = Counter(
            "escalator_policy_reload_failures",
            "Policy reloads (SIGHUP) refused because the file did not load (the last good policy serves).",
            registry=None,
        )
        self.registry.register(self.policy_reload_failures)
        self.worker_registry.register(self.policy_reload_failures)

    def webhook_answered(self, platform: str, result: str) -> None:
        """Count one webhook answer. The labelled child is looked up once per (platform, result):
        `labels()` validates and locks on every call, which the webhook path would pay per request."""
        child = self._webhook_answers.get((platform, result))
        if child is None:
            child = self._webhook_answers[(platform, result)] = self.webhooks.labels(platform, result)
        child.inc()
