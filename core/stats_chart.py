"""The chart ``/stats`` sends: jobs per UTC day as stacked bars (succeeded,
failed, still running), drawn with Pillow into a PNG. CPU work: callers run it in a
thread (``asyncio.to_thread``).

The chart holds no words, only dates, numbers and colours: Pillow's built-in font
draws Latin letters alone and no CJK or Cyrillic font can be counted on (the Docker
image has none), so what the colours mean is said in the admin's language by the
caption beside it (``stats.legend``)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from storage.interfaces import DayJobs

# The same colours as the dashboard's SVG charts (bots/dashboard/svg.py).
SUCCEEDED = "#2e7d32"
FAILED = "#c62828"
ACTIVE = "#9e9e9e"
WIDTH, HEIGHT = 960, 480
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 64, 24, 56, 56


def _day_label(day: int, spelled: str = "%m-%d") -> str:
    return dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime(spelled)


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def _title(days: Sequence[DayJobs]) -> str:
    """The window's first and last UTC day: ``2026-05-01 - 2026-05-14 UTC``."""
    if not days:
        return "UTC"
    first, last = _day_label(days[0].day, "%Y-%m-%d"), _day_label(days[-1].day, "%Y-%m-%d")
    return f"{first} UTC" if first == last else f"{first} - {last} UTC"


def render_jobs_chart(days: Sequence[DayJobs]) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    small = ImageFont.load_default(size=13)
    draw.text((_MARGIN_LEFT, 16), _title(days), fill="black", font=font)
    # The legend: each colour with its total over the window (the caption names them).
    legend_x = WIDTH - _MARGIN_RIGHT - 240
    totals = (
        (sum(d.succeeded for d in days), SUCCEEDED),
        (sum(d.failed for d in days), FAILED),
        (sum(d.active for d in days), ACTIVE),
    )
    for total, colour in totals:
        draw.rectangle((legend_x, 20, legend_x + 12, 32), fill=colour)
        draw.text((legend_x + 18, 18), str(total), fill="black", font=small)
        legend_x += 80
    left, top = _MARGIN_LEFT, _MARGIN_TOP
    right, bottom = WIDTH - _MARGIN_RIGHT, HEIGHT - _MARGIN_BOTTOM
    # Four grid steps of a round size: 0, 5, 10, 15, 20 rather than 0, 12, 25, 37, 50.
    top_value = 4 * _nice_max(-(-max((d.total for d in days), default=0) // 4) or 1)
    for i in range(5):
        value = top_value * i // 4
        y = bottom - (bottom - top) * i / 4
        draw.line((left, y, right, y), fill="#e0e0e0")
        draw.text((left - 8, y), str(value), fill="black", font=small, anchor="rm")
    draw.line((left, bottom, right, bottom), fill="black")
    if days:
        slot = (right - left) / len(days)
        bar = max(1.0, slot * 0.7)
        label_every = max(1, len(days) // 10)
        for i, day in enumerate(days):
            x0 = left + slot * i + (slot - bar) / 2
            y = float(bottom)
            for count, colour in (
                (day.succeeded, SUCCEEDED),
                (day.failed, FAILED),
                (day.active, ACTIVE),
            ):
                if count:
                    h = (bottom - top) * count / top_value
                    draw.rectangle((x0, y - h, x0 + bar, y), fill=colour)
                    y -= h
            if i % label_every == 0:
                draw.text(
                    (x0 + bar / 2, bottom + 8),
                    _day_label(day.day),
                    fill="black",
                    font=small,
                    anchor="mt",
                )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
