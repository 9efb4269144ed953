"""Two replicas (two schedulers, two workers) on one PostgreSQL database hand each ticket over once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
import responses

from connector.config import Config
from connector.scheduler import tick
from connector.worker import drain
from tests.conformance.drivers import DRIVERS, Effect
from tests.conformance.test_handover import question
from tests.support.concurrency import run_together
from tests.support.harness import FakeClock, start

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("platform", ["jira", "zendesk", "servicenow"])
def test_two_replicas_hand_each_ticket_over_once(postgres_url, platform):
    config = Config.model_validate(
        {
            "database": postgres_url,
            "dry_run": False,
            "platforms": {name: dict(driver.settings) for name, driver in DRIVERS.items()},
        }
    )
    clock = FakeClock(datetime(2026, 11, 3, 16, 0, tzinfo=UTC))  # Berlin works until 17:00 UTC
    replicas = [start(config, clock), start(config, clock)]
    driver = DRIVERS[platform](replicas[0].rt.policy.current.platforms[platform])
    specs = [question(100 + i, "emea") for i in range(8)]
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
            driver.register_write(api)
            for spec in specs:
                delivery = driver.created(spec, clock())
                sent = replicas[0].http.post(
                    f"/webhooks/{platform}", data=delivery.body, headers=delivery.headers
                )
                assert sent.status_code == 202
            drain(replicas[0].rt)
            before = len(replicas[0].audit())
            api.calls.reset()

            clock.now = datetime(
                2026, 11, 3, 17, 0, 5, tzinfo=UTC
            )  # Berlin closed; both replicas tick and work

            def replica(k: int) -> None:
                rt = replicas[k].rt
                while tick(rt) or drain(rt):
                    pass

            run_together(replica, 2, timeout=120)
            records = replicas[1].audit()[before:]
            writes = driver.writes(api)
        handovers = Counter(r["ticket"]["id"] for r in records if r["trigger"]["kind"] == "handover")
        assert handovers == Counter({driver.ticket_id(s): 1 for s in specs})  # each ticket once
        assert {r["outcome"] for r in records} == {"applied"}
        # one write per ticket (on Jira with its JSM-internal note, a POST of its own), none twice
        edits = Counter(w.path for w in writes if w.method in ("PUT", "PATCH"))
        assert len(edits) == len(specs) and set(edits.values()) == {1}
        assert len(writes) == len(specs) * driver.writes_per_decision(Effect(note_internal=True))
    finally:
        for r in replicas:
            r.rt.close()
