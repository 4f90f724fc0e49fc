"""The dashboard's report queries (both backends): what they count, by day and
window, against rows written through the repositories."""

from __future__ import annotations

import json

import pytest
from storage_test_clock import FakeClock

from storage import JobRecord, Store
from storage.interfaces import SYSTEM_REVENUE, SYSTEM_TOPUP, SYSTEM_VENDOR_LOSS, DayJobs

DAY = 86_400


async def _job(
    store: Store,
    clock: FakeClock,
    job_id: str,
    account_id: int,
    *,
    took: float,
    end: str | None,
    charge: int = 0,
    resolution: str = "1K",
    error: str | None = None,
) -> None:
    """A job queued now that ends ``took`` seconds later (the clock is put back)."""
    start = clock.now
    async with store.transaction() as tx:
        hold = await store.ledger.reserve(tx, f"hold:{job_id}", account_id, 50, job_id=job_id)
        await store.jobs.insert(
            tx,
            JobRecord(
                id=job_id,
                account_id=account_id,
                platform="telegram",
                chat="{}",
                kind="generate",
                params=json.dumps({"prompt": "p", "resolution": resolution}),
                estimate=50,
                state="RESERVED",
                hold_id=hold.id,
            ),
        )
    if end is None:
        return
    clock.advance(took)
    async with store.transaction() as tx:
        if end == "SUCCEEDED":
            await store.ledger.post(tx, hold.id, charge, transfer_id=f"charge:{job_id}")
        else:
            await store.ledger.void(tx, hold.id, error or "x")
        await store.jobs.transition(tx, job_id, ("RESERVED",), end, error=error)
    clock.now = start


async def test_reports_count_jobs_money_times_users_failures_and_queue(
    store: Store, clock: FakeClock
) -> None:
    day0 = int(clock.now // DAY)
    clock.now = day0 * DAY + 3600  # 01:00 UTC on day0
    async with store.transaction() as tx:
        ann = await store.ledger.get_or_create_account(tx, "telegram", "1", username="ann")
        bob = await store.ledger.get_or_create_account(tx, "discord", "2")
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        for acct in (ann, bob):
            await store.ledger.transfer(tx, f"t:{acct.id}", topup.id, acct.id, 1000, "topup")
    # Day 0: ann has three succeeded jobs (4, 6 and 20 s), bob one failure.
    await _job(store, clock, "a1", ann.id, took=4, end="SUCCEEDED", charge=5)
    await _job(store, clock, "a2", ann.id, took=6, end="SUCCEEDED", charge=5)
    await _job(store, clock, "a3", ann.id, took=20, end="SUCCEEDED", charge=8, resolution="2K")
    await _job(store, clock, "b1", bob.id, took=3, end="FAILED", error="vendor_timeout")
    async with store.transaction() as tx:
        loss = await store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)
        revenue = await store.ledger.system_account(tx, SYSTEM_REVENUE)
        await store.ledger.transfer(
            tx, "loss:b1", loss.id, revenue.id, 7, "vendor_loss", allow_overdraft=True
        )
    # Day 1: bob has one success and one job still queued; a purchase.
    clock.now += DAY
    await _job(store, clock, "b2", bob.id, took=9, end="SUCCEEDED", charge=30)
    await _job(store, clock, "b3", bob.id, took=0, end=None)
    async with store.transaction() as tx:
        await store.ledger.transfer(tx, "buy:1", topup.id, bob.id, 500, "purchase")
    since, until = day0 * DAY, (day0 + 2) * DAY

    async with store.read() as tx:
        days = await store.reports.jobs_per_day(tx, since, until)
        money = await store.reports.money_per_day(tx, since, until)
        times = await store.reports.job_times(tx, since, until)
        top = await store.reports.top_users(tx, since, until)
        failures = await store.reports.failures(tx, since, until)
        queue = await store.reports.queue_now(tx)
        # A window that ends before day 1 sees day 0 only.
        only_day0 = await store.reports.jobs_per_day(tx, since, since + DAY)

    assert days == [DayJobs(day0, 3, 1, 0), DayJobs(day0 + 1, 1, 0, 1)]
    assert only_day0 == [DayJobs(day0, 3, 1, 0)]
    assert [
        (m.day, m.charged, m.loss, m.jobs_charged, m.purchases, m.purchased) for m in money
    ] == [
        (day0, 18, 7, 3, 0, 0),
        (day0 + 1, 30, 0, 1, 1, 500),
    ]
    by_tier = {t.tier: t for t in times}
    # Nearest rank: p50 of (4, 6, 9) is 6 and p95 is 9, read to the histogram
    # bucket (within 5 %).
    assert (by_tier["1K"].count, by_tier["2K"].count) == (3, 1)
    assert by_tier["1K"].p50 == pytest.approx(6.0, rel=0.05)
    assert by_tier["1K"].p95 == pytest.approx(9.0, rel=0.05)
    assert by_tier["2K"].p50 == by_tier["2K"].p95 == pytest.approx(20.0, rel=0.05)
    assert {t.vendor for t in times} == {""}
    assert [(u.name, u.jobs, u.charged) for u in top] == [
        ("discord:2", 1, 30),
        ("telegram:@ann", 3, 18),
    ]
    assert [(f.error, f.count) for f in failures] == [("vendor_timeout", 1)]
    assert [(q.queue, q.queued, q.running) for q in queue] == [("telegram", 1, 0)]
    assert queue[0].oldest_queued_at == (day0 + 1) * DAY + 3600


async def test_reports_of_an_empty_database_are_empty(store: Store) -> None:
    async with store.read() as tx:
        assert await store.reports.jobs_per_day(tx, 0, 2e9) == []
        assert await store.reports.money_per_day(tx, 0, 2e9) == []
        assert await store.reports.job_times(tx, 0, 2e9) == []
        assert await store.reports.top_users(tx, 0, 2e9) == []
        assert await store.reports.failures(tx, 0, 2e9) == []
        assert await store.reports.queue_now(tx) == []
