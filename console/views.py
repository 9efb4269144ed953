"""The console's pages (server-rendered, no script): /console/…"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from connector import audit
from console import auth, board, decisions, integrity, operations, reports, tickets
from console.context import engine, fresh, now, policy, runtime

views = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@views.app_template_global()
def csrf_token() -> str:
    return auth.csrf_token()


@views.app_template_filter("when")
def when(value: Any) -> str:
    """An instant as UTC text, to the second."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@views.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    sign, seconds = ("-" if seconds < 0 else ""), abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours}h" if days else f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
    return sign + text


@views.context_processor
def common() -> dict[str, Any]:
    return {"principal": auth.current_principal(), "nav": NAV}


NAV = (
    ("console.decisions_page", "Decisions"),
    ("console.ticket_search", "Tickets"),
    ("console.sla_board", "SLA board"),
    ("console.reports_page", "Reports"),
    ("console.integrity_page", "Integrity"),
    ("console.operations_page", "Operations"),
)


@views.before_request
def guard() -> Any:
    if request.endpoint in ("console.login", "console.static"):
        return None
    if auth.current_principal() is None:
        if request.method == "POST":
            abort(401)
        return redirect(url_for("console.login", next=request.full_path))
    if request.method == "POST":
        auth.check_csrf()
    return None


# --- access ---------------------------------------------------------------------------------------


@views.route("/login", methods=["GET", "POST"])
def login() -> Any:
    settings = runtime().config.console
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target, error=None)
    auth.check_csrf()
    name = (request.form.get("name") or "").strip()[:128]
    password = request.form.get("password") or ""
    address = auth.client_address()
    throttle: auth.LoginThrottle = current_app.extensions["console.throttle"]
    wait = throttle.blocked_for(name, address)
    if wait:
        auth.record("console.login", _actor(name), "failed", detail="refused: too many failed attempts")
        page = render_template(
            "login.html", next=target, error=f"Too many failed attempts. Try again in {int(wait) + 1} s."
        )
        return page, 429, {"Retry-After": str(int(wait) + 1)}
    principal = auth.check_login(settings, name, password)
    if principal is None:
        throttle.failed(name, address)
        auth.record("console.login", _actor(name), "failed", detail="wrong name or password")
        return render_template("login.html", next=target, error="Wrong name or password."), 401
    throttle.succeeded(name, address)
    session.clear()  # a new session id on login: no fixation
    session.permanent = True
    session["user"], session["role"] = principal.name, principal.role
    auth.csrf_token()
    auth.record("console.login", audit.person("console", principal.name), "applied", role=principal.role)
    return redirect(target)


def _actor(name: str) -> str:
    """Who tried: a configured console user by name; anything else typed into the form, pseudonymised."""
    if name in runtime().config.console.users:
        return audit.person("console", name)  # erasable: `audit forget --platform console --person NAME`
    return audit.pseudonym(name) or "(empty)"


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect."""
    if target and target.startswith("/console") and not urlsplit(target).netloc and "\\" not in target:
        return target
    return url_for("console.decisions_page")


@views.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("console.login"))


@views.get("/")
def home() -> Any:
    return redirect(url_for("console.decisions_page"))


# --- decisions ------------------------------------------------------------------------------------


@views.get("/decisions")
def decisions_page() -> Any:
    behind = fresh()
    try:
        filters = decisions.Filters.parse(request.args)
    except decisions.FilterError as exc:
        return render_template("error.html", title="Wrong filter", message=str(exc)), 400
    rows, cursor = decisions.list_decisions(engine(), filters)
    return render_template(
        "decisions.html",
        rows=rows,
        filters=filters,
        next_args=filters.query_args(before=cursor) if cursor else None,
        choices=_choices(),
        outcomes=audit.OUTCOMES,
        behind=behind,
    )


_CHOICES: dict[str, Any] = {}


def _choices() -> dict[str, list[str]]:
    """The filter form's options, cached for a minute (a full index scan on a large log)."""
    cached = _CHOICES.get("value")
    if cached is None or (now() - _CHOICES["at"]).total_seconds() > 60:
        cached = _CHOICES["value"] = decisions.choices(engine())
        _CHOICES["at"] = now()
    return cached


@views.get("/decisions/<int(min=1, max=4611686018427387904):seq>")
def decision_page(seq: int) -> Any:
    found = decisions.decision(engine(), seq)
    if found is None:
        return render_template("error.html", title="No such decision", message=f"No audit record {seq}."), 404
    return render_template("decision.html", d=found, r=found["record"], pretty=_pretty)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


# --- tickets --------------------------------------------------------------------------------------


@views.get("/tickets")
def ticket_search() -> Any:
    fresh()
    query = (request.args.get("q") or "").strip()[:255]
    found = tickets.find(engine(), query) if query else []
    if len(found) == 1:
        one = found[0]
        return redirect(url_for("console.ticket_page", platform=one["platform"], ticket_id=one["ticket_id"]))
    return render_template("tickets.html", query=query, found=found)


