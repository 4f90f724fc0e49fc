"""Group commit: concurrent logical transactions share one physical COMMIT.

See ``storage.sqlite.db.SqliteStore``.  The counters in ``store.stats`` tell how
many physical COMMITs carried how many logical transactions.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage import (
    SYSTEM_REVENUE,
    SYSTEM_TOPUP,
    InsufficientFunds,
    StorageError,
    Store,
    Tx,
    open_store,
)
from storage.sqlite.db import SqliteStore
from storage.sqlite.tx import sqlite_tx

Body = Callable[[Tx], Awaitable[Any]]


class Boom(Exception):
    pass


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """Group commit is SQLite's mechanism: these tests run on SQLite only."""
    return sqlite_store


def _sq(store: Store) -> SqliteStore:
    assert isinstance(store, SqliteStore)
    return store


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.001)


def _committed_flags(db_path: Path) -> dict[str, str]:
    """What another connection (another process, or after a power cut) sees."""
    con = sqlite3.connect(db_path)
    try:
        return dict(con.execute("SELECT key, value FROM flags").fetchall())
    finally:
        con.close()


async def _seed(store: Store, users: int, amount: int) -> list[int]:
    ids = []
    async with store.transaction() as tx:
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        for u in range(users):
            a = await store.ledger.get_or_create_account(tx, "telegram", str(u))
            await store.ledger.transfer(tx, f"seed{u}", topup.id, a.id, amount, "topup")
            ids.append(a.id)
    return ids


async def _one_batch(store: Store, bodies: list[Body]) -> list[Any]:
    """Run ``bodies`` as logical transactions that all queue behind a first one
    (which sets flag 'first'), so they form one batch.  Returns each result or the
    exception it raised, the first one's included."""
    s = _sq(store)
    go = asyncio.Event()
    entered = asyncio.Event()

    async def first() -> str:
        async with store.transaction() as tx:
            await store.flags.set(tx, "first", "1")
            entered.set()
            await go.wait()
        return "first"

    async def run(body: Body) -> Any:
        async with store.transaction() as tx:
            return await body(tx)

    head = asyncio.create_task(first())
    await entered.wait()
    tasks = [asyncio.create_task(run(b)) for b in bodies]
    await _until(lambda: s._waiting == len(bodies))
    go.set()
    return await asyncio.gather(head, *tasks, return_exceptions=True)


# --------------------------------------------------------------------------- batching


async def test_uncontended_transaction_commits_at_once(store: Store, db_path: Path) -> None:
    s = _sq(store)
    before = s.stats.commits
    async with store.transaction() as tx:
        await store.flags.set(tx, "k", "v")
    # Durable as soon as the block exits: another connection sees it.
    assert _committed_flags(db_path) == {"k": "v"}
    assert s.stats.commits == before + 1
    assert s._batch is None


async def test_concurrent_reserves_share_commits(store: Store, db_path: Path) -> None:
    s = _sq(store)
    (acct,) = await _seed(store, 1, 10_000)
    n = 300
    commits0, logical0 = s.stats.commits, s.stats.logical_commits

    async def job(i: int) -> None:
        async with store.transaction() as tx:
            await store.ledger.reserve(tx, f"h{i}", acct, 5, job_id=f"j{i}")
        async with store.transaction() as tx:
            await store.ledger.post(tx, f"h{i}", 3)

    await asyncio.gather(*(job(i) for i in range(n)))
    logical = s.stats.logical_commits - logical0
    physical = s.stats.commits - commits0
    assert logical == 2 * n
    assert physical < logical / 4, (physical, logical)
    assert 1 < s.stats.max_batch <= s.max_batch
    async with store.read() as tx:
        b = await store.ledger.balance(tx, acct)
        assert (b.posted, b.pending) == (10_000 - 3 * n, 0)
        rev = await store.ledger.system_account(tx, SYSTEM_REVENUE)
        assert rev.balance == 3 * n
        assert await store.ledger.check_invariants(tx) == []


async def test_batch_is_bounded(store: Store) -> None:
    s = _sq(store)
    s.max_batch = 5
    await asyncio.gather(*(_set_flag(store, f"k{i}", "v") for i in range(40)))
    assert s.stats.max_batch <= 5
    assert s.stats.logical_commits >= 40


