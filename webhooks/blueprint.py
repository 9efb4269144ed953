"""POST /webhooks/<platform>: verify, size-limit, store durably, answer fast.

No platform call and no policy evaluation happens inside the request: the worker does that.
Answers: 202 accepted · 200 duplicate or ignored · 401 signature · 400 malformed · 404 platform ·
413 size · 503 the database could not store it (the platform retries).
"""

from __future__ import annotations

import logging

import orjson
from flask import Blueprint, Response, current_app, request

from connector.store.inbox import new_row
from connector.store.intake import IntakeUnavailable
from platforms.errors import PayloadError, SignatureError
from platforms.registry import PLATFORMS

log = logging.getLogger("escalator.webhooks")
bp = Blueprint("webhooks", __name__)


def _answer(status: int, result: str, platform: str, **body) -> Response:
    current_app.extensions["escalator"].metrics.webhook_answered(platform, result)
    # orjson and a plain Response: Flask's jsonify costs more than the rest of an answer.
    return Response(orjson.dumps({"result": result, **body}), status, mimetype="application/json")


@bp.post("/webhooks/<platform>")
def receive(platform: str):
    # This is the hot path: resolve the context proxies once, not on every attribute access.
    rt = current_app.extensions["escalator"]
    req = request._get_current_object()  # type: ignore[attr-defined]
    if platform not in PLATFORMS:
        return _answer(
            404,
            "unknown_platform",
            "unknown",
            error=f"unknown platform '{platform}' (known: {', '.join(PLATFORMS)})",
        )
    installation = rt.installations.get(platform)
    if installation is None:
        return _answer(
            404,
            "unknown_platform",
            platform,
            error=f"platform '{platform}' is not configured (add platforms.{platform} to the config)",
        )

    limit = rt.config.server.max_body_bytes
    length = req.content_length
    if length is not None and length > limit:
        return _answer(
            413, "too_large", platform, error=f"body of {length} bytes exceeds the {limit}-byte limit"
        )
    body = req.stream.read(limit + 1)
    if len(body) > limit:  # chunked or lying Content-Length
        return _answer(413, "too_large", platform, error=f"body exceeds the {limit}-byte limit")

    secret = installation.webhook_secret
    if not secret:
        return _answer(
            401,
            "unauthorized",
            platform,
            error=f"platforms.{platform}.webhook_secret is not set; unsigned deliveries are refused",
        )
    try:
        headers = req.headers
        installation.provider.verify(headers, body, installation.settings, rt.clock())
    except SignatureError as exc:
        log.warning("%s webhook refused: %s", platform, exc)
        return _answer(401, "unauthorized", platform, error=str(exc))

    try:
        payload = orjson.loads(body)  # a C parser: 3x faster than json on real payloads
    except orjson.JSONDecodeError as exc:
        return _answer(400, "malformed", platform, error=f"body is not JSON: {exc}")
    if not isinstance(payload, dict):
        return _answer(400, "malformed", platform, error="body must be a JSON object")
    try:
        delivery = installation.provider.identify(headers, payload)
    except PayloadError as exc:
        return _answer(400, "malformed", platform, error=str(exc))

    try:
        stored = rt.intake.accept(
            new_row(platform, delivery.delivery_id, delivery.event_type, delivery.ticket_id,
                    delivery.ignored, body, rt.clock())
        )  # fmt: skip
    except IntakeUnavailable as exc:
        # Not stored, so not acknowledged: the platform's own retry brings it back.
        log.error("%s delivery %s not stored: %s", platform, delivery.delivery_id, exc)
        return _answer(503, "unavailable", platform, error=f"{exc}; retry later")
    if not stored:
        return _answer(200, "duplicate", platform, delivery_id=delivery.delivery_id)
    if delivery.ignored:
        return _answer(
            200, "ignored", platform, delivery_id=delivery.delivery_id, event_type=delivery.event_type
        )
    return _answer(202, "accepted", platform, delivery_id=delivery.delivery_id)
