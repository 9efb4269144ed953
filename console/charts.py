"""Server-side SVG charts: plain markup the page embeds, no script, no external asset.

Every chart carries a <title> per mark so a hover shows the exact figure, and text labels on the bars
so the figures read at a glance without hovering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096", "#d69e2e", "#319795")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _open(width: int, height: int, label: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    )


def _empty(height: int = 60) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 640 {height}" width="640" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="10" y="30" {FONT} fill="#4a5568">'
        "No data in this range.</text></svg>"
    )


def stacked_bars(categories: Sequence[str], series: Mapping[str, Sequence[float]], *, unit: str) -> str:
    """Vertical bars, one per category, stacking the series; a legend on top."""
    if not categories or not series:
        return _empty()
    width, height, left, top, bottom = 760, 300, 50, 40, 60
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    peak = max(totals) or 1
    plot_h = height - top - bottom
    step = (width - left - 10) / len(categories)
    bar = max(4.0, min(48.0, step * 0.7))
    parts = [
        _open(width, height, f"{unit} per category"),
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 5}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {FONT} fill="#4a5568">{_fmt(peak)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" {FONT} fill="#4a5568">0</text>',
    ]
    x_legend = left
    for n, name in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        parts.append(f'<rect x="{x_legend}" y="8" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{x_legend + 16}" y="18" {FONT}>{escape(str(name))}</text>')
        x_legend += 24 + 8 * len(str(name))
    label_every = max(1, round(len(categories) / 12))
    for i, category in enumerate(categories):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        for n, (name, values) in enumerate(series.items()):
            value = values[i]
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[n % len(PALETTE)]}"><title>{escape(str(category))} · {escape(str(name))}: '
                f"{_fmt(value)} {escape(unit)}</title></rect>"
            )
        if totals[i]:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" {FONT}>'
                f"{_fmt(totals[i])}</text>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT} '
                f'fill="#4a5568">{escape(str(category))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def hbars(labels: Sequence[str], values: Sequence[float], *, unit: str, maximum: float | None = None) -> str:
    """Horizontal bars, one per label, the figure written at the bar's end."""
    return grouped_hbars(labels, {unit: values}, unit=unit, maximum=maximum, legend=False)


def grouped_hbars(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    unit: str,
    maximum: float | None = None,
    legend: bool = True,
) -> str:
    """Horizontal bars, a group per label with one bar per series."""
    if not labels:
        return _empty()
    width, left, row_gap = 760, 230, 8
    bar_h = 16
    group_h = bar_h * len(series) + row_gap
    top = 30 if legend else 8
    height = top + group_h * len(labels) + 8
    peak = maximum or max((v for values in series.values() for v in values), default=0) or 1
    plot_w = width - left - 130
    parts = [_open(width, height, f"{unit} per row")]
    if legend:
        x_legend = left
        for n, name in enumerate(series):
            parts.append(
                f'<rect x="{x_legend}" y="8" width="12" height="12" fill="{PALETTE[n % len(PALETTE)]}"/>'
            )
            parts.append(f'<text x="{x_legend + 16}" y="18" {FONT}>{escape(str(name))}</text>')
            x_legend += 24 + 8 * len(str(name))
    for i, label in enumerate(labels):
        y0 = top + i * group_h
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" text-anchor="end" {FONT}>'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
        )
        for n, (name, values) in enumerate(series.items()):
            value = values[i]
            w = plot_w * min(value, peak) / peak
            y = y0 + n * bar_h
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                f'fill="{PALETTE[n % len(PALETTE)]}">'
                f"<title>{escape(label)} · {escape(str(name))}: {_fmt(value)} {escape(unit)}</title></rect>"
            )
            parts.append(
                f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 5}" {FONT}>{_fmt(value)} {escape(unit)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
