"""Fixtures for the storage tests: every ``store`` test runs on both backends.

``store`` is parametrized: ``[sqlite]`` is a real SQLite file under tmp_path,
``[postgres]`` a fresh database on the session's PostgreSQL server (``tests/pg.py``).
Tests of SQLite mechanics (group commit, WAL, pragmas) use ``sqlite_store``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from storage_test_clock import FakeClock

from storage import Store, open_store

BACKENDS = ("sqlite", "postgres")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.sqlite3"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, db_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL for an empty, migrated database of the test's backend."""
    if backend == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{db_path}"


@pytest.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    s = await open_store(store_url, clock=clock)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def sqlite_store(db_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{db_path}", clock=clock)
    try:
        yield s
    finally:
        await s.close()
