"""The JSON API (/api/v1): the console's data for scripts and dashboards, with bearer tokens.

Described by the OpenAPI document at /api/v1/openapi.json (console/openapi.py); the tests check the
answers against it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from connector.events import VISIBLE
from console import auth, board, decisions, integrity, operations, reports, tickets
from console.context import engine, fresh, now, policy, runtime
from console.openapi import document

api = Blueprint("api", __name__, url_prefix="/api/v1")


def plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO-8601, tuples as lists, recursively."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def problem(status: int, message: str) -> Any:
    return jsonify(error=message), status


@api.before_request
def guard() -> Any:
    if auth.current_principal() is None:
        response = jsonify(error="a bearer token is required: Authorization: Bearer <token>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="escalator"'
        return response
    return None


@api.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Any:
    """The error as JSON, keeping what its headers say (a 405's Allow)."""
    response = jsonify(error=exc.description or exc.name)
    response.status_code = exc.code or 500
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


@api.get("/openapi.json")
def openapi() -> Any:
    return jsonify(document())


@api.get("/decisions")
def decisions_list() -> Any:
    fresh()
    try:
        filters = decisions.Filters.parse(request.args)
    except decisions.FilterError as exc:
        return problem(400, str(exc))
    rows, cursor = decisions.list_decisions(engine(), filters)
    return jsonify(items=plain(rows), next_before=cursor)


@api.get("/decisions/<int(min=1, max=4611686018427387904):seq>")
def decision(seq: int) -> Any:
    found = decisions.decision(engine(), seq)
    if found is None:
        return problem(404, f"no audit record {seq}")
    return jsonify(plain(found))


@api.get("/tickets")
def ticket_search() -> Any:
    fresh()
    query = (request.args.get("q") or "").strip()[:255]
    if not query:
        return problem(400, "q: give a ticket key or id")
    return jsonify(items=tickets.find(engine(), query))


@api.get("/tickets/<platform>/<path:ticket_id>")
def ticket(platform: str, ticket_id: str) -> Any:
    fresh()
    life = tickets.life(engine(), policy(), platform, ticket_id, now())
    if life is None:
        return problem(404, f"no record of {platform} ticket {ticket_id}")
    return jsonify(plain({**life, "notifications": operations.notifications(engine(), life)}))


@api.get("/sla/board")
def sla_board() -> Any:
    chosen = {
        k: (request.args.get(k) or "").strip()[:64] or None
        for k in ("platform", "priority", "tier", "calendar")
    }
    limit = max(1, min(_number(request.args.get("limit"), board.PAGE), 500))
    offset = max(0, min(_number(request.args.get("offset"), 0), 1_000_000))
    rows = board.board(engine(), policy(), now(), filters=chosen, limit=limit, offset=offset)
    return jsonify(at=now().isoformat(), items=plain(rows))


def _number(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


@api.get("/reports")
def reports_list() -> Any:
    return jsonify(items=[{"name": name, "title": title} for name, (title, _) in reports.REPORTS.items()])


@api.get("/reports/<name>")
def report(name: str) -> Any:
    if name not in reports.REPORTS:
        return problem(404, f"no report {name!r}: choose from {', '.join(reports.REPORTS)}")
    fresh()
    try:
        since = decisions._instant((request.args.get("since") or "").strip() or None, "since")
        until = decisions._instant((request.args.get("until") or "").strip() or None, "until")
    except decisions.FilterError as exc:
        return problem(400, str(exc))
    scope = reports.Scope(
        since=since, until=until, platform=(request.args.get("platform") or "").strip()[:32] or None
    )
    return jsonify(reports.REPORTS[name][1](engine(), policy(), scope, now()).as_json())


@api.get("/integrity")
def integrity_status() -> Any:
    fresh()
    integrity.remember_policy(engine(), policy(), now())
    return jsonify(
        plain(
            {
                "chain": integrity.chain_status(engine()),
                "checkpoints": integrity.checkpoints(engine()),
                "versions": integrity.versions(engine()),
            }
        )  # fmt: skip
    )


@api.get("/events")
def events_overview() -> Any:
    return jsonify(plain(operations.overview(runtime())))


@api.post("/events/<int(min=1, max=4611686018427387904):event_id>/retry")
def retry(event_id: int) -> Any:
    principal = _operator()
    if principal is None:
        return problem(403, "only an operator token may retry events")
    message, status = operations.retry(engine(), event_id, actor=f"api:{principal.name}")
    return jsonify(message=message) if status == 200 else problem(status, message)


@api.post("/events/<int(min=1, max=4611686018427387904):event_id>/discard")
def discard(event_id: int) -> Any:
    principal = _operator()
    if principal is None:
        return problem(403, "only an operator token may discard events")
    body = request.get_json(silent=True)
    why = body.get("why") if isinstance(body, dict) else None
    if not isinstance(why, str) or not re.search(VISIBLE, why):
        return problem(400, 'why: say why the event is discarded ({"why": "…"}); it goes into the audit log')
    message, status = operations.discard(engine(), event_id, why=why.strip(), actor=f"api:{principal.name}")
    return jsonify(message=message) if status == 200 else problem(status, message)


def _operator() -> auth.Principal | None:
    principal = auth.current_principal()
    return principal if principal is not None and principal.is_operator else None
