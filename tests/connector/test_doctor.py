"""`escalator doctor`: one line per finding, FAIL where deliveries or decisions would be lost,
exit 1 when anything fails; it writes nothing and asks each platform one question."""

from __future__ import annotations

import textwrap

import pytest
import responses

from connector.cli import main
from connector.config import EXAMPLE_POLICY, Config
from connector.doctor import FAIL, OK, WARN, diagnose
from tests.support.entry import escalator
from tests.support.fixtures import fixture_bytes, load_fixture

JIRA = "https://acme.atlassian.net"
ZENDESK = "https://acme.zendesk.com"
STRONG = "kq3Yr0XvP9-long-enough"  # a webhook secret doctor accepts
SERVICENOW = "https://acme.service-now.com"
JIRA_ME = load_fixture("jira", "api/myself")  # accountId 5b10a2844c20165700ede21g, "Mia Krystof"


def config(tmp_path, **platforms) -> Config:
    return Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "platforms": platforms})


def jira(**settings) -> dict:
    return {"url": JIRA, "email": "bot@acme.test", "api_token": "t", "webhook_secret": STRONG,
            "account_id": "5b10a2844c20165700ede21g", **settings}  # fmt: skip


def jira_site() -> None:
    """The site's answers to doctor's policy checks (recorded shapes), with all the example names."""
    json_ = "application/json;charset=UTF-8"  # as Jira answers (a page in HTML is not the API)
    responses.get(
        f"{JIRA}/rest/api/2/priority", body=fixture_bytes("jira", "api/priority_list"), content_type=json_
    )
    responses.get(
        f"{JIRA}/rest/api/2/field", body=fixture_bytes("jira", "api/field_list"), content_type=json_
    )
    responses.get(f"{JIRA}/rest/api/2/user/bulk", json=load_fixture("jira", "api/user_bulk"))


def zendesk_site() -> None:
    responses.get(f"{ZENDESK}/api/v2/groups.json", json=load_fixture("zendesk", "api/groups"))
    responses.get(f"{ZENDESK}/api/v2/ticket_fields.json", json=load_fixture("zendesk", "api/ticket_fields"))


def findings_of(found, subject: str) -> list[tuple[str, str]]:
    return [(f.level, f.message) for f in found if f.subject == subject]


def test_the_embedded_default_writes_nothing_and_only_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "warn  database: sqlite:///escalator.db does not exist yet" in out
    assert "warn  config: no platform is configured" in out
    assert "ok    policy: policy global-support v1" in out
    assert out.rstrip().endswith("doctor: 0 problems, 4 warnings")
    assert list(tmp_path.iterdir()) == []  # not even the SQLite file


def test_a_migrated_database_is_ok(db_url, engine):  # SQLite and the real PostgreSQL
    found = diagnose(Config.model_validate({"database": db_url}), online=False)
    ((level, message),) = findings_of(found, "database")
    assert level == OK and message.endswith(f"schema at {_head()}")


def test_a_database_a_newer_escalator_migrated_fails(db_url, engine):  # SQLite and the real PostgreSQL
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9001'")
    found = diagnose(Config.model_validate({"database": db_url}), online=False)
    ((level, message),) = findings_of(found, "database")
    assert level == FAIL and "schema at 9001, which this Escalator does not know" in message


def _head() -> str:
    """The newest migration: helpers add revisions, so the test names none."""
    from alembic.script import ScriptDirectory

    from connector.store.db import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_an_unreachable_database_fails_without_showing_its_password():

    gone = Config.model_validate({"database": "postgresql://nobody:secret@127.0.0.1:1/escalator"})
    ((level, message),) = findings_of(diagnose(gone, online=False), "database")
    assert level == FAIL and message.startswith("cannot connect to postgresql://nobody:***@127.0.0.1:1/")


