"""The app factory: health, readiness and metrics in Flask, with the webhook receiver mounted in
front at /webhooks. Runs under any WSGI server."""

from __future__ import annotations

from flask import Flask, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

import console
from connector.runtime import Runtime
from connector.store import inbox, timers
from connector.store.db import database_unavailable
from connector.version import VERSION
from webhooks.receiver import mount as mount_webhooks


def create_app(rt: Runtime) -> Flask:
    app = Flask("escalator")
    app.extensions["escalator"] = rt
    mount_webhooks(app, rt)
    console.register(app, rt)
    if proxies := rt.config.server.trusted_proxies:
        # Outermost, so that every part of the app sees the client's address and scheme. Each trusted
        # proxy appends the address it saw to X-Forwarded-For: the `proxies`-th from the end is the
        # client's as the outermost one saw it; whatever comes before it the client may have written.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        try:
            with rt.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # readiness must answer, not raise
            return jsonify(status="unavailable", error=f"database: {type(exc).__name__}"), 503
        holder = rt.policy
        policy = holder.current
        failed = holder.last_reload_error
        return jsonify(
            status="ready",
            version=VERSION,
            policy=policy.summary(),
            # what this process decides with now: after a refused reload, still the last good file
            policy_in_force={
                "name": policy.name,
                "version": policy.version,
                "sha256": policy.sha256,
                "path": policy.path,
                "loaded_at": holder.loaded_at.isoformat(),
            },
            last_reload_error=None
            if failed is None
            else {"at": holder.last_reload_error_at.isoformat(), "error": failed},
            dry_run=rt.dry_run,
            platforms=sorted(rt.installations),
        )

    @app.get("/metrics")
    def metrics():
        # Inbox depth is read at scrape time rather than tracked, so it is right across replicas.
        # While the database does not answer, this process's own counters are still served (an
        # outage is when they are wanted), with escalator_database_up 0 in place of the store's gauges.
        try:
            lines = _store_gauges(rt)
            up = 1
        except Exception as exc:
            if not database_unavailable(rt.engine, exc):
                raise
            lines, up = [], 0
        lines += [
            "# HELP escalator_database_up Whether the database answered this scrape (1) or not (0).",
            "# TYPE escalator_database_up gauge",
            f"escalator_database_up {up}",
        ]
        body = generate_latest(rt.metrics.registry) + ("\n".join(lines) + "\n").encode()
        return body, 200, {"Content-Type": CONTENT_TYPE_LATEST}

    return app


def _store_gauges(rt) -> list[str]:
    """The gauges read from the shared store at scrape time (every replica's rows)."""
    depth = inbox.counts(rt.engine)
    clocks = timers.counts(rt.engine)
    return [
        "# HELP escalator_inbox_events Inbox rows by status (all replicas).",
        "# TYPE escalator_inbox_events gauge",
        *(f'escalator_inbox_events{{status="{s}"}} {n}' for s, n in sorted(depth.items())),
        "# HELP escalator_timers SLA timers: armed (not due yet) or fired (waiting for a worker).",
        "# TYPE escalator_timers gauge",
        *(f'escalator_timers{{state="{s}"}} {n}' for s, n in sorted(clocks.items())),
        "# HELP escalator_timers_overdue_seconds How long the oldest due, unfired timer has waited.",
        "# TYPE escalator_timers_overdue_seconds gauge",
        f"escalator_timers_overdue_seconds {timers.overdue_seconds(rt.engine, rt.clock()):.3f}",
    ]
