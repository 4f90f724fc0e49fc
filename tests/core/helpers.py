"""Small helpers for core tests: ledger checks and common requests."""

from __future__ import annotations

import asyncio

from core.app import Imagine
from core.options import Defaults
from core.ports import UserRef
from core.types import ImageRequest

ADMIN = UserRef("cli", "admin", "boss")


async def assert_books_balance(app: Imagine) -> None:
    async with app.store.read() as tx:
        problems = await app.store.ledger.check_invariants(tx)
    assert problems == []


async def fund(app: Imagine, user: UserRef, amount: int) -> None:
    await app.admin_topup(ADMIN, user, amount, "test funds")


def request(app: Imagine, prompt: str = "a red fox", **options: object) -> ImageRequest:
    defaults = Defaults(**options).fitted(app.preset) if options else Defaults().fitted(app.preset)
    return app.build_request(prompt, defaults)


async def job_states(app: Imagine) -> list[str]:
    async with app.store.read() as tx:
        return [j.state for j in await app.store.jobs.recent(tx, 1000)]


async def wait_done(app: Imagine, job_id: str, timeout: float = 20.0) -> str:
    """Wait for a queued job to end; its final state."""
    for _ in range(int(timeout / 0.02)):
        async with app.store.read() as tx:
            job = await app.store.jobs.get(tx, job_id)
        if job is not None and job.terminal:
            return job.state
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not end within {timeout} s")
