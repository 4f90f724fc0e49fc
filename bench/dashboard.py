"""Dashboard speed on a big database: fills one with N jobs (default a million)
spread over D days, with their ledger rows, then times the report queries, the page
and ``/api/stats`` through the real server.

Usage: .venv/bin/python bench/dashboard.py [--jobs N] [--days D] [--backend sqlite|postgres]

The fill writes rows straight into the tables (bulk inserts, not the job flow:
this measures reading, and a million jobs through the worker would take hours),
with the columns storage writes (``tier``, ``vendor``); the rollups are kept by the
same triggers that keep them for the job flow. The schema, indexes and every read go
through ``storage``. ``--explain`` prints each report query's plan. Figures:
docs/performance.md ("Dashboard").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bots.dashboard.server import DashboardServer  # noqa: E402
from core.admin import CreditAdmin  # noqa: E402
from core.stats import Stats  # noqa: E402
from core.vendors.presets import PRESETS  # noqa: E402
from storage import SYSTEM_REVENUE, SYSTEM_VENDOR_LOSS, Store, open_store, reports  # noqa: E402
from storage.postgres.reports import numbered  # noqa: E402
from storage.postgres.store import pg_tx  # noqa: E402
from storage.sqlite.reports import SqliteReports  # noqa: E402
from storage.sqlite.tx import sqlite_tx  # noqa: E402

TOKEN = "bench-dashboard-token-0123456789"
USERS = 5_000
CHUNK = 20_000
ERRORS = ("vendor_timeout", "vendor_rejected", "delivery_failed", "vendor_error")
TIERS = ("1K", "2K", "4K")
# Three quarters of the jobs on the two failover vendors, the rest NULL (the one
# vendor of VENDOR=, as rows written before VENDORS).
VENDORS = ("alpha", "alpha", "beta", None)


def rows(n: int, days: int, now: float, users: list[int], seed: int = 7) -> Any:
    """(job, transfer or None) tuples: 90 % succeed and are charged, 8 % fail
    (a quarter of them with a vendor loss), the rest still running."""
    rnd = random.Random(seed)
    start = now - days * 86_400
    for i in range(n):
        created = start + (now - start) * i / n
        took = rnd.lognormvariate(2.5, 0.5)
        tier = rnd.choice(TIERS)
        account = rnd.choice(users)
        roll = rnd.random()
        params = json.dumps({"prompt": "bench", "resolution": tier, "n": 1})
        vendor = rnd.choice(VENDORS)
        price = {"1K": 4, "2K": 8, "4K": 16}[tier]
        if roll < 0.90:
            state, error, money = "SUCCEEDED", None, ("charge", price)
        elif roll < 0.98:
            state, error = "FAILED", rnd.choice(ERRORS)
            money = ("vendor_loss", price) if rnd.random() < 0.25 else None
        else:
            state, error, money, took = "POLLING", None, None, 0.0
        yield (
            f"j{i}",
            account,
            params,
            price,
            state,
            error,
            created,
            created + took,
            money,
            tier,
            vendor,
        )


async def fill_sqlite(store: Store, n: int, days: int, now: float) -> None:
    async with store.transaction() as tx:
        t = sqlite_tx(tx, write=True)
        await t.execute(
            "INSERT INTO accounts (kind, platform, external_id, created_at, updated_at) "
            "SELECT 'user', 'telegram', value, 0, 0 FROM json_each(?)",
            (json.dumps([str(u) for u in range(USERS)]),),
        )
        users = [r[0] for r in await t.fetchall("SELECT id FROM accounts WHERE kind = 'user'")]
        revenue = (await store.ledger.system_account(tx, SYSTEM_REVENUE)).id
        loss = (await store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)).id

    def insert(con: Any, chunk: list[Any]) -> None:
        con.executemany(
            "INSERT INTO jobs (id, account_id, platform, chat, kind, params, estimate, state,"
            " error, cost, created_at, updated_at, queue, tier, vendor) VALUES"
            " (?, ?, 'telegram', '{}', 'generate', ?, ?, ?, ?, ?, ?, ?, 'telegram', ?, ?)",
            [
                (j, a, p, e, s, err, e if s == "SUCCEEDED" else 0, c, u, t, v)
                for j, a, p, e, s, err, c, u, _, t, v in chunk
            ],
        )
        con.executemany(
            "INSERT INTO transfers (transfer_id, debit_account_id, credit_account_id, amount,"
            " kind, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (f"{m[0]}:{j}", a if m[0] == "charge" else loss, revenue, m[1], m[0], j, u)
                for j, a, _, _, _, _, _, u, m, _, _ in chunk
                if m is not None
            ],
        )

    batch: list[Any] = []
    for row in rows(n, days, now, users):
        batch.append(row)
        if len(batch) == CHUNK:
            async with store.transaction() as tx:
                await sqlite_tx(tx, write=True).call(lambda con, b=batch: insert(con, b))
            batch = []
    if batch:
        async with store.transaction() as tx:
            await sqlite_tx(tx, write=True).call(lambda con, b=batch: insert(con, b))


async def fill_postgres(store: Store, n: int, days: int, now: float) -> None:
    async with store.transaction() as tx:
        t = pg_tx(tx, write=True)
        await t.execute(
            "INSERT INTO accounts (kind, platform, external_id, created_at, updated_at) "
            "SELECT 'user', 'telegram', g::text, 0, 0 FROM generate_series(0, $1 - 1) g",
            USERS,
        )
        users = [r[0] for r in await t.fetch("SELECT id FROM accounts WHERE kind = 'user'")]
        revenue = (await store.ledger.system_account(tx, SYSTEM_REVENUE)).id
        loss = (await store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)).id
    batch: list[Any] = []

    async def flush(chunk: list[Any]) -> None:
        async with store.transaction() as tx:
            conn = pg_tx(tx, write=True)._conn  # bulk COPY: bench only
            await conn.copy_records_to_table(
                "jobs",
                columns=[
                    "id",
                    "account_id",
                    "platform",
                    "chat",
                    "kind",
                    "params",
                    "estimate",
                    "state",
                    "error",
                    "cost",
                    "created_at",
                    "updated_at",
                    "queue",
                    "tier",
                    "vendor",
                ],
                records=[
                    (
                        j,
                        a,
                        "telegram",
                        "{}",
                        "generate",
                        p,
                        e,
                        s,
                        err,
                        e if s == "SUCCEEDED" else 0,
                        c,
                        u,
                        "telegram",
                        t,
                        v,
                    )
                    for j, a, p, e, s, err, c, u, _, t, v in chunk
                ],
            )
            await conn.copy_records_to_table(
                "transfers",
                columns=[
                    "transfer_id",
                    "debit_account_id",
                    "credit_account_id",
                    "amount",
                    "kind",
                    "job_id",
                    "created_at",
                ],
                records=[
                    (f"{m[0]}:{j}", a if m[0] == "charge" else loss, revenue, m[1], m[0], j, u)
                    for j, a, _, _, _, _, _, u, m, _, _ in chunk
                    if m is not None
                ],
            )

    for row in rows(n, days, now, users):
        batch.append(row)
        if len(batch) == CHUNK:
            await flush(batch)
            batch = []
    if batch:
        await flush(batch)
    async with store.transaction() as tx:
        await pg_tx(tx, write=True).execute("ANALYZE")


async def explain(store: Store, now: float, days: int = 30) -> None:
    """The plans of the dashboard's own report queries (``storage.reports``)."""
    hi = int(now // 86_400) + 1
    window = (hi - days, hi)
    sqlite = isinstance(store.reports, SqliteReports)
    plans = {
        "jobs_per_day": (reports.JOBS_PER_DAY, window),
        "money_per_day": (reports.MONEY_PER_DAY, window),
        "job_times": (reports.JOB_TIMES, window),
        "top_users": (reports.TOP_USERS, (*window, 10)),
        "failures": (reports.FAILURES, window),
        "queue_now": (reports.queue_now_sql(store.reports.queue_index_hint), ()),
    }
    async with store.read() as tx:
        for name, (sql, args) in plans.items():
            print(f"-- {name} ({days} days)")
            if sqlite:
                rows = await sqlite_tx(tx).fetchall("EXPLAIN QUERY PLAN " + sql, args)
                lines = [str(r[3]) for r in rows]
            else:
                rows = await pg_tx(tx).fetch("EXPLAIN (ANALYZE, COSTS OFF) " + numbered(sql), *args)
                lines = [str(r[0]) for r in rows]
            print("\n".join("   " + line for line in lines))


async def timed(label: str, call: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        await call()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:<44} {best * 1000:8.0f} ms (best of {repeat})")
    return best


async def bench(url: str, n: int, days: int, fill: Any, plans: bool = False) -> None:
    now = time.time()
    store = await open_store(url)
    try:
        t0 = time.perf_counter()
        await fill(store, n, days, now)
        print(f"filled {n:,} jobs over {days} days in {time.perf_counter() - t0:.0f} s")
        if plans:
            await explain(store, now)
        stats = Stats(store, PRESETS["mock"], CreditAdmin(store, frozenset(), None))  # type: ignore[arg-type]
        r = store.reports
        since, until = now - 30 * 86_400, now + 1

        async def q(name: str) -> Any:
            async with store.read() as tx:
                if name == "queue_now":
                    return await r.queue_now(tx)
                return await getattr(r, name)(tx, since, until)

        for name in (
            "jobs_per_day",
            "money_per_day",
            "job_times",
            "top_users",
            "failures",
            "queue_now",
        ):
            await timed(f"query {name} (30 days)", lambda name=name: q(name))
        for window in (7, 30, 90):
            await timed(f"report, {window} days", lambda w=window: stats.report(w))
        await timed("today's numbers (/stats)", stats.today)
        server = DashboardServer(stats, "127.0.0.1:0", TOKEN)
        await server.start()
        try:
            async with aiohttp.ClientSession(
                base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as http:

                async def get(path: str) -> None:
                    async with http.get(path) as resp:
                        assert resp.status == 200
                        await resp.read()

                for path in ("/?days=7", "/", "/?days=90", "/api/stats"):
                    await timed(f"GET {path}", lambda p=path: get(p))
        finally:
            await server.stop()
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--explain", action="store_true", help="print the queries' plans")
    args = parser.parse_args()
    if args.backend == "postgres":
        from bench._postgres import PostgresServer

        with PostgresServer() as pg:
            asyncio.run(bench(pg.url, args.jobs, args.days, fill_postgres, args.explain))
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/dashboard.sqlite3"
        asyncio.run(bench(url, args.jobs, args.days, fill_sqlite, args.explain))


if __name__ == "__main__":
    main()
