"""Several vendors (``VENDORS``) through the whole job use case, against two fake
vendors on real sockets, on SQLite and PostgreSQL: which vendor serves, what the
user is held and charged, which faults move a job on and which never do, the
health window, probes, ``/resume <vendor>`` and one alert per vendor per pause."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.app import Imagine
from core.errors import (
    InvalidRequest,
    ServicePaused,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.options import Defaults
from core.ports import ChatRef, UserRef
from core.vendor_health import FAILURE_LIMIT, PROBE_INTERVAL
from storage.interfaces import SYSTEM_VENDOR_LOSS
from tests.conftest import RecordingFrontend
from tests.core.helpers import ADMIN, assert_books_balance, fund, request
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor

ALICE = UserRef("test", "alice")
CHAT = ChatRef("test", {"chat_id": 7})
# The two vendors' prices for the default request (1024x1024, medium, one image).
PRIMARY_PRICE = 40
BACKUP_PRICE = 25

CONFIG = """
[vendors.primary]
preset = "compat-sizes"
n_max = 2
retry_after_cap = 0.05
request_timeout = 1.0
connect_timeout = 1.0
max_retries = 1
[vendors.primary.price.per_image]
"1024x1024:medium" = {primary}

[vendors.backup]
preset = "compat-sizes"
retry_after_cap = 0.05
request_timeout = 1.0
max_retries = 1
[vendors.backup.price.per_image]
"1024x1024:medium" = {backup}
"""


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    app: Imagine
    frontend: RecordingFrontend
    primary: FakeOpenAIVendor
    backup: FakeOpenAIVendor

    def clock(self) -> FakeClock:
        clock = FakeClock(self.app.jobs.clock())
        self.app.jobs.clock = clock
        for member in self.app.jobs.pool.members:
            member.health.clock = clock
        return clock

    async def state(self, name: str) -> str:
        return {s.name: s.state for s in await self.app.vendor_states()}[name]

    async def served_by(self, job_id: str) -> str | None:
        async with self.app.store.read() as tx:
            job = await self.app.store.jobs.get(tx, job_id)
        assert job is not None
        return job.vendor


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAIVendor, FakeOpenAIVendor]]:
    async with (
        FakeOpenAIVendor("compat-sizes", key="sk-primary-secret") as primary,
        FakeOpenAIVendor("compat-sizes", key="sk-backup-secret") as backup,
    ):
        yield primary, backup


@pytest.fixture
def start(
    fakes: tuple[FakeOpenAIVendor, FakeOpenAIVendor],
    tmp_path: Path,
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> Callable[..., AbstractAsyncContextManager[World]]:
    import contextlib

    primary, backup = fakes

    @contextlib.asynccontextmanager
    async def started(**extra: str) -> AsyncIterator[World]:
        config = tmp_path / "vendors.toml"
        config.write_text(CONFIG.format(primary=PRIMARY_PRICE, backup=BACKUP_PRICE))
        env = {
            "VENDORS": "primary,backup",
            "VENDOR_CONFIG": str(config),
            "VENDOR_PRIMARY_BASE_URL": primary.base_url,
            "VENDOR_PRIMARY_API_KEY": "sk-primary-secret",
            "VENDOR_BACKUP_BASE_URL": backup.base_url,
            "VENDOR_BACKUP_API_KEY": "sk-backup-secret",
        }
        env.update(extra)
        async with make_app(**env) as app:
            frontend = RecordingFrontend()
            app.add_frontend(frontend)
            await fund(app, ALICE, 1000)
            yield World(app, frontend, primary, backup)

    return started


@pytest.fixture
async def world(start: Callable[..., AbstractAsyncContextManager[World]]) -> AsyncIterator[World]:
    async with start() as w:
        yield w


async def _loss(app: Imagine) -> int:
    async with app.store.read() as tx:
        return -(await app.store.ledger.totals(tx)).get(SYSTEM_VENDOR_LOSS, 0)


async def test_healthy_first_vendor_serves_at_its_price(world: World) -> None:
    app = world.app
    receipt = await app.run_job(ALICE, request(app), CHAT)
    assert receipt.cost == PRIMARY_PRICE
    assert await world.served_by(receipt.job_id) == "primary"
    assert world.backup.requests == []
    assert "primary" in world.frontend.deliveries[0].caption
    await assert_books_balance(app)


async def test_402_moves_the_job_on_charges_the_backup_price_and_alerts_once(
    world: World,
) -> None:
    app = world.app
    world.primary.inject(Fault("402", times=5, message="sk-primary-secret is empty"))
    req = request(app)
    assert (await app.quote(ALICE, req)).price == PRIMARY_PRICE  # the hold: the dearest
    receipt = await app.run_job(ALICE, req, CHAT)
    assert receipt.cost == BACKUP_PRICE
    assert await app.balance(ALICE) == 1000 - BACKUP_PRICE
    assert await world.served_by(receipt.job_id) == "backup"
    assert len(world.backup.billed) == 1
    caption = world.frontend.deliveries[-1].caption
    assert "backup" in caption and str(BACKUP_PRICE) in caption
    assert await world.state("primary") == "paused"
    assert await world.state("backup") == "healthy"
    [alert] = world.frontend.alerts
    assert "primary" in alert and "402" in alert and "sk-primary-secret" not in alert

    # The paused vendor is skipped without a call; still one alert.
    asked = len(world.primary.requests)
    second = await app.run_job(ALICE, request(app), CHAT)
    assert await world.served_by(second.job_id) == "backup"
    assert len(world.primary.requests) == asked
    assert len(world.frontend.alerts) == 1
    assert await app.balance(ALICE) == 1000 - 2 * BACKUP_PRICE
    assert await _loss(app) == 0
    await assert_books_balance(app)


async def test_a_request_only_the_second_can_do_goes_there_at_its_price(world: World) -> None:
    app = world.app
    req = app.build_request("a red fox", Defaults(n=3))  # the primary takes at most 2
    info = await app.quote(ALICE, req)
    assert (info.low, info.price) == (None, 3 * BACKUP_PRICE)
    receipt = await app.run_job(ALICE, req, CHAT)
    assert await world.served_by(receipt.job_id) == "backup"
    assert receipt.cost == 3 * BACKUP_PRICE
    assert world.primary.requests == []
    # What no vendor can do is refused before anything is held.
    with pytest.raises(InvalidRequest):
        app.build_request("a red fox", Defaults(n=9))


async def test_price_shows_the_range_when_vendors_differ(world: World) -> None:
    info = await world.app.quote(ALICE, request(world.app))
    assert (info.low, info.price) == (BACKUP_PRICE, PRIMARY_PRICE)
    text = world.app.text.price("en", info, request(world.app))
    assert f"{BACKUP_PRICE}–{PRIMARY_PRICE}" in text


# Faults are consumed as they fire: each test builds its own (kind, options).
@pytest.mark.parametrize(
    "fault",
    [
        ("400", {"message": "bad size"}),
        ("401", {}),
        ("429", {"times": 2, "retry_after": 0.01}),
        ("402", {}),
    ],
    ids=["400-refusal", "401", "429-past-retries", "402"],
)
async def test_explicit_refusals_move_the_job_on(
    world: World, fault: tuple[str, dict[str, Any]]
) -> None:
    world.primary.inject(Fault(fault[0], **fault[1]))
    receipt = await world.app.run_job(ALICE, request(world.app), CHAT)
    assert await world.served_by(receipt.job_id) == "backup"
    assert receipt.cost == BACKUP_PRICE
    assert world.primary.billed == []
    assert await _loss(world.app) == 0
    await assert_books_balance(world.app)


async def test_refused_connection_moves_the_job_on(
    start: Callable[..., AbstractAsyncContextManager[World]],
) -> None:
    async with start(VENDOR_PRIMARY_BASE_URL=f"http://127.0.0.1:{closed_port()}") as w:
        receipt = await w.app.run_job(ALICE, request(w.app), CHAT)
        assert await w.served_by(receipt.job_id) == "backup"
        assert receipt.cost == BACKUP_PRICE
        assert await _loss(w.app) == 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("hang", VendorUnavailable),  # a timeout after the request was sent
        ("500", VendorUnavailable),  # a 5xx to a request: it may have run
        ("moderation", VendorRejected),  # never shop around a content policy
    ],
    ids=["timeout-after-send", "5xx", "moderation"],
)
async def test_faults_that_may_have_billed_never_move_the_job_on(
    world: World, fault: str, error: type[Exception]
) -> None:
    world.primary.inject(Fault(fault))
    with pytest.raises(error):
        await world.app.run_job(ALICE, request(world.app), CHAT)
    assert world.backup.requests == []
    assert await world.app.balance(ALICE) == 1000
    await assert_books_balance(world.app)


async def test_health_window_takes_a_failing_vendor_out_then_a_probe_brings_it_back(
    world: World,
) -> None:
    app = world.app
    clock = world.clock()
    world.primary.inject(Fault("500", times=FAILURE_LIMIT))
    for _ in range(FAILURE_LIMIT):
        with pytest.raises(VendorUnavailable):
            await app.run_job(ALICE, request(app), CHAT)
    assert await world.state("primary") == "failing"
    [alert] = world.frontend.alerts
    assert "primary" in alert and "keeps failing" in alert
    # Failed jobs were not charged; what the vendor may have billed is the loss.
    assert await app.balance(ALICE) == 1000
    assert await _loss(app) == FAILURE_LIMIT * PRIMARY_PRICE

    asked = len(world.primary.requests)
    receipt = await app.run_job(ALICE, request(app), CHAT)
    assert await world.served_by(receipt.job_id) == "backup"
    assert len(world.primary.requests) == asked

    # After the cool-down one job is the probe; it succeeds and clears the state.
    clock.now += PROBE_INTERVAL + 1
    probe = await app.run_job(ALICE, request(app), CHAT)
    assert await world.served_by(probe.job_id) == "primary"
    assert await world.state("primary") == "healthy"
    assert "answers again" in world.frontend.alerts[-1]
    assert len(world.frontend.alerts) == 2
    await assert_books_balance(app)


async def test_failed_probe_moves_on_and_keeps_one_alert(world: World) -> None:
    app = world.app
    clock = world.clock()
    world.primary.inject(Fault("402", times=2))
    await app.run_job(ALICE, request(app), CHAT)
    clock.now += PROBE_INTERVAL + 1
    probe = await app.run_job(ALICE, request(app), CHAT)
    # The probe answered 402 again: nothing billed, so the job went on to the backup.
    assert await world.served_by(probe.job_id) == "backup"
    assert len(world.primary.requests) == 2
    assert len(world.frontend.alerts) == 1
    assert await world.state("primary") == "paused"


async def test_resume_by_name_clears_one_vendor(world: World) -> None:
    app = world.app
    world.primary.inject(Fault("402"))
    await app.run_job(ALICE, request(app), CHAT)
    assert await world.state("primary") == "paused"
    with pytest.raises(InvalidRequest) as caught:
        await app.admin_resume(ADMIN, "nobody")
    assert "primary, backup" in app.text.error(caught.value, "en")
    assert await app.admin_resume(ADMIN, "backup") is False
    assert await app.admin_resume(ADMIN, "Primary") is True
    assert await world.state("primary") == "healthy"
    receipt = await app.run_job(ALICE, request(app), CHAT)
    assert await world.served_by(receipt.job_id) == "primary"
    # Without a name: every vendor's pause.
    world.primary.inject(Fault("402"))
    await app.run_job(ALICE, request(app), CHAT)
    assert await app.admin_resume(ADMIN) is True
    assert await world.state("primary") == "healthy"


async def test_every_vendor_paused_refuses_at_intake_with_nothing_held(world: World) -> None:
    app = world.app
    world.primary.inject(Fault("402"))
    world.backup.inject(Fault("402"))
    with pytest.raises(VendorOutOfCredits):
        await app.run_job(ALICE, request(app), CHAT)
    assert len(world.frontend.alerts) == 2
    with pytest.raises(ServicePaused):
        await app.run_job(ALICE, request(app), CHAT)
    assert await app.balance(ALICE) == 1000
    await assert_books_balance(app)


async def test_state_is_shared_through_the_database_and_survives_a_restart(
    start: Callable[..., AbstractAsyncContextManager[World]], fakes: Any
) -> None:
    primary, _ = fakes
    primary.inject(Fault("402"))
    async with start() as first:
        await first.app.run_job(ALICE, request(first.app), CHAT)
        assert await first.state("primary") == "paused"
    async with start() as again:
        assert await again.state("primary") == "paused"
        jobs_text = again.app.text.vendors("en", await again.app.vendor_states())
        assert "primary: paused" in jobs_text and "backup: healthy" in jobs_text


async def test_a_failure_that_may_have_billed_books_the_asked_vendors_price(
    world: World,
) -> None:
    # The primary refuses (nothing billed); the backup may have run the request.
    world.primary.inject(Fault("402"))
    world.backup.inject(Fault("500"))
    with pytest.raises(VendorUnavailable):
        await world.app.run_job(ALICE, request(world.app), CHAT)
    assert await world.app.balance(ALICE) == 1000
    # The backup's price, not the hold (which covered the dearer primary).
    assert await _loss(world.app) == BACKUP_PRICE
    await assert_books_balance(world.app)


async def test_the_dashboard_shows_every_vendor_and_times_by_serving_vendor(
    world: World,
) -> None:
    app = world.app
    world.primary.inject(Fault("402", times=5))
    first = await app.run_job(ALICE, request(app), CHAT)
    second = await app.run_job(ALICE, request(app), CHAT)
    assert {await world.served_by(first.job_id), await world.served_by(second.job_id)} == {"backup"}
    report = await app.stats.report(7)
    assert [(v.name, v.state, v.why) for v in report.vendors] == [
        ("primary", "paused", "vendor_out_of_credits"),
        ("backup", "healthy", None),
    ]
    assert report.vendors[0].since is not None and report.vendors[0].probe_at is not None
    assert [(t.vendor, t.count) for t in report.times] == [("backup", 2)]
