"""POST /webhooks/<platform>: verify, size-limit, store durably, answer fast.

No platform call and no policy evaluation happens inside the request: the worker does that.
Answers: 202 accepted · 200 duplicate or ignored · 401 signature · 400 malformed, unreadable or
over a limit (webhooks/door.py; nothing stored) · 404 platform · 405 not a POST · 413 size ·
503 the database could not store it now (the platform retries).

This is a plain WSGI application, mounted at /webhooks in front of the Flask app (`mount`).
It is the one endpoint the platforms call at volume, and under load Flask's per-request
machinery (request context, URL map, Request and Response objects) cost ~200 µs of CPU per
delivery on top of ~500 µs for everything else: more than verifying and storing it.
Health, readiness and metrics stay in Flask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, NamedTuple

import orjson
from werkzeug.datastructures import EnvironHeaders
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wsgi import get_content_length, get_input_stream

from connector.runtime import Runtime
from connector.store.inbox import new_row
from connector.store.intake import IntakeRefused, IntakeUnavailable
from platforms.errors import SignatureError
from platforms.registry import PLATFORMS
from webhooks import door

log = logging.getLogger("escalator.webhooks")

PREFIX = "/webhooks"
_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class Answer(NamedTuple):
    status: int
    result: str
    platform: str  # the metrics label: the platform's key, or "unknown"
    fields: dict[str, Any]


def answer(status: int, result: str, platform: str, **fields: Any) -> Answer:
    return Answer(status, result, platform, fields)


class WebhookReceiver:
    """The WSGI application behind /webhooks; PATH_INFO is what follows the mount point."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        platform = environ.get("PATH_INFO", "").removeprefix("/")
        headers: list[tuple[str, str]] = []
        if environ.get("REQUEST_METHOD") != "POST":
            headers.append(("Allow", "POST"))
            reply = answer(405, "method_not_allowed", "unknown", error="webhooks are delivered with POST")
        elif not platform or "/" in platform:
            reply = answer(404, "not_found", "unknown", error=f"no such endpoint: {PREFIX}/{platform}")
        else:
            try:
                reply = self.receive(platform, environ)
            except Exception:  # a bug of ours: answer 500 so the platform retries, and say so in the log
                log.exception("%s webhook failed", platform)
                reply = answer(500, "error", platform if platform in PLATFORMS else "unknown",
                               error="internal error; the delivery was not stored")  # fmt: skip
        self.rt.metrics.webhook_answered(reply.platform, reply.result)
        body = orjson.dumps({"result": reply.result, **reply.fields})
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(_STATUS_LINES[reply.status], headers)
        return [body]

    def receive(self, platform: str, environ: dict[str, Any]) -> Answer:
        rt = self.rt
        if platform not in PLATFORMS:
            error = f"unknown platform '{platform}' (known: {', '.join(PLATFORMS)})"
            return answer(404, "unknown_platform", "unknown", error=error)
        installation = rt.installations.get(platform)
        if installation is None:
            error = f"platform '{platform}' is not configured (add platforms.{platform} to the config)"
            return answer(404, "unknown_platform", platform, error=error)

        limit = rt.config.server.max_body_bytes
        length = get_content_length(environ)
        if length is not None and length > limit:
            error = f"body of {length} bytes exceeds the {limit}-byte limit"
            return answer(413, "too_large", platform, error=error)
        body = get_input_stream(environ).read(limit + 1)
        if len(body) > limit:  # chunked or lying Content-Length
            return answer(413, "too_large", platform, error=f"body exceeds the {limit}-byte limit")

        if not installation.webhook_secret:
            error = f"platforms.{platform}.webhook_secret is not set; unsigned deliveries are refused"
            return answer(401, "unauthorized", platform, error=error)
        headers = EnvironHeaders(environ)
        now = rt.clock()
        try:
            installation.provider.verify(headers, body, installation.settings, now)
        except SignatureError as exc:
            log.warning("%s webhook refused: %s", platform, exc)
            return answer(401, "unauthorized", platform, error=str(exc))

        try:
            payload = orjson.loads(body)  # a C parser: 3x faster than json on real payloads
        except orjson.JSONDecodeError as exc:
            return answer(400, "malformed", platform, error=f"body is not JSON: {exc}")
        if not isinstance(payload, dict):
            return answer(400, "malformed", platform, error="body must be a JSON object")
        try:  # the one verdict: stored only if the worker will be able to read it
            delivery = door.admit(installation.provider, headers, payload, body)
        except door.Refused as exc:
            return answer(400, "malformed", platform, error=str(exc))

        try:
            stored = rt.intake.accept(
                new_row(platform, delivery.delivery_id, delivery.event_type, delivery.ticket_id,
                        delivery.ignored, body, now)
            )  # fmt: skip
        except IntakeRefused as exc:
            # The database refuses this row itself: the same delivery would be refused on every retry.
            log.warning("%s delivery %s refused by the database: %s", platform, delivery.delivery_id, exc)
            return answer(400, "malformed", platform, error=str(exc))
        except IntakeUnavailable as exc:
            # Not stored, so not acknowledged: the platform's own retry brings it back.
            log.error("%s delivery %s not stored: %s", platform, delivery.delivery_id, exc)
            return answer(503, "unavailable", platform, error=f"{exc}; retry later")
        if not stored:
            return answer(200, "duplicate", platform, delivery_id=delivery.delivery_id)
        if delivery.ignored:
            return answer(
                200, "ignored", platform, delivery_id=delivery.delivery_id, event_type=delivery.event_type
            )
        return answer(202, "accepted", platform, delivery_id=delivery.delivery_id)


def mount(app: Any, rt: Runtime) -> None:
    """Serve /webhooks/* with the receiver, everything else with the Flask `app` (application
    dispatching, as Flask's documentation describes it)."""
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {PREFIX: WebhookReceiver(rt)})
