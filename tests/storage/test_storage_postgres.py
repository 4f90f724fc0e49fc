"""PostgreSQL-only mechanics: migrations, the read-only snapshot, the pool, NOTIFY.

The repository behaviour is covered on both backends by the other storage tests
(``store`` is parametrized); these are what only the PostgreSQL store has.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from storage_test_clock import FakeClock

from storage import SYSTEM_ACCOUNTS, StorageError, open_store
from storage.postgres.migrations import MIGRATIONS, SCHEMA_VERSION, apply_migrations
from storage.postgres.store import PostgresStore, pg_tx, redact
from tests.pg import PgServer


async def _empty_db(pg_server: PgServer) -> str:
    """A database with no schema at all (the fixture's are already migrated)."""
    url = await pg_server.create_database()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return url


async def test_migrations_apply_once_even_when_started_together(pg_server: PgServer) -> None:
    url = await _empty_db(pg_server)
    try:
        clock = FakeClock()
        conns = [await asyncpg.connect(url) for _ in range(4)]
        try:
            versions = await asyncio.gather(*(apply_migrations(c, clock) for c in conns))
        finally:
            for c in conns:
                await c.close()
        assert versions == [SCHEMA_VERSION] * 4
        store = await open_store(url, clock=clock)
        try:
            assert isinstance(store, PostgresStore)
            assert store.info.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
            async with store.read() as tx:
                t = pg_tx(tx)
                rows = await t.fetch("SELECT version, applied_at FROM schema_version")
                assert sorted(r["version"] for r in rows) == list(range(1, SCHEMA_VERSION + 1))
                assert {r["applied_at"] for r in rows} == {clock.now}
                n = await t.fetchval("SELECT COUNT(*) FROM accounts WHERE kind = 'system'")
                assert n == len(SYSTEM_ACCOUNTS)
        finally:
            await store.close()
    finally:
        await pg_server.drop_database(url)


async def test_newer_schema_is_refused(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, 0)", SCHEMA_VERSION + 1
        )
    finally:
        await conn.close()
    with pytest.raises(StorageError, match="newer than this code supports"):
        await open_store(pg_url)


async def test_read_snapshot_is_read_only_in_the_database(pg_url: str) -> None:
    store = await open_store(pg_url)
    try:
        with pytest.raises(StorageError, match="read-only"):
            async with store.read() as tx:
                # Past the repository's own check: PostgreSQL refuses it too.
                tx._writable = True  # type: ignore[attr-defined]
                await store.flags.set(tx, "k", "v")
        async with store.read() as tx:
            assert await store.flags.get(tx, "k") is None
    finally:
        await store.close()


async def test_pool_size_and_clean_close(pg_url: str) -> None:
    from storage.postgres.store import open_postgres_store

    store = await open_postgres_store(pg_url, max_size=3)
    gate = asyncio.Event()
    inside = 0

    async def hold() -> None:
        nonlocal inside
        async with store.transaction() as tx:
            inside += 1
            await store.flags.set(tx, f"k{inside}", "v")
            await gate.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(5)]
    await asyncio.sleep(0.3)
    assert inside == 3  # the others wait for a connection
    gate.set()
    await asyncio.gather(*tasks)
    assert inside == 5
    await store.close()
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        async with store.transaction():
            pass


async def test_listener_reconnects_after_losing_its_connection(pg_url: str) -> None:
    store = await open_store(pg_url)
    other = await open_store(pg_url)
    try:
        assert isinstance(store, PostgresStore)
        await store.wait_jobs(0.01)  # starts the listener
        listener = store._listener
        assert listener is not None
        listener.terminate()  # as if the server had dropped it
        store._listen_retry_at = 0.0
        waiter = asyncio.create_task(store.wait_jobs(30))
        await asyncio.sleep(0.3)
        # Reconnecting wakes the waiters once (notifications may have been missed).
        if waiter.done():
            waiter = asyncio.create_task(store.wait_jobs(30))
            await asyncio.sleep(0.2)
        assert store._listener is not None and store._listener is not listener
        await other.notify_jobs()
        await asyncio.wait_for(waiter, 5)
    finally:
        await other.close()
        await store.close()


def test_redact_hides_the_password() -> None:
    assert (
        redact("postgresql://bot:s3cret@db:5432/imagine") == "postgresql://bot:***@db:5432/imagine"
    )
    assert redact("postgresql://db/imagine") == "postgresql://db/imagine"
