"""A local fake of the three platforms' admin APIs over HTTP, for `escalator install` end to end.

It keeps what was created in memory and answers in the shapes recorded under
tests/fixtures/<platform>/api/install/ (each answer is the recorded one with our values put in),
and it remembers every request, so a test can say "the second run sent no creating request".
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fixtures import FIXTURES


def recorded(platform: str, name: str) -> Any:
    return json.loads((FIXTURES / platform / "api" / "install" / f"{name}.json").read_text(encoding="utf-8"))


class FakeAdmin(ThreadingHTTPServer):
    """One server for all three platforms (the paths do not overlap)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []  # (method, path with query, body)
        self.forbidden: set[str] = set()  # path prefixes answered 403
        self.jira_hooks: dict[str, dict[str, Any]] = {}
        self.zendesk_hooks: dict[str, dict[str, Any]] = {}
        self.zendesk_secrets: dict[str, str] = {}
        self.categories: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, dict[str, Any]] = {}
        self.tables: dict[str, dict[str, dict[str, Any]]] = {"sys_properties": {}, "sys_script": {}}
        self._ids = itertools.count(101)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_id(self) -> str:
        return str(next(self._ids))

    def writes(self, method: str | None = None) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET" and (method is None or r[0] == method)]

    # --- Jira: /rest/webhooks/1.0/webhook ------------------------------------

    def jira(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, [self._jira_view(h) for h in self.jira_hooks.values()]
        if method == "POST":
            hook_id = self.next_id()
            self.jira_hooks[hook_id] = {**body, "id": hook_id}
            return 201, self._jira_view(self.jira_hooks[hook_id])
        hook_id = parts[-1]
        if hook_id not in self.jira_hooks:
            return 404, {"errorMessages": [f"No webhook with id {hook_id}"], "errors": {}}
        if method == "PUT":
            self.jira_hooks[hook_id] = {**body, "id": hook_id}
            return 200, self._jira_view(self.jira_hooks[hook_id])
        if method == "DELETE":
            del self.jira_hooks[hook_id]
            return 204, None
        return 405, None

    def _jira_view(self, hook: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(recorded("jira", "webhook_register_response_201"))
        view.update({k: v for k, v in hook.items() if k not in ("secret", "id")})
        view["self"] = f"https://example.atlassian.net/rest/webhooks/1.0/webhook/{hook['id']}"
        return view

    # --- Zendesk --------------------------------------------------------------

    def zendesk(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        resource = parts[2]
        rest = parts[3:]
        if resource == "webhooks":
            return self._zendesk_webhooks(method, rest, query, body)
        if resource == "trigger_categories":
            return self._zendesk_collection(method, rest, body, self.categories, "trigger_category")
        if resource == "triggers":
            if method == "GET" and not rest:
                found = [
                    t for t in self.triggers.values() if str(t.get("category_id")) == query.get("category_id")
                ]
                return 200, {"triggers": found, "count": len(found), "next_page": None, "previous_page": None}
            return self._zendesk_collection(method, rest, body, self.triggers, "trigger")
        return 404, {"error": "InvalidEndpoint"}

    def _zendesk_webhooks(
        self, method: str, rest: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if method == "GET" and not rest:
            listing = recorded("zendesk", "webhooks_list_response")
            wanted = query.get("filter[name_contains]", "")
            listing["webhooks"] = [h for h in self.zendesk_hooks.values() if wanted in h["name"]]
            return 200, listing
        if method == "POST":
            hook_id = f"01HANAHBMTDTB8Q98K38YZ{self.next_id():0>4}"
            answer = recorded("zendesk", "webhook_create_response_201")
            answer["webhook"] = {
                **{k: v for k, v in answer["webhook"].items() if k != "authentication"},
                **body["webhook"],
                "id": hook_id,
            }
            self.zendesk_hooks[hook_id] = answer["webhook"]
            self.zendesk_secrets[hook_id] = f"secret-of-{hook_id}"
            return 201, answer
        hook_id = rest[0]
        if hook_id not in self.zendesk_hooks:
            return 404, {"errors": [{"code": "WebhookNotFound", "title": "Webhook not found"}]}
        if method == "GET" and rest[1:] == ["signing_secret"]:
            answer = recorded("zendesk", "webhook_signing_secret_response")
            answer["signing_secret"]["secret"] = self.zendesk_secrets[hook_id]
            return 200, answer
        if method == "PUT":
            self.zendesk_hooks[hook_id].update(body["webhook"])
            return 204, None
        if method == "DELETE":
            del self.zendesk_hooks[hook_id]
            return 204, None
        return 405, None

    def _zendesk_collection(
        self, method: str, rest: list[str], body: Any, store: dict, name: str
    ) -> tuple[int, Any]:
        if method == "GET" and not rest:
            if name == "trigger_category":
                listing = recorded("zendesk", "trigger_categories_list_response")
                listing["trigger_categories"] = list(store.values())
                return 200, listing
            return 200, {f"{name}s": list(store.values())}
        if method == "POST":
            item_id = self.next_id()
            shape = recorded(
                "zendesk",
                "trigger_category_create_response" if name == "trigger_category" else "trigger_show_response",
            )
            item = {**shape[name], **body[name], "id": item_id}
            if name == "trigger":
                item["conditions"] = {"all": body[name]["conditions"]["all"], "any": []}
            store[item_id] = item
            return (201 if name == "trigger" else 200), {name: item}
        item_id = rest[0]
        if item_id not in store:
            return 404, {"error": "RecordNotFound", "description": "Not found"}
        if method == "PUT":
            store[item_id].update(body[name])
            return 200, {name: store[item_id]}
        if method == "DELETE":
            if name == "trigger_category" and any(
                str(t.get("category_id")) == item_id for t in self.triggers.values()
            ):
                return 400, {"error": "CategoryNotEmpty", "description": "The category still has triggers"}
            del store[item_id]
            return 204, None
        return 405, None

    # --- ServiceNow Table API -------------------------------------------------

    def servicenow(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        table = parts[3]
        records = self.tables.setdefault(table, {})
        if method == "GET" and len(parts) == 4:
            rows = [r for r in records.values() if _matches(r, query.get("sysparm_query", ""))]
            fields = query.get("sysparm_fields")
            if fields:
                rows = [{f: r.get(f, "") for f in fields.split(",")} for r in rows]
            return 200, {"result": [self._shown(r) for r in rows]}
        if method == "POST":
            sys_id = f"{self.next_id():0>32}"
            record = {
                **recorded("servicenow", "sys_script_create_response_201")["result"],
                **body,
                "sys_id": sys_id,
            }
            if table != "sys_script":
                record = {**body, "sys_id": sys_id}
            records[sys_id] = {k: str(v) for k, v in record.items()}
            return 201, {"result": self._shown(records[sys_id])}
        sys_id = parts[4]
        if sys_id not in records:
            return 404, {
                "error": {"message": "No Record found", "detail": "Record doesn't exist"},
                "status": "failure",
            }
        if method == "PATCH":
            records[sys_id].update({k: str(v) for k, v in body.items()})
            return 200, {"result": self._shown(records[sys_id])}
        if method == "DELETE":
            del records[sys_id]
            return 204, None
        return 405, None

    @staticmethod
    def _shown(record: dict[str, Any]) -> dict[str, Any]:
        # A password2 value reads back encrypted.
        if record.get("type") == "password2" and "value" in record:
            return {**record, "value": "enc:" + str(abs(hash(record["value"])))}
        return record


def _matches(record: dict[str, Any], query: str) -> bool:
    for clause in filter(None, query.split("^")):
        if clause.startswith("ORDERBY"):
            continue
        if "STARTSWITH" in clause:
            field, value = clause.split("STARTSWITH", 1)
            if not str(record.get(field, "")).startswith(value):
                return False
        elif "=" in clause:
            field, value = clause.split("=", 1)
            if str(record.get(field, "")) != value:
                return False
    return True


class _Handler(BaseHTTPRequestHandler):
    server: FakeAdmin

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        parts = [p for p in split.path.split("/") if p]
        fake = self.server
        with fake.lock:
            fake.requests.append((self.command, self.path, body))
            if any(split.path.startswith(prefix) for prefix in fake.forbidden):
                status, answer = 403, _forbidden(split.path)
            elif split.path.startswith("/rest/webhooks/1.0/webhook"):
                status, answer = fake.jira(self.command, parts, body)
            elif split.path.startswith("/api/v2/"):
                status, answer = fake.zendesk(self.command, parts, query, body)
            elif split.path.startswith("/api/now/table/"):
                status, answer = fake.servicenow(self.command, parts, query, body)
            else:
                status, answer = 404, {"error": "no such path in the fake"}
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:
        pass


def _forbidden(path: str) -> Any:
    if path.startswith("/rest/"):
        return recorded("jira", "error_403_not_admin")
    if path.startswith("/api/v2/"):
        return recorded("zendesk", "error_403_forbidden")
    return recorded("servicenow", "error_403_acl")
