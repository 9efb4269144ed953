"""Issue 11, finding 4: the three receivers fuzzed with signed bodies.

Each example starts from a valid delivery of the platform and replaces one field anywhere in it
(or drops it) with an arbitrary JSON value, or sends an arbitrary JSON document, signed as the
platform signs. Whatever arrives: no 5xx, no exception escaping the receiver, and every delivery
the door admits is one the worker reads (no "could not be read", no "failed" afterwards).
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.store import inbox
from tests.conformance.drivers import Delivery, Spec, post
from tests.support.marks import ONE_AT_A_TIME

pytestmark = ONE_AT_A_TIME

EXAMPLES = 150  # per platform; README "Reliability" reports the figures
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def paths(value, prefix=()):
    """Every path (a tuple of keys and indexes) inside a JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            yield (*prefix, n)
            yield from paths(inner, (*prefix, n))


def mutated(body: dict, path: tuple, value, drop: bool) -> dict:
    body = json.loads(json.dumps(body))
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return body


def test_the_receivers_never_answer_5xx_and_admit_only_what_the_worker_reads(esc, driver, api):
    if esc.rt.engine.dialect.name != "sqlite":
        pytest.skip("the door's verdict is the same on every database; SQLite keeps the test fast")
    driver.register_write(api)
    valid = json.loads(driver.created(Spec(51, labels=("outage",)), esc.clock()).body)
    all_paths = sorted(paths(valid), key=repr)
    answers: list[int] = []
    slowest = 0.0

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        how=st.sampled_from(["replace", "drop", "whole"]),
        path=st.sampled_from(all_paths),
        value=VALUES,
        whole=st.dictionaries(st.text(max_size=12), VALUES, max_size=5),
    )
    def deliver(how, path, value, whole):
        nonlocal slowest
        body = whole if how == "whole" else mutated(valid, path, value, how == "drop")
        raw = json.dumps(body).encode()
        started = time.perf_counter()
        answer = post(
            esc, driver, Delivery(raw, {"Content-Type": "application/json", **driver.sign(raw, esc.clock())})
        )
        slowest = max(slowest, time.perf_counter() - started)
        assert answer.status_code in (200, 202, 400), (answer.status_code, answer.json, body)
        answers.append(answer.status_code)

    deliver()
    esc.work()

    assert len(answers) == EXAMPLES and 500 not in answers
    assert slowest < 2.0, f"one delivery took {slowest:.2f}s at the door"
    counts = inbox.counts(esc.rt.engine)
    assert set(counts) <= {"done", "ignored"}, counts  # nothing admitted then failed, nothing left
    assert not [r for r in esc.audit() if r["outcome"] == "failed"], [r["detail"] for r in esc.audit()]
