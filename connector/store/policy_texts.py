"""The text of every policy that has been in force, by its hash: what a decision's `policy.sha256`
points at, so the console can show two versions side by side long after the file was edited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from connector.store.db import writing
from connector.store.tables import console_policies
from policies import Policy


def keep(engine: Engine, policy: Policy, now: datetime) -> bool:
    """Store the loaded text under its hash unless it is there; True when it was new.

    The text is the one that was hashed when the policy loaded, never the file as it is now (it may
    have been edited since without a reload): a diff shows what ran."""
    if not policy.source:  # built in memory (tests), not loaded from a file: nothing to show
        return False
    exists = select(console_policies.c.sha256).where(console_policies.c.sha256 == policy.sha256)
    with engine.connect() as conn:
        if conn.execute(exists).first():
            return False
    row = {
        "sha256": policy.sha256,
        "name": policy.name,
        "version": str(policy.version),
        "path": policy.path,
        "text": policy.source,
        "seen_at": now,
    }
    try:
        with writing(engine) as conn:
            if conn.execute(exists).first():
                return False
            conn.execute(insert(console_policies), row)
    except IntegrityError:  # another process (serve and its worker, a replica) kept it first
        return False
    return True
