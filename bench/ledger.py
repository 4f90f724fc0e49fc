"""Ledger throughput: our async Store vs. the same SQL through raw stdlib sqlite3.

Usage: .venv/bin/python bench/ledger.py [--pairs N]

Times N reserve+post pairs (each reserve and each post its own transaction, as
the job flow does) on a fresh temporary SQLite file with WAL + synchronous=FULL,
first through ``storage`` (aiosqlite, asyncio lock, repository checks), then the
very same statements (imported from ``storage.sqlite.ledger``) through a raw
``sqlite3`` connection with BEGIN IMMEDIATE/COMMIT per operation.  Then
``--concurrency`` coroutines run reserve+post pairs at once through our store (the
bot's situation under load: group commit lets them share fsyncs).  The last line
printed is ``ratio <ours/raw>`` (sequential figures).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from storage import SYSTEM_REVENUE, SYSTEM_TOPUP, open_store  # noqa: E402
from storage.sqlite.db import PRAGMAS  # noqa: E402
from storage.sqlite.ledger_sql import (  # noqa: E402
    SQL_INSERT_HOLD,
    SQL_INSERT_TRANSFER,
    SQL_POST_ACCOUNTS,
    SQL_POST_CAS,
    SQL_RESERVE,
)
from storage.sqlite.migrations import MIGRATIONS, split_statements  # noqa: E402

HOLD = 5
CHARGE = 3


class Ours:
    """The job flow through our Store: reserve and post, each its own transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.i = 0

    async def setup(self, pairs: int) -> None:
        self.store = store = await open_store(str(self.path))
        async with store.transaction() as tx:
            acct = await store.ledger.get_or_create_account(tx, "telegram", "bench")
            topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
            await store.ledger.transfer(tx, "seed", topup.id, acct.id, HOLD * pairs, "topup")
        self.account_id = acct.id

    async def run(self, n: int) -> float:
        store, ledger, acct = self.store, self.store.ledger, self.account_id
        start = time.perf_counter()
        for _ in range(n):
            hold_id = f"h{self.i}"
            self.i += 1
            async with store.transaction() as tx:
                await ledger.reserve(tx, hold_id, acct, HOLD, job_id=hold_id)
            async with store.transaction() as tx:
                await ledger.post(tx, hold_id, CHARGE)
        return time.perf_counter() - start

    async def finish(self) -> None:
        async with self.store.read() as tx:
            assert await self.store.ledger.check_invariants(tx) == []
            rev = await self.store.ledger.system_account(tx, SYSTEM_REVENUE)
            assert rev.balance == CHARGE * self.i
        await self.store.close()


