"""The `platforms` section: each platform's names, checked against what its API accepts, at their lines."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from connector.model import AddLabel, Priority, RemoveLabel

from .build import Builder
from .build_teams import build_rota
from .mapping import (
    KNOWN_PLATFORMS,
    SERVICENOW_LEVELS,
    SERVICENOW_PRIORITY_FIELDS,
    ZENDESK_PRIORITIES,
    PlatformMapping,
    TierTarget,
)
from .policy import Rule
from .schema import PlatformSpec, TierTargetSpec
from .source import Loc


def build_platforms(b: Builder, raw: Mapping[str, Any]) -> dict[str, PlatformMapping]:
    out = {}
    declared = {f.name for f in b.fields}
    for platform, data in raw.items():
        loc: Loc = ("platforms", platform)
        if platform not in KNOWN_PLATFORMS:
            b.problem(loc, f"platforms: unknown platform '{platform}' (known: {', '.join(KNOWN_PLATFORMS)})")
            continue
        spec: PlatformSpec | None = b.section(PlatformSpec, data, loc)
        if spec is None:
            continue
        where = f"platforms.{platform}"
        missing = [p.value for p in Priority if p.value not in spec.priorities]
        if missing:
            b.problem(
                loc + ("priorities",),
                f"{where}.priorities: missing {', '.join(missing)} (all of P1, P2, P3, P4 must be mapped)",
            )
        priorities, names = _platform_priorities(b, platform, spec.priorities, loc + ("priorities",))
        for tier in spec.tiers:
            if b.tiers is not None and tier not in b.tiers:
                b.problem(
                    loc + ("tiers", tier),
                    f"{where}.tiers: unknown tier '{tier}' (tiers: {', '.join(b.tiers)})",
                )
        for tier in b.tiers or ():
            if tier not in spec.tiers:
                b.problem(
                    loc + ("tiers",),
                    f"{where}.tiers: tier '{tier}' is not mapped on platform '{platform}' "
                    "(every tier in 'tiers' needs a target on every platform)",
                )
        for name in spec.fields:
            if name not in declared:
                b.problem(
                    loc + ("fields", name),
                    f"{where}.fields: '{name}' is not declared under the top-level 'fields:'",
                )
        if spec.labels_field is not None and platform != "servicenow":
            b.problem(
                loc + ("labels_field",),
                f"{where}.labels_field: only for servicenow, whose incidents have no labels "
                f"({platform} keeps labels itself)",
            )
        targets = {}
        for tier, target_data in spec.tiers.items():
            target = b.section(TierTargetSpec, target_data, loc + ("tiers", tier))
            if target is not None:
                targets[tier] = _tier_target(b, platform, tier, target, loc + ("tiers", tier))
        order = {t: i for i, t in enumerate(b.tiers or ())}
        ordered = sorted(targets.items(), key=lambda item: order.get(item[0], len(order)))
        out[platform] = PlatformMapping(
            platform=platform,
            priorities=MappingProxyType(priorities),
            tiers=MappingProxyType(dict(ordered)),
            fields=MappingProxyType(dict(spec.fields)),
            labels_field=spec.labels_field,
            names=MappingProxyType(names),
        )
    return out


def warn_labels_without_field(
    b: Builder, rules: Sequence[Rule], platforms: Mapping[str, PlatformMapping]
) -> None:
    """ServiceNow incidents have no labels: without `labels_field` the rules' labels are not written."""
    snow = platforms.get("servicenow")
    labelled = any(isinstance(step, AddLabel | RemoveLabel) for rule in rules for step in rule.then)
    if snow is not None and snow.labels_field is None and labelled:
        b.warning(
            ("platforms", "servicenow"),
            "platforms.servicenow: rules add or remove labels, but incidents have no labels; set "
            "labels_field to a text field that keeps them, or they are not written on ServiceNow",
        )


