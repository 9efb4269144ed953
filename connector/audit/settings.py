"""The `audit:` section of the config file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckpointSettings(_Strict):
    to: str | None = Field(
        None,
        description="where signed checkpoints go: a directory (one file each, never rewritten), "
        "'-' for standard output, or an http(s):// URL they are POSTed to",
    )
    every_records: int = Field(1000, ge=1, description="a checkpoint after this many new records")
    every_minutes: float = Field(60.0, gt=0, description="and at least this often while records arrive")


class AuditSettings(_Strict):
    signing_key: str | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs records and checkpoints: a file path or the "
        "PEM text, e.g. ${ESCALATOR_AUDIT_SIGNING_KEY}; never stored in the database",
    )
    pseudonym_key: str | None = Field(
        None, description="secret (16+ bytes, or a file holding it) that keys the lookup of pseudonyms"
    )
    checkpoints: CheckpointSettings = CheckpointSettings()
    retention_days: int | None = Field(
        None, ge=1, description="`audit prune` removes records older than this, never younger"
    )