@responses.activate
def test_credentials_acting_as_our_configured_account_are_ok(tmp_path):
    responses.get(f"{JIRA}/rest/api/2/myself", json=JIRA_ME)
    jira_site()
    found = diagnose(config(tmp_path, jira=jira()))
    assert findings_of(found, "jira")[0] == (
        OK, "the credentials act as 5b10a2844c20165700ede21g (Mia Krystof), "
            "the same account as platforms.jira.account_id",
    )  # fmt: skip
    assert [level for level, _ in findings_of(found, "jira")] == [
        OK
    ] * 4  # identity, priorities, fields, users
    assert len(responses.calls) == 4  # one request per kind


@responses.activate
def test_an_account_id_that_is_not_the_credentials_account_fails_as_a_loop(tmp_path, capsys):
    responses.get(f"{JIRA}/rest/api/2/myself", json=JIRA_ME)
    jira_site()
    path = tmp_path / "escalator.yaml"
    path.write_text(
        textwrap.dedent(f"""
        database: sqlite:///{tmp_path / "x.db"}
        platforms:
          jira: {{url: {JIRA}, email: b@acme.test, api_token: t, webhook_secret: {STRONG},
                  account_id: someone-else}}
        """)
    )
    assert main(["doctor", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "FAIL  jira: platforms.jira.account_id is 'someone-else' but the credentials act as "
        "5b10a2844c20165700ede21g (Mia Krystof): Escalator's own edits would come back as a person's"
    ) in out
    assert "doctor: 1 problem, 2 warnings" in out  # the database is not created yet; no audit keys


@responses.activate
def test_an_unset_identity_is_a_warning_that_names_the_value_to_set(tmp_path):
    responses.get(f"{ZENDESK}/api/v2/users/me.json", json=load_fixture("zendesk", "api/users_me"))
    zendesk_site()
    zendesk = {"url": ZENDESK, "email": "bot@acme.test", "api_token": "t", "webhook_secret": STRONG}
    (level, message), *site = findings_of(diagnose(config(tmp_path, zendesk=zendesk)), "zendesk")
    assert [level for level, _ in site] == [OK, OK]  # fields, groups
    assert level == WARN
    assert message.endswith("the credentials act as 6164070000001 (Escalator (agent)): "
                            "set platforms.zendesk.user_id: '6164070000001'")  # fmt: skip


@responses.activate
def test_credentials_the_platform_refuses_fail_with_its_answer(tmp_path):
    error = {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}}
    responses.get(f"{SERVICENOW}/api/now/table/sys_user", status=401, json=error)
    servicenow = {
        "instance": "acme", "user": "escalator.bot", "password": "wrong", "webhook_secret": STRONG,
    }  # fmt: skip
    ((level, message),) = findings_of(diagnose(config(tmp_path, servicenow=servicenow)), "servicenow")
    assert level == FAIL and message.startswith("the credentials do not work:")
    assert "401" in message and "User Not Authenticated" in message


@responses.activate
def test_an_unreachable_platform_fails_with_the_url(tmp_path):
    found = diagnose(config(tmp_path, jira=jira(url="http://127.0.0.1:9")))
    ((level, message),) = findings_of(found, "jira")
    assert level == FAIL and "http://127.0.0.1:9/rest/api/2/myself" in message
    assert message.startswith("could not ask who the credentials belong to (try again):")


@pytest.mark.parametrize("status, headers", [(429, {"Retry-After": "30"}), (503, {})])
@responses.activate
def test_a_busy_or_failing_platform_says_nothing_about_the_credentials(tmp_path, status, headers):
    responses.get(f"{JIRA}/rest/api/2/myself", status=status, headers=headers, body="busy")
    ((level, message),) = findings_of(diagnose(config(tmp_path, jira=jira())), "jira")
    assert level == FAIL and message.startswith("could not ask who the credentials belong to (try again):")
    assert str(status) in message and "credentials do not work" not in message


