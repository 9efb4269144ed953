from __future__ import annotations

import textwrap

import pytest

from connector.config import EXAMPLE_POLICY, ConfigError, load_config


def _write(tmp_path, text):
    path = tmp_path / "escalator.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_no_file_is_the_embedded_default():
    config = load_config(None)
    assert config.database == "sqlite:///escalator.db"
    assert config.policy == str(EXAMPLE_POLICY)
    assert config.effective_dry_run is True
    assert config.configured_platforms == {}


def test_env_substitution_and_relative_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("JIRA_TOKEN", "s3cret")
    path = _write(
        tmp_path,
        """
        database: sqlite:///x.db
        policy: policies/mine.yaml
        platforms:
          jira:
            url: https://acme.atlassian.net/
            email: bot@acme.test
            api_token: ${JIRA_TOKEN}
            webhook_secret: ${JIRA_WEBHOOK_SECRET:-dev-secret}
            account_id: bot-account
        """,
    )
    config = load_config(path)
    jira = config.platform("jira")
    assert jira.api_token == "s3cret" and jira.webhook_secret == "dev-secret"
    assert jira.url == "https://acme.atlassian.net"
    assert config.policy == str(tmp_path / "policies" / "mine.yaml")
    assert config.effective_dry_run is False


def test_unset_env_var_names_key_and_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    path = _write(
        tmp_path, "platforms:\n  jira:\n    url: https://a.atlassian.net\n    api_token: ${NOPE_TOKEN}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:4: platforms.jira.api_token: environment variable NOPE_TOKEN is not set" in str(err.value)


def test_unknown_keys_and_bad_values_are_each_named(tmp_path):
    path = _write(
        tmp_path,
        """
        database: sqlite:///x.db
        dryrun: true
        server:
          port: 99999
        platforms:
          jira:
            url: https://a.atlassian.net
            notes: sometimes
          freshdesk: {}
        """,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}:3: dryrun: unknown key 'dryrun'" in message
    assert "known keys: database, policy, dry_run" in message
    assert f"{path}:5: server.port:" in message
    assert f"{path}:9: platforms.jira.notes:" in message
    assert f"{path}:10: platforms.freshdesk: unknown key 'freshdesk'" in message


def test_missing_required_key(tmp_path):
    path = _write(tmp_path, "platforms:\n  jira:\n    email: a@b.c\n")
    with pytest.raises(ConfigError, match=r":2: platforms.jira.url: is required but missing"):
        load_config(path)


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = _write(tmp_path, "database: [unclosed\npolicy: x\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.yaml")


def test_the_shipped_example_config_loads(monkeypatch):
    from pathlib import Path

    for name in ("JIRA_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_WEBHOOK_SECRET", "JIRA_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(Path(__file__).resolve().parents[2] / "escalator.example.yaml")
    assert config.effective_dry_run is True
    assert config.platform("jira").webhook_secret == "dev-secret"
    assert config.platform("jira").can_write is False


def test_an_impossible_date_is_reported_not_a_crash(tmp_path):
    path = tmp_path / "escalator.yaml"
    path.write_text("database: sqlite:///x.db\nlog_format: 2026-12-32\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: log_format:"):
        load_config(path)
