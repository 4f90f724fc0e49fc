"""What both backends' report queries share: the day window of the rollups
(``0006_rollups``), reading percentiles off their time histogram, and turning
grouped rows into the value types of ``storage.interfaces`` (the SQL differs only
in dialect)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from storage.interfaces import DayJobs, DayMoney, JobTimes

# Seconds in a UTC day: every day bucket is floor(unix time / DAY).
DAY = 86_400
# Transfer kinds the money figures add up.
MONEY_KINDS = ("charge", "vendor_loss", "purchase")


# The time histogram's buckets (the ``time_buckets`` table): bucket 0 is under
# FIRST_EDGE seconds, bucket k >= 1 is [FIRST_EDGE * RATIO^(k-1), FIRST_EDGE * RATIO^k).
FIRST_EDGE = 0.1
RATIO = 1.1


def day_range(since: float, until: float) -> tuple[int, int]:
    """The rollups' whole UTC days covering ``[since, until)``: first day, day after."""
    return math.floor(since / DAY), math.ceil(until / DAY)


def bucket_value(bucket: int) -> float:
    """A bucket's geometric middle, in seconds: within ~5 % of any time in it."""
    if bucket <= 0:
        return FIRST_EDGE / 2
    return round(FIRST_EDGE * RATIO ** (bucket - 0.5), 3)


def job_times(rows: Iterable[Any]) -> list[JobTimes]:
    """Rows of (vendor, tier, bucket, count) into nearest-rank p50/p95 per vendor
    and tier, read to the bucket."""
    hist: dict[tuple[str, str], dict[int, int]] = {}
    for vendor, tier, bucket, count in rows:
        slot = hist.setdefault((str(vendor), str(tier)), {})
        slot[int(bucket)] = slot.get(int(bucket), 0) + int(count)
    out = []
    for (vendor, tier), buckets in sorted(hist.items()):
        n = sum(buckets.values())
        out.append(
            JobTimes(
                vendor,
                tier,
                n,
                _rank(buckets, (n * 50 + 99) // 100),
                _rank(buckets, (n * 95 + 99) // 100),
            )
        )
    return out


def _rank(buckets: dict[int, int], rank: int) -> float:
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    raise AssertionError("rank beyond the histogram")


def day_jobs(rows: Iterable[Any]) -> list[DayJobs]:
    """Rows of (day, created, succeeded, failed) into one ``DayJobs`` per day,
    oldest first."""
    return [
        DayJobs(int(day), int(ok), int(failed), int(created) - int(ok) - int(failed))
        for day, created, ok, failed in sorted(rows, key=lambda r: int(r[0]))
    ]


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
