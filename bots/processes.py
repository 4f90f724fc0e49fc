"""``imagine-bot run --workers K``: K worker processes beside the intake on this
machine, each an ``imagine-bot worker`` with the same environment. Python runs one
core per process; workers spread the jobs' CPU over the others, while the process
that takes chat events stays quick to answer. A worker that dies is started again;
its jobs are recovered through their leases meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

# Seconds a stopping worker gets to finish its running jobs before SIGKILL.
STOP_TIMEOUT = 40.0
# Seconds before starting a worker again after it died (doubling, at most a minute,
# back to the start once a worker has run for HEALTHY_RUN seconds).
RESTART_DELAY = 1.0
HEALTHY_RUN = 60.0


def worker_command() -> list[str]:
    return [sys.executable, "-m", "bots.cli", "worker"]


async def _keep_running(index: int, stop: asyncio.Event) -> None:
    delay = RESTART_DELAY
    while not stop.is_set():
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*worker_command())
        log.info("worker process %d started (pid %d)", index, proc.pid)
        waiting = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(waiting, STOP_TIMEOUT)
                except TimeoutError:
                    proc.kill()
                    await waiting
            return
        code = proc.returncode
        if code == 2:  # a configuration error: starting again would fail the same way
            log.error("worker process %d refused the configuration; not restarting", index)
            return
        if time.monotonic() - started > HEALTHY_RUN:
            delay = RESTART_DELAY  # it ran fine for a while: this is a new failure
        log.warning("worker process %d exited with %s; restarting in %.0fs", index, code, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(60.0, delay * 2)


@contextlib.asynccontextmanager
async def supervised_workers(count: int, stop: asyncio.Event) -> AsyncIterator[None]:
    """Keep ``count`` worker processes running until the block ends."""
    if count <= 0:
        yield
        return
    tasks = [asyncio.create_task(_keep_running(i, stop)) for i in range(count)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
