"""Mounting the console on the connector's Flask app: session settings, who is asking, headers."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from connector.runtime import Runtime
from console import auth

log = logging.getLogger("escalator.console")


def mount(app: Flask, rt: Runtime) -> None:
    settings = rt.config.console
    if not settings.enabled:
        return
    app.secret_key = settings.secret_key or secrets.token_hex(32)
    if (why := settings.sessions_per_process) is not None:
        log.warning("%s", why)
    app.config.update(
        SESSION_COOKIE_NAME="escalator_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_minutes),
    )
    app.extensions["console.throttle"] = auth.LoginThrottle(
        rt.engine, settings.login_attempts, settings.login_window_seconds, rt.clock
    )
    from console.api import api, http_error
    from console.views import views

    @app.before_request
    def who_is_asking() -> None:
        path = request.path
        if path.startswith("/api/v1"):
            g.principal = auth.check_token(settings, request.headers.get("Authorization"))
        elif path.startswith("/console"):
            g.principal = auth.load_session_principal(settings)

    @app.after_request
    def headers(response):  # type: ignore[no-untyped-def]
        if request.path.startswith(("/console", "/api/v1")):
            # Nothing from elsewhere, no inline script, never framed, never cached: it is audit data.
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            )
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(404)
    @app.errorhandler(405)
    def api_routing_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        # A path under /api/v1 that matches no route never reaches the blueprint's own handler:
        # the API answers JSON there too, as its document says; every other path keeps Flask's page.
        if request.path.startswith("/api/v1"):
            return http_error(exc)
        return exc

    app.register_blueprint(views)
    app.register_blueprint(api)
