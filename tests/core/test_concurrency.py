"""The adaptive vendor limit: it starts at its ceiling, halves (once per burst) when
the vendor pushes back, honours Retry-After for every process on the database,
and grows back one slot per call that succeeds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from core.app import Imagine
from core.concurrency import VendorLimit
from core.ports import ChatRef, UserRef
from storage.interfaces import VENDOR_LIMIT
from tests.conftest import RecordingFrontend
from tests.core.helpers import fund, request, wait_done
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor

ALICE = UserRef("test", "alice")
CHAT = ChatRef("test", {"chat_id": 1})


async def _limit(app: Imagine) -> Any:
    async with app.store.read() as tx:
        return await app.store.limits.get(tx, VENDOR_LIMIT)


async def test_the_limit_starts_at_its_ceiling_and_adapts(app: Imagine) -> None:
    limit = VendorLimit(app.store, ceiling=8)
    await limit.start()
    assert (await _limit(app)).value == 8
    await limit.pushed_back()
    await limit.pushed_back()  # the same burst: halved once
    assert (await _limit(app)).value == 4
    await limit.succeeded()
    await limit.succeeded()
    assert (await _limit(app)).value == 6
    for _ in range(10):
        await limit.succeeded()
    assert (await _limit(app)).value == 8  # never above the ceiling


async def test_retry_after_stops_every_claim_until_it_passes(app: Imagine) -> None:
    limit = VendorLimit(app.store, ceiling=8)
    await limit.start()
    await limit.pushed_back(retry_after=1.0)
    assert (await _limit(app)).not_before > time.time() + 0.5
    app.add_frontend(RecordingFrontend())
    await fund(app, ALICE, 10)
    submitted = await app.submit(ALICE, request(app), CHAT)
    assert submitted.position == 1  # told it waits, not that it runs
    await asyncio.sleep(0.5)
    async with app.store.read() as tx:
        assert [j.id for j in await app.store.jobs.queued(tx)] == [submitted.job_id]
    assert await wait_done(app, submitted.job_id) == "SUCCEEDED"  # once it has passed


@pytest.fixture
async def vendor() -> AsyncIterator[FakeOpenAIVendor]:
    async with FakeOpenAIVendor("compat-b64", key="sk-test") as fake:
        yield fake


async def test_a_429_from_the_vendor_halves_the_shared_limit(
    vendor: FakeOpenAIVendor,
    tmp_path: Path,
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> None:
    config = tmp_path / "vendor.toml"
    config.write_text("retry_after_cap = 0.05\nmax_retries = 2\n")
    async with make_app(
        VENDOR="compat-b64",
        VENDOR_BASE_URL=vendor.base_url,
        VENDOR_API_KEY="sk-test",
        VENDOR_CONFIG=str(config),
        VENDOR_CONCURRENCY_MAX=64,
    ) as app:
        app.add_frontend(RecordingFrontend())
        await fund(app, ALICE, 100)
        vendor.inject(Fault("429", retry_after=0, times=1))
        receipt = await app.run_job(ALICE, request(app), CHAT)  # retried, then made
        assert receipt.delivered == 1
        limit = await _limit(app)
        assert limit.cut_at > 0 and limit.value == 32 + 1  # halved, then one slot back
        await app.run_job(ALICE, request(app), CHAT)
        assert (await _limit(app)).value == 34 == app.jobs.concurrency.value
