"""Recorded platform payloads under tests/fixtures/<platform>/<event>__<variant>.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_path(platform: str, name: str) -> Path:
    """The file of fixture `name` (with or without .json); FileNotFoundError names what is there."""
    path = FIXTURES / platform / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        raise FileNotFoundError(
            f"no fixture {path.name!r} for {platform}; have: {', '.join(fixture_names(platform))}"
        )
    return path


def fixture_bytes(platform: str, name: str) -> bytes:
    """The raw bytes, exactly as the platform sent them (what a signature covers)."""
    return fixture_path(platform, name).read_bytes()


def load_fixture(platform: str, name: str) -> dict[str, Any]:
    """The parsed JSON object (a fresh copy on every call, safe to modify)."""
    payload = json.loads(fixture_bytes(platform, name))
    if not isinstance(payload, dict):
        raise ValueError(f"fixture {platform}/{name} is not a JSON object")
    return payload


def fixture_names(platform: str) -> list[str]:
    """Every fixture name of `platform` (without .json), sorted."""
    return sorted(path.stem for path in (FIXTURES / platform).glob("*.json"))
