"""The three forms of a replay report: text for a terminal, JSON for tools, Markdown for a review."""

from __future__ import annotations

from collections import Counter
from typing import Any

from connector.replay import ReplayReport, Tally, TicketChange, Verdict

_SECTIONS = (
    ("outcome", "outcomes"),
    ("rule fired", "rules"),
    ("priority after", "priorities"),
    ("tier after", "tiers"),
    ("request", "requests"),
)


def as_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "policy_in_force": report.baseline_policy,
        "candidate_policy": report.candidate_policy,
        "since": report.since.isoformat() if report.since else None,
        "platform": report.platform,
        "deliveries": report.deliveries,
        "in_force_from_audit_log": report.recorded,
        "tickets": report.tickets,
        "skipped": dict(report.skipped),
        "seconds": round(report.seconds, 3),
        "deliveries_per_second": round(report.per_second),
        "in_force": _tally(report.baseline),
        "candidate": _tally(report.candidate),
        "changed_tickets": [_change(c) for c in report.changed],
    }


def _tally(tally: Tally) -> dict[str, Any]:
    out: dict[str, Any] = {attr: dict(sorted(getattr(tally, attr).items())) for _, attr in _SECTIONS}
    out["notifications"] = tally.notifications
    return out


def _verdict(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "outcome": v.outcome,
        "rules": list(v.rules),
        "priority": v.priority,
        "tier": v.tier,
        "note": v.note,
        "requests": list(v.requests),
        "notifications": v.notifications,
    }


def _change(c: TicketChange) -> dict[str, Any]:
    (old_priority, old_tier), (new_priority, new_tier) = c.final
    return {
        "platform": c.platform,
        "ticket_id": c.ticket_id,
        "key": c.key,
        "deliveries": c.deliveries,
        "differing_deliveries": c.differing,
        "final": {
            "in_force": {"priority": old_priority, "tier": old_tier},
            "candidate": {"priority": new_priority, "tier": new_tier},
        },
        "first_difference": {
            "delivery_id": c.first_delivery,
            "received_at": c.first_at.isoformat() if c.first_at else None,
            "in_force": _verdict(c.baseline),
            "candidate": _verdict(c.candidate),
        },
    }


def _rows(report: ReplayReport) -> list[tuple[str, str, int, int]]:
    rows = []
    for label, attr in _SECTIONS:
        old: Counter[str] = getattr(report.baseline, attr)
        new: Counter[str] = getattr(report.candidate, attr)
        for name in sorted(old.keys() | new.keys()):
            rows.append((label, name, old[name], new[name]))
    rows.append(("notifications", "", report.baseline.notifications, report.candidate.notifications))
    return rows


def _head(report: ReplayReport) -> list[str]:
    scope = f"since {report.since.isoformat()}" if report.since else "all kept deliveries"
    scope += f", {report.platform} only" if report.platform else ""
    lines = [
        f"replayed {report.deliveries} deliveries of {report.tickets} tickets ({scope}) "
        f"in {report.seconds:.2f}s ({report.per_second:.0f}/s); nothing was stored or sent",
        f"  in force:  {report.baseline_policy}"
        + (f" ({report.recorded} decisions read from the audit log)" if report.recorded else ""),
        f"  candidate: {report.candidate_policy}",
    ]
    if report.skipped:
        lines.append("  skipped:   " + ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items())))
    return lines


def _describe(c: TicketChange) -> str:
    (old_priority, old_tier), (new_priority, new_tier) = c.final
    parts = []
    if old_priority != new_priority:
        parts.append(f"priority {old_priority or '-'} → {new_priority or '-'}")
    if old_tier != new_tier:
        parts.append(f"tier {old_tier or '-'} → {new_tier or '-'}")
    if not parts:
        parts.append("same end state, different decisions on the way (notes, priority or tier)")
    assert c.baseline is not None and c.candidate is not None
    first = c.first_at.isoformat() if c.first_at else "?"
    return (
        f"{c.platform} {c.key or c.ticket_id}: {', '.join(parts)}; {c.differing} of {c.deliveries} "
        f"deliveries differ, first {c.first_delivery} at {first}: "
        f"rules {', '.join(c.baseline.rules) or 'none'} → {', '.join(c.candidate.rules) or 'none'}"
    )


def as_text(report: ReplayReport) -> str:
    lines = _head(report)
    lines.append("")
    lines.append(f"{'':<34}{'in force':>10}{'candidate':>11}{'change':>9}")
    for label, name, old, new in _rows(report):
        what = f"{label} {name}".strip()
        change = f"{new - old:+d}" if new != old else ""
        lines.append(f"{what[:34]:<34}{old:>10}{new:>11}{change:>9}")
    lines.append("")
    lines.append(f"tickets whose priority, tier or notes would differ: {len(report.changed)}")
    lines += [f"  {_describe(c)}" for c in report.changed]
    return "\n".join(lines)


def as_markdown(report: ReplayReport) -> str:
    lines = ["## Policy replay", ""] + [f"- {line.strip()}" for line in _head(report)] + [""]
    lines += ["| | in force | candidate | change |", "|---|---:|---:|---:|"]
    for label, name, old, new in _rows(report):
        change = f"{new - old:+d}" if new != old else ""
        head = f"{label} `{name}`" if name else label
        lines.append(f"| {head} | {old} | {new} | {change} |")
    lines += ["", f"### Tickets whose priority, tier or notes would differ ({len(report.changed)})", ""]
    lines += [f"- {_describe(c)}" for c in report.changed] or ["- none"]
    return "\n".join(lines)
