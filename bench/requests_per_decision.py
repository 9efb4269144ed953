"""Platform requests per decision, per scenario and platform, through the real pipeline.

    .venv/bin/python bench/requests_per_decision.py

Each scenario runs on Jira, Zendesk and ServiceNow with the same story and the example policy
(the conformance suite's drivers build the platforms' payloads; their HTTP is faked with
`responses`). A cell reads "<requests> (<methods>) <outcome>" for the measured event only.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

import responses

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.config import Config  # noqa: E402
from tests.conformance.drivers import (  # noqa: E402
    DRIVERS,
    MINOR,
    OUTAGE,
    QUESTION,
    SECURITY,
    Spec,
    after,
    decide,
    post,
)
from tests.support.harness import FakeClock, start  # noqa: E402


def new_outage(esc, driver, api):
    return decide(esc, driver, driver.created(OUTAGE, esc.clock()))


def security(esc, driver, api):
    return decide(esc, driver, driver.created(SECURITY, esc.clock()))


def asks_for_manager(esc, driver, api):
    decide(esc, driver, driver.created(QUESTION, esc.clock()))
    api.calls.reset()
    return decide(esc, driver, driver.commented(QUESTION, "I want to speak to your manager.", esc.clock()))


def nothing_to_change(esc, driver, api):
    return decide(esc, driver, driver.created(MINOR, esc.clock()))


def _after_outage(esc, driver, api) -> Spec:
    """Handle the outage ticket first (Escalator raises it); the ticket as it then stands."""
    decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    now = after(OUTAGE, driver.effect(driver.writes(api), OUTAGE))
    api.calls.reset()
    return now


def echo(esc, driver, api):
    return decide(esc, driver, driver.echo(_after_outage(esc, driver, api), esc.clock()))


def lowered_by_person(esc, driver, api):
    now = _after_outage(esc, driver, api)
    lowered = Spec(now.n, now.title, now.labels, "P3", now.tier)
    return decide(esc, driver, driver.priority_changed(lowered, now.priority, esc.clock()))


def duplicate(esc, driver, api):
    delivery = driver.created(OUTAGE, esc.clock())
    post(esc, driver, delivery)
    esc.work()
    api.calls.reset()
    post(esc, driver, delivery)  # the platform's retry of a delivery we already took
    esc.work()
    return "duplicate"


SCENARIOS = [
    ("new P1 outage ticket", new_outage),
    ("security ticket", security),
    ("requester asks for a manager", asks_for_manager),
    ("minor ticket, nothing to change", nothing_to_change),
    ("echo of our own write", echo),
    ("priority lowered by a person", lowered_by_person),
    ("duplicate delivery", duplicate),
]


def measure(platform: str, scenario) -> tuple[int, Counter, str]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        responses.RequestsMock(assert_all_requests_are_fired=False) as api,
    ):
        config = Config.model_validate(
            {
                "database": f"sqlite:///{tmp}/bench.db",
                "dry_run": False,
                "platforms": {name: dict(d.settings) for name, d in DRIVERS.items()},
            }
        )
        esc = start(config, FakeClock())
        try:
            driver = DRIVERS[platform](esc.rt.policy.current.platforms[platform])
            driver.register_write(api)
            record = scenario(esc, driver, api)
            outcome = record if isinstance(record, str) else record["outcome"]
            methods = Counter(call.request.method for call in api.calls)
            return sum(methods.values()), methods, outcome
        finally:
            esc.rt.close()


def report() -> None:
    platforms = sorted(DRIVERS)
    print("\nplatform write requests per decision (example policy; Jira notes are JSM-internal):")
    print(f"  {'scenario':<33}" + "".join(f"{p:<28}" for p in platforms))
    for title, scenario in SCENARIOS:
        cells = []
        for platform in platforms:
            total, methods, outcome = measure(platform, scenario)
            detail = " + ".join(f"{n} {m}" for m, n in sorted(methods.items())) or "none"
            cells.append(f"{total} ({detail}) {outcome}")
        print(f"  {title:<33}" + "".join(f"{c:<28}" for c in cells))


if __name__ == "__main__":
    report()