@views.get("/tickets/<platform>/<path:ticket_id>")
def ticket_page(platform: str, ticket_id: str) -> Any:
    fresh()
    life = tickets.life(engine(), policy(), platform, ticket_id, now())
    if life is None:
        message = f"Escalator has no record of {platform} ticket {ticket_id}."
        return render_template("error.html", title="Unknown ticket", message=message), 404
    return render_template("ticket.html", t=life, notifications=operations.notifications(engine(), life))


# --- SLA board ------------------------------------------------------------------------------------


BOARD_FILTERS = ("platform", "priority", "tier", "calendar")


@views.get("/sla")
def sla_board() -> Any:
    chosen = {k: (request.args.get(k) or "").strip()[:64] or None for k in BOARD_FILTERS}
    page = max(1, min(_int(request.args.get("page"), 1), 10_000))
    rows = board.board(engine(), policy(), now(), filters=chosen, limit=board.PAGE + 1,
                       offset=(page - 1) * board.PAGE)  # fmt: skip
    current = policy()
    calendars = sorted(current.sla.calendars) if current.sla else []
    more = len(rows) > board.PAGE
    return render_template(
        "sla.html",
        rows=rows[: board.PAGE],
        page=page,
        more=more,
        chosen=chosen,
        calendars=calendars,
        tiers=current.tiers,
        refresh_seconds=30,
        at=now(),
    )


# --- reports --------------------------------------------------------------------------------------


def _scope() -> reports.Scope | tuple[str, int]:
    try:
        since = decisions._instant((request.args.get("since") or "").strip() or None, "since")
        until = decisions._instant((request.args.get("until") or "").strip() or None, "until")
    except decisions.FilterError as exc:
        return str(exc), 400
    platform = (request.args.get("platform") or "").strip()[:32] or None
    return reports.Scope(since=since, until=until, platform=platform)


@views.get("/reports")
def reports_page() -> Any:
    fresh()
    scope = _scope()
    if isinstance(scope, tuple):
        return render_template("error.html", title="Wrong range", message=scope[0]), 400
    built = [build(engine(), policy(), scope, now()) for _, build in reports.REPORTS.values()]
    return render_template("reports.html", reports=built, scope=scope, args=_scope_args(scope))


@views.get("/reports/<name>")
def report_page(name: str) -> Any:
    if name not in reports.REPORTS:
        abort(404)
    fresh()
    scope = _scope()
    if isinstance(scope, tuple):
        return render_template("error.html", title="Wrong range", message=scope[0]), 400
    report = reports.REPORTS[name][1](engine(), policy(), scope, now())
    return render_template("report.html", report=report, scope=scope, args=_scope_args(scope))


@views.get("/reports/<name>.csv")
def report_csv(name: str) -> Any:
    if name not in reports.REPORTS:
        abort(404)
    fresh()
    scope = _scope()
    if isinstance(scope, tuple):
        return Response(scope[0] + "\n", 400, mimetype="text/plain")
    report = reports.REPORTS[name][1](engine(), policy(), scope, now())
    return Response(
        report.csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="escalator-{name}.csv"'},
    )


def _scope_args(scope: reports.Scope) -> dict[str, str]:
    out = {}
    if scope.since:
        out["since"] = scope.since.isoformat()
    if scope.until:
        out["until"] = scope.until.isoformat()
    if scope.platform:
        out["platform"] = scope.platform
    return out


# --- integrity and policy -------------------------------------------------------------------------


@views.get("/integrity")
def integrity_page() -> Any:
    fresh()
    integrity.remember_policy(engine(), policy(), now())
    old, new = request.args.get("old"), request.args.get("new")
    diff, diff_error = None, None
    if old and new:
        try:
            diff = integrity.diff(engine(), old.strip(), new.strip())
        except integrity.UnknownVersion as exc:
            diff_error = str(exc)
    return render_template(
        "integrity.html",
        chain=integrity.chain_status(engine()),
        checkpoints=integrity.checkpoints(engine()),
        versions=integrity.versions(engine()),
        current=policy(),
        diff=diff,
        diff_error=diff_error,
        old=old,
        new=new,
    )


@views.post("/integrity/verify")
def verify_chain() -> Any:
    outcome = integrity.run_verify(engine(), now())
    flash(outcome["summary"], "ok" if outcome["ok"] else "error")
    return redirect(url_for("console.integrity_page"))


# --- operations -----------------------------------------------------------------------------------


@views.get("/operations")
def operations_page() -> Any:
    return render_template("operations.html", ops=operations.overview(runtime()))


@views.post("/events/<int(min=1, max=4611686018427387904):event_id>/retry")
@auth.operator_required
def retry(event_id: int) -> Any:
    principal = auth.current_principal()
    assert principal is not None
    message, status = operations.retry(engine(), event_id, actor=f"console:{principal.name}")
    flash(message, "ok" if status == 200 else "error")
    return redirect(url_for("console.operations_page"))


@views.post("/events/<int(min=1, max=4611686018427387904):event_id>/discard")
@auth.operator_required
def discard(event_id: int) -> Any:
    principal = auth.current_principal()
    assert principal is not None
    why = (request.form.get("why") or "").strip()
    message, status = operations.discard(engine(), event_id, why=why, actor=f"console:{principal.name}")
    flash(message, "ok" if status == 200 else "error")
    return redirect(url_for("console.operations_page"))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
