"""Loading a policy file: every problem found, each with FILE:LINE, or a compiled `Policy`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ruamel.yaml.comments import CommentedMap

from .build import Builder
from .build_platforms import build_platforms, warn_labels_without_field
from .build_sla import build_sla, ticket_condition, warn_unreachable_time_rules
from .build_teams import warn_handover_rules_without_rota
from .policy import NEXT_TIER, Policy
from .problems import PolicyError, Problem, errors
from .schema import PolicyHead
from .source import line_finder, parse_yaml, to_plain, validate
from .templates import known_locale
from .variables import zero_sample


def load_policy(path: str | Path) -> Policy:
    """The compiled policy in `path`; raises PolicyError listing every problem when it has any."""
    policy, problems = _load(path)
    if policy is None:
        raise PolicyError(problems)
    return policy


def check_policy(path: str | Path) -> list[Problem]:
    """Every problem (errors and warnings) in the policy file at `path`, by line; never raises."""
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
    """Parse, validate and compile policy source; the policy when there are no errors (warnings allowed)."""
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

    language = data.get("default_language")
    if isinstance(language, str) and language:
        b.default_language = language
        if not known_locale(language):
            b.problem(("default_language",), f"default_language: unknown language '{language}' "
                      "(a locale such as en, id, de, pt_BR)")  # fmt: skip
    b.languages[b.default_language] = None
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
            "priority_from": "matrix",
        },
        "rule": {"name": ""},
        "event": {**zero_sample(fields)["event"], "at": ""},
        "policy": {"name": name, "version": data.get("version")},
    }
    rules = b.build_rules(data["rules"], note_sample) if isinstance(data.get("rules"), list) else ()
    scope = None
    if data.get("scope") is not None:
        scope = (
            ticket_condition(b, data["scope"], ("scope",), "scope")
            if isinstance(data["scope"], str)
            else None
        )
    sla = build_sla(b, data["sla"]) if data.get("sla") is not None else None
    b.calendars = sla.calendars if sla is not None else None if data.get("sla") is not None else {}
    platforms = build_platforms(b, _mapping(data.get("platforms")))
    if sla is not None or data.get("sla") is None:  # a broken section has its own problems
        warn_unreachable_time_rules(b, data.get("rules"), sla)
    warn_labels_without_field(b, rules, platforms)
    warn_handover_rules_without_rota(b, data.get("rules"), platforms)

    found = sorted(dict.fromkeys(b.problems), key=lambda p: p.line)
    if errors(found) or priority is None or not b.tiers:
        return None, found
    policy = Policy(
        name=name,
        version=data["version"],
        sha256=sha256,
        source=text,
        path=path,
        tiers=b.tiers,
        mode=b.mode,
        priority=priority,
        rules=rules,
        platforms=MappingProxyType(platforms),
        fields=fields,
        description=data.get("description") or "",
        warnings=tuple(found),
        sla=sla,
        scope=scope,
        default_language=b.default_language,
        languages=tuple(b.languages),
        channels=MappingProxyType(dict(b.channels)),
    )
    return policy, found


def _tiers(raw: Any) -> tuple[str, ...] | None:
    """The tier list when its shape is right (the head check reports it otherwise)."""
    if isinstance(raw, list) and raw and all(isinstance(t, str) and t for t in raw):
        return tuple(raw)
    return None


def _mapping(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}
