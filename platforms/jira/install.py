"""`escalator install jira`: the admin webhook that sends Escalator issue and comment events.

Jira's admin webhooks REST resource (`/rest/webhooks/1.0/webhook`, Cloud and Data Center) lists,
registers (POST), updates (PUT …/{id}) and deletes (DELETE …/{id}) webhooks; it needs the
"Administer Jira" global permission. Ours is the one named `WEBHOOK_NAME`: install creates it or
updates it in place, uninstall deletes only it.
"""

from __future__ import annotations

from typing import Any

from platforms.installing import AdminApi, InstallError, InstallPlan, Step, same
from platforms.jira.settings import Settings

WEBHOOK_NAME = "Escalator"
PATH = "/rest/webhooks/1.0/webhook"
# What platforms/jira/webhook.py handles (HANDLED_EVENTS): nothing more, so nothing is sent in vain.
EVENTS = ("jira:issue_created", "jira:issue_updated", "comment_created")
JQL_FILTER_KEY = "issue-related-events-section"


def admin_api(settings: Settings) -> AdminApi:
    if not settings.can_write:
        raise InstallError("platforms.jira needs 'email' and 'api_token' (a Jira administrator's) to install")
    assert settings.email is not None and settings.api_token is not None
    return AdminApi(
        "Jira", settings.url, (settings.email, settings.api_token), timeout=settings.timeout, hint=_hint
    )


def _hint(status: int, what: str, message: str) -> str | None:
    if status == 403:
        return (
            "registering webhooks needs the 'Administer Jira' global permission: run install with an "
            "administrator's email and api_token in the config, or create the webhook by hand (README)"
        )
    if status == 404 and PATH in what:
        return "this site has no admin webhooks resource: is 'url' the Jira site's base URL?"
    return None


def desired(settings: Settings, endpoint: str) -> dict[str, Any]:
    """The webhook as Escalator wants it (without the secret, which Jira never reads back)."""
    return {
        "name": WEBHOOK_NAME,
        "url": endpoint,
        "events": list(EVENTS),
        "filters": {JQL_FILTER_KEY: settings.webhook_jql or ""},
        "excludeBody": False,
    }


def plan_install(api: AdminApi, settings: Settings, endpoint: str, *, force: bool = False) -> InstallPlan:
    plan = InstallPlan("jira")
    secret = settings.webhook_secret
    if not secret:
        raise InstallError("platforms.jira.webhook_secret is not set: choose one, then install signs with it")
    wanted = desired(settings, endpoint)
    ours = _ours(api)
    # Jira never shows a webhook's secret, so a changed secret alone cannot be seen: it is sent with
    # every create and update (`--force` sends the update anyway).
    body = {**wanted, "secret": secret}
    if not ours:
        plan.steps.append(
            Step(
                "webhook",
                "create",
                "POST",
                settings.url + PATH,
                body,
                purpose="register the webhook",
                secret_values=(secret,),
            )
        )
        return plan
    first, *extra = ours
    if force or not same(first, wanted):
        plan.steps.append(
            Step(
                "webhook",
                "update",
                "PUT",
                _self_url(api, first),
                body,
                purpose="update the webhook in place",
                secret_values=(secret,),
            )
        )
    else:
        plan.notes.append(f"webhook '{WEBHOOK_NAME}' → {endpoint} is already registered as configured")
    for hook in extra:  # two of ours would deliver every event twice (each then a duplicate)
        plan.steps.append(
            Step(
                "duplicate",
                "delete",
                "DELETE",
                _self_url(api, hook),
                purpose="remove a second webhook of ours",
            )
        )
    return plan


def plan_uninstall(api: AdminApi, settings: Settings) -> InstallPlan:
    plan = InstallPlan("jira")
    for hook in _ours(api):
        plan.steps.append(
            Step(
                "webhook",
                "delete",
                "DELETE",
                _self_url(api, hook),
                purpose=f"remove webhook '{WEBHOOK_NAME}'",
            )
        )
    if not plan.steps:
        plan.notes.append(f"no webhook named '{WEBHOOK_NAME}': nothing of Escalator's to remove")
    return plan


def _ours(api: AdminApi) -> list[dict[str, Any]]:
    hooks = api.get(PATH)
    if not isinstance(hooks, list):
        raise InstallError(f"Jira answered GET {PATH} with {type(hooks).__name__}, not a list of webhooks")
    return [h for h in hooks if isinstance(h, dict) and h.get("name") == WEBHOOK_NAME]


def _self_url(api: AdminApi, hook: dict[str, Any]) -> str:
    self_url = hook.get("self")
    if not isinstance(self_url, str) or "/" not in self_url:
        raise InstallError(f"Jira listed webhook '{WEBHOOK_NAME}' without its 'self' URL")
    # `self` names the site as Jira sees it; a proxy or a test server is reached at our base URL.
    return f"{api.base_url}{PATH}/{self_url.rstrip('/').rsplit('/', 1)[1]}"
