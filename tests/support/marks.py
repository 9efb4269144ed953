"""Marks shared by the test modules."""

from __future__ import annotations

import pytest

# `make test` runs the suite on two xdist workers (--dist loadgroup). Tests so marked all go to one
# worker, one after another: real processes killed or timed, latency and rate bounds, a browser.
# Two of them side by side on a 2-core machine would each measure the other, not the product.
ONE_AT_A_TIME = pytest.mark.xdist_group("one_at_a_time")
