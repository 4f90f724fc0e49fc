"""Fixtures for the storage tests: a real SQLite file per test under tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from storage_test_clock import FakeClock

from storage import Store, open_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.sqlite3"


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{db_path}", clock=clock)
    try:
        yield s
    finally:
        await s.close()