async def _set_flag(store: Store, key: str, value: str) -> None:
    async with store.transaction() as tx:
        await store.flags.set(tx, key, value)


async def test_failing_member_rolls_back_alone(store: Store, db_path: Path) -> None:
    s = _sq(store)
    (acct,) = await _seed(store, 1, 100)
    commits0 = s.stats.commits

    async def ok(tx: Tx, key: str) -> str:
        await store.flags.set(tx, key, "ok")
        return key

    async def raises(tx: Tx) -> None:
        await store.flags.set(tx, "raised", "x")
        await store.ledger.reserve(tx, "hb", acct, 10)
        raise Boom

    async def poisoned(tx: Tx) -> None:
        await store.flags.set(tx, "poisoned", "x")
        with pytest.raises(StorageError):
            await sqlite_tx(tx, write=True).execute("INSERT INTO no_such_table VALUES (1)")

    async def overspends(tx: Tx) -> None:
        await store.flags.set(tx, "overspent", "x")
        await store.ledger.reserve(tx, "hc", acct, 1_000)

    async def reserve(tx: Tx) -> str:
        await store.ledger.reserve(tx, "hd", acct, 30)
        return "hd"

    first, *results = await _one_batch(
        store,
        [
            lambda tx: ok(tx, "a"),
            raises,
            lambda tx: ok(tx, "b"),
            poisoned,
            overspends,
            reserve,
            lambda tx: ok(tx, "c"),
        ],
    )
    assert first == "first"
    assert results[0] == "a" and results[2] == "b" and results[5] == "hd" and results[6] == "c"
    assert isinstance(results[1], Boom)
    assert isinstance(results[3], StorageError) and "rolled back" in str(results[3])
    assert isinstance(results[4], InsufficientFunds)
    # One physical COMMIT for the five good ones (first, a, b, reserve, c).
    assert s.stats.commits == commits0 + 1
    assert _committed_flags(db_path) == {"first": "1", "a": "ok", "b": "ok", "c": "ok"}
    async with store.read() as tx:
        assert await store.ledger.get_hold(tx, "hb") is None
        assert await store.ledger.get_hold(tx, "hc") is None
        assert (await store.ledger.balance(tx, acct)).pending == 30
        assert await store.ledger.check_invariants(tx) == []


async def test_failed_commit_fails_every_member(store: Store, db_path: Path) -> None:
    """A deferred foreign key violation makes the batch's COMMIT itself fail."""
    s = _sq(store)

    async def ok(tx: Tx, key: str) -> None:
        await store.flags.set(tx, key, "ok")

    async def dangling(tx: Tx) -> None:
        t = sqlite_tx(tx, write=True)
        await t.execute("PRAGMA defer_foreign_keys = ON")
        await t.execute(
            "INSERT INTO holds (id, account_id, amount, created_at) VALUES ('x', 987654, 1, 0)"
        )

    results = await _one_batch(store, [lambda tx: ok(tx, "a"), dangling, lambda tx: ok(tx, "b")])
    assert len(results) == 4
    assert all(isinstance(r, StorageError) and "commit failed" in str(r) for r in results)
    assert s.stats.failed_batches == 1
    assert _committed_flags(db_path) == {}  # 'first' was in the batch too
    assert s._batch is None
    # The store keeps working.
    await _set_flag(store, "after", "1")
    assert _committed_flags(db_path) == {"after": "1"}


# --------------------------------------------------------------------------- reads


async def test_read_never_sees_pending_batch(store: Store, db_path: Path) -> None:
    s = _sq(store)
    a_inside = asyncio.Event()
    release_a = asyncio.Event()
    b_inside = asyncio.Event()
    release_b = asyncio.Event()

    async def a() -> None:
        async with store.transaction() as tx:
            await store.flags.set(tx, "a", "1")
            a_inside.set()
            await release_a.wait()

    async def b() -> None:
        async with store.transaction() as tx:
            b_inside.set()
            await release_b.wait()
            await store.flags.set(tx, "b", "1")

    ta = asyncio.create_task(a())
    await a_inside.wait()
    tb = asyncio.create_task(b())
    await _until(lambda: s._waiting == 1)
    release_a.set()  # A finishes its block, but B is queued: A waits for B's COMMIT
    await b_inside.wait()
    assert not ta.done()
    async with store.read() as tx:  # not blocked by the writer
        assert await store.flags.get(tx, "a") is None
    assert _committed_flags(db_path) == {}
    release_b.set()
    await asyncio.gather(ta, tb)
    async with store.read() as tx:
        assert await store.flags.get(tx, "a") == "1"
        assert await store.flags.get(tx, "b") == "1"


