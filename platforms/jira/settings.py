"""Configuration of one Jira Cloud / JSM installation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from platforms import http


class Settings(BaseModel):
    """What the connector needs to talk to one Jira site.

    Reading webhooks needs only `webhook_secret`; writing needs `email` + `api_token`
    (see `can_write`). `account_id` is the connector's own Atlassian accountId: events
    whose actor is that account are our own writes coming back (echoes).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL of the site, e.g. https://example.atlassian.net")
    email: str | None = None
    # repr=False: settings end up in logs and tracebacks; secrets must not.
    api_token: str | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    account_id: str | None = None
    # `escalator install jira`: only issues this JQL matches are sent (empty: all issues).
    webhook_jql: str | None = None
    # "internal": JSM internal comment, one extra POST after the edit.
    # "comment": a plain comment inside the edit itself (projects without JSM).
    notes: Literal["internal", "comment"] = "internal"
    # "server": Jira Server / Data Center, where people are identified by username (`name`), not
    # accountId: `account_id` is then the bot's username, and assignees are written by name.
    deployment: Literal["cloud", "server"] = "cloud"
    timeout: float = Field(default=15.0, gt=0, description="seconds per request")

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http.base_url(value, "https://example.atlassian.net")

    @property
    def can_write(self) -> bool:
        """True when there are credentials to write back onto issues."""
        return bool(self.email and self.api_token)
