"""The dashboard's daily rollups (both backends) equal a recount from the jobs and
transfers tables after a mix of jobs, and a job's end is counted once however
often the terminal transition is retried."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from storage_raw import raw_fetch
from storage_test_clock import FakeClock

from storage import JobRecord, Store
from storage.interfaces import SYSTEM_REVENUE, SYSTEM_TOPUP, SYSTEM_VENDOR_LOSS, Tx
from storage.report_rows import FIRST_EDGE, RATIO

DAY = 86_400


def _bucket(seconds: float) -> int:
    """The reference for the ``time_buckets`` table."""
    if seconds < FIRST_EDGE:
        return 0
    return math.floor(math.log(seconds / FIRST_EDGE) / math.log(RATIO) + 1e-9) + 1


async def _rollups(tx: Tx) -> dict[str, Counter[tuple[Any, ...]]]:
    created = await raw_fetch(tx, "SELECT day, jobs, succeeded, failed FROM job_created_days")
    ended = await raw_fetch(
        tx, "SELECT day, state, vendor, tier, error, bucket, jobs FROM job_days"
    )
    money = await raw_fetch(tx, "SELECT day, kind, transfers, amount FROM money_days")
    users = await raw_fetch(tx, "SELECT day, account_id, jobs, charged FROM user_days")
    return {
        "created": Counter({tuple(r[:1]): tuple(int(x) for x in r[1:]) for r in created}),
        "ended": Counter({tuple(r[:-1]): int(r[-1]) for r in ended}),
        "money": Counter({tuple(r[:2]): (int(r[2]), int(r[3])) for r in money}),
        "users": Counter({tuple(r[:2]): (int(r[2]), int(r[3])) for r in users}),
    }


async def _recount(tx: Tx) -> dict[str, Counter[tuple[Any, ...]]]:
    jobs = await raw_fetch(
        tx, "SELECT state, vendor, tier, error, created_at, updated_at FROM jobs"
    )
    created: dict[tuple[Any, ...], list[int]] = {}
    ended: Counter[tuple[Any, ...]] = Counter()
    for state, vendor, tier, error, created_at, updated_at in jobs:
        slot = created.setdefault((int(created_at // DAY),), [0, 0, 0])
        slot[0] += 1
        slot[1] += state == "SUCCEEDED"
        slot[2] += state == "FAILED"
        if state in ("SUCCEEDED", "FAILED"):
            ok = state == "SUCCEEDED"
            key = (
                int(updated_at // DAY),
                state,
                vendor or "",
                tier or "",
                "" if ok else error or "",
                _bucket(updated_at - created_at) if ok else -1,
            )
            ended[key] += 1
    transfers = await raw_fetch(
        tx, "SELECT kind, debit_account_id, amount, created_at FROM transfers"
    )
    money: dict[tuple[Any, ...], list[int]] = {}
    users: dict[tuple[Any, ...], list[int]] = {}
    for kind, debit, amount, at in transfers:
        if kind in ("charge", "vendor_loss", "purchase"):
            m = money.setdefault((int(at // DAY), kind), [0, 0])
            m[0], m[1] = m[0] + 1, m[1] + int(amount)
        if kind == "charge":
            u = users.setdefault((int(at // DAY), int(debit)), [0, 0])
            u[0], u[1] = u[0] + 1, u[1] + int(amount)
    return {
        "created": Counter({k: tuple(v) for k, v in created.items()}),
        "ended": ended,
        "money": Counter({k: tuple(v) for k, v in money.items()}),
        "users": Counter({k: tuple(v) for k, v in users.items()}),
    }


def _job(job_id: str, account_id: int, hold_id: str, resolution: str) -> JobRecord:
    return JobRecord(
        id=job_id,
        account_id=account_id,
        platform="telegram",
        chat="{}",
        kind="generate",
        params=json.dumps({"prompt": "p", "resolution": resolution}),
        estimate=50,
        state="RESERVED",
        hold_id=hold_id,
    )


async def _queue(store: Store, job_id: str, account_id: int, resolution: str = "1K") -> str:
    async with store.transaction() as tx:
        hold = await store.ledger.reserve(tx, f"h:{job_id}", account_id, 50, job_id=job_id)
        await store.jobs.insert(tx, _job(job_id, account_id, hold.id, resolution))
    return hold.id


async def _run(
    store: Store, clock: FakeClock, job_id: str, worker: str, vendor: str | None, took: float
) -> None:
    """Claim, submit, poll and reach DELIVERING ``took`` seconds later."""
    async with store.transaction() as tx:
        job = await store.jobs.take_over(
            tx, job_id, worker, now=clock.now, lease_until=clock.now + 60
        )
        assert job is not None
        fields: dict[str, object] = {} if vendor is None else {"vendor": vendor}
        assert await store.jobs.transition(
            tx, job_id, ("RESERVED",), "SUBMITTING", owner=worker, **fields
        )
    clock.advance(took)
    async with store.transaction() as tx:
        assert await store.jobs.transition(
            tx, job_id, ("SUBMITTING", "POLLING"), "DELIVERING", owner=worker
        )


async def _succeed(
    store: Store, job_id: str, hold_id: str, charge: int, *, loss: int = 0, owner: str | None
) -> bool:
    async with store.transaction() as tx:
        await store.ledger.post(tx, hold_id, charge, transfer_id=f"charge:{job_id}")
        if loss:
            vl = await store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)
            rev = await store.ledger.system_account(tx, SYSTEM_REVENUE)
            await store.ledger.transfer(
                tx, f"loss:{job_id}", vl.id, rev.id, loss, "vendor_loss", allow_overdraft=True
            )
        return await store.jobs.transition(
            tx, job_id, ("DELIVERING",), "SUCCEEDED", owner=owner, cost=charge
        )


async def test_rollups_equal_a_recount_and_a_retried_end_counts_once(
    store: Store, clock: FakeClock
) -> None:
    clock.now = 20_000 * DAY + 23 * 3600  # 23:00 UTC: some jobs end the next day
    async with store.transaction() as tx:
        ann = await store.ledger.get_or_create_account(tx, "telegram", "1", username="ann")
        bob = await store.ledger.get_or_create_account(tx, "discord", "2")
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        for acct in (ann, bob):
            await store.ledger.transfer(tx, f"t:{acct.id}", topup.id, acct.id, 1000, "topup")
        await store.ledger.transfer(tx, "buy:1", topup.id, bob.id, 300, "purchase")

    # A plain success on the one configured vendor (vendor NULL).
    h1 = await _queue(store, "j1", ann.id)
    await _run(store, clock, "j1", "w1", None, 4)
    assert await _succeed(store, "j1", h1, 5, owner="w1")

    # Crash-recovered: w1 claims and submits, dies; its lease runs out, w2 takes the
    # job over and finishes it on another vendor, past midnight.
    h2 = await _queue(store, "j2", bob.id, "2K")
    async with store.transaction() as tx:
        assert await store.jobs.take_over(tx, "j2", "w1", now=clock.now, lease_until=clock.now + 30)
        assert await store.jobs.transition(
            tx, "j2", ("RESERVED",), "SUBMITTING", owner="w1", vendor="alpha"
        )
    clock.advance(3600)
    async with store.transaction() as tx:
        assert await store.jobs.take_over(tx, "j2", "w2", now=clock.now, lease_until=clock.now + 60)
        assert await store.jobs.transition(
            tx, "j2", ("SUBMITTING",), "DELIVERING", owner="w2", vendor="beta"
        )
    assert await _succeed(store, "j2", h2, 8, owner="w2")

    # A failure with a vendor loss.
    h3 = await _queue(store, "j3", bob.id)
    await _run(store, clock, "j3", "w1", "alpha", 12)
    async with store.transaction() as tx:
        await store.ledger.void(tx, h3, "vendor_timeout")
        vl = await store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)
        rev = await store.ledger.system_account(tx, SYSTEM_REVENUE)
        await store.ledger.transfer(
            tx, "loss:j3", vl.id, rev.id, 7, "vendor_loss", allow_overdraft=True
        )
        assert await store.jobs.transition(
            tx, "j3", ("DELIVERING",), "FAILED", error="vendor_timeout", cost=0
        )

    # A partial delivery: charged for part, the rest booked as a vendor loss.
    h4 = await _queue(store, "j4", ann.id, "4K")
    await _run(store, clock, "j4", "w2", "alpha", 30)
    assert await _succeed(store, "j4", h4, 20, loss=10, owner="w2")

    # Failed before any vendor (no error code) and one still queued.
    h5 = await _queue(store, "j5", ann.id)
    async with store.transaction() as tx:
        await store.ledger.void(tx, h5, "x")
        assert await store.jobs.transition(tx, "j5", ("RESERVED",), "FAILED")
    await _queue(store, "j6", bob.id)

    async with store.read() as tx:
        before = await _rollups(tx)
        recount = await _recount(tx)
    assert before == recount
    day0 = 20_000
    assert before["created"] == Counter({(day0,): (2, 2, 0), (day0 + 1,): (4, 1, 2)})
    assert sum(before["ended"].values()) == 5

    # The dead worker comes back and retries j2's end; a sweeper retries j1's and
    # j3's; a caller even moves a finished job "again" to its own state. None of
    # it counts: only the first move into a terminal state matches.
    async with store.transaction() as tx:
        assert not await store.jobs.transition(tx, "j2", ("DELIVERING",), "SUCCEEDED", owner="w1")
        assert not await store.jobs.transition(tx, "j1", ("DELIVERING",), "SUCCEEDED")
        assert not await store.jobs.transition(tx, "j3", ("DELIVERING",), "FAILED")
        assert await store.jobs.transition(tx, "j1", ("SUCCEEDED",), "SUCCEEDED")
        assert await store.jobs.transition(tx, "j5", ("FAILED",), "FAILED", error="again")
        replay = await store.ledger.post(tx, h1, 5, transfer_id="charge:j1")
        assert replay.already
    async with store.read() as tx:
        assert await _rollups(tx) == before
