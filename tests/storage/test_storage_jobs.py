"""Tests for the jobs repository, audit log and flags."""

from __future__ import annotations

import pytest
from storage_test_clock import FakeClock

from storage import IdempotencyConflict, JobRecord, JobState, StorageError, Store


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


async def test_claim_next(store: Store, clock: FakeClock) -> None:
    a = await _account_id(store)
    async with store.transaction() as tx:
        await store.jobs.insert(tx, _job("j1", a))
        clock.advance(1)
        await store.jobs.insert(tx, _job("j2", a))
        c1 = await store.jobs.claim_next(tx, ("NEW",), "w1")
        c2 = await store.jobs.claim_next(tx, ("NEW",), "w2")
        assert (c1 and c1.id, c2 and c2.id) == ("j1", "j2")
        assert await store.jobs.claim_next(tx, ("NEW",), "w3") is None
        clock.advance(100)
        stolen = await store.jobs.claim_next(tx, ("NEW",), "w3", stale_before=clock.now - 50)
        assert stolen is not None and stolen.id == "j1"


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
