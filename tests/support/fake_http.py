"""A base for the small fake platforms tests run as real HTTP servers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """Reads JSON request bodies, answers JSON, logs nothing."""

    def answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

    def log_message(self, *args) -> None:
        pass


class SlowJira(ThreadingHTTPServer):
    """A Jira that holds the first issue edit `first_answer_after` seconds (or until `release` is
    set) and answers everything else at once: a worker is caught mid-request. `taken` is set when
    that first edit arrives; `puts` counts the edits. Serves from a thread of its own until `close`."""

    def __init__(self, first_answer_after: float = 60.0):
        self.first_answer_after = first_answer_after
        self.taken, self.release = threading.Event(), threading.Event()
        self.puts = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _SlowJiraHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _SlowJiraHandler(JsonHandler):
    server: SlowJira

    def do_PUT(self):
        self.body()
        with self.server.lock:
            self.server.puts += 1
            first = self.server.puts == 1
        if first:
            self.server.taken.set()
            self.server.release.wait(self.server.first_answer_after)
        self.answer(204)

    def do_POST(self):
        self.body()
        self.answer(201, b'{"id": "1"}')

    def do_GET(self):  # an issue's comments: none carries a note of ours
        self.answer(200, b'{"comments": [], "startAt": 0, "maxResults": 50, "total": 0}')
