"""Stand-ins for the places people talk, all real servers on ephemeral ports: a Slack Web API fake
(what slack_sdk's urllib client reaches through `api_url`) and an SMTP server (aiosmtpd), optionally
with STARTTLS and login."""

from __future__ import annotations

import email
import json
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import Message as MailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class SlackCall:
    path: str
    token: str
    body: dict[str, Any]
    at: float = field(default_factory=time.time)  # when the fake received it (benchmarks)


@dataclass
class FakeSlack:
    """Answers chat.postMessage like Slack: `{"ok": true, "ts": …}`; `fail_next` queues answers
    (status, body, headers) to give first, e.g. a 429 with Retry-After."""

    calls: list[SlackCall] = field(default_factory=list)
    fail_next: deque = field(default_factory=deque)
    server: ThreadingHTTPServer | None = None
    _ts: int = 1700000000

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw)
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                fake.calls.append(SlackCall(self.path, token, body))
                if fake.fail_next:
                    status, answer, headers = fake.fail_next.popleft()
                else:
                    fake._ts += 1
                    status, headers = 200, {}
                    answer = {"ok": True, "channel": "C0ONCALL", "ts": f"{fake._ts}.000100"}
                data = json.dumps(answer).encode() if isinstance(answer, dict) else answer.encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/json" if isinstance(answer, dict) else "text/html"
                )
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.path.endswith("chat.postMessage")]


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[MailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.mails.append(
            email.message_from_bytes(envelope.original_content or envelope.content, policy=default)
        )
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server context with a throwaway certificate for 127.0.0.1 (openssl, no network)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) in a thread; `mails` are the parsed messages it received."""

    controller: Controller
    inbox: _Inbox
    port: int

    @property
    def mails(self) -> list[MailMessage]:
        return self.inbox.mails

    def stop(self) -> None:
        self.controller.stop()


def start_smtp(*, tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None,
               implicit_tls: bool = False) -> SmtpServer:  # fmt: skip
    inbox = _Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and login is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == login
        )
        return AuthResult(success=ok)

    port = free_port()
    kwargs: dict[str, Any] = {}
    if tls is not None and implicit_tls:
        kwargs.update(ssl_context=tls)  # TLS from the first byte (port 465 style)
    elif tls is not None:
        kwargs.update(tls_context=tls, require_starttls=True)
    if login is not None:
        # aiosmtpd counts only STARTTLS as TLS for AUTH; with implicit TLS the whole session is encrypted
        kwargs.update(authenticator=authenticate, auth_require_tls=tls is not None and not implicit_tls)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return SmtpServer(controller, inbox, port)
