"""Channels in the config, and policies that name channels the config lacks: refused at start, on
reload, and by `policy check --config` with FILE:LINE."""

from __future__ import annotations

import textwrap

import pytest

from connector.cli import main
from connector.config import Config, ConfigError, load_config
from connector.runtime import build_runtime
from policies import PolicyError
from tests.policies.policy_helpers import write_policy

POLICY = """
policy: p
version: 1
priority:
  matrix: {high: {high: P1}}
  impact: [{is: high}]
  urgency: [{is: high}]
tiers: [L1, L2]
rules:
  - name: tell
    on: ticket.created
    then:
      - notify: [oncall, {channel: pager, text: "{{ ticket.key }}"}]
"""


def test_a_policy_naming_an_unknown_channel_is_refused_at_start(sqlite_url, tmp_path):
    policy = write_policy(tmp_path, POLICY)
    channels = {"oncall": {"type": "slack", "channel": "#x"}}
    config = Config.model_validate(
        {"database": sqlite_url, "policy": str(policy), "notifications": {"channels": channels}}
    )
    with pytest.raises(PolicyError) as caught:
        build_runtime(config)
    (problem,) = caught.value.problems
    assert (problem.line, problem.message) == (
        13,
        "notify: channel 'pager' is not in the config's notifications.channels (configured: oncall)",
    )


def test_a_reload_that_names_an_unknown_channel_keeps_the_running_policy(sqlite_url, tmp_path):
    policy = write_policy(tmp_path, POLICY.replace("[oncall, {channel: pager", "[oncall, {channel: oncall"))
    channels = {"oncall": {"type": "slack", "channel": "#x"}}
    rt = build_runtime(Config.model_validate({"database": sqlite_url, "policy": str(policy),
                                              "notifications": {"channels": channels}}))  # fmt: skip
    before = rt.policy.current
    policy.write_text(POLICY)
    with pytest.raises(PolicyError, match="channel 'pager'"):
        rt.policy.reload()
    assert rt.policy.current is before
    rt.close()


def test_policy_check_with_config_reports_file_and_line(tmp_path, capsys):
    policy = write_policy(tmp_path, POLICY)
    config = tmp_path / "escalator.yaml"
    config.write_text("notifications:\n  channels:\n    oncall: {type: slack, channel: '#x'}\n")
    assert main(["policy", "check", "--config", str(config), str(policy)]) == 1
    unknown = "notify: channel 'pager' is not in the config's notifications.channels (configured: oncall)"
    assert capsys.readouterr().out == f"{policy}:13: {unknown}\n"
    assert main(["policy", "check", str(policy)]) == 0  # without a config, channels are not known


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"type": "slack"}, "notifications.channels.oncall.slack.channel: is required but missing"),
        ({"type": "pigeon"}, "notifications.channels.oncall"),
        (
            {"type": "webhook", "url": "https://x", "secret": "not base64!"},
            "is not a Standard Webhooks secret",
        ),
        ({"type": "slack", "channel": "#x", "language": "xx_YY"}, "unknown language 'xx_YY'"),
        ({"type": "email", "sender": "a@b.c", "to": []}, "notifications.channels.oncall.email.to"),
    ],
)
def test_wrong_channel_settings_are_named(tmp_path, channel, message):
    config = tmp_path / "escalator.yaml"
    body = "notifications:\n  channels:\n    oncall: " + _flow(channel) + "\n"
    config.write_text(body)
    with pytest.raises(ConfigError, match=None) as caught:
        load_config(config)
    assert message in str(caught.value) and f"{config}:" in str(caught.value)


def test_a_channel_named_note_is_refused(tmp_path):
    config = tmp_path / "escalator.yaml"
    config.write_text("notifications:\n  channels:\n    note: {type: slack, channel: '#x'}\n")
    with pytest.raises(ConfigError, match="'note' is reserved"):
        load_config(config)


def test_secrets_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    config = tmp_path / "escalator.yaml"
    config.write_text(
        textwrap.dedent("""
        notifications:
          channels:
            oncall: {type: slack, token: "${SLACK_BOT_TOKEN}", channel: "#x"}
    """)
    )
    assert load_config(config).notifications.channels["oncall"].token == "xoxb-from-env"


def test_the_example_config_loads_with_no_channel_reachable():
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[2] / "escalator.example.yaml")
    assert {name: c.can_send for name, c in config.notifications.channels.items()} == {
        "oncall": False, "managers": False,
    }  # fmt: skip


def _flow(value) -> str:
    import json

    return json.dumps(value)
