"""Pure policy evaluation of the example policy, on one core.

    .venv/bin/python bench/evaluate.py [--runs 2000]

The figure the test suite used to assert (under 1 ms an evaluation) is measured here instead: a
timed assertion in the suite fails on a shared, loaded machine without anything being wrong.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.model import TicketState  # noqa: E402
from policies import evaluate, load_policy  # noqa: E402
from tests.policies.policy_helpers import EXAMPLE, NOW, event  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="evaluations per round (5 rounds)")
    args = parser.parse_args()
    policy = load_policy(EXAMPLE)
    cases = {
        "outage + security + revenue field": event(
            labels={"outage", "security"}, fields={"customfield_10050": "yes"}
        ),
        "plain question": event(labels=set()),
    }
    for name, e in cases.items():
        evaluate(policy, e, TicketState(), NOW)
        rates = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(args.runs):
                evaluate(policy, e, TicketState(), NOW)
            rates.append(args.runs / (time.perf_counter() - start))
        median = statistics.median(rates)
        print(
            f"{name:36} median {median:8,.0f} evaluations/s ({1e6 / median:6.0f} µs each; "
            f"rounds {min(rates):,.0f}–{max(rates):,.0f})"
        )


if __name__ == "__main__":
    main()
