"""The test helpers that watch real processes keep their word on time."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support.processes import wait_for_line


def _printing_then_silent() -> subprocess.Popen:
    code = "import time; print('ready', flush=True); time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_wait_for_line_finds_the_line_and_gives_up_at_its_timeout_on_a_silent_process():
    proc = _printing_then_silent()
    try:
        assert wait_for_line(proc, "ready", timeout=30) == "ready\n"
        started = time.monotonic()
        with pytest.raises(pytest.fail.Exception, match="never saw 'serving' within 1 s"):
            wait_for_line(proc, "serving", timeout=1)
        assert time.monotonic() - started < 10  # not the process's 60 s of silence
    finally:
        proc.kill()
        proc.communicate(timeout=10)
