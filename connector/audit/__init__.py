"""The tamper-evident audit log: one hash-chained record per decision, on every platform.

`chain` appends records, `verify` proves the chain unbroken, `export` streams records out;
`cli` is the `escalator audit` command group.
"""

from connector.audit.chain import (
    GENESIS,
    OUTCOMES,
    append,
    append_many,
    canonical_json,
    chain_hash,
    pseudonym,
    use_keys,
)
from connector.audit.export import CSV_COLUMNS, records, write_csv, write_jsonl
from connector.audit.people import person
from connector.audit.verification import Verification, verify

__all__ = [
    "CSV_COLUMNS", "GENESIS", "OUTCOMES", "Verification", "append", "append_many", "canonical_json",
    "chain_hash", "person", "pseudonym", "records", "use_keys", "verify", "write_csv", "write_jsonl",
]  # fmt: skip
