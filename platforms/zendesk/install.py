"""`escalator install zendesk`: the webhook, its signing secret, and the four triggers whose body is
trigger_template.json, in a trigger category of their own.

Zendesk's APIs: `/api/v2/webhooks` (create, `PUT …/{id}` update, `DELETE …/{id}`, and
`GET …/{id}/signing_secret`), `/api/v2/trigger_categories` and `/api/v2/triggers` (`?category_id=`
lists one category's). All need an admin. What Escalator made is found by name: the webhook and
the category named `NAME`, the triggers named in `TRIGGERS` inside that category.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

from platforms.installing import MARKER, AdminApi, InstallError, InstallPlan, Ref, Step, same
from platforms.zendesk.settings import Settings

NAME = "Escalator"
TEMPLATE = Path(__file__).with_name("trigger_template.json")

_CREATED = {"field": "update_type", "operator": "is", "value": "Create"}
_CHANGED = {"field": "update_type", "operator": "is", "value": "Change"}
# title → (conditions, the template's "event"): the table in README.md, section 3A.
TRIGGERS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "Escalator: ticket created": ([_CREATED], "ticket.created"),
    "Escalator: priority changed": (
        [_CHANGED, {"field": "priority", "operator": "changed", "value": None}],
        "ticket.priority_changed",
    ),
    "Escalator: ticket updated": (
        [_CHANGED, {"field": "priority", "operator": "not_changed", "value": None}],
        "ticket.updated",
    ),
    # "Comment · Is · Present (public or private)"
    "Escalator: comment added": (
        [_CHANGED, {"field": "comment_is_public", "operator": "is", "value": "not_relevant"}],
        "ticket.comment_added",
    ),
}


def admin_api(settings: Settings) -> AdminApi:
    if not settings.can_write:
        raise InstallError("platforms.zendesk needs 'email' and 'api_token' (a Zendesk admin's) to install")
    assert settings.email is not None and settings.api_token is not None
    return AdminApi(
        "Zendesk",
        settings.base_url,
        (f"{settings.email}/token", settings.api_token),
        timeout=settings.timeout,
        hint=_hint,
    )


def _hint(status: int, what: str, message: str) -> str | None:
    if status == 403 and "/webhooks" in what:
        return (
            "webhooks need a Zendesk admin, on a plan that includes webhooks (Team or above): run install "
            "with an admin's email and api_token in the config, or ask the account owner"
        )
    if status == 403:
        return "triggers need a Zendesk admin: run install with an admin's email and api_token in the config"
    return None


def trigger_body(event: str) -> str:
    """trigger_template.json with its `event` set: what Zendesk renders and posts."""
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    return json.dumps({**template, "event": event}, indent=2, ensure_ascii=False)


def webhook_body(endpoint: str) -> dict[str, Any]:
    return {
        "name": NAME,
        "description": MARKER,
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }


def trigger_fields(title: str, category_id: str | Ref, webhook_id: str | Ref) -> dict[str, Any]:
    conditions, event = TRIGGERS[title]
    return {
        "title": title,
        "description": MARKER,
        "active": True,
        "category_id": category_id,
        "conditions": {"all": conditions, "any": []},
        "actions": [{"field": "notification_webhook", "value": [webhook_id, trigger_body(event)]}],
    }


def plan_install(api: AdminApi, settings: Settings, endpoint: str, *, force: bool = False) -> InstallPlan:
    plan = InstallPlan("zendesk")
    base = settings.base_url
    webhook = _our_webhook(api)
    wanted_hook = webhook_body(endpoint)
    webhook_id: str | Ref
    if webhook is None:
        plan.steps.append(
            Step(
                "webhook",
                "create",
                "POST",
                f"{base}/api/v2/webhooks",
                {"webhook": wanted_hook},
                purpose="create the webhook",
            )
        )
        webhook_id = Ref("webhook", ("webhook", "id"))
        plan.steps.append(
            Step(
                "signing_secret",
                "read",
                "GET",
                (f"{base}/api/v2/webhooks/", webhook_id, "/signing_secret"),
                purpose="read its signing secret (shown once)",
                reveal=("signing_secret", "secret"),
            )
        )
    else:
        webhook_id = str(webhook["id"])
        if force or not same(webhook, wanted_hook):
            plan.steps.append(
                Step(
                    "webhook",
                    "update",
                    "PUT",
                    f"{base}/api/v2/webhooks/{webhook_id}",
                    {"webhook": wanted_hook},
                    purpose="update the webhook in place",
                )
            )
        else:
            plan.notes.append(f"webhook '{NAME}' → {endpoint} exists as configured")
        _check_secret(api, settings, webhook_id, plan)

    category = _our_category(api)
    category_id: str | Ref
    existing: dict[str, dict[str, Any]] = {}
    if category is None:
        plan.steps.append(
            Step(
                "category",
                "create",
                "POST",
                f"{base}/api/v2/trigger_categories",
                {"trigger_category": {"name": NAME}},
                purpose="create the trigger category",
            )
        )
        category_id = Ref("category", ("trigger_category", "id"))
    else:
        category_id = str(category["id"])
        existing = {t["title"]: t for t in _triggers_in(api, category_id) if t.get("title") in TRIGGERS}
    for title in TRIGGERS:
        wanted = trigger_fields(title, category_id, webhook_id)
        found = existing.get(title)
        if found is None:
            plan.steps.append(
                Step(
                    f"trigger {title}",
                    "create",
                    "POST",
                    f"{base}/api/v2/triggers",
                    {"trigger": wanted},
                    purpose=f"create trigger '{title}'",
                )
            )
        elif force or not _same_trigger(found, wanted):
            plan.steps.append(
                Step(
                    f"trigger {title}",
                    "update",
                    "PUT",
                    f"{base}/api/v2/triggers/{found['id']}",
                    {"trigger": wanted},
                    purpose=f"update trigger '{title}' in place",
                )
            )
    if (
        existing
        and len(existing) == len(TRIGGERS)
        and not any(s.name.startswith("trigger") for s in plan.steps)
    ):
        plan.notes.append(f"the {len(TRIGGERS)} triggers in category '{NAME}' exist as configured")
    return plan


def plan_uninstall(api: AdminApi, settings: Settings) -> InstallPlan:
    plan = InstallPlan("zendesk")
    base = settings.base_url
    category = _our_category(api)
    if category is not None:
        triggers = _triggers_in(api, str(category["id"]))
        ours = [t for t in triggers if t.get("title") in TRIGGERS]
        for trigger in ours:
            plan.steps.append(
                Step(
                    f"trigger {trigger['title']}",
                    "delete",
                    "DELETE",
                    f"{base}/api/v2/triggers/{trigger['id']}",
                    purpose=f"remove trigger '{trigger['title']}'",
                )
            )
        if len(ours) == len(triggers):
            plan.steps.append(
                Step(
                    "category",
                    "delete",
                    "DELETE",
                    f"{base}/api/v2/trigger_categories/{category['id']}",
                    purpose=f"remove trigger category '{NAME}'",
                )
            )
        else:
            plan.notes.append(
                f"trigger category '{NAME}' also holds triggers Escalator did not make: it stays"
            )
    webhook = _our_webhook(api)
    if webhook is not None:
        plan.steps.append(
            Step(
                "webhook",
                "delete",
                "DELETE",
                f"{base}/api/v2/webhooks/{webhook['id']}",
                purpose=f"remove webhook '{NAME}'",
            )
        )
    if not plan.steps:
        plan.notes.append("nothing of Escalator's to remove")
    return plan


def _check_secret(api: AdminApi, settings: Settings, webhook_id: str, plan: InstallPlan) -> None:
    """The configured webhook_secret must be this webhook's signing secret, or every delivery is a 401."""
    answer = api.get(f"/api/v2/webhooks/{webhook_id}/signing_secret")
    secret = (answer or {}).get("signing_secret", {}).get("secret") if isinstance(answer, dict) else None
    if not isinstance(secret, str):
        raise InstallError("Zendesk answered GET …/signing_secret without 'signing_secret.secret'")
    configured = settings.webhook_secret or ""
    if not hmac.compare_digest(secret.encode(), configured.encode()):
        plan.notes.append(
            "platforms.zendesk.webhook_secret is not the webhook's signing secret: set it to this"
        )
        plan.revealed = secret


