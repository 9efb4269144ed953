"""Run `escalator` through its installed console script, as an admin would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ESCALATOR = Path(sys.executable).parent / "escalator"


def escalator(*args: str, cwd=None, env=None, timeout: float = 60, stdin: str | None = None):
    """The finished `escalator ARGS…` (text output, never raises on a non-zero exit)."""
    return subprocess.run(
        [str(ESCALATOR), *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, input=stdin,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
