"""The ends of many jobs at once, on both backends: charges, partial deliveries
with a vendor loss and failures with a vendor loss touch the same user's account
and the same system accounts in one transaction each. They must never wait on
each other in a cycle (PostgreSQL would abort one as a deadlock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from core.app import Imagine
from core.errors import VendorUnavailable
from core.ports import ChatRef, UserRef
from storage.interfaces import JobState
from tests.core.helpers import assert_books_balance, fund, request

USERS = [UserRef("test", name) for name in ("alice", "bob")]
CHAT = ChatRef("test", {"chat_id": 1})
JOBS_PER_USER = 24


@pytest.fixture
async def intake(
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> AsyncIterator[Imagine]:
    """Jobs are queued here and ended by the test itself: no worker runs them."""
    async with make_app(USER_MAX_ACTIVE_JOBS=100, USER_JOBS_PER_MINUTE=100) as app:
        assert app.worker is not None
        app.worker.stop()
        await asyncio.sleep(0)
        yield app


async def _delivering(app: Imagine, job_id: str) -> None:
    async with app.store.transaction() as tx:
        assert await app.store.jobs.transition(
            tx, job_id, (JobState.RESERVED,), JobState.DELIVERING
        )


async def test_ends_of_many_jobs_at_once_never_deadlock(intake: Imagine) -> None:
    for user in USERS:
        await fund(intake, user, 10_000)
    submitted = [
        (user, await intake.submit(user, request(intake), CHAT))
        for user in USERS
        for _ in range(JOBS_PER_USER)
    ]
    ends = []
    for i, (_, job) in enumerate(submitted):
        if i % 3 == 2:  # failed after a call that may have been billed
            ends.append(intake.jobs.fail(job.job_id, VendorUnavailable("x"), loss=job.price))
        else:  # delivered in full, or in part with the rest booked as a loss
            await _delivering(intake, job.job_id)
            loss = job.price // 2 if i % 3 == 1 else 0
            ends.append(intake.jobs.settle(job.job_id, job.price - loss, loss=loss))
    await asyncio.gather(*ends)

    async with intake.store.read() as tx:
        assert await intake.store.ledger.open_holds(tx) == []
        states = [(await intake.store.jobs.get(tx, job.job_id)) for _, job in submitted]
    assert all(s is not None and s.terminal for s in states)
    for user in USERS:
        charged = sum(
            job.price - (job.price // 2 if i % 3 == 1 else 0)
            for i, (owner, job) in enumerate(submitted)
            if owner == user and i % 3 != 2
        )
        assert await intake.balance(user) == 10_000 - charged
    await assert_books_balance(intake)
