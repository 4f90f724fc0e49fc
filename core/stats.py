"""The operator's figures: jobs per day by outcome, credits charged against what
the vendor billed, job times, top users, failures, purchases, pauses and the queue.
Read-only; the dashboard shows the whole ``StatsReport``, the chat's ``/stats``
(admins only) a chart and the day's three numbers.

Vendor cost: the ledger records what users were charged (``charge``) and what the
operator absorbed for images nobody paid for (``vendor_loss``), both in credits at
the preset's prices. Those prices are the vendor's billing plus
``PRICE_MARKUP_PERCENT``, so what the vendor billed is their sum without the
markup; the margin is the charges less that."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.admin import CreditAdmin
from core.ports import UserRef
from core.stats_chart import render_jobs_chart
from core.vendor_health import VendorState, read_state
from core.vendor_pool import VendorPool
from core.vendors.preset import Preset
from storage.interfaces import (
    DayJobs,
    DayMoney,
    FailureCount,
    JobTimes,
    QueueNow,
    Store,
    TopUser,
    Tx,
)

DAY = 86_400
DEFAULT_DAYS = 30
MAX_DAYS = 366


def vendor_cost(charged: int, loss: int, markup_percent: int) -> int:
    """Credits the vendor billed for what was charged and lost, to the nearest credit."""
    base = 100 + max(0, markup_percent)
    return ((charged + loss) * 100 + base // 2) // base


async def vendor_states(
    store: Store, tx: Tx, preset: Preset, pool: VendorPool | None
) -> list[VendorState]:
    """Every configured vendor's state (healthy, paused by a 402, failing its health
    window: since when and why), as ``Imagine.vendor_states`` shows it. Without a
    pool: the one vendor of ``VENDOR=`` under the preset's name."""
    if pool is not None:
        return await pool.states(tx)
    return [replace(await read_state(store, tx, None), name=preset.name)]


@dataclass(frozen=True, slots=True)
class Totals:
    jobs: int
    succeeded: int
    failed: int
    charged: int
    loss: int
    vendor_cost: int
    purchases: int
    purchased: int

    @property
    def margin(self) -> int:
        return self.charged - self.vendor_cost


@dataclass(frozen=True, slots=True)
class StatsReport:
    since: float
    until: float
    generated_at: float
    markup_percent: int
    jobs: list[DayJobs]
    """One entry per UTC day of the window, oldest first (days without jobs as zeros)."""
    money: list[DayMoney]
    """Likewise, per day."""
    totals: Totals
    times: list[JobTimes]
    top_users: list[TopUser]
    failures: list[FailureCount]
    queue: list[QueueNow]
    vendors: list[VendorState]

    def vendor_cost_of(self, day: DayMoney) -> int:
        return vendor_cost(day.charged, day.loss, self.markup_percent)


@dataclass(frozen=True, slots=True)
class Today:
    """The three numbers ``/stats`` answers with (the UTC day so far)."""

    jobs: int
    charged: int
    vendor_cost: int


@dataclass(frozen=True, slots=True)
class StatsCard:
    today: Today
    png: bytes
    """The jobs-per-day chart of the last ``CARD_DAYS`` days."""


CARD_DAYS = 14


def _fill(
    days: range, jobs: list[DayJobs], money: list[DayMoney]
) -> tuple[list[DayJobs], list[DayMoney]]:
    by_job = {d.day: d for d in jobs}
    by_money = {d.day: d for d in money}
    return (
        [by_job.get(d, DayJobs(d, 0, 0, 0)) for d in days],
        [by_money.get(d, DayMoney(d, 0, 0, 0, 0, 0)) for d in days],
    )


class Stats:
    def __init__(
        self,
        store: Store,
        preset: Preset,
        admin: CreditAdmin,
        clock: Callable[[], float] = time.time,
        *,
        pool: VendorPool | None = None,
    ) -> None:
        self.store = store
        self.preset = preset
        self.admin = admin
        self.clock = clock
        self.pool = pool

    async def report(self, days: int = DEFAULT_DAYS, *, top: int = 10) -> StatsReport:
        """The last ``days`` UTC days, today included."""
        days = min(max(1, days), MAX_DAYS)
        now = self.clock()
        first = int(now // DAY) - days + 1
        since, until = first * DAY, (int(now // DAY) + 1) * DAY
        reports = self.store.reports
        async with self.store.read() as tx:
            jobs = await reports.jobs_per_day(tx, since, until)
            money = await reports.money_per_day(tx, since, until)
            times = await reports.job_times(tx, since, until)
            users = await reports.top_users(tx, since, until, top)
            failures = await reports.failures(tx, since, until)
            queue = await reports.queue_now(tx)
            vendors = await vendor_states(self.store, tx, self.preset, self.pool)
        markup = self.preset.price.markup_percent
        jobs, money = _fill(range(first, first + days), jobs, money)
        charged, loss = sum(d.charged for d in money), sum(d.loss for d in money)
        totals = Totals(
            jobs=sum(d.total for d in jobs),
            succeeded=sum(d.succeeded for d in jobs),
            failed=sum(d.failed for d in jobs),
            charged=charged,
            loss=loss,
            vendor_cost=vendor_cost(charged, loss, markup),
            purchases=sum(d.purchases for d in money),
            purchased=sum(d.purchased for d in money),
        )
        # A job without a vendor (NULL) ran on the one configured vendor.
        only = self.pool.primary.name if self.pool is not None else self.preset.name
        times = [JobTimes(t.vendor or only, t.tier, t.count, t.p50, t.p95) for t in times]
        return StatsReport(
            since, until, now, markup, jobs, money, totals, times, users, failures, queue, vendors
        )

    async def today(self) -> Today:
        now = self.clock()
        since = int(now // DAY) * DAY
        async with self.store.read() as tx:
            jobs = await self.store.reports.jobs_per_day(tx, since, since + DAY)
            money = await self.store.reports.money_per_day(tx, since, since + DAY)
        charged, loss = sum(d.charged for d in money), sum(d.loss for d in money)
        return Today(
            sum(d.total for d in jobs),
            charged,
            vendor_cost(charged, loss, self.preset.price.markup_percent),
        )

    async def card(self, actor: UserRef) -> StatsCard:
        """``/stats`` in a chat: admins only (``NotAdmin`` otherwise, audited)."""
        await self.admin.authorize(actor, "stats")
        today = await self.today()
        report = await self.report(CARD_DAYS)
        # Drawing takes tens of milliseconds of CPU: off the event loop.
        png = await asyncio.to_thread(render_jobs_chart, report.jobs)
        return StatsCard(today, png)
