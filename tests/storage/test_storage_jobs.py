"""Tests for the jobs repository and its queue, the limits, audit log and flags
(both backends)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from storage_test_clock import FakeClock

from storage import IdempotencyConflict, JobRecord, JobState, StorageError, Store, open_store
from storage.interfaces import VENDOR_LIMIT, Limit


async def _account_id(store: Store, uid: str = "1") -> int:
    async with store.transaction() as tx:
        return (await store.ledger.get_or_create_account(tx, "telegram", uid)).id


def _job(job_id: str, account_id: int, **kw: object) -> JobRecord:
    fields: dict[str, object] = {
        "platform": "telegram",
        "chat": '{"chat_id": 1, "message_id": 2}',
        "kind": "generate",
        "params": '{"prompt": "a cat"}',
        "estimate": 4,
    }
    fields.update(kw)
    return JobRecord(id=job_id, account_id=account_id, **fields)  # type: ignore[arg-type]


async def test_insert_get_and_replay(store: Store, clock: FakeClock) -> None:
    acct = await _account_id(store)
    async with store.transaction() as tx:
        j = await store.jobs.insert(tx, _job("j1", acct))
        assert j.state == "NEW" and j.created_at == clock.now == j.updated_at
        assert await store.jobs.get(tx, "j1") == j
        assert await store.jobs.insert(tx, _job("j1", acct)) == j  # replay
        with pytest.raises(IdempotencyConflict):
            await store.jobs.insert(tx, _job("j1", acct, kind="edit"))
        with pytest.raises(StorageError):
            await store.jobs.insert(tx, _job("j2", acct, kind="paint"))
        assert await store.jobs.get(tx, "missing") is None


async def test_transition_is_compare_and_swap(store: Store, clock: FakeClock) -> None:
    acct = await _account_id(store)
    async with store.transaction() as tx:
        await store.jobs.insert(tx, _job("j1", acct))
        clock.advance(5)
        assert await store.jobs.transition(tx, "j1", ("NEW",), "RESERVED", hold_id="h1")
        # Second actor expecting NEW loses.
        assert not await store.jobs.transition(tx, "j1", ("NEW",), "FAILED", error="x")
        assert await store.jobs.transition(
            tx, "j1", (JobState.RESERVED,), JobState.SUBMITTING, attempts=1
        )
        assert await store.jobs.transition(tx, "j1", "SUBMITTING", "POLLING", vendor_ref="req-1")
        assert not await store.jobs.transition(tx, "nope", ("NEW",), "FAILED")
        j = await store.jobs.get(tx, "j1")
        assert j is not None
        assert (j.state, j.hold_id, j.attempts, j.vendor_ref, j.error) == (
            "POLLING",
            "h1",
            1,
            "req-1",
            None,
        )
        assert j.updated_at == clock.now and j.created_at == clock.now - 5
        with pytest.raises(StorageError, match="cannot set job field"):
            await store.jobs.transition(tx, "j1", ("POLLING",), "FAILED", state="NEW")
        with pytest.raises(StorageError, match="unknown job state"):
            await store.jobs.transition(tx, "j1", ("POLLING",), "DONE")
        with pytest.raises(StorageError, match="must be an int"):
            await store.jobs.update(tx, "j1", cost="3")
        assert await store.jobs.update(tx, "j1", result='{"url": "x"}', cost=3)
        assert not await store.jobs.update(tx, "nope", cost=3)
        assert await store.jobs.transition(tx, "j1", ("POLLING",), "SUCCEEDED", cost=4)
        j = await store.jobs.get(tx, "j1")
        assert j is not None and j.terminal and j.cost == 4 and j.result == '{"url": "x"}'


async def test_queries_for_sweeper_and_limits(store: Store, clock: FakeClock) -> None:
    a = await _account_id(store, "1")
    b = await _account_id(store, "2")
    async with store.transaction() as tx:
        for i in range(4):
            await store.jobs.insert(tx, _job(f"a{i}", a))
            clock.advance(10)
        await store.jobs.insert(tx, _job("b0", b))
        await store.jobs.transition(tx, "a0", ("NEW",), "FAILED", error="vendor_down")
        await store.jobs.transition(tx, "a1", ("NEW",), "POLLING")
        assert await store.jobs.count_active(tx, a) == 3
        assert await store.jobs.count_active(tx, b) == 1
        assert await store.jobs.count_since(tx, a, clock.now - 25) == 2
        assert [j.id for j in await store.jobs.for_account(tx, a)] == ["a3", "a2", "a1", "a0"]
        assert [j.id for j in await store.jobs.recent(tx, limit=2)] == ["b0", "a3"]
        stuck = await store.jobs.in_states(tx, ("NEW", "POLLING"), older_than=clock.now - 15)
        assert [j.id for j in stuck] == ["a2"]
        assert {j.id for j in await store.jobs.in_states(tx, ("NEW",))} == {"a2", "a3", "b0"}
        assert [j.id for j in await store.jobs.unnotified_terminal(tx)] == ["a0"]
        assert await store.jobs.mark_notified(tx, "a0")
        assert not await store.jobs.mark_notified(tx, "a0")
        assert await store.jobs.unnotified_terminal(tx) == []


# --------------------------------------------------------------------------- the queue


async def _queue(store: Store, clock: FakeClock, jobs: list[tuple[str, int]], **kw: object) -> None:
    """Insert ``(job_id, account_id)`` jobs one clock tick apart, all RESERVED."""
    async with store.transaction() as tx:
        for job_id, account_id in jobs:
            await store.jobs.insert(tx, _job(job_id, account_id, state="RESERVED", **kw))
            clock.advance(1)


async def _claim(
    store: Store, clock: FakeClock, worker: str = "w1", *, lease: float = 30.0, **kw: Any
) -> str | None:
    async with store.transaction() as tx:
        job = await store.jobs.claim(
            tx, kw.pop("queues", ("telegram",)), worker, lease_until=clock.now + lease, **kw
        )
    if job is not None:
        assert (job.claimed_by, job.lease_until) == (worker, clock.now + lease)
    return None if job is None else job.id


async def test_claim_is_fair_across_accounts(store: Store, clock: FakeClock) -> None:
    a, b = await _account_id(store, "1"), await _account_id(store, "2")
    await _queue(store, clock, [("a1", a), ("a2", a), ("a3", a), ("b1", b)])
    async with store.transaction() as tx:
        await store.jobs.insert(tx, _job("new", a))  # NEW: not queued yet
        await store.jobs.insert(tx, _job("d1", a, state="RESERVED", queue="discord"))
        queued = await store.jobs.queued(tx, ("telegram",))
        assert [j.id for j in queued] == ["a1", "a2", "a3", "b1"]
        assert queued[0].queue == "telegram" and queued[0].claimed_by is None
        assert [j.id for j in await store.jobs.queued(tx)] == ["a1", "a2", "a3", "b1", "d1"]
        assert await store.jobs.queued(tx, ()) == []
    # The account with the fewest claims goes first, then the oldest job.
    claimed = [await _claim(store, clock, f"w{i}", limit=None) for i in range(5)]
    assert claimed == ["a1", "b1", "a2", "a3", None]
    assert await _claim(store, clock, queues=("discord",), limit=None) == "d1"
    assert await _claim(store, clock, queues=(), limit=None) is None
    async with store.read() as tx:
        assert await store.jobs.queued(tx) == []
        assert await store.jobs.in_flight(tx, clock.now) == 5


async def test_claim_respects_the_limit(store: Store, clock: FakeClock) -> None:
    a, b = await _account_id(store, "1"), await _account_id(store, "2")
    await _queue(store, clock, [(f"j{i}", (a, b)[i % 2]) for i in range(6)])
    async with store.transaction() as tx:
        await store.limits.ensure(tx, VENDOR_LIMIT, initial=2, ceiling=4)
    assert await _claim(store, clock, "w1") == "j0"
    assert await _claim(store, clock, "w2") == "j1"
    assert await _claim(store, clock, "w3") is None  # in_flight reached the value
    assert await _claim(store, clock, "w3", limit="no-such-limit") == "j2"  # no row: no limit
    assert await _claim(store, clock, "w3", limit=None) == "j3"
    async with store.transaction() as tx:
        assert await store.jobs.in_flight(tx, clock.now) == 4
        # A job past the vendor call (DELIVERING) no longer holds a slot ...
        for job_id in ("j0", "j2", "j3"):
            assert await store.jobs.transition(tx, job_id, ("RESERVED",), "DELIVERING")
        assert await store.jobs.in_flight(tx, clock.now) == 1
    assert await _claim(store, clock, "w4", lease=5) == "j4"
    assert await _claim(store, clock, "w5") is None
    # ... and neither does a claim whose lease ran out.
    clock.advance(6)
    async with store.read() as tx:
        assert await store.jobs.in_flight(tx, clock.now) == 1
    assert await _claim(store, clock, "w5") == "j5"
    # A Retry-After: nothing is claimed before not_before.
    await _queue(store, clock, [("k0", a)])
    async with store.transaction() as tx:
        for job_id in ("j1", "j5"):
            assert await store.jobs.transition(tx, job_id, ("RESERVED",), "FAILED")
        await store.limits.cut(tx, VENDOR_LIMIT, now=clock.now, not_before=clock.now + 10)
    assert await _claim(store, clock, "w6") is None
    clock.advance(11)
    assert await _claim(store, clock, "w6") == "k0"


async def test_lease_expiry_and_take_over(store: Store, clock: FakeClock) -> None:
    a = await _account_id(store)
    await _queue(store, clock, [("j1", a)])
    assert await _claim(store, clock, "w1", lease=10, limit=None) == "j1"
    async with store.transaction() as tx:
        assert await store.jobs.expired_claims(tx, clock.now) == []
        assert await store.jobs.take_over(tx, "j1", "w2", now=clock.now, lease_until=99) is None
        assert await store.jobs.transition(tx, "j1", ("RESERVED",), "SUBMITTING", owner="w1")
    clock.advance(11)
    async with store.transaction() as tx:
        assert [j.id for j in await store.jobs.expired_claims(tx, clock.now)] == ["j1"]
        taken = await store.jobs.take_over(
            tx, "j1", "w2", now=clock.now, lease_until=clock.now + 30
        )
        assert taken is not None
        assert (taken.claimed_by, taken.lease_until, taken.state) == (
            "w2",
            clock.now + 30,
            "SUBMITTING",
        )
        assert await store.jobs.expired_claims(tx, clock.now) == []
        # The worker that lost the job changes nothing any more.
        assert not await store.jobs.transition(tx, "j1", ("SUBMITTING",), "POLLING", owner="w1")
        assert await store.jobs.renew(tx, "w1", ["j1"], clock.now + 60) == []
        assert await store.jobs.renew(tx, "w2", ["j1", "nope"], clock.now + 60) == ["j1"]
        assert await store.jobs.renew(tx, "w2", [], clock.now + 60) == []
        assert await store.jobs.transition(tx, "j1", ("SUBMITTING",), "POLLING", owner="w2")
        j = await store.jobs.get(tx, "j1")
        assert j is not None and (j.state, j.lease_until) == ("POLLING", clock.now + 60)
        # A terminal state drops the claim: nothing to renew, expire or take over.
        assert await store.jobs.transition(tx, "j1", ("POLLING",), "SUCCEEDED", owner="w2")
        j = await store.jobs.get(tx, "j1")
        assert j is not None and (j.claimed_by, j.lease_until) == (None, None)
        assert await store.jobs.renew(tx, "w2", ["j1"], clock.now + 90) == []
        clock.advance(100)
        assert await store.jobs.expired_claims(tx, clock.now) == []
        assert await store.jobs.take_over(tx, "j1", "w3", now=clock.now, lease_until=1e10) is None


async def test_release_gives_an_unsent_job_back(store: Store, clock: FakeClock) -> None:
    a = await _account_id(store)
    await _queue(store, clock, [("j1", a), ("j2", a)])
    assert await _claim(store, clock, "w1", limit=None) == "j1"
    async with store.transaction() as tx:
        assert not await store.jobs.release(tx, "j1", "w2")  # not the owner
        assert await store.jobs.release(tx, "j1", "w1")
        assert not await store.jobs.release(tx, "j1", "w1")
        j = await store.jobs.get(tx, "j1")
        assert j is not None and (j.claimed_by, j.lease_until, j.state) == (None, None, "RESERVED")
        assert [q.id for q in await store.jobs.queued(tx)] == ["j1", "j2"]
    assert await _claim(store, clock, "w2", limit=None) == "j1"
    async with store.transaction() as tx:
        assert await store.jobs.transition(tx, "j1", ("RESERVED",), "SUBMITTING", owner="w2")
        assert not await store.jobs.release(tx, "j1", "w2")  # the vendor may have seen it


async def test_limit_ensure_grow_cut(store: Store, clock: FakeClock) -> None:
    t0 = clock.now
    async with store.transaction() as tx:
        assert await store.limits.get(tx, "vendor") is None
        assert await store.limits.grow(tx, "vendor") is None
        assert await store.limits.cut(tx, "vendor", now=t0) is None
        lim: Limit | None = await store.limits.ensure(tx, "vendor", initial=9, ceiling=5)
        assert lim is not None
        assert (lim.name, lim.value, lim.ceiling, lim.not_before, lim.cut_at) == (
            "vendor",
            5,
            5,
            0.0,
            0.0,
        )
        # A lower ceiling clamps the value; a higher one leaves the value alone.
        lim = await store.limits.ensure(tx, "vendor", initial=1, ceiling=3)
        assert (lim.value, lim.ceiling) == (3, 3)
        lim = await store.limits.ensure(tx, "vendor", initial=1, ceiling=20)
        assert (lim.value, lim.ceiling) == (3, 20)
        assert (await store.limits.grow(tx, "vendor")).value == 4  # type: ignore[union-attr]
        assert (await store.limits.grow(tx, "vendor", 100)).value == 20  # type: ignore[union-attr]
        assert (await store.limits.grow(tx, "vendor")).value == 20  # type: ignore[union-attr]
        # Halved at most once per window: a burst of failures is one signal.
        lim = await store.limits.cut(tx, "vendor", now=t0, window=2.0)
        assert lim is not None and (lim.value, lim.cut_at) == (10, t0)
        lim = await store.limits.cut(tx, "vendor", now=t0 + 1, window=2.0)
        assert lim is not None and (lim.value, lim.cut_at) == (10, t0)
        values = []
        for i in range(1, 7):
            lim = await store.limits.cut(tx, "vendor", now=t0 + 2 * i, window=2.0)
            assert lim is not None
            values.append(lim.value)
        assert values == [5, 2, 1, 1, 1, 1]  # never below 1
        # not_before only ever moves later.
        lim = await store.limits.cut(tx, "vendor", now=t0 + 20, not_before=t0 + 50)
        assert lim is not None and lim.not_before == t0 + 50
        lim = await store.limits.cut(tx, "vendor", now=t0 + 21, not_before=t0 + 30)
        assert lim is not None and lim.not_before == t0 + 50
        assert await store.limits.get(tx, "vendor") == lim


async def test_concurrent_claimers_stay_under_the_limit(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    """20 claimers at once, from two stores (two pools / two connections to the
    file, as two processes would have), never hold more than 5 live claims."""
    other = await open_store(store_url, clock=clock)
    try:
        accounts = [await _account_id(store, str(i)) for i in range(4)]
        await _queue(store, clock, [(f"j{i:02}", accounts[i % 4]) for i in range(40)])
        async with store.transaction() as tx:
            await store.limits.ensure(tx, VENDOR_LIMIT, initial=5, ceiling=5)

        async def claimer(i: int) -> str | None:
            s = (store, other)[i % 2]
            async with s.transaction() as tx:
                job = await s.jobs.claim(tx, ("telegram",), f"w{i}", lease_until=clock.now + 60)
                await asyncio.sleep(0.002)  # hold the claim open: the others must wait
            return None if job is None else job.id

        got = [j for j in await asyncio.gather(*(claimer(i) for i in range(20))) if j]
        assert len(got) == len(set(got)) == 5
        async with other.transaction() as tx:
            assert await other.jobs.in_flight(tx, clock.now) == 5
            # Free two slots; the next round fills exactly those.
            for job_id in got[:2]:
                assert await other.jobs.transition(tx, job_id, ("RESERVED",), "DELIVERING")
        more = [j for j in await asyncio.gather(*(claimer(i) for i in range(20))) if j]
        assert len(more) == 2 and not set(more) & set(got)
        async with store.read() as tx:
            assert await store.jobs.in_flight(tx, clock.now) == 5

        # Without a limit every queued job is claimed exactly once.
        async def free_claimer(i: int) -> str | None:
            s = (store, other)[i % 2]
            async with s.transaction() as tx:
                job = await s.jobs.claim(tx, ("telegram",), f"f{i}", lease_until=1e10, limit=None)
            return None if job is None else job.id

        rest = [j for j in await asyncio.gather(*(free_claimer(i) for i in range(40))) if j]
        assert len(rest) == len(set(rest)) == 33
        assert not set(rest) & set(got + more)
    finally:
        await other.close()


async def test_notify_wakes_waiters_here_and_in_other_stores(store: Store, store_url: str) -> None:
    other = await open_store(store_url)
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await store.wait_jobs(0.05)  # nothing notified: returns at the timeout
        assert loop.time() - t0 >= 0.04
        waiter = asyncio.create_task(store.wait_jobs(30))
        await asyncio.sleep(0.2)  # let it start listening
        t0 = loop.time()
        await other.notify_jobs()  # another store: another process, as far as we know
        await asyncio.wait_for(waiter, 5)
        assert loop.time() - t0 < 2
        waiter = asyncio.create_task(store.wait_jobs(30))
        await asyncio.sleep(0)
        await store.notify_jobs()  # the same store: at once
        await asyncio.wait_for(waiter, 1)
    finally:
        await other.close()


async def test_audit_and_flags(store: Store, clock: FakeClock) -> None:
    async with store.transaction() as tx:
        await store.audit.record(tx, "telegram:1", "topup", "telegram:2", "+50", True)
        clock.advance(1)
        await store.audit.record(tx, "telegram:3", "topup", None, None, False)
        entries = await store.audit.recent(tx, 10)
        assert [(e.actor, e.allowed) for e in entries] == [
            ("telegram:3", False),
            ("telegram:1", True),
        ]
        assert entries[1].detail == "+50" and entries[1].at == clock.now - 1
        assert await store.flags.get(tx, "vendor_paused") is None
        await store.flags.set(tx, "vendor_paused", "402")
        await store.flags.set(tx, "vendor_paused", "402 again")
        await store.flags.set(tx, "settings:telegram:1", '{"size": "1024x1024"}')
        assert await store.flags.get(tx, "vendor_paused") == "402 again"
        assert await store.flags.delete(tx, "vendor_paused")
        assert not await store.flags.delete(tx, "vendor_paused")
        assert await store.flags.get(tx, "vendor_paused") is None
    async with store.read() as tx:
        assert await store.flags.get(tx, "settings:telegram:1") == '{"size": "1024x1024"}'


async def test_claim_many_takes_a_burst_up_to_the_limits_room(
    store: Store, clock: FakeClock
) -> None:
    a, b = await _account_id(store, "1"), await _account_id(store, "2")
    await _queue(store, clock, [(f"j{i}", (a, b)[i % 2]) for i in range(6)])
    async with store.transaction() as tx:
        await store.limits.ensure(tx, VENDOR_LIMIT, initial=4, ceiling=4)
        first = await store.jobs.claim_many(
            tx, ["telegram"], "w1", lease_until=clock.now + 30, count=3
        )
        assert [j.id for j in first] == ["j0", "j1", "j2"]
        assert all(j.claimed_by == "w1" for j in first)
        second = await store.jobs.claim_many(
            tx, ["telegram"], "w2", lease_until=clock.now + 30, count=10
        )
        assert [j.id for j in second] == ["j3"]  # the limit had room for one more
        assert (
            await store.jobs.claim_many(
                tx, ["telegram"], "w3", lease_until=clock.now + 30, count=10
            )
            == []
        )
        assert await store.jobs.in_flight(tx, clock.now) == 4
