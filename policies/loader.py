"""Loading a policy file: every problem found, each with FILE:LINE, or a compiled `Policy`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ruamel.yaml.comments import CommentedMap

from .build import Builder
from .policy import NEXT_TIER, Policy
from .problems import PolicyError, Problem
from .schema import PolicyHead
from .source import line_finder, parse_yaml, to_plain, validate
from .variables import zero_sample


def load_policy(path: str | Path) -> Policy:
    """The compiled policy in `path`; raises PolicyError listing every problem when it has any."""
    policy, problems = _load(path)
    if problems or policy is None:
        raise PolicyError(problems)
    return policy


def check_policy(path: str | Path) -> list[Problem]:
    """Every problem in the policy file at `path` ([] when it is valid); never raises for a bad file."""
    return _load(path)[1]


def _load(path: str | Path) -> tuple[Policy | None, list[Problem]]:
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, [Problem(name, 0, f"cannot read the policy file: {exc.strerror or exc}")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [Problem(name, line, f"the policy file is not UTF-8 text: {exc.reason}")]
    return compile_policy(text, name, hashlib.sha256(data).hexdigest())


def compile_policy(text: str, path: str, sha256: str) -> tuple[Policy | None, list[Problem]]:
    """Parse, validate and compile policy source; the policy only when there are no problems."""
    root, problems = parse_yaml(text, path)
    if problems:
        return None, problems
    if root is None:
        return None, [Problem(path, 1, "the policy file is empty")]
    if not isinstance(root, CommentedMap):
        return None, [
            Problem(path, 1, "a policy file is a mapping at the top level (policy:, version:, tiers:, …)")
        ]
    line_of = line_finder(root)
    data: dict[str, Any] = to_plain(root)
    _, problems = validate(PolicyHead, data, path=path, line_of=line_of, prefix=())

    name = data.get("policy") if isinstance(data.get("policy"), str) else "?"
    b = Builder(path, line_of, name, data.get("version"), _tiers(data.get("tiers")), problems)
    for i, tier in enumerate(b.tiers or ()):
        if tier == NEXT_TIER:
            b.problem(
                ("tiers", i), f"tiers: '{NEXT_TIER}' cannot be a tier name (escalate: next means one tier up)"
            )
        elif tier in (b.tiers or ())[:i]:
            b.problem(("tiers", i), f"tiers: '{tier}' is listed twice")

    fields = b.build_fields(_mapping(data.get("fields")))
    priority = b.build_priority(data["priority"]) if "priority" in data else None
    first = priority.impact[-1].level if priority and priority.impact else ""
    column = priority.urgency[-1].level if priority and priority.urgency else ""
    lowest = (b.tiers or ("",))[0]
    note_sample = {
        **zero_sample(fields),
        "decision": {
            "priority": "P4",
            "priority_before": "",
            "tier": lowest,
            "tier_before": lowest,
            "impact": first,
            "urgency": column,
        },
        "rule": {"name": ""},
        "policy": {"name": name, "version": data.get("version")},
    }
    rules = b.build_rules(data["rules"], note_sample) if isinstance(data.get("rules"), list) else ()
    platforms = b.build_platforms(_mapping(data.get("platforms")))

    if b.problems or priority is None or not b.tiers:
        return None, sorted(dict.fromkeys(b.problems), key=lambda p: p.line)
    policy = Policy(
        name=name,
        version=data["version"],
        sha256=sha256,
        path=path,
        tiers=b.tiers,
        mode=b.mode,
        priority=priority,
        rules=rules,
        platforms=MappingProxyType(platforms),
        fields=fields,
        description=data.get("description") or "",
    )
    return policy, []


def _tiers(raw: Any) -> tuple[str, ...] | None:
    """The tier list when its shape is right (the head check reports it otherwise)."""
    if isinstance(raw, list) and raw and all(isinstance(t, str) and t for t in raw):
        return tuple(raw)
    return None


def _mapping(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}
