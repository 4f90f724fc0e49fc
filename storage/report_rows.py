"""What both backends' report queries share: turning grouped rows into the value
types of ``storage.interfaces`` (the SQL differs only in dialect)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from storage.interfaces import DayJobs, DayMoney, JobState

# Seconds in a UTC day: every day bucket is floor(unix time / DAY).
DAY = 86_400
# Transfer kinds the money figures add up.
MONEY_KINDS = ("charge", "vendor_loss", "purchase")


def day_jobs(rows: Iterable[Any]) -> list[DayJobs]:
    """Rows of (day, state, count) into one ``DayJobs`` per day, oldest first."""
    days: dict[int, list[int]] = {}
    for day, state, count in rows:
        slot = days.setdefault(int(day), [0, 0, 0])
        if state == JobState.SUCCEEDED:
            slot[0] += int(count)
        elif state == JobState.FAILED:
            slot[1] += int(count)
        else:
            slot[2] += int(count)
    return [DayJobs(day, *counts) for day, counts in sorted(days.items())]


def day_money(rows: Iterable[Any]) -> list[DayMoney]:
    """Rows of (day, kind, count, sum) into one ``DayMoney`` per day, oldest first."""
    days: dict[int, dict[str, tuple[int, int]]] = {}
    for day, kind, count, total in rows:
        days.setdefault(int(day), {})[str(kind)] = (int(count), int(total or 0))
    out = []
    for day, kinds in sorted(days.items()):
        charges, charged = kinds.get("charge", (0, 0))
        purchases, purchased = kinds.get("purchase", (0, 0))
        out.append(
            DayMoney(
                day=day,
                charged=charged,
                loss=kinds.get("vendor_loss", (0, 0))[1],
                jobs_charged=charges,
                purchases=purchases,
                purchased=purchased,
            )
        )
    return out


def account_label(platform: str, external_id: str, username: str | None) -> str:
    return f"{platform}:@{username}" if username else f"{platform}:{external_id}"
