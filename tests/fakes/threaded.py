"""Run an async fake server on its own event loop in a thread, for tests of code
that calls ``asyncio.run`` itself (the command line)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        async def runner() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@contextmanager
def threaded(fake: Any) -> Iterator[Any]:
    """``with threaded(FakeOpenAIVendor(...)) as fake:`` starts it on a private loop."""
    runner = LoopThread()
    runner.call(fake.start)
    try:
        yield fake
    finally:
        runner.call(fake.stop)
        runner.stop()
