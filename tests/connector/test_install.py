"""`escalator install` / `uninstall` end to end: the CLI against a local fake of each admin API."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from connector.cli import main
from platforms.installing import MARKER, MASK, fingerprint
from platforms.servicenow.install import RULE_NAME, SCRIPT
from platforms.zendesk.install import TRIGGERS, trigger_body
from tests.support.fake_admin import FakeAdmin

PUBLIC = "https://escalator.example.com"
SECRETS = {"jira": "jira-secret-1", "zendesk": "", "servicenow": "snow-secret-1"}


@pytest.fixture
def fake():
    server = FakeAdmin()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def write_config(tmp_path: Path, fake: FakeAdmin, platform: str, **extra: str) -> str:
    sections = {
        "jira": f"    url: {fake.url}\n    email: admin@example.com\n    api_token: tok\n"
        f"    webhook_secret: {extra.get('secret', SECRETS['jira'])}\n"
        f"    webhook_jql: {extra.get('jql', 'project = SUP')}\n",
        "zendesk": f"    url: {fake.url}\n    email: admin@example.com\n    api_token: tok\n"
        f"    webhook_secret: '{extra.get('secret', '')}'\n",
        "servicenow": f"    url: {fake.url}\n    user: admin\n    password: pw\n"
        f"    webhook_secret: {extra.get('secret', SECRETS['servicenow'])}\n"
        f"    extra_fields: [{extra.get('fields', 'category')}]\n",
    }
    path = tmp_path / f"{platform}.yaml"
    path.write_text(
        f"database: sqlite:///{tmp_path / 'e.db'}\n"
        f"server: {{public_url: '{extra.get('public', PUBLIC)}'}}\n"
        f"platforms:\n  {platform}:\n{sections[platform]}"
    )
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def bodies(text: str) -> list[tuple[str, str, object]]:
    """(method, url, json) of each request a dry run printed."""
    found: list[tuple[str, str, object]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.split(" ", 1)[0] in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            method, rest = line.split(" ", 1)
            url = rest.split("    #", 1)[0]
            block: list[str] = []
            i += 1
            while i < len(lines) and lines[i].startswith("  "):
                block.append(lines[i][2:])
                i += 1
            found.append((method, url, json.loads("\n".join(block)) if block else None))
        else:
            i += 1
    return found


# --- dry run: the exact requests -------------------------------------------


def test_jira_dry_run_prints_the_exact_registration_and_sends_nothing(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, "jira")
    status, out, _ = run(capsys, "install", "jira", "--config", config, "--dry-run")
    assert status == 0
    assert bodies(out) == [
        (
            "POST",
            f"{fake.url}/rest/webhooks/1.0/webhook",
            {
                "name": "Escalator",
                "url": f"{PUBLIC}/webhooks/jira",
                "events": ["jira:issue_created", "jira:issue_updated", "comment_created"],
                "filters": {"issue-related-events-section": "project = SUP"},
                "excludeBody": False,
                "secret": MASK,
            },
        )
    ]
    assert SECRETS["jira"] not in out
    assert fake.writes() == [] and fake.jira_hooks == {}


def test_zendesk_dry_run_prints_webhook_secret_read_category_and_four_triggers(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, "zendesk")
    status, out, _ = run(capsys, "install", "zendesk", "--config", config, "--dry-run")
    assert status == 0
    requests = bodies(out)
    assert [(m, u) for m, u, _ in requests] == [
        ("POST", f"{fake.url}/api/v2/webhooks"),
        ("GET", f"{fake.url}/api/v2/webhooks/{{webhook.webhook.id}}/signing_secret"),
        ("POST", f"{fake.url}/api/v2/trigger_categories"),
    ] + [("POST", f"{fake.url}/api/v2/triggers")] * 4
    assert requests[0][2] == {
        "webhook": {
            "name": "Escalator",
            "description": MARKER,
            "endpoint": f"{PUBLIC}/webhooks/zendesk",
            "http_method": "POST",
            "request_format": "json",
            "status": "active",
            "subscriptions": ["conditional_ticket_events"],
        }
    }
    assert requests[2][2] == {"trigger_category": {"name": "Escalator"}}
    first = requests[3][2]["trigger"]
    assert first["title"] == "Escalator: ticket created"
    assert first["category_id"] == "{category.trigger_category.id}"
    assert first["conditions"] == {
        "all": [{"field": "update_type", "operator": "is", "value": "Create"}],
        "any": [],
    }
    assert first["actions"] == [
        {"field": "notification_webhook", "value": ["{webhook.webhook.id}", trigger_body("ticket.created")]}
    ]
    assert fake.writes() == []


def test_servicenow_dry_run_prints_properties_and_business_rule(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, "servicenow")
    status, out, _ = run(capsys, "install", "servicenow", "--config", config, "--dry-run")
    assert status == 0
    requests = bodies(out)
    table = f"{fake.url}/api/now/table"
    assert requests[:4] == [
        (
            "POST",
            f"{table}/sys_properties",
            {
                "name": "x_escalator.url",
                "type": "string",
                "value": f"{PUBLIC}/webhooks/servicenow",
                "description": MARKER,
            },
        ),
        (
            "POST",
            f"{table}/sys_properties",
            {
                "name": "x_escalator.secret",
                "type": "password2",
                "value": MASK,
                "description": f"{MARKER} (fingerprint {fingerprint('snow-secret-1')})",
            },
        ),
        (
            "POST",
            f"{table}/sys_properties",
            {"name": "x_escalator.enabled", "type": "true|false", "value": "true", "description": MARKER},
        ),
        (
            "POST",
            f"{table}/sys_properties",
            {
                "name": "x_escalator.extra_fields",
                "type": "string",
                "value": "category",
                "description": MARKER,
            },
        ),
    ]
    method, url, rule = requests[4]
    assert (method, url) == ("POST", f"{table}/sys_script")
    assert rule["script"] == SCRIPT.read_text(encoding="utf-8")
    assert {k: v for k, v in rule.items() if k != "script"} == {
        "name": RULE_NAME,
        "collection": "incident",
        "when": "after",
        "order": "10000",
        "active": "true",
        "advanced": "true",
        "action_insert": "true",
        "action_update": "true",
        "action_delete": "false",
        "action_query": "false",
        "description": MARKER,
    }
    assert "snow-secret-1" not in out
    assert fake.writes() == []


# --- install, again, uninstall ---------------------------------------------


@pytest.mark.parametrize("platform", ["jira", "zendesk", "servicenow"])
def test_install_creates_a_second_run_sends_nothing_and_uninstall_removes_it(
    tmp_path, fake, capsys, platform
):
    config = write_config(tmp_path, fake, platform)
    status, out, err = run(capsys, "install", platform, "--config", config)
    assert status == 0, err
    created = fake.writes()
    assert created and all(method == "POST" for method, _, _ in created)
    assert _installed(fake, platform)

    fake.requests.clear()
    status, out, err = run(capsys, "install", platform, "--config", config)
    assert status == 0, err
    assert fake.writes() == []
    assert "nothing to change" in out

    status, out, err = run(capsys, "uninstall", platform, "--config", config)
    assert status == 0, err
    assert not _installed(fake, platform)
    assert all(method == "DELETE" for method, _, _ in fake.writes())

    fake.requests.clear()
    status, out, _ = run(capsys, "uninstall", platform, "--config", config)
    assert status == 0 and fake.writes() == [] and "nothing" in out


def _installed(fake: FakeAdmin, platform: str) -> bool:
    if platform == "jira":
        return bool(fake.jira_hooks)
    if platform == "zendesk":
        return bool(fake.zendesk_hooks or fake.triggers or fake.categories)
    return bool(fake.tables["sys_properties"] or fake.tables["sys_script"])


def test_jira_install_registers_the_secret_and_a_changed_config_updates_in_place(tmp_path, fake, capsys):
    run(capsys, "install", "jira", "--config", write_config(tmp_path, fake, "jira"))
    [hook] = fake.jira_hooks.values()
    assert hook["secret"] == "jira-secret-1" and hook["url"] == f"{PUBLIC}/webhooks/jira"
    fake.requests.clear()
    changed = write_config(
        tmp_path, fake, "jira", jql="project in (SUP, OPS)", public="https://esc2.example.com"
    )
    status, _, err = run(capsys, "install", "jira", "--config", changed)
    assert status == 0, err
    assert [(m, p.rsplit("/", 1)[1]) for m, p, _ in fake.writes()] == [("PUT", hook["id"])]
    [after] = fake.jira_hooks.values()
    assert after["filters"] == {"issue-related-events-section": "project in (SUP, OPS)"}
    assert after["url"] == "https://esc2.example.com/webhooks/jira"


def test_servicenow_changed_secret_and_fields_update_in_place(tmp_path, fake, capsys):
    run(capsys, "install", "servicenow", "--config", write_config(tmp_path, fake, "servicenow"))
    fake.requests.clear()
    config = write_config(tmp_path, fake, "servicenow", secret="snow-secret-2", fields="category, u_tier")
    status, _, err = run(capsys, "install", "servicenow", "--config", config)
    assert status == 0, err
    names = sorted(body["name"] for method, _, body in fake.writes())
    assert [m for m, _, _ in fake.writes()] == ["PATCH", "PATCH"]
    assert names == ["x_escalator.extra_fields", "x_escalator.secret"]
    stored = {r["name"]: r for r in fake.tables["sys_properties"].values()}
    assert stored["x_escalator.secret"]["value"] == "snow-secret-2"
    assert stored["x_escalator.extra_fields"]["value"] == "category,u_tier"


def test_uninstall_leaves_what_escalator_did_not_make(tmp_path, fake, capsys):
    fake.jira_hooks["7"] = {"id": "7", "name": "Someone else's", "url": "https://other.example.com"}
    fake.tables["sys_properties"]["a" * 32] = {
        "sys_id": "a" * 32,
        "name": "x_escalator.timeout_seconds",
        "value": "20",
        "type": "integer",
        "description": "",
    }
    for platform in ("jira", "servicenow"):
        config = write_config(tmp_path, fake, platform)
        run(capsys, "install", platform, "--config", config)
        run(capsys, "uninstall", platform, "--config", config)
    assert list(fake.jira_hooks) == ["7"]
    assert list(fake.tables["sys_properties"]) == ["a" * 32] and fake.tables["sys_script"] == {}


# --- Zendesk's signing secret ----------------------------------------------


def test_zendesk_signing_secret_is_shown_once_and_triggers_name_the_new_webhook(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, "zendesk")
    status, out, _ = run(capsys, "install", "zendesk", "--config", config)
    assert status == 0
    [hook_id] = fake.zendesk_hooks
    assert out.count(f"secret-of-{hook_id}") == 1
    [category_id] = fake.categories
    assert {t["title"] for t in fake.triggers.values()} == set(TRIGGERS)
    for trigger in fake.triggers.values():
        assert trigger["category_id"] == category_id
        assert trigger["actions"][0]["value"][0] == hook_id
    # Once the config has the secret, nothing is shown or changed.
    config = write_config(tmp_path, fake, "zendesk", secret=f"secret-of-{hook_id}")
    fake.requests.clear()
    status, out, _ = run(capsys, "install", "zendesk", "--config", config)
    assert status == 0 and "secret-of-" not in out and fake.writes() == []


def test_zendesk_signing_secret_goes_to_a_file_only_its_owner_reads(tmp_path, fake, capsys):
    target = tmp_path / "zendesk.secret"
    target.write_text("old")
    target.chmod(0o644)
    config = write_config(tmp_path, fake, "zendesk")
    status, out, _ = run(capsys, "install", "zendesk", "--config", config, "--secret-file", str(target))
    assert status == 0
    [hook_id] = fake.zendesk_hooks
    assert target.read_text() == f"secret-of-{hook_id}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "secret-of-" not in out


# --- errors that say what to do --------------------------------------------


@pytest.mark.parametrize(
    ("platform", "prefix", "advice"),
    [
        ("jira", "/rest/webhooks", "Administer Jira"),
        ("zendesk", "/api/v2/webhooks", "plan that includes webhooks"),
        ("servicenow", "/api/now/table/sys_properties", "'admin' role"),
    ],
)
def test_no_admin_rights_says_what_to_do(tmp_path, fake, capsys, platform, prefix, advice):
    fake.forbidden.add(prefix)
    status, _, err = run(capsys, "install", platform, "--config", write_config(tmp_path, fake, platform))
    assert status == 1
    assert "403" in err and advice in err
    assert fake.writes() == []


def test_install_without_a_public_url_says_how_to_give_one(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, "jira", public="")
    status, _, err = run(capsys, "install", "jira", "--config", config)
    assert status == 1 and "--url" in err and "server.public_url" in err
    status, _, err = run(capsys, "install", "jira", "--config", config, "--url", PUBLIC, "--dry-run")
    assert status == 0


def test_install_of_a_platform_missing_from_the_config(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, "jira")
    status, _, err = run(capsys, "install", "zendesk", "--config", config)
    assert status == 1 and "no platforms.zendesk section" in err


def test_an_unwritable_secret_file_still_hands_the_secret_over(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, "zendesk")
    missing = tmp_path / "no-such-dir" / "zendesk.secret"
    status, out, _ = run(capsys, "install", "zendesk", "--config", config, "--secret-file", str(missing))
    assert status == 0
    [hook_id] = fake.zendesk_hooks
    assert f"cannot write {missing}" in out and f"secret-of-{hook_id}" in out
