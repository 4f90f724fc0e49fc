"""A worker: claims queued jobs under a lease and runs them, in any process.

A claim is a row in the database (``claimed_by``, ``lease_until``), never this
process's memory: a heartbeat renews the leases of the jobs running here, and a
job whose lease runs out (this process died or hung) is recovered by whoever
sweeps next (``core.sweeper``). The worker serves the queues of the platforms it
can deliver to, and claims only while the shared vendor limit has room
(``core.concurrency``), so K processes on one database stay under one limit.

The worker of the process that also takes chat events (``announce``) keeps the
status messages of queued jobs showing their position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from core.jobs import JobService
from core.types import Progress
from storage.interfaces import JobRecord

log = logging.getLogger(__name__)

# Seconds an idle worker waits for a wake-up before looking at the queue again.
IDLE_WAIT = 1.0
# Seconds between queue-position announcements (each is an edit per moved job).
ANNOUNCE_INTERVAL = 2.0
# Seconds a stopping worker lets running jobs finish before cancelling them.
DRAIN_TIMEOUT = 30.0
# Most jobs claimed in one transaction. Several workers share a burst better with
# smaller batches; one transaction per job would serialise a burst on commits.
CLAIM_BATCH = 32


def new_worker_id(role: str = "worker") -> str:
    """Unique per process start; readable in ``/jobs`` and the logs."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        jobs: JobService,
        *,
        queues: Callable[[], Sequence[str]],
        capacity: int,
        lease: float,
        worker_id: str | None = None,
        announce: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.store = jobs.store
        self.queues = queues
        self.capacity = capacity
        self.lease = lease
        self.worker_id = worker_id or new_worker_id()
        self.announce = announce
        self.clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._announced: dict[str, int] = {}
        self._announced_at = 0.0
        self.claimed = 0

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    def lease_until(self) -> float:
        return self.clock() + self.lease

    # --- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while not self._stopping.is_set():
                if len(self._running) >= self.capacity:
                    self._freed.clear()
                    await self._wait(self._freed.wait(), IDLE_WAIT)
                    continue
                claimed = await self._claim(self.capacity - len(self._running))
                if not claimed:
                    if self.announce:
                        await self._announce()
                    await self._wait(self.store.wait_jobs(IDLE_WAIT), IDLE_WAIT)
                    continue
                for job in claimed:
                    self.claimed += 1
                    self.spawn(job.id, self.jobs.execute(job, self.worker_id))
        except asyncio.CancelledError:
            # Torn down, not stopped: what runs here ends now (leases do the rest).
            for task in self._running.values():
                task.cancel()
            raise
        else:
            await self._drain()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _wait(self, waiting: Coroutine[Any, Any, Any], limit: float) -> None:
        """Until ``waiting`` is done, the worker is stopped, or ``limit`` seconds."""
        stop = asyncio.ensure_future(self._stopping.wait())
        other = asyncio.ensure_future(waiting)
        try:
            await asyncio.wait({stop, other}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stop, other):
                task.cancel()

    def stop(self) -> None:
        self._stopping.set()

    async def idle(self) -> None:
        """Wait until the jobs running here now have ended (tests, shutdown)."""
        while self._running:
            await asyncio.wait(set(self._running.values()))

    async def _drain(self) -> None:
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running.values()), timeout=DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    def spawn(self, job_id: str, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` for a job this worker holds: its lease is renewed meanwhile."""

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s: unexpected failure in the worker", job_id)
            finally:
                self._running.pop(job_id, None)
                self._freed.set()
                # A slot came free: workers here and elsewhere may claim again.
                with contextlib.suppress(Exception):
                    await self.store.notify_jobs()

        self._running[job_id] = asyncio.create_task(run())

    async def _claim(self, room: int) -> list[JobRecord]:
        queues = list(self.queues())
        if not queues:
            return []
        # A read first: an idle worker's look at the queue must not take the write lock.
        async with self.store.read() as tx:
            if not await self.store.jobs.queued(tx, queues, limit=1):
                return []
        # A burst is claimed in a few transactions, not one commit per job.
        async with self.store.transaction() as tx:
            return await self.store.jobs.claim_many(
                tx,
                queues,
                self.worker_id,
                lease_until=self.lease_until(),
                count=min(room, CLAIM_BATCH),
            )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            held = list(self._running)
            if not held:
                continue
            try:
                async with self.store.transaction() as tx:
                    kept = await self.store.jobs.renew(tx, self.worker_id, held, self.lease_until())
            except Exception:
                log.exception("renewing the job leases failed")
                continue
            for job_id in set(held) - set(kept):
                if job_id in self._running:
                    # Its state changes will fail and it will stop on its own.
                    log.warning("job %s is no longer held by %s", job_id, self.worker_id)

    # --- queue positions ------------------------------------------------------------

    async def _announce(self) -> None:
        now = time.monotonic()
        if now - self._announced_at < ANNOUNCE_INTERVAL:
            return
        self._announced_at = now
        queues = list(self.queues())
        async with self.store.read() as tx:
            waiting = await self.store.jobs.queued(tx, queues)
        positions = {job.id: i for i, job in enumerate(waiting, start=1)}
        for job in waiting:
            position = positions[job.id]
            if self._announced.get(job.id) == position:
                continue
            self._announced[job.id] = position
            frontend = self.jobs.frontends.get(job.platform)
            if frontend is None:
                continue
            ctx = self.jobs.context(job)
            try:
                async with frontend.progress(ctx.chat, ctx.locale) as show:
                    if show is not None:
                        await show(Progress(stage="queued", queue_position=position))
            except Exception as exc:  # positions are cosmetic
                log.debug("announcing a queue position failed: %s", type(exc).__name__)
        self._announced = {k: v for k, v in self._announced.items() if k in positions}
