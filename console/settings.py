"""The `console` section of the config file: who may log in, API tokens, session settings.

    console:
      secret_key: ${ESCALATOR_CONSOLE_SECRET}
      users:
        alice: {role: operator, password_hash: "scrypt:32768:8:1$..."}
      tokens:
        reporting: {role: viewer, sha256: "9f86d0…"}

`escalator user add NAME --role viewer|operator` and `escalator user token NAME` print these entries.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "operator"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsoleUser(_Strict):
    role: Role = "viewer"
    password_hash: str = Field(min_length=20, description="from `escalator user add`; never the password")


class ApiToken(_Strict):
    role: Role = "viewer"
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token, from `escalator user token`"
    )


class ConsoleConfig(_Strict):
    enabled: bool = True
    secret_key: str | None = Field(
        None,
        min_length=32,
        description="signs session cookies; set it (from the environment) so sessions survive restarts "
        "and work across replicas. Unset: a random key per process.",
    )
    cookie_secure: bool = Field(True, description="send the session cookie over HTTPS only")
    session_minutes: int = Field(480, ge=5, le=7 * 24 * 60)
    login_attempts: int = Field(5, ge=1, le=100, description="failed logins allowed per name and address …")
    login_window_seconds: int = Field(
        300, ge=10, description="… within this window, then 429 until it passes"
    )
    users: dict[str, ConsoleUser] = {}
    tokens: dict[str, ApiToken] = {}

    @property
    def sessions_per_process(self) -> str | None:
        """Why log-ins would not hold, when they would not: users who log in, and no secret_key shared by
        every process (each then signs with its own random key); None when they hold."""
        if not self.enabled or not self.users or self.secret_key:
            return None
        return (
            "console.secret_key is not set: each process signs sessions with its own random key, so a "
            "log-in holds only on the process that made it (gunicorn's workers, other replicas) and "
            "not across a restart; set it from the environment, e.g. ${ESCALATOR_CONSOLE_SECRET}"
        )
