"""deploy/nginx.conf as shipped, in a real nginx in front of a real `escalator serve` configured as
deploy/escalator.yaml says (one trusted proxy): the platforms' webhooks, the console over TLS with its
Secure session cookie, health for the local network, nothing else; and the console's log-in limit
counting the address nginx saw, not one a client wrote into X-Forwarded-For.

Only the listening ports, the certificate's paths and the upstream port are changed from the shipped
file. Skipped where nginx is not installed (`.ci/run` installs Debian's nginx-light)."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests
from werkzeug.security import generate_password_hash

from tests.console.conftest import csrf_of
from tests.support.channels import free_port
from tests.support.fixtures import fixture_bytes
from tests.support.harness import SECRET, sign
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import start_escalator, wait_for_line

pytestmark = [
    ONE_AT_A_TIME,
    pytest.mark.skipif(
        shutil.which("nginx") is None, reason="nginx not installed (apt-get install nginx-light)"
    ),
]

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
PASSWORDS = {"vera": "viewer-password-1", "otto": "operator-password-2"}


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _nginx_config(directory: Path, upstream: int, http_port: int, https_port: int) -> Path:
    """The shipped server blocks on local ports with a throwaway certificate, inside a main config
    that keeps nginx's pid, logs and temporary files in `directory`."""
    cert, key = _certificate(directory)
    text = SHIPPED.read_text()
    replaced = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "proxy_pass http://127.0.0.1:8080;": f"proxy_pass http://127.0.0.1:{upstream};",
    }
    for old, new in replaced.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}: update this test"
        text = text.replace(old, new)
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)
    (directory / "escalator.conf").write_text(text)
    temp = " ".join(f"{kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                         "uwsgi", "scgi"))  # fmt: skip
    main = directory / "nginx.conf"
    main.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'};\n"
        + "events {}\n"
        + f"http {{\n  access_log off;\n  {temp}\n  include {directory / 'escalator.conf'};\n}}\n"
    )
    return main


def _escalator_config(tmp_path: Path) -> Path:
    hashes = {name: generate_password_hash(pw, method="pbkdf2:sha256:1000") for name, pw in PASSWORDS.items()}
    users = "".join(
        f"    {name}: {{role: viewer, password_hash: '{hashed}'}}\n" for name, hashed in hashes.items()
    )
    config = tmp_path / "escalator.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'escalator.db'}\n"
        "server: {trusted_proxies: 1}\n"  # as deploy/escalator.yaml
        "platforms:\n"
        f"  jira: {{url: 'http://127.0.0.1:9', webhook_secret: {SECRET}}}\n"
        "console:\n"
        "  secret_key: a-console-secret-key-for-this-test-only\n"
        "  users:\n" + users
    )
    return config


@pytest.fixture
def behind_nginx(tmp_path):
    """(the https base URL, the http one, the certificate, the database file) of Escalator behind nginx."""
    escalator = start_escalator(
        tmp_path, "serve", "--config", str(_escalator_config(tmp_path)), "--port", "0"
    )
    nginx = None
    try:
        upstream = int(wait_for_line(escalator, "Escalator listening on").rsplit(":", 1)[1])
        http_port, https_port = free_port(), free_port()
        main = _nginx_config(tmp_path, upstream, http_port, https_port)
        checked = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True,
                                 text=True)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(main)], stderr=subprocess.DEVNULL)
        base = f"https://127.0.0.1:{https_port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{base}/healthz", verify=str(tmp_path / "cert.pem"), timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    pytest.fail(f"nginx did not come up: {(tmp_path / 'error.log').read_text()}")
                time.sleep(0.05)
        yield base, f"http://127.0.0.1:{http_port}", str(tmp_path / "cert.pem"), tmp_path / "escalator.db"
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        escalator.terminate()
        escalator.communicate(timeout=30)


def test_the_platforms_reach_the_webhooks_and_nothing_else_answers(behind_nginx):
    base, plain, cert, _ = behind_nginx
    body = fixture_bytes("jira", "issue_created__outage")
    headers = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "behind-nginx-1"}
    answer = requests.post(f"{base}/webhooks/jira", data=body, headers=headers, verify=cert, timeout=10)
    assert (answer.status_code, answer.json()["result"]) == (202, "accepted")  # the body reached us unchanged
    assert requests.get(f"{base}/healthz", verify=cert, timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{base}/", verify=cert, timeout=10).status_code == 404  # nginx's, not ours
    redirect = requests.get(f"{plain}/console/login", allow_redirects=False, timeout=10)
    assert redirect.status_code == 301 and redirect.headers["Location"].startswith("https://")


def test_the_console_works_over_tls_and_its_login_limit_counts_the_address_nginx_saw(behind_nginx):
    base, _, cert, database = behind_nginx
    guesser = requests.Session()  # (verify is given per request: REQUESTS_CA_BUNDLE beats a session's)
    token = csrf_of(guesser.get(f"{base}/console/login", verify=cert, timeout=10).text)
    spoofed = {"X-Forwarded-For": "203.0.113.7"}  # nginx appends the address it saw: that one is believed

    def attempt(session: requests.Session, name: str, password: str, csrf: str) -> int:
        data = {"name": name, "password": password, "csrf_token": csrf}
        return session.post(f"{base}/console/login", data=data, headers=spoofed, allow_redirects=False,
                            verify=cert, timeout=10).status_code  # fmt: skip

    assert [attempt(guesser, "vera", "guess", token) for _ in range(5)] == [401] * 5
    assert attempt(guesser, "vera", PASSWORDS["vera"], token) == 429
    with sqlite3.connect(database) as db:
        assert {row[0] for row in db.execute("SELECT address FROM console_login_failures")} == {"127.0.0.1"}

    # Another user logs in through the proxy, and the Secure session cookie comes back over TLS.
    otto = requests.Session()
    token = csrf_of(otto.get(f"{base}/console/login", verify=cert, timeout=10).text)
    assert attempt(otto, "otto", PASSWORDS["otto"], token) == 302
    assert (
        otto.get(f"{base}/console/decisions", allow_redirects=False, verify=cert, timeout=10).status_code
        == 200
    )
    api = requests.get(f"{base}/api/v1/decisions", verify=cert, timeout=10)
    assert api.status_code == 401 and api.headers["Content-Type"].startswith("application/json")  # ours


class _From(requests.adapters.HTTPAdapter):
    """Connections from another loopback address: a client outside the allowed network."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def test_from_outside_the_allowed_network_only_the_webhooks_answer(behind_nginx):
    base, _, cert, _ = behind_nginx
    outside = requests.Session()
    outside.mount("https://", _From("127.0.0.2"))  # not 127.0.0.1 nor 10.0.0.0/8, as nginx sees it
    body = fixture_bytes("jira", "issue_created__outage")
    headers = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "behind-nginx-outside"}
    answer = outside.post(f"{base}/webhooks/jira", data=body, headers=headers, verify=cert, timeout=10)
    assert answer.status_code == 202
    for path in ("/console/login", "/api/v1/decisions", "/healthz", "/metrics"):
        assert outside.get(f"{base}{path}", verify=cert, timeout=10).status_code == 403, path
