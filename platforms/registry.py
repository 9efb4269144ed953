"""The one place platforms are registered. A fourth platform is one folder plus one line here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from platforms import jira, servicenow, zendesk
from platforms.base import Provider


@dataclass(frozen=True)
class Registration:
    provider: Provider
    settings: type  # a pydantic model: the platform's section of the config file
    make_client: Any  # settings -> PlatformClient


PLATFORMS: dict[str, Registration] = {
    "jira": Registration(jira.provider, jira.Settings, jira.JiraClient),
    "zendesk": Registration(zendesk.provider, zendesk.Settings, zendesk.ZendeskClient),
    "servicenow": Registration(servicenow.provider, servicenow.Settings, servicenow.ServiceNowClient),
}
