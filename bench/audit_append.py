"""What the audit log's protections cost per record: appending (plain, with pseudonyms, signed) and
verifying (hashes only, with signatures), on a temporary SQLite file.

    .venv/bin/python bench/audit_append.py [records]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector import audit  # noqa: E402
from connector.audit.keys import AuditKeys, generate, load_public_keys, load_signer  # noqa: E402
from connector.store.db import make_engine, migrate, writing  # noqa: E402


def record(i: int, people: bool) -> dict:
    who = (lambda pid, name: audit.person("jira", pid, name)) if people else (lambda pid, name: pid)
    return {
        "platform": "jira",
        "ticket": {"id": str(10000 + i), "key": f"TES-{i}", "url": None},
        "rules": ["outage-goes-to-l2"],
        "inputs": {
            "actor": who(f"agent-{i % 50}", "Agent"),
            "requester": {"id": who(f"cust-{i}", "Customer")},
        },
        "outcome": "applied",
    }


def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "k", Path(tmp) / "k.pub")
        signer, public = load_signer(f"{tmp}/k"), load_public_keys([f"{tmp}/k.pub"])
        cases = [
            ("plain ids (as before)", False, AuditKeys()),
            ("pseudonyms", True, AuditKeys(pseudonym_key=b"k" * 32)),
            ("pseudonyms + signature", True, AuditKeys(signer=signer, pseudonym_key=b"k" * 32)),
        ]
        for name, people, keys in cases:
            engine = make_engine(f"sqlite:///{tmp}/{name.replace(' ', '_')}.db")
            migrate(engine)
            start = time.perf_counter()
            for i in range(n):
                with writing(engine) as conn:
                    audit.append(conn, record(i, people), at=datetime.now(UTC), keys=keys)
            took = time.perf_counter() - start
            print(f"append, {name:<24} {n / took:8.0f} records/s  {1e6 * took / n:7.0f} µs each")
            if keys.signer is not None:
                for label, kwargs in (
                    ("hashes, links, columns", {}),
                    ("+ signatures", {"public_keys": public}),
                ):
                    start = time.perf_counter()
                    assert audit.verify(engine, **kwargs).ok
                    took = time.perf_counter() - start
                    print(f"verify, {label:<24} {n / took:8.0f} records/s")
            engine.dispose()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
