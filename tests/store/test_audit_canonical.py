"""The chain's canonical JSON written by orjson where that is byte-identical to `json.dumps`
(connector/audit/chain.py): every record a plain walk lets through serialises to the same text,
everything else takes the old serialisation, and records written either way verify as one chain."""

from __future__ import annotations

import enum
import io
import json
import math
import random
import string
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from connector import audit
from connector.audit import chain, offline, people
from connector.audit.keys import AuditKeys, generate, load_public_keys, load_signer
from connector.store.tables import audit_log

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 1


class Kind(enum.StrEnum):
    A = "a"


def _plain(value) -> bool:
    odd: list = []
    people._copied(value, [], odd)
    return not odd


def _random_text(rnd: random.Random) -> str:
    pool = string.printable + 'éüßœ€漢字😀\u2028\u2029\x00\x01\x1f\x7f"\\'
    return "".join(rnd.choice(pool) for _ in range(rnd.randint(0, 12)))


def _random_float(rnd: random.Random) -> float:
    return rnd.choice(
        [
            rnd.uniform(-1e6, 1e6),
            round(rnd.uniform(0, 1e5), rnd.randint(0, 6)),
            rnd.uniform(-1, 1) * 10.0 ** rnd.randint(-30, 30),
            0.0,
            -0.0,
            1e16,
            9999999999999998.0,
            1e-4,
            0.99e-4,
            math.inf,
            -math.inf,
            math.nan,
        ]
    )


def _random_value(rnd: random.Random, depth: int = 0):
    leaves = [
        lambda: _random_text(rnd),
        lambda: rnd.randint(-(2**70), 2**70) if rnd.random() < 0.1 else rnd.randint(-(10**9), 10**9),
        lambda: _random_float(rnd),
        lambda: rnd.choice([True, False, None]),
        lambda: rnd.choice([Colour.RED, Level.HIGH, Kind.A, T0, Decimal("1.5"), b"x", (1, "t")]),
    ]
    if depth < 3 and rnd.random() < 0.35:
        if rnd.random() < 0.5:
            return {_random_text(rnd): _random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 5))}
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 5))]
    return rnd.choice(leaves)()


def test_whatever_the_walk_lets_through_orjson_writes_as_json_dumps_does():
    rnd = random.Random(18)
    through = 0
    for _ in range(4000):
        value = {"outcome": "applied", "data": _random_value(rnd), "more": _random_value(rnd)}
        if _plain(value):
            through += 1
            assert chain._canonical_plain(value) == chain.canonical_json(value)
    assert through > 1000  # most values are plain: the comparison ran on many


@pytest.mark.parametrize(
    "value",
    [1e16, 1.5e-5, math.nan, math.inf, Colour.RED, Level.HIGH, Kind.A, T0, Decimal("1"), b"x", {1: "a"}],
    ids=repr,
)
def test_values_orjson_would_write_otherwise_are_noticed(value):
    record = {"outcome": "applied", "inputs": {"x": [value]}}
    if isinstance(value, dict):
        # non-text keys: the walk lets them through, orjson refuses, canonical_json writes them
        assert chain._canonical_plain(record) == chain.canonical_json(record)
    else:
        assert not _plain(record)


def test_a_float_without_an_exponent_and_a_64_bit_integer_pass_and_match():
    record = {"x": [3600.0, 0.0001, 9999999999999998.0, -0.0, 2**64 - 1, -(2**63)], "y": 2**70}
    assert _plain(record)
    assert chain._canonical_plain(record) == chain.canonical_json(
        record
    )  # 2**70: orjson refuses, json writes


def _record(i: int, extra, who: int):
    return {
        "platform": "jira",
        "ticket": {"id": str(i), "key": f"TES-{i}", "url": None},
        "rules": ["r"],
        "inputs": {"actor": audit.person("jira", f"acct-{who}", "Ann"), "extra": extra},
        "outcome": "applied",
        "sla": {"target_seconds": 3600.0, "late_by_seconds": 12.345},
    }


def _content(text: str) -> dict:
    return {k: v for k, v in json.loads(text).items() if k not in ("id", "seq", "at", "ticket")}


def test_records_written_before_and_after_verify_as_one_chain(engine, monkeypatch, tmp_path):
    generate(tmp_path / "k", tmp_path / "k.pub")
    keys = AuditKeys(signer=load_signer(str(tmp_path / "k")), pseudonym_key=b"c" * 32)
    extras = ["é\u2028", 1e20, Colour.RED, T0, [1, 2.5], {"z": None, "a": True}, 2**70]
    with monkeypatch.context() as before:  # the old writer: canonical_json for every record
        before.setattr(chain, "_canonical_plain", chain.canonical_json)
        for i, extra in enumerate(extras):
            with engine.begin() as conn:
                audit.append(conn, _record(i, extra, i % 7 % 3), at=T0 + timedelta(minutes=i), keys=keys)
    for i, extra in enumerate(extras, start=len(extras)):
        with engine.begin() as conn:
            audit.append(conn, _record(i, extra, i % 7 % 3), at=T0 + timedelta(minutes=i), keys=keys)
    assert audit.verify(engine).ok
    with engine.connect() as conn:
        texts = [row.record for row in conn.execute(select(audit_log.c.record).order_by(audit_log.c.seq))]
    n = len(extras)
    for old, new in zip(texts[:n], texts[n:], strict=True):  # the same content, written alike
        assert _content(old) == _content(new)
    for text in texts:  # and each as canonical_json writes what it holds
        assert chain.canonical_json(json.loads(text)) == text
    public = load_public_keys([str(tmp_path / "k.pub")])
    assert audit.verify(engine, public_keys=public).ok
    proof = io.StringIO()
    offline.write_proof(engine, proof)  # each line re-serialised offline with canonical_json: must agree
    (tmp_path / "audit.jsonl").write_text(proof.getvalue(), encoding="utf-8")
    result = offline.verify_export(tmp_path / "audit.jsonl", public)
    assert result.ok and result.checked == 2 * n, str(result)
