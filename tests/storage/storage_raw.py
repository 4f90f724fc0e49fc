"""Raw SQL on either backend's transaction, for tests that go behind the
repositories (tampering, trigger checks).  SQL uses ``?`` placeholders."""

from __future__ import annotations

import itertools
import re
from typing import Any

from storage import Tx


async def raw_execute(tx: Tx, sql: str, *params: Any) -> None:
    from storage.sqlite.tx import SqliteTx, sqlite_tx

    if isinstance(tx, SqliteTx):
        await sqlite_tx(tx, write=True).execute(sql, params)
        return
    from storage.postgres.store import pg_tx

    n = itertools.count(1)
    await pg_tx(tx, write=True).execute(re.sub(r"\?", lambda _: f"${next(n)}", sql), *params)


async def raw_fetch(tx: Tx, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    from storage.sqlite.tx import SqliteTx, sqlite_tx

    if isinstance(tx, SqliteTx):
        return [tuple(r) for r in await sqlite_tx(tx).fetchall(sql, params)]
    from storage.postgres.store import pg_tx

    n = itertools.count(1)
    rows = await pg_tx(tx).fetch(re.sub(r"\?", lambda _: f"${next(n)}", sql), *params)
    return [tuple(r) for r in rows]
