"""Checkpoints on a schedule: the worker's scheduler calls `tick` once a minute."""

from __future__ import annotations

import logging

from connector.audit import checkpoints as cps
from connector.runtime import Runtime

log = logging.getLogger("escalator.audit")


def enabled(rt: Runtime) -> bool:
    return rt.audit_keys.signer is not None and bool(rt.config.audit.checkpoints.to)


def tick(rt: Runtime) -> cps.Checkpoint | None:
    """Sign a checkpoint when `audit.checkpoints.every_records` new records or `every_minutes`
    have passed; a failure is logged and tried again next tick (nothing is lost: the next
    checkpoint covers everything since the last one)."""
    settings = rt.config.audit.checkpoints
    signer = rt.audit_keys.signer
    if signer is None or not settings.to:
        return None
    now = rt.clock()
    if not cps.due(
        rt.engine, now, every_records=settings.every_records, every_minutes=settings.every_minutes
    ):
        return None
    try:
        checkpoint, where = cps.make(rt.engine, signer, cps.sink_for(settings.to), now=now, kind="scheduled")
    except cps.CheckpointError as exc:
        log.error("audit checkpoint not written: %s", exc)
        return None
    log.info(
        "audit checkpoint #%d: records %d..%d, head %s, written to %s",
        checkpoint.number, checkpoint.first_seq, checkpoint.last_seq, checkpoint.head_hash, where,
    )  # fmt: skip
    return checkpoint
