"""The adaptive limit on concurrent vendor calls, shared by every worker process.

The limit lives in the database (``storage`` ``limits`` row ``vendor``) and every
claim of a job checks it, so it holds across processes and machines. It starts at
its ceiling (``VENDOR_CONCURRENCY_MAX``) because a healthy vendor should see a
burst at once, and adapts like TCP's window: halved when the vendor pushes back
(429/409, timeouts, refused connections; at most once a second, so one burst of
failures counts once), one slot back per call that succeeds, and no claims at all
until a ``Retry-After`` has passed.

``core.vendors.pushback`` reports each refused attempt to ``observe``, also those
the adapter's retry policy retries by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from storage.interfaces import VENDOR_LIMIT, Store

log = logging.getLogger(__name__)

# Seconds within which further push-backs do not halve the limit again.
CUT_WINDOW = 1.0
# Seconds between re-reads of the shared value (another process may have cut it).
REFRESH_INTERVAL = 5.0


class VendorLimit:
    def __init__(
        self,
        store: Store,
        *,
        ceiling: int,
        name: str = VENDOR_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ceiling = ceiling
        self.name = name
        self.clock = clock
        self.value = ceiling
        self._read_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        async with self.store.transaction() as tx:
            limit = await self.store.limits.ensure(
                tx, self.name, initial=self.ceiling, ceiling=self.ceiling
            )
        self.value = limit.value
        self._read_at = time.monotonic()

    async def succeeded(self) -> None:
        """A vendor call went through: one slot back if the limit was cut."""
        if self._tasks:  # push-backs this call met are recorded first
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if time.monotonic() - self._read_at > REFRESH_INTERVAL:
            async with self.store.read() as tx:
                limit = await self.store.limits.get(tx, self.name)
            self._read_at = time.monotonic()
            if limit is not None:
                self.value = limit.value
        if self.value >= self.ceiling:
            return
        async with self.store.transaction() as tx:
            limit = await self.store.limits.grow(tx, self.name)
        if limit is not None:
            self.value = limit.value

    async def pushed_back(self, retry_after: float | None = None) -> None:
        now = self.clock()
        not_before = now + retry_after if retry_after else 0.0
        async with self.store.transaction() as tx:
            limit = await self.store.limits.cut(
                tx, self.name, now=now, not_before=not_before, window=CUT_WINDOW
            )
        if limit is not None:
            if limit.value < self.value:
                log.info("vendor pushed back: concurrency limit now %d", limit.value)
            self.value = limit.value
            self._read_at = time.monotonic()

    def observe(self, retry_after: float | None) -> None:
        """Called from the transport for each refused attempt; never blocks it."""
        task = asyncio.get_running_loop().create_task(self._record(retry_after))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, retry_after: float | None) -> None:
        try:
            await self.pushed_back(retry_after)
        except Exception:  # the limit is advice; a failed write must not hurt the call
            log.exception("could not record the vendor's push-back")

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
