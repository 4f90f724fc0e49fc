"""The global cap on concurrent vendor calls, with a fair queue.

Vendors answer 409 past their own concurrency, so the bot never sends more than
``capacity`` calls at once. When a slot frees it goes to the waiter whose user has
the fewest calls running, then to the user served longest ago (round robin), then
to the oldest waiter, so one user's batch cannot starve everyone else. Waiters
learn their position as it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

PositionCallback = Callable[[int], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class _Waiter:
    user: str
    future: asyncio.Future[None]
    on_position: PositionCallback | None
    position: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class FairGate:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._running: Counter[str] = Counter()
        self._in_use = 0
        self._waiters: list[_Waiter] = []
        # When each user with calls running or waiting was last granted a slot.
        self._granted_at: dict[str, int] = {}
        self._grants = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _order(self) -> list[_Waiter]:
        # Stable sort keeps arrival order among equals.
        return sorted(
            self._waiters,
            key=lambda w: (self._running[w.user], self._granted_at.get(w.user, -1)),
        )

    def _grant(self, user: str) -> None:
        self._in_use += 1
        self._running[user] += 1
        self._grants += 1
        self._granted_at[user] = self._grants

    def _announce(self) -> None:
        for pos, waiter in enumerate(self._order(), start=1):
            if waiter.position != pos and waiter.on_position is not None:
                waiter.position = pos
                task = asyncio.get_running_loop().create_task(waiter.on_position(pos))
                waiter.tasks.add(task)
                task.add_done_callback(waiter.tasks.discard)

    def _wake(self) -> None:
        while self._in_use < self.capacity and self._waiters:
            nxt = self._order()[0]
            self._waiters.remove(nxt)
            self._grant(nxt.user)
            nxt.future.set_result(None)
        self._announce()

    @contextlib.asynccontextmanager
    async def slot(
        self, user: str, on_position: PositionCallback | None = None
    ) -> AsyncIterator[None]:
        if self._in_use < self.capacity and not self._waiters:
            self._grant(user)
        else:
            waiter = _Waiter(user, asyncio.get_running_loop().create_future(), on_position)
            self._waiters.append(waiter)
            self._announce()
            try:
                await waiter.future
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                    self._announce()
                else:  # granted and cancelled in the same tick: give the slot back
                    self._release(user)
                raise
        try:
            yield
        finally:
            self._release(user)

    def _release(self, user: str) -> None:
        self._in_use -= 1
        self._running[user] -= 1
        if self._running[user] <= 0:
            del self._running[user]
            if not any(w.user == user for w in self._waiters):
                self._granted_at.pop(user, None)  # keeps the map as small as the queue
        self._wake()
