"""Charts as inline SVG, drawn on the server: no script, no build step, and they
scale to the width of a phone (``viewBox`` with ``width: 100%``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from core.stats_chart import ACTIVE, FAILED, SUCCEEDED

__all__ = ["ACTIVE", "FAILED", "SUCCEEDED", "Series", "hbars", "lines", "stacked_bars"]

_W, _H = 720, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 34, 38


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    colour: str
    values: Sequence[float]


def _nice_top(value: float) -> float:
    """A round top for the axis with four equal steps."""
    quarter = max(value, 1e-9) / 4
    step = 1.0
    while step * 10 < quarter:
        step *= 10
    while step > quarter * 10:
        step /= 10
    for m in (1, 2, 2.5, 5, 10):
        if step * m >= quarter:
            return step * m * 4
    return step * 40


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def _frame(title: str, legend: Sequence[Series], body: list[str], label: str) -> str:
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">',
        f'<text x="{_LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    x = _W - _RIGHT - 120 * len(legend)
    for s in legend:
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{s.colour}"/>')
        parts.append(f'<text x="{x + 16}" y="18">{escape(s.name)}</text>')
        x += 120
    parts.extend(body)
    parts.append("</svg>")
    return "".join(parts)


def _axis(top: float) -> list[str]:
    out = []
    for i in range(5):
        y = _H - _BOTTOM - (_H - _BOTTOM - _TOP) * i / 4
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
        )
        out.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(top * i / 4)}</text>'
        )
    return out


def _x_labels(labels: Sequence[str], centre: list[float]) -> list[str]:
    # At most about eight labels, counted back from the last: the newest day
    # (today) always has its date.
    every = max(1, len(labels) // 8)
    last = len(labels) - 1
    return [
        f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>'
        for i, (label, x) in enumerate(zip(labels, centre, strict=True))
        if (last - i) % every == 0
    ]


def stacked_bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = _nice_top(max(totals, default=0))
    plot_h = _H - _BOTTOM - _TOP
    slot = (_W - _LEFT - _RIGHT) / max(1, len(labels))
    bar = max(1.0, slot * 0.7)
    body = _axis(top)
    centres = []
    for i, label in enumerate(labels):
        x = _LEFT + slot * i + (slot - bar) / 2
        centres.append(x + bar / 2)
        y = float(_H - _BOTTOM)
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{s.colour}"><title>{escape(label)} {escape(s.name)}: '
                f"{_num(value)}</title></rect>"
            )
    body.extend(_x_labels(labels, centres))
    return _frame(title, series, body, title)


def lines(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    top = _nice_top(max((v for s in series for v in s.values), default=0))
    plot_h = _H - _BOTTOM - _TOP
    step = (_W - _LEFT - _RIGHT) / max(1, len(labels))
    xs = [_LEFT + step * (i + 0.5) for i in range(len(labels))]
    body = _axis(top)
    for s in series:
        points = " ".join(
            f"{x:.1f},{_H - _BOTTOM - plot_h * v / top:.1f}"
            for x, v in zip(xs, s.values, strict=True)
        )
        body.append(
            f'<polyline class="line" points="{points}" fill="none" stroke="{s.colour}" '
            'stroke-width="2.5"/>'
        )
        for x, v, label in zip(xs, s.values, labels, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{_H - _BOTTOM - plot_h * v / top:.1f}" r="3" '
                f'fill="{s.colour}"><title>{escape(label)} {escape(s.name)}: {_num(v)}</title>'
                "</circle>"
            )
    body.extend(_x_labels(labels, xs))
    return _frame(title, series, body, title)


def hbars(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "") -> str:
    """Horizontal bars, one group per label (one bar per series): rankings and
    per-tier times, whose long labels do not fit under a column."""
    row = 14 * len(series) + 10
    height = _TOP + row * max(1, len(labels)) + 10
    left = 190
    top = _nice_top(max((v for s in series for v in s.values), default=0))
    width = _W - left - 70
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">',
        f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if len(series) > 1:
        x = _W - _RIGHT - 120 * len(series)
        for s in series:
            parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{s.colour}"/>')
            parts.append(f'<text x="{x + 16}" y="18">{escape(s.name)}</text>')
            x += 120
    if not labels:
        parts.append(f'<text x="8" y="{_TOP + 14}" fill="#757575">nothing yet</text>')
    for i, label in enumerate(labels):
        y = _TOP + row * i
        shown = label if len(label) <= 28 else label[:27] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(shown)}</text>"
        )
        for j, s in enumerate(series):
            v = s.values[i]
            w = max(1.0, width * v / top) if v > 0 else 0.0
            by = y + 4 + 14 * j
            parts.append(
                f'<rect class="bar" x="{left}" y="{by}" width="{w:.1f}" height="11" '
                f'fill="{s.colour}"><title>{escape(label)} {escape(s.name)}: {_num(v)}{unit}'
                "</title></rect>"
            )
            parts.append(f'<text x="{left + w + 4:.1f}" y="{by + 10}">{_num(v)}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)
