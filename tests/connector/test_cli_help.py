"""The command line as an admin meets it: --version, groups without an action, help and exit codes."""

from __future__ import annotations

import pytest

from connector.version import VERSION
from tests.support.entry import escalator


def test_version_through_the_installed_command():
    done = escalator("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"escalator {VERSION}" and VERSION != "0+unknown"


@pytest.mark.parametrize("group", ["policy", "audit"])
def test_a_group_without_an_action_prints_its_own_help(group):
    done = escalator(group)
    assert done.returncode == 2
    assert done.stdout.startswith(f"usage: escalator {group} ")
    assert "actions:" in done.stdout and "exit codes:" in done.stdout


def test_top_level_help_documents_the_exit_codes():
    done = escalator("--help")
    assert done.returncode == 0
    for code in ("0  done", "1  the command ran and found a problem", "2  it could not run"):
        assert code in done.stdout


def test_every_sub_command_has_a_description():
    import argparse

    from connector.cli import _parser

    def walk(parser: argparse.ArgumentParser, path: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield f"{path} {name}", child
                    yield from walk(child, f"{path} {name}")

    for name, parser in walk(_parser(), "escalator"):
        assert parser.description, f"`{name} --help` has no description"
        assert "exit codes:" in (parser.epilog or ""), f"`{name} --help` does not list the exit codes"


def test_the_readme_walk_through_uses_commands_that_exist():
    """Every `escalator …` line in "Operating Escalator" parses, and it shows the four an admin needs."""
    import re
    import shlex
    from pathlib import Path

    from connector.cli import _parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Operating Escalator", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    commands = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    commands = [part.strip() for c in commands for part in c.split("||") if part.strip()]
    assert {c.split()[1] for c in commands} >= {"ticket", "events", "db", "doctor"}
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "escalator"
        if argv[1:] == ["--version"]:
            continue
        assert hasattr(_parser().parse_args(argv[1:]), "run"), command
