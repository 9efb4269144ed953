"""Tidy corners: LICENSE, `make clean` keeping databases, one line for the PostgreSQL tests left out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_the_apache_2_0_text_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 190
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()


def test_make_clean_keeps_the_databases(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    kept = ["escalator.db", "escalator.db-wal", "escalator.db-shm", "escalator.db.writer-lock"]
    for name in kept:
        (tmp_path / name).write_text("audit")
    for folder in (".venv/bin", "escalator.egg-info", ".pytest_cache", "connector/__pycache__"):
        (tmp_path / folder).mkdir(parents=True)
    done = subprocess.run(["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["Makefile", "connector", *kept])
    assert not (tmp_path / "connector" / "__pycache__").exists()
    assert "kept escalator.db* (the audit log)" in done.stdout


def test_without_postgresql_its_tests_are_one_summary_line():
    env = {k: v for k, v in os.environ.items() if k != "ESCALATOR_TEST_POSTGRES_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/store/test_migrations.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    mentions = [line for line in done.stdout.splitlines() if "PostgreSQL" in line or "POSTGRES" in line]
    assert len(mentions) == 1 and mentions[0].startswith("PostgreSQL: ") and "tests not run" in mentions[0]
    assert "SKIPPED" not in done.stdout
