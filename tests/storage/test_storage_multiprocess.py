"""Two OS processes spending from one account on one SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from storage import open_store

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


async def _seed(db: Path) -> int:
    store = await open_store(str(db))
    async with store.transaction() as tx:
        acct = await store.ledger.get_or_create_account(tx, "telegram", "1")
        topup = await store.ledger.system_account(tx, "system:topup")
        await store.ledger.transfer(tx, "seed", topup.id, acct.id, 100, "topup")
    await store.close()
    return acct.id


async def _verify(db: Path, account_id: int, results: dict[str, bool]) -> None:
    store = await open_store(str(db))
    try:
        async with store.read() as tx:
            b = await store.ledger.balance(tx, account_id)
            assert (b.posted, b.pending, b.available) == (100, 80, 20)
            held = await store.ledger.open_holds(tx)
            assert sorted(h.id for h in held) == sorted(k for k, ok in results.items() if ok)
            assert await store.ledger.check_invariants(tx) == []
    finally:
        await store.close()


def test_two_processes_cannot_overspend(tmp_path: Path) -> None:
    """Balance 100, five 40-credit reserves split across two processes -> exactly 2."""
    db = tmp_path / "shared.sqlite3"
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
