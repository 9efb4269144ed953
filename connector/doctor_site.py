"""`escalator doctor`, online: does the live site have what the policy names? One request per kind
(priorities, fields, users, groups), each name the site lacks a FAIL that says what to change."""

from __future__ import annotations

from collections.abc import Iterator

from platforms.base import SITE_FIELDS, SITE_GROUPS, SITE_PRIORITIES, SITE_USERS, SiteNames
from platforms.errors import PlatformError
from policies import PlatformMapping

OK, WARN, FAIL = "ok", "warn", "FAIL"
_KINDS = {SITE_PRIORITIES: "priority", SITE_FIELDS: "field", SITE_USERS: "user", SITE_GROUPS: "group"}


def site_findings(key: str, client, mapping: PlatformMapping) -> Iterator[tuple[str, str]]:
    """(level, message) for each kind the policy names on platform `key`."""
    wanted = _wanted(key, mapping)
    for kind, names in wanted.items():
        if not names and kind != SITE_PRIORITIES:
            continue
        try:
            site = client.site_names(kind, frozenset(names))
        except PlatformError as exc:
            yield WARN, f"could not check the policy's {_KINDS[kind]} names against the site: {exc}"
            continue
        if site is None:
            continue
        missing = [
            (where, name) for name, places in names.items() for where in places if not _has(site, kind, name)
        ]
        if not missing:
            yield OK, f"every {_KINDS[kind]} the policy names exists on the site ({site.what})"
        for where, name in missing:
            level = FAIL if site.complete else WARN
            yield level, _missing(key, kind, where, name, site)


def _wanted(key: str, mapping: PlatformMapping) -> dict[str, dict[str, list[str]]]:
    """Per kind: each name or id the policy uses → where it is written in the policy."""
    out: dict[str, dict[str, list[str]]] = {kind: {} for kind in _KINDS}

    def add(kind: str, name: str, where: str) -> None:
        out[kind].setdefault(name, []).append(where)

    for priority in mapping.priorities:
        for name in mapping.names_of(priority):
            add(SITE_PRIORITIES, name, f"platforms.{key}.priorities.{priority.value}")
    for field, ident in mapping.fields.items():
        add(SITE_FIELDS, ident, f"platforms.{key}.fields.{field}")
    if mapping.labels_field:
        add(SITE_FIELDS, mapping.labels_field, f"platforms.{key}.labels_field")
    for tier, tier_target in mapping.tiers.items():
        # a follow-the-sun tier: each team's assignee / group, named by its entry
        teams = tier_target.rota.teams if tier_target.rota is not None else ()
        targets = [(f"{tier}.follow_the_sun[{i}]", team.target) for i, team in enumerate(teams)]
        for where, target in targets or [(tier, tier_target)]:
            if target.assignee:
                add(SITE_USERS, target.assignee, f"platforms.{key}.tiers.{where}.assignee")
            if target.group:
                add(SITE_GROUPS, target.group, f"platforms.{key}.tiers.{where}.group")
            for field in target.fields:
                add(SITE_FIELDS, field, f"platforms.{key}.tiers.{where}.fields")
    return out


def _has(site: SiteNames, kind: str, name: str) -> bool:
    if kind == SITE_PRIORITIES:  # Jira compares priority names without case
        return name.casefold() in {n.casefold() for n in site.found}
    return name in site.found


def _missing(key: str, kind: str, where: str, name: str, site: SiteNames) -> str:
    partial = "" if site.complete else " (only the first page was read: check it by hand)"
    if kind == SITE_PRIORITIES:
        have = ", ".join(sorted(site.found)) or "none"
        return (
            f"{where}: '{name}' is not a priority on the site (it has: {have}): "
            f"use one of those names, or add '{name}' to the site's priority scheme"
        )
    fix = {
        SITE_FIELDS: "use the id of an existing field"
        + (", or create the field" if "labels_field" in where else ""),
        SITE_USERS: "use the id of the person who works that tier",
        SITE_GROUPS: "use the id of the group that works that tier",
    }[kind]
    return f"{where}: '{name}' is not a {_KINDS[kind]} on the site ({site.what}){partial}: {fix}"