async def test_reads_do_not_wait_for_the_write_lock(store: Store) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with store.transaction() as tx:
            await store.flags.set(tx, "k", "v")
            inside.set()
            await release.wait()

    t = asyncio.create_task(holder())
    await inside.wait()
    async with asyncio.timeout(2):
        async with store.read() as tx:
            assert await store.flags.get(tx, "k") is None
    release.set()
    await t


async def test_read_refuses_writes_even_raw(store: Store) -> None:
    async with store.read() as tx:
        with pytest.raises(StorageError, match="read-only"):
            await store.flags.set(tx, "k", "v")
    with pytest.raises(StorageError, match="rolled back"):
        async with store.read() as tx:
            # Bypassing the repository check: the connection itself is query_only.
            with pytest.raises(StorageError, match="database error"):
                await sqlite_tx(tx).execute("INSERT INTO flags VALUES ('k', 'v', 0)")
    async with store.read() as tx:
        assert await store.flags.get(tx, "k") is None


async def test_nested_read_in_transaction_is_an_error(store: Store) -> None:
    async with store.transaction():
        with pytest.raises(StorageError, match="nested"):
            async with store.read():
                pass
    async with store.read():
        with pytest.raises(StorageError, match="nested"):
            async with store.transaction():
                pass


# --------------------------------------------------------------------------- mixed load


