"""The product as an admin runs it: `escalator serve` (waitress, the webhook receiver, its worker
process) against a local fake Jira over real HTTP, the way every configurable base URL allows.
No `responses`, no test client: a signed delivery goes in, the edit and the note come out."""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.fixtures import fixture_bytes
from tests.support.harness import SECRET, sign
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import start_escalator, wait_for_line

pytestmark = ONE_AT_A_TIME


class FakeJira(ThreadingHTTPServer):
    """Takes every edit (204) and comment (201) and remembers them."""

    def __init__(self):
        self.received: list[tuple[str, str, dict]] = []
        self.got = threading.Condition()
        super().__init__(("127.0.0.1", 0), _JiraHandler)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[str, str, dict]]:
        with self.got:
            self.got.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


class _JiraHandler(BaseHTTPRequestHandler):
    server: FakeJira

    def _take(self, status: int, answer: bytes) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with self.server.got:
            self.server.received.append((self.command, self.path, body))
            self.server.got.notify_all()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_PUT(self):
        self._take(204, b"")

    def do_POST(self):
        self._take(201, b'{"id": "10100"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_jira():
    server = FakeJira()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_signed_delivery_becomes_one_edit_and_one_internal_note_at_jira(tmp_path, fake_jira):
    jira_url = f"http://127.0.0.1:{fake_jira.server_address[1]}"
    config = tmp_path / "escalator.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'escalator.db'}\n"
        "dry_run: false\n"
        "worker: {poll_seconds: 0.05}\n"
        "platforms:\n"
        f"  jira: {{url: '{jira_url}', email: bot@acme.test, api_token: t, webhook_secret: {SECRET},\n"
        "         account_id: escalator-bot}\n"
    )
    proc = start_escalator(tmp_path, "serve", "--config", str(config), "--port", "0")
    try:
        port = int(wait_for_line(proc, "Escalator listening on").rsplit(":", 1)[1])
        body = fixture_bytes("jira", "issue_created__outage")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "deployed-1"}
        conn.request("POST", "/webhooks/jira", body=body, headers=headers)
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["result"]) == (202, "accepted")
        conn.close()

        (edit, note) = fake_jira.wait_for(2)
        assert edit[:2] == ("PUT", "/rest/api/2/issue/TES-42")
        assert edit[2]["fields"]["priority"] == {"name": "Highest"}
        assert {"add": "escalated-l2"} in edit[2]["update"]["labels"]
        assert note[:2] == ("POST", "/rest/api/2/issue/TES-42/comment")
        assert note[2]["properties"][0] == {"key": "sd.public.comment", "value": {"internal": True}}
        assert note[2]["properties"][1]["key"] == "escalator.decision"
        time.sleep(0.5)
        assert len(fake_jira.received) == 2  # one decision, two requests, nothing more
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
