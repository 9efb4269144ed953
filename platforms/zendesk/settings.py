"""Configuration of one Zendesk Support account."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platforms import http

# A Zendesk subdomain is one DNS label: letters, digits and inner hyphens.
_SUBDOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class Settings(BaseModel):
    """What the connector needs to talk to one Zendesk account.

    The account is named by `url` (any http(s) base URL: a proxy, a sandbox or a local fake
    server) or by `subdomain` (https://<subdomain>.zendesk.com), exactly one of them.
    Reading webhooks needs only `webhook_secret`; writing needs `email` + `api_token` (see
    `can_write`). `user_id` is the Zendesk user id Escalator acts as: events whose actor is
    that user are our own writes coming back (echoes).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, description="Base URL, e.g. https://acme.zendesk.com")
    subdomain: str | None = Field(default=None, description="e.g. acme for https://acme.zendesk.com")
    email: str | None = None
    # repr=False: settings end up in logs and tracebacks; secrets must not.
    api_token: str | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    user_id: str | None = None
    timeout: float = Field(default=15.0, gt=0, description="seconds per request")
    max_signature_age_seconds: float = Field(
        default=300.0, gt=0, description="refuse deliveries signed longer ago (or further ahead) than this"
    )

    @field_validator("url", "subdomain", "email", "api_token", "webhook_secret", "user_id", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        return http.blank_is_absent(value)

    @field_validator("user_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # YAML reads `user_id: 36000012345` as a number; ids are compared as strings.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return http.base_url(value, "https://acme.zendesk.com")

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _SUBDOMAIN.fullmatch(value):
            raise ValueError(
                f"must be the bare subdomain, e.g. 'acme' for https://acme.zendesk.com, got {value!r}"
            )
        return value.lower()

    @model_validator(mode="after")
    def _one_way_to_the_account(self) -> Settings:
        if self.url is None and self.subdomain is None:
            raise ValueError("set either 'url' (e.g. https://acme.zendesk.com) or 'subdomain' (e.g. acme)")
        if self.url is not None and self.subdomain is not None:
            raise ValueError("set 'url' or 'subdomain', not both: they would name the account twice")
        return self

    @property
    def base_url(self) -> str:
        """The account's base URL without a trailing slash; API paths are appended to it."""
        return self.url if self.url is not None else f"https://{self.subdomain}.zendesk.com"

    @property
    def can_write(self) -> bool:
        """True when there are credentials to write back onto tickets."""
        return bool(self.email and self.api_token)
