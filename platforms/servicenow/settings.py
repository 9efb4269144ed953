"""Configuration of one ServiceNow instance."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platforms import http

# ServiceNow instance names are DNS labels: <instance>.service-now.com.
_INSTANCE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# An incident field (or a dot-walked path) the business rule sends in `extra_fields`.
_FIELD_PATH = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*")


class Settings(BaseModel):
    """What the connector needs to talk to one ServiceNow instance.

    Exactly one of `url` (any http(s) base URL: a proxy, a sandbox, a local fake) or
    `instance` (https://<instance>.service-now.com). Reading webhooks needs only
    `webhook_secret` (plus `inbound_user`/`inbound_password` when the business rule also
    sends basic auth); writing needs `user` + `password` (see `can_write`). `user` is the
    user_name of Escalator's own ServiceNow account: an event whose `sys_updated_by` is
    that user is our own write coming back (an echo).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, description="Base URL, e.g. https://acme.service-now.com")
    instance: str | None = Field(
        default=None, description="Instance name: acme → https://acme.service-now.com"
    )
    user: str | None = None
    # repr=False: settings end up in logs and tracebacks; secrets must not.
    password: str | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    inbound_user: str | None = None
    inbound_password: str | None = Field(default=None, repr=False)
    # Incidents have no labels field. When True, each added label becomes one POST to the
    # label_entry table (a ServiceNow tag); see client.py for why removals are not sent.
    label_entry: bool = False
    # The incident fields the business rule's x_escalator.extra_fields property lists; `fetch`
    # copies the same ones from a Table API record so both kinds of ticket look alike.
    extra_fields: tuple[str, ...] = ()
    timeout: float = Field(default=15.0, gt=0, description="seconds per request")
    max_signature_age_seconds: int = Field(default=300, gt=0)

    @field_validator(
        "url",
        "instance",
        "user",
        "password",
        "webhook_secret",
        "inbound_user",
        "inbound_password",
        mode="before",
    )
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        # An empty inbound_user must not switch basic auth on and refuse every delivery.
        return http.blank_is_absent(value)

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return http.base_url(value, "https://acme.service-now.com")

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not _INSTANCE.fullmatch(value):
            raise ValueError(
                f"must be the instance name only (acme for https://acme.service-now.com), got {value!r}"
            )
        return value

    @field_validator("extra_fields")
    @classmethod
    def _field_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not _FIELD_PATH.fullmatch(name)]
        if bad:
            raise ValueError(f"not ServiceNow field names: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _one_address_and_paired_credentials(self) -> Settings:
        if (self.url is None) == (self.instance is None):
            raise ValueError("set exactly one of 'url' or 'instance'")
        if (self.inbound_user is None) != (self.inbound_password is None):
            raise ValueError("'inbound_user' and 'inbound_password' go together")
        return self

    @property
    def base_url(self) -> str:
        """Where the instance is: `url` as given, or https://<instance>.service-now.com."""
        if self.url is not None:
            return self.url
        return f"https://{self.instance}.service-now.com"

    @property
    def can_write(self) -> bool:
        """True when there are credentials to write back onto incidents."""
        return bool(self.user and self.password)