async def test_200_concurrent_mixed_operations_keep_the_books(store: Store) -> None:
    users = await _seed(store, 5, 200)
    rng = random.Random(7)
    ops: list[tuple[str, ...]] = []
    for i in range(200):
        kind = rng.choice(["transfer", "reserve_post", "reserve_void", "boom", "overspend"])
        a, b = rng.sample(users, 2)
        ops.append((kind, str(i), str(a), str(b), str(rng.randint(1, 30))))
    done: dict[str, tuple[str, int, int, int]] = {}

    async def one(kind: str, i: str, a_: str, b_: str, amt_: str) -> None:
        a, b, amt = int(a_), int(b_), int(amt_)
        await asyncio.sleep(rng.random() * 0.01)
        try:
            if kind == "transfer":
                async with store.transaction() as tx:
                    await store.ledger.transfer(tx, f"t{i}", a, b, amt, "gift")
                done[i] = (kind, a, b, amt)
            elif kind in ("reserve_post", "reserve_void"):
                async with store.transaction() as tx:
                    await store.ledger.reserve(tx, f"h{i}", a, amt)
                await asyncio.sleep(0)
                async with store.transaction() as tx:
                    if kind == "reserve_post":
                        await store.ledger.post(tx, f"h{i}", amt // 2)
                    else:
                        await store.ledger.void(tx, f"h{i}", "test")
                done[i] = (kind, a, b, amt)
            elif kind == "boom":
                async with store.transaction() as tx:
                    await store.ledger.transfer(tx, f"t{i}", a, b, amt, "gift")
                    raise Boom
            else:
                async with store.transaction() as tx:
                    await store.ledger.transfer(tx, f"x{i}", a, b, 10, "gift")
                    await store.ledger.reserve(tx, f"h{i}", a, 100_000)
        except (InsufficientFunds, Boom):
            pass

    await asyncio.gather(*(one(*op) for op in ops))
    expected = {u: 200 for u in users}
    revenue = 0
    for kind, a, b, amt in done.values():
        if kind == "transfer":
            expected[a] -= amt
            expected[b] += amt
        elif kind == "reserve_post":
            expected[a] -= amt // 2
            revenue += amt // 2
    assert len(done) > 50
    async with store.read() as tx:
        for u in users:
            bal = await store.ledger.balance(tx, u)
            assert (bal.posted, bal.pending) == (expected[u], 0)
        rev = await store.ledger.system_account(tx, SYSTEM_REVENUE)
        assert rev.balance == revenue
        assert await store.ledger.open_holds(tx) == []
        assert await store.ledger.check_invariants(tx) == []
        for kind, op_id, *_ in ops:
            if kind in ("boom", "overspend"):
                assert await store.ledger.get_transfer(tx, f"t{op_id}") is None
                assert await store.ledger.get_transfer(tx, f"x{op_id}") is None


# --------------------------------------------------------------------------- durability


async def test_reopen_shows_everything_acknowledged(db_path: Path) -> None:
    store = await open_store(str(db_path))
    s = _sq(store)
    acknowledged: list[str] = []
    seen_elsewhere: list[bool] = []

    async def writer(i: int) -> None:
        await asyncio.sleep(random.random() * 0.005)
        async with store.transaction() as tx:
            await store.flags.set(tx, f"k{i}", str(i))
        acknowledged.append(f"k{i}")
        if i % 10 == 0:
            seen_elsewhere.append(f"k{i}" in _committed_flags(db_path))

    tasks = [asyncio.create_task(writer(i)) for i in range(150)]
    await asyncio.sleep(0.002)
    await store.close()  # while writers are in flight
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        assert r is None or (isinstance(r, StorageError) and "closed" in str(r)), r
    assert all(seen_elsewhere)
    assert s.stats.commits < s.stats.logical_commits
    on_disk = _committed_flags(db_path)
    assert set(acknowledged) <= set(on_disk)
    reopened = await open_store(str(db_path))
    try:
        async with reopened.read() as tx:
            for key in acknowledged:
                assert await reopened.flags.get(tx, key) == key[1:]
    finally:
        await reopened.close()


async def test_cancelled_waiter_still_commits(store: Store, db_path: Path) -> None:
    s = _sq(store)
    a_inside = asyncio.Event()
    release_a = asyncio.Event()
    b_inside = asyncio.Event()
    release_b = asyncio.Event()

    async def a() -> None:
        async with store.transaction() as tx:
            await store.flags.set(tx, "a", "1")
            a_inside.set()
            await release_a.wait()

    async def b() -> None:
        async with store.transaction() as tx:
            await store.flags.set(tx, "b", "1")
            b_inside.set()
            await release_b.wait()

    ta = asyncio.create_task(a())
    await a_inside.wait()
    tb = asyncio.create_task(b())
    await _until(lambda: s._waiting == 1)
    release_a.set()
    await b_inside.wait()  # A now waits for the batch's COMMIT
    ta.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ta
    release_b.set()
    await tb
    assert _committed_flags(db_path) == {"a": "1", "b": "1"}  # documented: A's writes commit


@pytest.mark.parametrize("closing", [False, True])
async def test_lock_waiter_cancelled_after_wakeup_batch_still_commits(
    store: Store, db_path: Path, closing: bool
) -> None:
    """The only queued caller is cancelled just as the lock is handed to it: the
    batch left open for it must still be committed (by the flusher, or by close)."""
    s = _sq(store)
    victim: list[asyncio.Task[None]] = []

    class CancelOnRelease(asyncio.Lock):
        def release(self) -> None:
            super().release()
            if victim and not victim[0].done():
                victim.pop().cancel()

    s._lock = CancelOnRelease()
    if closing:
        s._schedule_flush = lambda: None  # type: ignore[method-assign]
    inside = asyncio.Event()
    release = asyncio.Event()

    async def a() -> None:
        async with store.transaction() as tx:
            await store.flags.set(tx, "a", "1")
            inside.set()
            await release.wait()

    async def b() -> None:
        async with store.transaction() as tx:
            await store.flags.set(tx, "never", "1")

    ta = asyncio.create_task(a())
    await inside.wait()
    tb = asyncio.create_task(b())
    await _until(lambda: s._waiting == 1)
    victim.append(tb)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await tb
    if closing:
        await asyncio.sleep(0.05)
        assert not ta.done()  # nobody committed yet ...
        await store.close()  # ... close() does
    async with asyncio.timeout(5):
        await ta
    assert _committed_flags(db_path) == {"a": "1"}


async def test_close_waits_for_open_batch(db_path: Path) -> None:
    store = await open_store(str(db_path))
    inside = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with store.transaction() as tx:
            await store.flags.set(tx, "h", "1")
            inside.set()
            await release.wait()

    t = asyncio.create_task(holder())
    await inside.wait()
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    release.set()
    await asyncio.gather(t, closing)
    assert _committed_flags(db_path) == {"h": "1"}
    with pytest.raises(StorageError, match="closed"):
        async with store.read():
            pass
