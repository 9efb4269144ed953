"""Platform requests per decision, per scenario, through the real pipeline (Jira faked by `responses`).

.venv/bin/python bench/requests_per_decision.py
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

import responses

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.harness import JIRA_URL, jira_config, start  # noqa: E402

# (title, the event measured, events Escalator handled on that ticket before it)
SCENARIOS = [
    ("new P1 outage ticket", "issue_created__outage", ()),
    ("security ticket", "issue_created__security", ()),
    ("requester asks for a manager", "comment_created__asks_for_manager", ("issue_created__outage",)),
    ("minor ticket, nothing to change", "issue_created__minor", ()),
    ("echo of our own write", "issue_updated__echo", ()),
    ("priority lowered by a person", "issue_updated__priority_lowered_by_person", ("issue_created__outage",)),
]


def count_requests(notes: str, fixture: str, before: tuple[str, ...]) -> tuple[str, Counter]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
    ):
        mock.add_callback(responses.PUT, _any_issue(), callback=lambda r: (204, {}, ""))
        mock.add_callback(responses.POST, _any_issue("/comment"), callback=lambda r: (201, {}, "{}"))
        esc = start(jira_config(f"sqlite:///{tmp}/bench.db", notes=notes))
        for seed in before:
            esc.deliver(seed)
            esc.work()
        mock.calls.reset()
        esc.deliver(fixture)
        esc.work()
        outcome = esc.audit()[-1]["outcome"]
        methods = Counter(call.request.method for call in mock.calls)
        esc.rt.close()
        return outcome, methods


def _any_issue(suffix: str = ""):
    import re

    return re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+" + re.escape(suffix) + "$")


def report() -> None:
    print("\nplatform requests per decision (Jira):")
    print(f"  {'scenario':<34} {'notes=internal':<30} {'notes=comment':<30}")
    for title, fixture, before in SCENARIOS:
        cells = []
        for notes in ("internal", "comment"):
            outcome, methods = count_requests(notes, fixture, before)
            total = sum(methods.values())
            detail = " + ".join(f"{n} {m}" for m, n in sorted(methods.items())) or "none"
            cells.append(f"{total} ({detail}) {outcome}")
        print(f"  {title:<34} {cells[0]:<30} {cells[1]:<30}")


if __name__ == "__main__":
    report()