def _our_webhook(api: AdminApi) -> dict[str, Any] | None:
    answer = api.get("/api/v2/webhooks", **{"filter[name_contains]": NAME})
    hooks = answer.get("webhooks") if isinstance(answer, dict) else None
    if not isinstance(hooks, list):
        raise InstallError("Zendesk answered GET /api/v2/webhooks without a 'webhooks' list")
    ours = [
        h for h in hooks if isinstance(h, dict) and h.get("name") == NAME and h.get("description") == MARKER
    ]
    return ours[0] if ours else None


def _our_category(api: AdminApi) -> dict[str, Any] | None:
    answer = api.get("/api/v2/trigger_categories")
    categories = answer.get("trigger_categories") if isinstance(answer, dict) else None
    if not isinstance(categories, list):
        raise InstallError(
            "Zendesk answered GET /api/v2/trigger_categories without a 'trigger_categories' list"
        )
    return next((c for c in categories if isinstance(c, dict) and c.get("name") == NAME), None)


def _triggers_in(api: AdminApi, category_id: str) -> list[dict[str, Any]]:
    answer = api.get("/api/v2/triggers", category_id=category_id)
    triggers = answer.get("triggers") if isinstance(answer, dict) else None
    if not isinstance(triggers, list):
        raise InstallError("Zendesk answered GET /api/v2/triggers without a 'triggers' list")
    return [t for t in triggers if isinstance(t, dict)]


def _same_trigger(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    plain = {k: v for k, v in wanted.items() if k not in ("conditions", "actions")}
    if not same(found, plain):
        return False
    conditions = found.get("conditions") or {}
    if _conditions(conditions.get("all")) != _conditions(wanted["conditions"]["all"]):
        return False
    if _conditions(conditions.get("any")) != set():
        return False
    return _actions(found.get("actions")) == _actions(wanted["actions"])


def _conditions(items: Any) -> set[tuple[str, str, str | None]]:
    return {
        (str(c.get("field")), str(c.get("operator")), None if c.get("value") is None else str(c.get("value")))
        for c in items or []
        if isinstance(c, dict)
    }


def _actions(items: Any) -> list[tuple[str, str, Any]]:
    out = []
    for action in items or []:
        value = action.get("value") if isinstance(action, dict) else None
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
            try:  # compare the body as JSON: Zendesk may store it re-spaced
                body = json.loads(value[1])
            except ValueError:
                body = value[1]
            out.append((str(action.get("field")), str(value[0]), body))
        else:
            out.append((str(action.get("field") if isinstance(action, dict) else action), "", value))
    return out
