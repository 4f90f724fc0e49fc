"""Two OS processes spending from one account on one database (SQLite file or
PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import open_store

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


async def _seed(db: str) -> int:
    store = await open_store(db)
    async with store.transaction() as tx:
        acct = await store.ledger.get_or_create_account(tx, "telegram", "1")
        topup = await store.ledger.system_account(tx, "system:topup")
        await store.ledger.transfer(tx, "seed", topup.id, acct.id, 100, "topup")
    await store.close()
    return acct.id


async def _verify(db: str, account_id: int, results: dict[str, bool]) -> None:
    store = await open_store(db)
    try:
        async with store.read() as tx:
            b = await store.ledger.balance(tx, account_id)
            assert (b.posted, b.pending, b.available) == (100, 80, 20)
            held = await store.ledger.open_holds(tx)
            assert sorted(h.id for h in held) == sorted(k for k, ok in results.items() if ok)
            assert await store.ledger.check_invariants(tx) == []
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_cannot_overspend(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Balance 100, five 40-credit reserves split across two processes -> exactly 2."""
    server = request.getfixturevalue("pg_server") if backend == "postgres" else None
    db = asyncio.run(server.create_database()) if server else str(tmp_path / "shared.sqlite3")
    try:
        _run_spenders(tmp_path, db)
    finally:
        if server is not None:
            asyncio.run(server.drop_database(db))


def _run_spenders(tmp_path: Path, db: str) -> None:
    account_id = asyncio.run(_seed(db))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plans = [["h0", "h2", "h4"], ["h1", "h3"]]
    base = [sys.executable, str(HERE / "_spender.py"), str(db), str(go), str(account_id), "40"]
    procs = [
        subprocess.Popen(
            [*base, *plan],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for plan in plans
    ]
    go.touch()  # both children are polling for this file: start together
    results: dict[str, bool] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.update(json.loads(out.strip().splitlines()[-1]))

    assert sorted(results) == ["h0", "h1", "h2", "h3", "h4"]
    assert sum(results.values()) == 2, results
    asyncio.run(_verify(db, account_id, results))
