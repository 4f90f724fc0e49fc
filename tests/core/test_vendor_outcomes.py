"""Every vendor outcome through the whole job use case, against a fake vendor on a
real socket: who is charged, what is booked as a loss, who is alerted, and the
vendor-402 pause."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from core.app import Imagine
from core.errors import (
    ServicePaused,
    VendorBusy,
    VendorError,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.ports import ChatRef, UserRef
from tests.conftest import RecordingFrontend
from tests.core.helpers import ADMIN, assert_books_balance, fund, request
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor

ALICE = UserRef("test", "alice")
BOB = UserRef("test", "bob")
CHAT = ChatRef("test", {"chat_id": 7})


@pytest.fixture
async def vendor() -> AsyncIterator[FakeOpenAIVendor]:
    async with FakeOpenAIVendor("aiearth", key="sk-test-secret") as fake:
        yield fake


@pytest.fixture
async def aiearth(
    vendor: FakeOpenAIVendor,
    tmp_path: Path,
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> AsyncIterator[tuple[Imagine, RecordingFrontend]]:
    config = tmp_path / "vendor.toml"
    config.write_text("retry_after_cap = 0.05\nrequest_timeout = 2.0\nmax_retries = 2\n")
    async with make_app(
        VENDOR="aiearth",
        VENDOR_BASE_URL=vendor.base_url,
        VENDOR_API_KEY="sk-test-secret",
        VENDOR_CONFIG=str(config),
    ) as app:
        frontend = RecordingFrontend()
        app.add_frontend(frontend)
        await fund(app, ALICE, 1000)
        await fund(app, BOB, 1000)
        yield app, frontend


async def _totals(app: Imagine) -> dict[str, int]:
    async with app.store.read() as tx:
        return await app.store.ledger.totals(tx)


async def test_usage_prices_the_charge_below_the_hold(
    aiearth: Any, vendor: FakeOpenAIVendor
) -> None:
    app, _ = aiearth
    req = request(app, quality="high")
    hold = (await app.quote(ALICE, req)).price
    receipt = await app.run_job(ALICE, req, CHAT)
    assert 0 < receipt.cost <= hold
    assert await app.balance(ALICE) == 1000 - receipt.cost
    assert len(vendor.billed) == 1
    await assert_books_balance(app)


@pytest.mark.parametrize(
    ("fault", "error", "loss"),
    [
        (Fault("400", message="size is wrong: sk-test-secret"), VendorRejected, False),
        (Fault("422"), VendorRejected, False),
        (Fault("moderation"), VendorRejected, False),
        (Fault("401"), VendorMisconfigured, False),
        (Fault("429", retry_after=0, times=5), VendorBusy, False),
        (Fault("409", times=5), VendorBusy, False),
        (Fault("500"), VendorUnavailable, True),
        (Fault("503"), VendorUnavailable, True),
        (Fault("malformed"), VendorUnavailable, True),
        (Fault("truncated"), VendorUnavailable, True),
        (Fault("disconnect"), VendorUnavailable, True),
        (Fault("bad_result_url"), VendorUnavailable, True),
        (Fault("billed_then_500"), VendorUnavailable, True),
        (Fault("hang"), VendorUnavailable, True),
    ],
    ids=lambda v: v.kind if isinstance(v, Fault) else None,
)
async def test_vendor_faults_cost_the_user_nothing(
    aiearth: Any, vendor: FakeOpenAIVendor, fault: Fault, error: type[VendorError], loss: bool
) -> None:
    app, frontend = aiearth
    if fault.kind == "bad_result_url":
        vendor.answer_with = "url"
    vendor.inject(dataclasses.replace(fault))  # a fresh copy per backend: faults are used up
    with pytest.raises(error) as caught:
        await app.run_job(ALICE, request(app), CHAT)
    text = app.text.error(caught.value, "en")
    assert "sk-test-secret" not in text and "{" not in text
    assert "not charged" in text
    assert await app.balance(ALICE) == 1000
    totals = await _totals(app)
    assert (totals["system:vendor_loss"] < 0) is loss
    assert frontend.deliveries == []
    await assert_books_balance(app)


async def test_402_pauses_alerts_once_and_resumes(aiearth: Any, vendor: FakeOpenAIVendor) -> None:
    app, frontend = aiearth
    vendor.inject(Fault("402", times=2))
    with pytest.raises(VendorOutOfCredits) as caught:
        await app.run_job(ALICE, request(app), CHAT)
    assert "temporarily unavailable" in app.text.error(caught.value, "en")
    # Further jobs are refused at once, without reaching the vendor.
    calls = len(vendor.requests)
    with pytest.raises(ServicePaused):
        await app.run_job(BOB, request(app), CHAT)
    assert len(vendor.requests) == calls
    assert len(frontend.alerts) == 1 and "402" in frontend.alerts[0]
    assert await app.balance(ALICE) == 1000 and await app.balance(BOB) == 1000

    # After the probe interval one job goes through as a probe; it fails: still one alert.
    clock = FakeClock(app.jobs.clock())
    app.jobs.clock = app.jobs.health.clock = clock
    clock.now += 301
    with pytest.raises(VendorOutOfCredits):
        await app.run_job(BOB, request(app), CHAT)
    with pytest.raises(ServicePaused):
        await app.run_job(BOB, request(app), CHAT)
    assert len(frontend.alerts) == 1

    # A successful probe lifts the pause and tells the admins.
    clock.now += 301
    await app.run_job(BOB, request(app), CHAT)
    assert "answers again" in frontend.alerts[-1]
    await app.run_job(ALICE, request(app), CHAT)

    # An admin can clear a pause by hand.
    vendor.inject(Fault("402"))
    with pytest.raises(VendorOutOfCredits):
        await app.run_job(ALICE, request(app), CHAT)
    assert await app.admin_resume(ADMIN) is True
    await app.run_job(ALICE, request(app), CHAT)
    await assert_books_balance(app)


async def test_misconfiguration_alerts_admins_once(aiearth: Any, vendor: FakeOpenAIVendor) -> None:
    app, frontend = aiearth
    vendor.inject(Fault("401", times=3))
    for _ in range(3):
        with pytest.raises(VendorMisconfigured):
            await app.run_job(ALICE, request(app), CHAT)
    assert len(frontend.alerts) == 1 and "VENDOR_API_KEY" in frontend.alerts[0]
    assert "sk-test-secret" not in frontend.alerts[0]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_adapter_refusal_before_sending_books_no_loss(
    tmp_path: Path, make_app: Callable[..., AbstractAsyncContextManager[Imagine]]
) -> None:
    from core.errors import Unsupported
    from core.images import load_sources
    from tests.fakes.images import png_bytes
    from tests.fakes.vendor_tasks import FakeTaskVendor

    async with (
        FakeTaskVendor(key="sk-test") as fake,
        make_app(
            VENDOR="aigptimage", VENDOR_BASE_URL=fake.base_url, VENDOR_API_KEY="sk-test"
        ) as app,
    ):
        app.add_frontend(RecordingFrontend())
        await fund(app, ALICE, 100)
        sources = await load_sources([(png_bytes(64, 64), None)], app.limits)  # no public URL
        req = app.build_request("edit it", (await app.profile(ALICE)).defaults, sources)
        with pytest.raises(Unsupported):
            await app.run_job(ALICE, req, CHAT)
        assert fake.requests == []
        assert (await _totals(app))["system:vendor_loss"] == 0
        assert await app.balance(ALICE) == 100
        await assert_books_balance(app)
