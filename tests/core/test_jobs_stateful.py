"""A hypothesis state machine over the whole job use case against a model ledger:
top-ups, requests with every vendor outcome, crashes at each step of a job,
restarts on the same files and sweeps. After every step the books must balance,
no balance is negative, pending equals the open holds, every hold is resolved at
most once, every job is terminal exactly when its hold is resolved, and each
user's balance is what the model says."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from PIL import Image

from core.app import Imagine
from core.concurrency import VendorLimit
from core.errors import (
    CannotResume,
    DeliveryFailed,
    InsufficientCredits,
    TaskFailed,
    VendorBusy,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.frontends import Frontends
from core.images import ImageLimits
from core.jobs import JobLimits, JobService
from core.messages import Messages
from core.options import Defaults
from core.ports import ChatRef, UserRef
from core.settings import load_settings
from core.sweeper import Sweeper
from core.types import GeneratedImage, ImageRequest, ImageResult
from core.vendors.base import ProgressCallback, SubmittedCallback
from core.vendors.presets import PRESETS
from core.worker import Worker
from storage import open_store
from storage.files import FileStore
from tests.conftest import RecordingFrontend

USERS = [UserRef("test", "u1"), UserRef("test", "u2")]
ADMIN = UserRef("cli", "admin")
PRICES = {"low": 1, "medium": 2, "high": 4}  # the mock preset, 1K

OUTCOMES = {
    "ok": None,
    "rejected": VendorRejected("blocked by moderation"),
    "out_of_credits": VendorOutOfCredits("402"),
    "misconfigured": VendorMisconfigured("401"),
    "busy": VendorBusy("429"),
    "broken": VendorUnavailable("500", maybe_billed=True),
    "task_failed": TaskFailed("no"),
}


def _tiny_png() -> GeneratedImage:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    return GeneratedImage(buf.getvalue(), "png", 8, 8)


TINY = _tiny_png()


class ScriptedVendor:
    """The vendor port with outcomes chosen by the state machine."""

    def __init__(self) -> None:
        self.preset = PRESETS["mock"]
        self.next: str = "ok"
        self.block = False

    async def run(
        self,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
        on_submitted: SubmittedCallback | None = None,
    ) -> ImageResult:
        if self.block:
            await asyncio.Event().wait()
        error = OUTCOMES[self.next]
        if error is not None:
            raise error
        return ImageResult(images=(TINY,) * request.n, vendor_ref="r")

    async def resume(
        self, vendor_ref: str, request: ImageRequest, *, on_progress: ProgressCallback | None = None
    ) -> ImageResult:
        raise CannotResume("sync")

    async def aclose(self) -> None:
        return None


@dataclass
class World:
    app: Imagine
    sweeper: Sweeper
    vendor: ScriptedVendor
    frontend: RecordingFrontend
    worker: Worker
    working: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.working = asyncio.get_running_loop().create_task(self.worker.run())

    async def crash(self) -> None:
        """The process dies: its database connection goes with it, so nothing it
        would still try to do (its cleanup included) reaches the files."""
        await self.app.store.close()
        if self.working is not None:
            self.working.cancel()
            await asyncio.gather(self.working, return_exceptions=True)


async def _open_world(root: Path, *, later: float = 0.0) -> World:
    """``later``: seconds the restarted world's clock is ahead, so the dead
    process's leases have run out."""
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{root}/db.sqlite3",
            "DATA_DIR": str(root / "data"),
            "WELCOME_CREDITS": "0",
            "ADMIN_USER_IDS": "cli:admin",
        },
        env_file=None,
    )
    store = await open_store(settings.database_url)
    vendor = ScriptedVendor()
    frontends = Frontends()
    text = Messages()
    limit = VendorLimit(store, ceiling=1)
    await limit.start()
    jobs = JobService(
        store=store,
        files=FileStore(root / "data"),
        vendor=vendor,
        text=text,
        frontends=frontends,
        limits=JobLimits(max_active=100, per_minute=10_000),
        image_limits=ImageLimits(max_bytes=10**7, max_pixels=10**7, max_count=4),
        concurrency=limit,
    )
    app = Imagine(
        settings=settings, store=store, files=jobs.files, jobs=jobs, frontends=frontends, text=text
    )
    frontend = RecordingFrontend()
    app.add_frontend(frontend)
    clock = lambda: time.time() + later  # noqa: E731
    worker = Worker(jobs, queues=frontends.queues, capacity=4, lease=30, clock=clock)
    # Queued jobs of a dead process wait at most this long for a worker.
    sweeper = Sweeper(jobs, worker, delivery_grace=0, queue_timeout=later / 2 or 900, clock=clock)
    app.sweeper = sweeper
    app.worker = worker
    return World(app, sweeper, vendor, frontend, worker)


class JobLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        # How far the current world's clock runs ahead: each crash moves it past
        # the dead world's leases.
        self.later = 0.0
        self.world = self.run_async(self._open())
        self.model = {u.key: 0 for u in USERS}

    def run_async(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _open(self, later: float = 0.0, *, sweep: bool = False) -> World:
        world = await _open_world(self.root, later=later)
        if sweep:
            report = await world.app.sweep()
            assert report is not None and not report.errors
            await world.worker.idle()
            world.report = report  # type: ignore[attr-defined]
        world.start()
        return world

    def teardown(self) -> None:
        self.run_async(self.world.crash())
        self.loop.close()
        self.tmp.cleanup()

    def _request(self, quality: str, n: int) -> ImageRequest:
        return self.world.app.build_request("p", Defaults(quality=quality, n=n))

    @rule(user=st.sampled_from(USERS), amount=st.integers(1, 20))
    def topup(self, user: UserRef, amount: int) -> None:
        self.run_async(self.world.app.admin_topup(ADMIN, user, amount))
        self.model[user.key] += amount

    @rule(
        user=st.sampled_from(USERS),
        outcome=st.sampled_from([*OUTCOMES, "delivery_fails"]),
        quality=st.sampled_from(list(PRICES)),
        n=st.integers(1, 3),
    )
    def job(self, user: UserRef, outcome: str, quality: str, n: int) -> None:
        world = self.world
        world.vendor.next = "ok" if outcome == "delivery_fails" else outcome
        world.frontend.fail = outcome == "delivery_fails"
        price = PRICES[quality] * n
        try:
            receipt = self.run_async(
                world.app.run_job(user, self._request(quality, n), ChatRef("test"))
            )
        except InsufficientCredits:
            assert self.model[user.key] < price
            return
        except (
            VendorRejected,
            VendorOutOfCredits,
            VendorMisconfigured,
            VendorBusy,
            VendorUnavailable,
            TaskFailed,
            DeliveryFailed,
        ):
            assert outcome != "ok"
            # A 402 pauses the service; the admin clears it so the run goes on.
            self.run_async(world.app.admin_resume(ADMIN))
            return
        finally:
            world.frontend.fail = False
        assert outcome == "ok" and receipt.cost == price
        self.model[user.key] -= price

    @rule(
        user=st.sampled_from(USERS),
        step=st.sampled_from(["queued", "vendor", "delivering"]),
        quality=st.sampled_from(list(PRICES)),
    )
    def crash(self, user: UserRef, step: str, quality: str) -> None:
        """Start a job, stop the process dead at ``step``, restart, sweep."""
        price = PRICES[quality]
        if self.model[user.key] < price * (2 if step == "queued" else 1):
            return
        world = self.world
        world.vendor.next = "ok"
        tasks = []
        if step == "delivering":
            world.frontend.block = asyncio.Event()
        else:
            world.vendor.block = True
        tasks.append(
            self.loop.create_task(
                world.app.run_job(user, self._request(quality, 1), ChatRef("test"))
            )
        )
        if step == "queued":
            tasks.append(
                self.loop.create_task(
                    world.app.run_job(user, self._request(quality, 1), ChatRef("test"))
                )
            )
        self.run_async(asyncio.sleep(0.2))
        self.run_async(world.crash())
        for task in tasks:
            task.cancel()
        self.run_async(asyncio.gather(*tasks, return_exceptions=True))
        world.vendor.block = False
        self.later += 3600
        self.world = self.run_async(self._open(later=self.later, sweep=True))
        if step == "delivering":
            # Delivered again from the stored result and charged once.
            assert len(self.world.frontend.deliveries) == 1
            self.model[user.key] -= price

    @rule()
    def restart_and_sweep(self) -> None:
        self.run_async(self.world.crash())
        self.world = self.run_async(self._open(later=self.later, sweep=True))
        report = self.world.report  # type: ignore[attr-defined]
        assert report.voided == report.redelivered == 0

    @invariant()
    def books_balance(self) -> None:
        async def check() -> None:
            app = self.world.app
            async with app.store.read() as tx:
                assert await app.store.ledger.check_invariants(tx) == []
                assert await app.store.ledger.open_holds(tx) == []
                for job in await app.store.jobs.recent(tx, 10_000):
                    assert job.terminal, job
                    if job.hold_id:
                        hold = await app.store.ledger.get_hold(tx, job.hold_id)
                        assert hold is not None and hold.status != "pending"
                        assert hold.charged == (job.cost or 0)
            for user in USERS:
                assert await app.balance(user) == self.model[user.key], user

        self.run_async(check())


TestJobLedger = JobLedgerMachine.TestCase
TestJobLedger.settings = settings(
    # IMAGINE_STATEFUL_EXAMPLES raises the count for a long local run.
    max_examples=int(os.environ.get("IMAGINE_STATEFUL_EXAMPLES", "12")),
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
