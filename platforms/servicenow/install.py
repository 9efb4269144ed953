"""`escalator install servicenow`: the `x_escalator.*` system properties and the business rule that
posts incident changes (business_rule.js), through the Table API.

Both live in tables an admin may write: `sys_properties` and `sys_script`. What Escalator made
carries `MARKER` in its description, so uninstall removes that and nothing else. A password2
property reads back encrypted, so its description also keeps a fingerprint of the value
(`installing.fingerprint`): a second run can tell whether the secret changed without reading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from platforms.installing import MARKER, AdminApi, InstallError, InstallPlan, Step, fingerprint, same
from platforms.servicenow.settings import Settings

RULE_NAME = "Escalator: send incident changes"
SCRIPT = Path(__file__).with_name("business_rule.js")
PREFIX = "x_escalator."
_PROPERTY_FIELDS = "sys_id,name,value,type,description"
_RULE_FIELDS = (
    "sys_id,name,collection,when,order,active,advanced,action_insert,action_update,action_delete,"
    "action_query,script,description"
)


def admin_api(settings: Settings) -> AdminApi:
    if not settings.can_write:
        raise InstallError("platforms.servicenow needs 'user' and 'password' (an admin's) to install")
    assert settings.user is not None and settings.password is not None
    return AdminApi(
        "ServiceNow",
        settings.base_url,
        (settings.user, settings.password),
        timeout=settings.timeout,
        hint=_hint,
    )


def _hint(status: int, what: str, message: str) -> str | None:
    if status in (401, 403) and ("sys_properties" in what or "sys_script" in what):
        return (
            "system properties and business rules need the 'admin' role; Escalator's own user has only "
            "'itil'. Run install with an admin's user and password in the config, or follow "
            "platforms/servicenow/README.md by hand"
        )
    return None


def properties(settings: Settings, endpoint: str) -> dict[str, tuple[str, str]]:
    """name → (type, value) of every property the business rule reads that the config sets."""
    if not settings.webhook_secret:
        raise InstallError("platforms.servicenow.webhook_secret is not set: choose one (README step 1)")
    wanted = {
        f"{PREFIX}url": ("string", endpoint),
        f"{PREFIX}secret": ("password2", settings.webhook_secret),
        f"{PREFIX}enabled": ("true|false", "true"),
    }
    if settings.extra_fields:
        wanted[f"{PREFIX}extra_fields"] = ("string", ",".join(settings.extra_fields))
    if settings.inbound_user and settings.inbound_password:
        wanted[f"{PREFIX}user"] = ("string", settings.inbound_user)
        wanted[f"{PREFIX}password"] = ("password2", settings.inbound_password)
    return wanted


def rule_fields() -> dict[str, str]:
    return {
        "name": RULE_NAME,
        "collection": "incident",
        "when": "after",
        "order": "10000",
        "active": "true",
        "advanced": "true",
        "action_insert": "true",
        "action_update": "true",
        "action_delete": "false",
        "action_query": "false",
        "script": SCRIPT.read_text(encoding="utf-8"),
        "description": MARKER,
    }


def plan_install(api: AdminApi, settings: Settings, endpoint: str, *, force: bool = False) -> InstallPlan:
    plan = InstallPlan("servicenow")
    table = f"{settings.base_url}/api/now/table"
    existing = {p["name"]: p for p in _our_properties(api, marked_only=False)}
    secrets: list[str] = []
    for name, (kind, value) in properties(settings, endpoint).items():
        description = MARKER
        if kind == "password2":
            description = f"{MARKER} (fingerprint {fingerprint(value)})"
            secrets.append(value)
        body = {"name": name, "type": kind, "value": value, "description": description}
        found = existing.get(name)
        if found is None:
            plan.steps.append(
                Step(
                    f"property {name}",
                    "create",
                    "POST",
                    f"{table}/sys_properties",
                    body,
                    purpose=f"create property {name}",
                    secret_values=tuple(secrets),
                )
            )
            continue
        compare = {k: v for k, v in body.items() if not (kind == "password2" and k == "value")}
        if force or not same(found, compare):
            plan.steps.append(
                Step(
                    f"property {name}",
                    "update",
                    "PATCH",
                    f"{table}/sys_properties/{found['sys_id']}",
                    body,
                    purpose=f"update property {name}",
                    secret_values=tuple(secrets),
                )
            )
    rules = _our_rules(api, marked_only=False)
    wanted = rule_fields()
    if not rules:
        plan.steps.append(
            Step(
                "business rule",
                "create",
                "POST",
                f"{table}/sys_script",
                wanted,
                purpose=f"create business rule '{RULE_NAME}'",
            )
        )
    elif force or not same(rules[0], wanted):
        plan.steps.append(
            Step(
                "business rule",
                "update",
                "PATCH",
                f"{table}/sys_script/{rules[0]['sys_id']}",
                wanted,
                purpose=f"update business rule '{RULE_NAME}' in place",
            )
        )
    if not plan.writes:
        plan.notes.append("the x_escalator.* properties and the business rule exist as configured")
    return plan


def plan_uninstall(api: AdminApi, settings: Settings) -> InstallPlan:
    plan = InstallPlan("servicenow")
    table = f"{settings.base_url}/api/now/table"
    for rule in _our_rules(api, marked_only=True):
        plan.steps.append(
            Step(
                "business rule",
                "delete",
                "DELETE",
                f"{table}/sys_script/{rule['sys_id']}",
                purpose=f"remove business rule '{RULE_NAME}'",
            )
        )
    for prop in _our_properties(api, marked_only=True):
        plan.steps.append(
            Step(
                f"property {prop['name']}",
                "delete",
                "DELETE",
                f"{table}/sys_properties/{prop['sys_id']}",
                purpose=f"remove property {prop['name']}",
            )
        )
    if not plan.steps:
        plan.notes.append("nothing of Escalator's to remove")
    return plan


def _query(api: AdminApi, table: str, query: str, fields: str) -> list[dict[str, Any]]:
    answer = api.get(f"/api/now/table/{table}", sysparm_query=query, sysparm_fields=fields)
    rows = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        raise InstallError(f"ServiceNow answered GET /api/now/table/{table} without a 'result' list")
    return [r for r in rows if isinstance(r, dict)]


def _our_properties(api: AdminApi, *, marked_only: bool) -> list[dict[str, Any]]:
    rows = _query(api, "sys_properties", f"nameSTARTSWITH{PREFIX}^ORDERBYname", _PROPERTY_FIELDS)
    # An admin may have created some by hand (README): install adopts them, uninstall leaves them.
    return [r for r in rows if not marked_only or str(r.get("description", "")).startswith(MARKER)]


def _our_rules(api: AdminApi, *, marked_only: bool) -> list[dict[str, Any]]:
    rows = _query(api, "sys_script", f"collection=incident^name={RULE_NAME}", _RULE_FIELDS)
    return [r for r in rows if not marked_only or str(r.get("description", "")).startswith(MARKER)]
