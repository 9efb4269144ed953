"""deploy/: the systemd units and the sample config and reverse proxy are what the code accepts."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from connector.cli import _parser
from connector.cli_common import EXIT_USAGE
from connector.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
VENV = "/opt/escalator/.venv"


def _exec_lines(unit: Path) -> list[list[str]]:
    lines = re.findall(r"^Exec(?:Start|StartPre)=(.+)$", unit.read_text(), re.M)
    return [shlex.split(line) for line in lines]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_escalator_command_in_a_unit_parses(unit):
    commands = _exec_lines(unit)
    assert commands, f"{unit.name} starts nothing"
    for argv in commands:
        program = Path(argv[0]).name
        assert argv[0].startswith(VENV), argv
        if program == "escalator":
            args = _parser().parse_args(argv[1:])  # exits 2 on a command or option that does not exist
            assert hasattr(args, "run")
        else:
            assert program == "gunicorn" and argv[-1] == "connector.wsgi:application"
    if "RestartPreventExitStatus" in unit.read_text():
        assert f"RestartPreventExitStatus={EXIT_USAGE}" in unit.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    for unit in UNITS:  # pointed at this virtualenv, so that systemd finds the programs
        text = unit.read_text().replace(VENV, str(Path(sys.executable).parent.parent))
        (tmp_path / unit.name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in UNITS)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_the_sample_config_loads_and_matches_the_proxy(monkeypatch):
    for name in ("JIRA_API_TOKEN", "JIRA_WEBHOOK_SECRET", "JIRA_ACCOUNT_ID"):
        monkeypatch.setenv(name, "x" * 20)
    config = load_config(DEPLOY / "escalator.yaml")
    assert config.database == "sqlite:////var/lib/escalator/escalator.db"  # inside ReadWritePaths
    assert config.policy == str(DEPLOY / "policy.yaml")  # next to the config file
    assert config.log_format == "json"
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"proxy_pass http://{config.server.host}:{config.server.port};" in nginx
    limit = int(re.search(r"client_max_body_size (\d+)m;", nginx).group(1)) * 1024 * 1024
    assert limit > config.server.max_body_bytes  # Escalator answers 413 itself, with its reason
    # One proxy in front, which forwards the client's address wherever it passes a request on: the
    # console's log-in limit counts each client by it.
    assert config.server.trusted_proxies == 1
    for location in re.findall(r"location [^{]+\{[^}]*proxy_pass[^}]*\}", nginx):
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in location, location
    assert re.search(r"location ~ \^/\(console\|api/v1\)", nginx)  # the console is reachable through it