@responses.activate
def test_an_answer_that_is_not_the_platforms_api_points_at_the_url(tmp_path):
    # e.g. the url names the company's login page: 200 with HTML, no accountId
    responses.get(f"{JIRA}/rest/api/2/myself", body="<html>Sign in</html>", content_type="text/html")
    ((level, message),) = findings_of(diagnose(config(tmp_path, jira=jira())), "jira")
    assert level == FAIL and "answered GET https://acme.atlassian.net/rest/api/2/myself with 200" in message
    assert message.endswith("text/html, not JSON (a login page or a proxy in front of it, or a url that is "
                            "not the site's?)")  # fmt: skip


def test_what_refuses_deliveries_or_fails_events_is_a_problem(tmp_path):
    policy = tmp_path / "policy.yaml"
    text = EXAMPLE_POLICY.read_text()
    start = text.index("\n  jira:")
    end = text.index("\n  zendesk:")
    policy.write_text(text[:start] + text[end:])  # the policy forgets Jira
    cfg = Config.model_validate(
        {
            "database": f"sqlite:///{tmp_path / 'x.db'}",
            "policy": str(policy),
            "platforms": {"jira": {"url": JIRA}},
        }
    )
    assert findings_of(diagnose(cfg), "jira") == [
        (FAIL, "platforms.jira.webhook_secret is not set: every delivery is refused with 401"),
        (FAIL, "policy 'global-support' has no platforms.jira section: every jira event would fail"),
        (WARN, "no write credentials: decisions are audited as dry runs"),
    ]


def test_a_broken_policy_fails_with_file_and_line(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text() + "\nsurprise: 1\n")
    cfg = Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "policy": str(policy)})
    ((level, message),) = findings_of(diagnose(cfg, online=False), "policy")
    assert level == FAIL and f"{policy}:" in message and "surprise" in message


@responses.activate
def test_offline_asks_no_platform_and_still_flags_a_missing_identity(tmp_path):
    found = diagnose(config(tmp_path, jira=jira(account_id=None)), online=False)
    assert findings_of(found, "jira") == [
        (WARN, "platforms.jira.account_id is not set: Escalator cannot tell its own edits from a person's")
    ]
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    "dry_run, expected", [(True, "dry_run is on:"), (None, "dry_run is on (no platform")]
)
def test_dry_run_is_a_warning(tmp_path, dry_run, expected):
    cfg = Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "dry_run": dry_run})
    assert any(f.level == WARN and f.message.startswith(expected) for f in diagnose(cfg, online=False))


@pytest.mark.parametrize(
    "secret, why",
    [("dev-secret", "is an example value from the docs"), ("short-secret", "is 12 bytes, shorter than 16")],
)
def test_an_example_or_short_webhook_secret_fails(tmp_path, secret, why):
    path = tmp_path / "escalator.yaml"
    path.write_text(
        f"database: sqlite:///{tmp_path / 'x.db'}\n"
        f"platforms:\n  jira: {{url: {JIRA}, webhook_secret: {secret}}}\n"
    )
    done = escalator("doctor", "--offline", "--config", str(path))
    assert done.returncode == 1
    assert f"FAIL  jira: platforms.jira.webhook_secret {why}: anyone could sign deliveries" in done.stdout
    assert secret not in done.stdout  # the finding names the problem, never the secret


def test_console_users_without_a_shared_secret_key_are_a_warning(tmp_path):
    # The shipped gunicorn unit runs 4 workers: with a random key each, a log-in held on one of them only.
    users = {"vera": {"role": "viewer", "password_hash": "pbkdf2:sha256:1000$salt$hash"}}
    cfg = Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "console": {"users": users}})
    ((level, message),) = findings_of(diagnose(cfg, online=False), "console")
    assert level == WARN and message.startswith("console.secret_key is not set: each process signs")
    keyed = {"users": users, "secret_key": "k" * 32}
    cfg = Config.model_validate({"database": f"sqlite:///{tmp_path / 'x.db'}", "console": keyed})
    assert findings_of(diagnose(cfg, online=False), "console") == []