class Raw:
    """The same statements through stdlib sqlite3, BEGIN IMMEDIATE/COMMIT per op."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.i = 0

    def setup(self, pairs: int) -> None:
        self.con = con = sqlite3.connect(self.path, isolation_level=None)
        for pragma in PRAGMAS:
            con.execute(pragma).fetchall()
        con.execute("BEGIN IMMEDIATE")
        for stmt in split_statements(MIGRATIONS[0]):
            con.execute(stmt)
        now = time.time()
        self.acct = con.execute(
            "INSERT INTO accounts (kind, platform, external_id, created_at, updated_at) "
            "VALUES ('user', 'telegram', 'bench', ?, ?) RETURNING id",
            (now, now),
        ).fetchone()[0]
        topup, self.revenue = (
            con.execute(
                "SELECT id FROM accounts WHERE platform = 'system' AND external_id = ?", (name,)
            ).fetchone()[0]
            for name in ("topup", "revenue")
        )
        con.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (HOLD * pairs, topup))
        con.execute(
            "UPDATE accounts SET balance = balance + ? WHERE id = ?", (HOLD * pairs, self.acct)
        )
        con.execute("COMMIT")

    def run(self, n: int) -> float:
        con, acct, revenue = self.con, self.acct, self.revenue
        start = time.perf_counter()
        for _ in range(n):
            hold_id = f"h{self.i}"
            self.i += 1
            now = time.time()
            p = {
                "hold_id": hold_id,
                "account_id": acct,
                "amount": HOLD,
                "job_id": hold_id,
                "expires_at": None,
                "now": now,
            }
            con.execute("BEGIN IMMEDIATE")
            if con.execute(SQL_RESERVE, p).fetchone() is None:
                raise RuntimeError("reserve failed")
            con.execute(SQL_INSERT_HOLD, p)
            con.execute("COMMIT")

            q = {
                "hold_id": hold_id,
                "amount": CHARGE,
                "transfer_id": f"charge:{hold_id}",
                "now": now,
            }
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(SQL_POST_CAS, q).fetchone()
            if row is None:
                raise RuntimeError("post failed")
            q.update(
                account_id=row[0],
                held=row[1],
                revenue=revenue,
                debit=row[0],
                credit=revenue,
                kind="charge",
                actor=None,
                reason=None,
                job_id=row[2],
            )
            con.execute(SQL_POST_ACCOUNTS, q)
            con.execute(SQL_INSERT_TRANSFER, q).fetchone()
            con.execute("COMMIT")
        return time.perf_counter() - start

    def finish(self) -> None:
        assert self.con.execute("SELECT SUM(balance) FROM accounts").fetchone()[0] == 0
        self.con.close()


async def bench_concurrent(directory: Path, pairs: int, concurrency: int) -> tuple[float, int]:
    """``concurrency`` coroutines doing reserve+post pairs through our store at once.

    Returns (pairs/s, physical COMMITs).
    """
    ours = Ours(directory / "concurrent.sqlite3")
    await ours.setup(pairs)
    store, ledger, acct = ours.store, ours.store.ledger, ours.account_id
    commits0 = getattr(getattr(store, "stats", None), "commits", 0)
    per = [pairs // concurrency + (1 if w < pairs % concurrency else 0) for w in range(concurrency)]

    async def worker(w: int, n: int) -> None:
        for k in range(n):
            hold_id = f"w{w}-{k}"
            async with store.transaction() as tx:
                await ledger.reserve(tx, hold_id, acct, HOLD, job_id=hold_id)
            async with store.transaction() as tx:
                await ledger.post(tx, hold_id, CHARGE)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w, n) for w, n in enumerate(per)))
    elapsed = time.perf_counter() - start
    commits = getattr(getattr(store, "stats", None), "commits", 0) - commits0
    ours.i = pairs
    await ours.finish()
    return pairs / elapsed, commits


async def bench(directory: Path, pairs: int, rounds: int) -> tuple[float, float]:
    """Alternate short rounds of ours and raw so disk/CPU noise hits both alike."""
    ours, raw = Ours(directory / "ours.sqlite3"), Raw(directory / "raw.sqlite3")
    await ours.setup(pairs)
    raw.setup(pairs)
    t_ours = t_raw = 0.0
    done = 0
    for r in range(rounds):
        n = pairs // rounds + (1 if r < pairs % rounds else 0)
        if r % 2 == 0:
            t_ours += await ours.run(n)
            t_raw += raw.run(n)
        else:
            t_raw += raw.run(n)
            t_ours += await ours.run(n)
        done += n
    await ours.finish()
    raw.finish()
    return done / t_ours, done / t_raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2000, help="reserve+post pairs (default 2000)")
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    ap.add_argument(
        "--concurrency",
        type=int,
        default=100,
        help="coroutines in the concurrent run (default 100)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as d:
        ours, raw = asyncio.run(bench(Path(d), args.pairs, max(1, args.rounds)))
        conc, commits = asyncio.run(bench_concurrent(Path(d), args.pairs, max(1, args.concurrency)))
    print(f"pairs: {args.pairs} (each reserve and each post its own transaction)")
    print(
        f"ours, {args.concurrency} concurrent: {conc:.0f} pairs/s "
        f"({2 * args.pairs} transactions in {commits} commits)"
    )
    print(f"ours: {ours:.0f} pairs/s")
    print(f"raw sqlite3: {raw:.0f} pairs/s")
    print(f"ratio {ours / raw:.2f}")


if __name__ == "__main__":
    main()