def _platform_priorities(
    b: Builder, platform: str, raw: Mapping[str, Any], loc: Loc
) -> tuple[dict[Priority, str | Mapping[str, str]], dict[Priority, tuple[str, ...]]]:
    """Each platform's priority values checked against what its API accepts; duplicates refused.

    On Jira and Zendesk a level may read from several names (`P1: [Highest, Blocker]`): the first is
    what Escalator writes. Returns the written value per level and every name per level.
    """
    where = f"platforms.{platform}.priorities"
    out: dict[Priority, str | Mapping[str, str]] = {}
    names: dict[Priority, tuple[str, ...]] = {}
    seen: dict[Any, str] = {}
    for p, value in raw.items():
        here = loc + (p,)
        if platform == "servicenow":
            value = _servicenow_priority(b, value, here, f"{where}.{p}")
            if value is None:
                continue
            same = tuple(sorted(value.items()))
            shown = ", ".join(f"{k}: {v}" for k, v in value.items())
            if same in seen:
                b.problem(here, f"{where}: {seen[same]} and {p} both map to '{shown}'")
                continue
            seen[same] = p
            out[Priority(p)] = value
            continue
        listed = value if isinstance(value, list) else [value]
        kept: list[str] = []
        for i, name in enumerate(listed):
            at = here + (i,) if isinstance(value, list) else here
            platform_name = "Zendesk" if platform == "zendesk" else "Jira"
            if isinstance(name, dict):
                b.problem(at, f"{where}.{p}: must be the name of a {platform_name} priority (got a mapping)")
                continue
            if platform == "zendesk" and name not in ZENDESK_PRIORITIES:
                b.problem(
                    at,
                    f"{where}.{p}: '{name}' is not a Zendesk priority "
                    f"(known: {', '.join(ZENDESK_PRIORITIES)})",
                )
                continue
            if name.casefold() in seen:
                b.problem(at, f"{where}: {seen[name.casefold()]} and {p} both map to '{name}'")
                continue
            seen[name.casefold()] = p
            kept.append(name)
        if kept and len(kept) == len(listed):
            out[Priority(p)] = kept[0]
            names[Priority(p)] = tuple(kept)
    return out, names


def _servicenow_priority(b: Builder, value: Any, loc: Loc, where: str) -> Mapping[str, str] | None:
    """`{impact: 1, urgency: 2}` with levels 1–3 (numbers or digit strings), kept as strings."""
    if not isinstance(value, dict):
        b.problem(
            loc,
            f"{where}: must be a mapping of the incident's impact and urgency, "
            f"e.g. {{impact: 1, urgency: 1}} (got {value!r})",
        )
        return None
    ok = True
    for key, level in value.items():
        if key not in SERVICENOW_PRIORITY_FIELDS:
            b.problem(
                loc + (key,),
                f"{where}: unknown key '{key}' (known: {', '.join(SERVICENOW_PRIORITY_FIELDS)}; "
                "ServiceNow computes the priority from them)",
            )
            ok = False
        elif isinstance(level, bool) or str(level) not in SERVICENOW_LEVELS:
            b.problem(loc + (key,), f"{where}.{key}: must be 1, 2 or 3 (got {level!r})")
            ok = False
    missing = [k for k in SERVICENOW_PRIORITY_FIELDS if k not in value]
    if missing:
        b.problem(
            loc,
            f"{where}: missing {', '.join(missing)} (a ServiceNow priority is set through "
            "both impact and urgency)",
        )
        ok = False
    return MappingProxyType({k: str(value[k]) for k in SERVICENOW_PRIORITY_FIELDS}) if ok else None


def _tier_target(b: Builder, platform: str, tier: str, spec: TierTargetSpec, loc: Loc) -> TierTarget:
    """The target with the platform's id rules: Zendesk ids are numbers; ServiceNow field values text."""
    if spec.follow_the_sun is not None:
        return build_rota(b, platform, tier, spec, loc, _tier_target)
    where = f"platforms.{platform}.tiers.{tier}"
    fields = dict(spec.fields)
    if platform == "zendesk":
        for key in ("assignee", "group"):
            value = getattr(spec, key)
            if value is not None and not value.strip().isdigit():
                b.problem(
                    loc + (key,),
                    f"{where}.{key}: a Zendesk {'user' if key == 'assignee' else 'group'} id "
                    f"is a number (got {value!r})",
                )
    elif platform == "servicenow":
        # ServiceNow sends field values back as strings; text here keeps re-evaluations convergent
        fields = {k: _servicenow_text(v) for k, v in fields.items()}
        for key in ("assignee", "group"):
            value = getattr(spec, key)
            if value is not None and not _SYS_ID.match(value):
                b.warning(
                    loc + (key,),
                    f"{where}.{key}: '{value}' does not look like a sys_id (32 hex characters); "
                    f"ServiceNow's {'assigned_to' if key == 'assignee' else 'assignment_group'} "
                    "expects the record's sys_id",
                )
    assignee = spec.assignee.strip() if spec.assignee else None
    group = spec.group.strip() if spec.group else None
    return TierTarget(assignee, group, MappingProxyType(fields))


_SYS_ID = re.compile(r"[0-9a-f]{32}\Z")


def _servicenow_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value
