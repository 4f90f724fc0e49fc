"""Child process for test_storage_multiprocess: tries to reserve credits.

Usage: python _spender.py DB GO_FILE ACCOUNT_ID AMOUNT HOLD_ID [HOLD_ID...]
DB is a SQLite path or a PostgreSQL URL.  Waits until GO_FILE exists (so both
children start together), then reserves each hold in its own transaction and
prints one JSON line of {hold_id: ok}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("parent never said go")
        time.sleep(0.001)


async def main(argv: list[str]) -> None:
    from storage import InsufficientFunds, open_store

    db, go, account_id, amount, *holds = argv
    store = await open_store(db)
    await asyncio.to_thread(_wait_for, go)
    results: dict[str, bool] = {}
    for hold_id in holds:
        try:
            async with store.transaction() as tx:
                await store.ledger.reserve(tx, hold_id, int(account_id), int(amount))
                # Keep the write lock a moment so the other process really contends.
                await asyncio.sleep(0.005)
            results[hold_id] = True
        except InsufficientFunds:
            results[hold_id] = False
    await store.close()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
