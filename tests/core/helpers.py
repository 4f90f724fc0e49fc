"""Small helpers for core tests: ledger checks and common requests."""

from __future__ import annotations

from core.app import Imagine
from core.options import Defaults
from core.ports import UserRef
from core.types import ImageRequest

ADMIN = UserRef("test", "admin", "boss")


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
