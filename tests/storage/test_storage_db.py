"""Tests for open_store: URLs, pragmas, migrations, transaction discipline."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest
from storage_test_clock import FakeClock

from storage import SYSTEM_ACCOUNTS, StorageError, Store, open_store
from storage.sqlite.migrations import MIGRATIONS, SCHEMA_VERSION, split_statements
from storage.sqlite.opening import parse_sqlite_url
from storage.sqlite.tx import sqlite_tx


def test_parse_urls() -> None:
    assert parse_sqlite_url("sqlite:///data/bot.sqlite3") == "data/bot.sqlite3"
    assert parse_sqlite_url("sqlite:////var/lib/bot.db") == "/var/lib/bot.db"
    assert parse_sqlite_url("data/bot.sqlite3") == "data/bot.sqlite3"
    assert parse_sqlite_url("/abs/bot.sqlite3") == "/abs/bot.sqlite3"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://localhost/bot", "unsupported database URL scheme 'mysql'"),
        ("sqlite://relative", "bad SQLite URL"),
        ("", "empty database URL"),
    ],
)
async def test_unsupported_urls(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        await open_store(url)


def test_sqlite_parser_refuses_postgres_urls() -> None:
    for url in ("postgresql://u:secret@localhost/bot", "postgres://localhost/bot"):
        with pytest.raises(StorageError, match="PostgreSQL URL") as ei:
            parse_sqlite_url(url)
        assert "secret" not in str(ei.value)


async def test_unreachable_postgres_is_a_storage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(StorageError, match="cannot connect") as ei:
            await open_store(f"postgresql://u:secret@127.0.0.1:{port}/bot")
    assert "secret" not in str(ei.value)


async def test_relative_url_creates_parent_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = await open_store("sqlite:///nested/dir/bot.sqlite3")
    await s.close()
    assert (tmp_path / "nested" / "dir" / "bot.sqlite3").exists()


async def test_pragmas_and_migrations_idempotent(db_path: Path) -> None:
    s = await open_store(str(db_path))
    async with s.transaction() as tx:
        a = await s.ledger.get_or_create_account(tx, "discord", "9", welcome_grant=3)
    await s.close()
    # Reopen twice: migrations must not re-run (system accounts not duplicated,
    # data preserved).
    for _ in range(2):
        s = await open_store(f"sqlite:///{db_path}")
        async with s.read() as tx:
            t = sqlite_tx(tx)
            assert (await t.fetchone("PRAGMA user_version"))[0] == SCHEMA_VERSION  # type: ignore[index]
            assert (await t.fetchone("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]
            assert (await t.fetchone("PRAGMA synchronous"))[0] == 2  # type: ignore[index]  # FULL
            assert (await t.fetchone("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
            assert (await t.fetchone("PRAGMA busy_timeout"))[0] == 10000  # type: ignore[index]
            n = await t.fetchone("SELECT COUNT(*) FROM accounts WHERE kind = 'system'")
            assert n is not None and n[0] == len(SYSTEM_ACCOUNTS)
            assert (await s.ledger.get_account(tx, a.id)).balance == 3
        await s.close()


async def test_newer_schema_is_refused(db_path: Path) -> None:
    s = await open_store(str(db_path))
    await s.close()
    con = sqlite3.connect(db_path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StorageError, match="newer than this code supports"):
        await open_store(str(db_path))


def test_split_statements_handles_triggers() -> None:
    stmts = split_statements(MIGRATIONS[0])
    trig = [s for s in stmts if "CREATE TRIGGER transfers_no_update" in s]
    assert len(trig) == 1 and trig[0].rstrip(";").rstrip().endswith("END")
    assert all(sqlite3.complete_statement(s) for s in stmts)


async def test_read_tx_refuses_writes_and_tx_expires(store: Store) -> None:
    async with store.read() as tx:
        assert not tx.writable
        with pytest.raises(StorageError, match="read-only"):
            await store.ledger.get_or_create_account(tx, "telegram", "1")
        with pytest.raises(StorageError, match="read-only"):
            await store.flags.set(tx, "k", "v")
    assert not tx.active
    with pytest.raises(StorageError, match="no longer active"):
        await store.flags.get(tx, "k")


async def test_nested_transaction_is_an_error_not_a_deadlock(store: Store) -> None:
    async with store.transaction():
        with pytest.raises(StorageError, match="nested"):
            async with store.transaction():
                pass


async def test_concurrent_coroutines_serialise(store: Store) -> None:
    """Many coroutines reserving at once on one connection never overspend."""
    async with store.transaction() as tx:
        a = await store.ledger.get_or_create_account(tx, "telegram", "1")
        topup = await store.ledger.system_account(tx, "system:topup")
        await store.ledger.transfer(tx, "seed", topup.id, a.id, 100, "topup")

    async def one(i: int) -> bool:
        try:
            async with store.transaction() as tx:
                await store.ledger.reserve(tx, f"h{i}", a.id, 30)
                await asyncio.sleep(0)  # yield mid-transaction
                await store.jobs.count_active(tx, a.id)
            return True
        except StorageError:
            return False

    results = await asyncio.gather(*(one(i) for i in range(10)))
    assert sum(results) == 3
    async with store.read() as tx:
        b = await store.ledger.balance(tx, a.id)
        assert (b.posted, b.pending) == (100, 90)
        assert await store.ledger.check_invariants(tx) == []


async def test_cancelled_transaction_rolls_back(store: Store) -> None:
    async with store.transaction() as tx:
        a = await store.ledger.get_or_create_account(tx, "telegram", "1")
        topup = await store.ledger.system_account(tx, "system:topup")
        await store.ledger.transfer(tx, "seed", topup.id, a.id, 100, "topup")
    started = asyncio.Event()

    async def slow() -> None:
        async with store.transaction() as tx:
            await store.ledger.reserve(tx, "h", a.id, 10)
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.transaction() as tx:
        assert await store.ledger.get_hold(tx, "h") is None
        assert (await store.ledger.balance(tx, a.id)).pending == 0


async def test_close_is_idempotent_and_blocks_use(db_path: Path) -> None:
    s = await open_store(str(db_path))
    await s.close()
    await s.close()
    with pytest.raises(StorageError, match="closed"):
        async with s.transaction():
            pass


async def test_reads_end_their_snapshots_without_going_stale(db_path: Path) -> None:
    """A finished read leaves its snapshot to the next read's first hop (one hop
    less per read) or to the store shortly after; never longer, never stale."""
    from storage.sqlite import db

    store = await open_store(f"sqlite:///{db_path}")
    try:
        async with store.transaction() as tx:
            await store.flags.set(tx, "k", "1")
        async with store.read() as tx:
            assert await store.flags.get(tx, "k") == "1"
        async with store.transaction() as tx:
            await store.flags.set(tx, "k", "2")
        # The same reader connection, its old snapshot still open: it must not be seen.
        async with store.read() as tx:
            assert await store.flags.get(tx, "k") == "2"
        readers = store._readers  # type: ignore[attr-defined]
        assert any(r.in_transaction for r in readers)
        await asyncio.sleep(db.READ_SNAPSHOT_LINGER + 0.2)
        assert not any(r.in_transaction for r in readers)
        # With no snapshot open, a checkpoint can empty the WAL completely.
        async with store.transaction() as tx:
            for i in range(200):
                await store.flags.set(tx, f"x{i}", "y" * 500)
        async with store.read() as tx:
            await store.flags.get(tx, "k")
        await asyncio.sleep(db.READ_SNAPSHOT_LINGER + 0.2)
        with sqlite3.connect(db_path) as con:
            busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        await store.close()
    # A read right before close leaves nothing pending behind.
    store = await open_store(f"sqlite:///{db_path}")
    async with store.read() as tx:
        await store.flags.get(tx, "k")
    await store.close()


async def test_flags_purge_only_old_ones_under_the_prefix(store: Store, clock: FakeClock) -> None:
    async with store.transaction() as tx:
        await store.flags.set(tx, "draft:old", "{}")
        await store.flags.set(tx, "draft_x:old", "{}")  # another prefix, same start
        await store.flags.set(tx, "prefs:telegram:1", "{}")
    clock.advance(100)
    async with store.transaction() as tx:
        await store.flags.set(tx, "draft:new", "{}")
        assert await store.flags.purge(tx, "draft:", clock.now - 50) == 1
        assert await store.flags.get(tx, "draft:old") is None
        assert await store.flags.get(tx, "draft:new") == "{}"
        assert await store.flags.get(tx, "draft_x:old") == "{}"
        assert await store.flags.get(tx, "prefs:telegram:1") == "{}"
        assert await store.flags.purge(tx, "dr%", clock.now) == 0  # never a pattern
