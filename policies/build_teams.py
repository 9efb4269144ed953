"""A `follow_the_sun` tier target: its teams checked against sla.calendars and the platform's id rules,
each problem at its line; hours of the week that no team works are a warning that names them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from connector.model import EventKind

from .build import Builder
from .follow_the_sun import Rota, Team, describe_runs, uncovered
from .mapping import PlatformMapping, TierTarget
from .schema import TeamSpec, TierTargetSpec
from .source import Loc

# build_platforms' own check of one target (Zendesk ids are numbers, ServiceNow's sys_ids): reused per team
TargetCheck = Callable[[Builder, str, str, TierTargetSpec, Loc], TierTarget]


def build_rota(
    b: Builder, platform: str, tier: str, spec: TierTargetSpec, loc: Loc, check: TargetCheck
) -> TierTarget:
    """The tier's target with its rota; a rota missing a broken team when there are problems."""
    where = f"platforms.{platform}.tiers.{tier}.follow_the_sun"
    teams: list[Team] = []
    names: dict[str, int] = {}
    for i, data in enumerate(spec.follow_the_sun or ()):
        here: Loc = loc + ("follow_the_sun", i)
        team: TeamSpec | None = b.section(TeamSpec, data, here, f"{where}[{i}]")
        if team is None:
            continue
        name = team.name or team.calendar
        if name in names:
            b.problem(
                here,
                f"{where}[{i}]: two teams are called '{name}' (the first is entry {names[name]}); "
                "give one a 'name:'",
            )
            continue
        names[name] = i
        calendar = _calendar(b, team.calendar, here + ("calendar",), f"{where}[{i}].calendar")
        target = check(
            b,
            platform,
            f"{tier}.follow_the_sun[{i}]",
            TierTargetSpec(assignee=team.assignee, group=team.group, fields={**spec.fields, **team.fields}),
            here,
        )
        if calendar is not None:
            teams.append(Team(name, calendar, target))
    if spec.fallback is not None and spec.fallback not in names:
        b.problem(
            loc + ("fallback",),
            f"platforms.{platform}.tiers.{tier}.fallback: '{spec.fallback}' is not one of its teams "
            f"(teams: {', '.join(names) or 'none'})",
        )
    rota = Rota(tuple(teams), spec.fallback)
    if teams and len(teams) == len(spec.follow_the_sun or ()) and spec.fallback is None:
        gaps = uncovered([t.calendar for t in teams])
        if gaps:
            b.warning(
                loc + ("follow_the_sun",),
                f"{where}: no team works {describe_runs(gaps)} (UTC, weeks without holidays); a ticket "
                "escalated then waits for the team that opens first. Add a team, widen their hours, or "
                "name a 'fallback'",
            )
    return TierTarget(fields=MappingProxyType(dict(spec.fields)), rota=rota)


def _calendar(b: Builder, name: str, loc: Loc, where: str) -> Any:
    if b.calendars is None:  # the sla section is broken; its own problems say why
        return None
    if not b.calendars:
        b.problem(
            loc,
            f"{where}: unknown calendar '{name}': a follow_the_sun team works on one of sla.calendars, "
            "and this policy has no sla section",
        )
        return None
    calendar = b.calendars.get(name)
    if calendar is None:
        b.problem(loc, f"{where}: unknown calendar '{name}' (calendars: {', '.join(b.calendars)})")
    return calendar


def warn_handover_rules_without_rota(
    b: Builder, raw_rules: Any, platforms: Mapping[str, PlatformMapping]
) -> None:
    """A rule `on: handover` where no tier follows the sun never fires: a warning at its entry."""
    if not isinstance(raw_rules, list):
        return
    if any(t.rota is not None for mapping in platforms.values() for t in mapping.tiers.values()):
        return
    for i, data in enumerate(raw_rules):
        on = data.get("on") if isinstance(data, dict) else None
        kinds = [on] if isinstance(on, str) else on if isinstance(on, list) else []
        name = data.get("name") if isinstance(data, dict) else None
        label = f"rule '{name}'" if isinstance(name, str) and name else f"rules[{i}]"
        for j, kind in enumerate(kinds):
            if kind == EventKind.HANDOVER:
                loc: Loc = ("rules", i, "on", j) if isinstance(on, list) else ("rules", i, "on")
                b.warning(loc, f"{label}: 'handover' never happens: no tier of platforms follows the sun")
