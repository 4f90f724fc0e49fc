"""A month of an operator's history for the dashboard tests: thirty UTC days of
jobs at a growing, weekly-varying volume, a handful of users on two platforms,
two vendors (``VENDORS=alpha,beta`` on the mock preset), failures of several
classes, credit packs bought, the first vendor paused since yesterday by a 402,
and a few jobs queued and running now.

Written through the real code on a store whose clock the seed moves (storage
stamps every row with it, and core takes its time from the same clock): core's
intake (``JobService.submit``: the hold and the job row), the claim and the state
moves a worker makes (storage's ``take_over`` and ``transition``, with the vendor
recorded), core's ``settle`` and ``fail`` (the charge, the void, the vendor loss),
the admin's top-up, ``Payments.credit`` for purchases and ``VendorHealth`` for
the pause, the probes and the fault window. Skipped: the vendor call, the images
and the frontend's delivery (the clock moves by the time they would take, and the
DELIVERING move records the delivered count ``mark_delivered`` would). So the
ledger, the job rows and the rollups their triggers keep are the ones production
writes, and a month (some 850 jobs) takes a few seconds instead of minutes."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.app import Imagine
from core.concurrency import VendorLimit
from core.errors import (
    DeliveryFailed,
    InsufficientCredits,
    TaskTimedOut,
    VendorBusy,
    VendorError,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.frontends import Frontends
from core.images import ImageLimits
from core.job_params import JobResult, result_key
from core.jobs import JobLimits, JobService
from core.messages import Messages
from core.options import Defaults
from core.packs import STARS, CreditPack
from core.ports import ChatRef, UserRef
from core.pricing import actual_cost, quote
from core.settings import Settings
from core.vendor_pool import PoolMember, nothing_billed
from core.vendors.mock import MockVendor
from storage import open_store
from storage.files import FileStore
from storage.interfaces import JobState

DAY = 86_400
DAYS = 30
OWNER = "seed-worker"
ADMIN = UserRef("cli", "admin", "boss")
VENDORS = ("alpha", "beta")

# The users, how much of the traffic each makes, and the chat their answers go to
# (with a reference secret the page must never show).
USERS = (
    (UserRef("telegram", "1001", "alice"), 30),
    (UserRef("discord", "2002", "bob"), 18),
    (UserRef("telegram", "1003", "carol"), 14),
    (UserRef("telegram", "1004", "dmitri"), 10),
    (UserRef("discord", "2005", "erin"), 7),
    (UserRef("telegram", "1006"), 4),
)
CHAT_SECRET = "interaction-secret-0123456789"
# Size tier, quality and image count, with their shares of the requests.
SHAPES = (
    (("1K", "medium", 1), 46),
    (("1K", "high", 1), 10),
    (("1K", "medium", 2), 8),
    (("2K", "medium", 1), 16),
    (("2K", "high", 1), 6),
    (("4K", "medium", 1), 8),
    (("4K", "high", 2), 3),
)
# Seconds the vendor takes, by tier (the median of a log-normal spread).
TOOK = {"1K": 9.0, "2K": 17.0, "4K": 38.0}
STAR_PACK = CreditPack(1000, 500)
SKU_PACK = CreditPack(800, 0, sku_id="1350000000000000001")


def vendor_env() -> dict[str, str]:
    """The settings of the two vendors (both the mock, each its own block)."""
    return {
        "VENDORS": ",".join(VENDORS),
        **{f"VENDOR_{name.upper()}_PRESET": "mock" for name in VENDORS},
    }


@dataclass(frozen=True, slots=True)
class Plan:
    """One job to write: when it was asked, by whom, and how it ends."""

    at: float
    user: UserRef
    shape: tuple[str, str, int]
    failure: VendorError | DeliveryFailed | None
    took: float
    failover: bool
    """The first vendor refused it (nothing billed) and the next one served."""


def _volume(progress: float, weekday: int, rnd: random.Random) -> int:
    """Jobs on a day: a bot growing from about 12 a day to about 50 over the
    month (``progress`` 0 to 1), quieter at weekends."""
    growth = 12 + 38 * progress
    weekly = 0.65 if weekday >= 5 else 1.0
    return max(6, round(growth * weekly * rnd.uniform(0.7, 1.3)))


def _failure(rnd: random.Random) -> VendorError | DeliveryFailed | None:
    roll = rnd.random()
    if roll < 0.028:
        refused = VendorRejected("moderation_blocked")
        refused.params["moderation"] = True  # as the adapters mark it: no failover
        return refused
    if roll < 0.044:
        return TaskTimedOut("no result in time")
    if roll < 0.056:
        return VendorUnavailable("502 from the vendor", maybe_billed=True)
    if roll < 0.066:
        return DeliveryFailed("the platform refused the upload")
    return None


def plan(now: float, days: int = DAYS, seed: int = 2026) -> list[Plan]:
    """The month's jobs, oldest first: ``days`` UTC days ending with ``now``'s,
    busiest in the European afternoon and evening; today's only up to ``now``."""
    rnd = random.Random(seed)
    today = int(now // DAY)
    users = [u for u, _ in USERS]
    user_weights = [w for _, w in USERS]
    shapes = [s for s, _ in SHAPES]
    shape_weights = [w for _, w in SHAPES]
    jobs: list[Plan] = []
    for i, day in enumerate(range(today - days + 1, today + 1)):
        weekday = dt.datetime.fromtimestamp(day * DAY, dt.UTC).weekday()
        start = day * DAY
        times = [
            start + rnd.gauss(16, 4.5) % 24 * 3600
            for _ in range(_volume(i / max(1, days - 1), weekday, rnd))
        ]
        for at in sorted(t for t in times if t < now - 600):
            shape = rnd.choices(shapes, shape_weights)[0]
            jobs.append(
                Plan(
                    at=at,
                    user=rnd.choices(users, user_weights)[0],
                    shape=shape,
                    failure=_failure(rnd),
                    took=TOOK[shape[0]] * shape[2] ** 0.5 * math.exp(rnd.gauss(0, 0.35)),
                    failover=rnd.random() < 0.06,
                )
            )
    return jobs


def _chat(user: UserRef) -> ChatRef:
    return ChatRef(user.platform, {"chat_id": int(user.user_id), "token": CHAT_SECRET})


class TaskClock:
    """The seed's clock: each asyncio task keeps its own time (a context variable),
    so jobs that overlap in wall time are stamped with their own times."""

    def __init__(self, start: float) -> None:
        self._now: contextvars.ContextVar[float] = contextvars.ContextVar("seed_now", default=start)

    def __call__(self) -> float:
        return self._now.get()

    def set(self, now: float) -> None:
        self._now.set(now)

    def advance(self, seconds: float) -> None:
        self._now.set(self._now.get() + seconds)


@dataclass(frozen=True, slots=True)
class Route:
    vendor: str
    """The vendor asked first."""
    refusal: VendorError | None
    """Its answer when it refuses outright (nothing billed): the job moves on."""


class Month:
    """The seed's steps, on the use cases of one process whose store and core are
    stamped by ``clock``."""

    def __init__(self, app: Imagine, clock: TaskClock) -> None:
        self.app = app
        self.clock = clock
        self.store = app.store
        self.jobs = app.jobs
        self.rnd = random.Random(7)
        self.accounts: dict[str, int] = {}
        self.purchases = 0
        self.first_out: bool | None = None
        """The first vendor is out of the rotation (None: look)."""

    def member(self, name: str) -> PoolMember:
        found = self.jobs.pool.get(name)
        assert found is not None
        return found

    async def start(self, at: float) -> None:
        self.clock.set(at)
        for user, _ in USERS:
            await self.app.admin_topup(ADMIN, user, 300, "launch credits")
            self.accounts[user.key] = (await self.app.profile(user)).account_id

    async def buy(self, user: UserRef) -> None:
        """A credit pack: Stars on Telegram, a consumable SKU on Discord."""
        self.purchases += 1
        charge = f"{user.platform}-charge-{self.purchases:04d}"
        if user.platform == "telegram":
            await self.app.payments.credit(
                user, charge, STAR_PACK, amount=STAR_PACK.price, currency=STARS
            )
        else:
            await self.app.payments.credit(user, charge, SKU_PACK, amount=0, currency="SKU")

    async def submit(self, job: Plan) -> str:
        tier, quality, n = job.shape
        request = self.app.build_request(
            "a lighthouse at dusk", Defaults(resolution=tier, quality=quality, n=n)
        )
        account = self.accounts[job.user.key]
        while True:
            try:
                submitted = await self.jobs.submit(
                    job.user, account, request, _chat(job.user), "en"
                )
            except InsufficientCredits:  # refused: they buy a pack and ask again
                await self.buy(job.user)
                continue
            return submitted.job_id

    async def route(self, job: Plan, paused_at: float) -> Route:
        """The vendor a job goes to, and what the vendors' health sees of it, in
        time order (the health window counts faults as they come). From
        ``paused_at`` the first vendor's account is empty (402); while it is out of
        the rotation it sees only the probe due every five minutes, taken as
        ``JobService`` takes it (a read, and a write only to claim the probe)."""
        first, second = self.member(VENDORS[0]), self.member(VENDORS[1])
        self.clock.set(job.at)
        if self.first_out is None:
            # Looked at again only after its health changed (below), not per job.
            async with self.store.read() as tx:
                self.first_out = not await first.health.in_rotation(tx)
        asked, probe = not self.first_out, False
        if self.first_out:
            async with self.store.transaction() as tx:
                asked = probe = await first.health.take(tx, job.at)
        refusal: VendorError | None = None
        if asked and job.at >= paused_at:
            # The pause, then each failed probe: the health code pushes the next one out.
            refusal = VendorOutOfCredits("402 payment required")
        elif asked and job.failover:
            refusal = VendorBusy("429 past the retries")
        if refusal is not None:
            await first.health.after_error(refusal)
            self.first_out = None
        elif probe:
            await first.health.clear()  # a probe that succeeds puts it back
            self.first_out = None
        serving = first if asked and refusal is None else second
        if isinstance(job.failure, VendorError):
            self.clock.set(job.at + job.took)
            await serving.health.after_error(job.failure)
            self.first_out = None
        return Route(VENDORS[0] if asked else VENDORS[1], refusal)

    async def send(self, job: Plan, job_id: str, vendor: str, *, first: bool) -> None:
        """The worker's claim (first time) and the move to SUBMITTING at ``vendor``,
        recorded on the job before the request leaves, as ``JobService`` does."""
        async with self.store.transaction() as tx:
            if first:
                # The claim of this very job (a worker's ``claim`` takes whichever
                # is next in the queue; the seed's jobs run side by side).
                claimed = await self.store.jobs.take_over(
                    tx, job_id, OWNER, now=self.clock(), lease_until=self.clock() + 300
                )
                assert claimed is not None
            fields: dict[str, object] = {"vendor": vendor, "attempts": 1 if first else 2}
            if not first:
                fields["vendor_ref"] = None
            moved = await self.store.jobs.transition(
                tx,
                job_id,
                (JobState.RESERVED,) if first else (JobState.SUBMITTING,),
                JobState.SUBMITTING,
                owner=OWNER,
                **fields,
            )
            assert moved

    async def run_all(self, jobs: Sequence[tuple[Plan, Route]]) -> None:
        """One user's jobs of a wave, one after the other. Not side by side: on
        PostgreSQL, ``JobService.fail`` booking a loss (the user's account, then
        the system accounts) and ``settle`` (system accounts first) can deadlock
        when the same user's jobs end at the same moment."""
        for job, route in jobs:
            await self.run(job, route)

    async def run(self, job: Plan, route: Route) -> None:
        self.clock.set(job.at)
        job_id = await self.submit(job)
        self.clock.advance(self.rnd.uniform(0.2, 2.5))  # waiting for a worker
        vendor = route.vendor
        await self.send(job, job_id, vendor, first=True)
        if route.refusal is not None:
            self.clock.advance(self.rnd.uniform(0.5, 2.0))
            assert nothing_billed(route.refusal)
            vendor = VENDORS[1]
            await self.send(job, job_id, vendor, first=False)
        self.clock.advance(job.took)
        await self.end(job_id, job, vendor)

    async def end(self, job_id: str, job: Plan, vendor: str) -> None:
        """The end ``JobService`` gives it: ``fail`` (a vendor loss when the vendor
        may have billed), or delivered and ``settle``d at the serving vendor's price."""
        member = self.member(vendor)
        tier, quality, n = job.shape
        request = self.app.build_request(
            "a lighthouse at dusk", Defaults(resolution=tier, quality=quality, n=n)
        )
        estimate = self.jobs.pool.hold(request)
        q = quote(member.preset, request)
        failure = job.failure
        if isinstance(failure, VendorError):
            loss = min(q.hold, estimate) if failure.maybe_billed else 0
            await self.jobs.fail(job_id, failure, loss=loss, owner=OWNER)
            return
        cost = min(actual_cost(member.preset, q, None, n), estimate)
        keys = tuple(result_key(job_id, i, "png") for i in range(n))
        async with self.store.transaction() as tx:
            moved = await self.store.jobs.transition(
                tx,
                job_id,
                (JobState.SUBMITTING,),
                JobState.DELIVERING,
                owner=OWNER,
                cost=cost,
                # Delivered or not, as ``mark_delivered`` would record it.
                result=JobResult(
                    keys, None, balance_after=0, delivered=0 if failure else n
                ).to_json(),
            )
            assert moved
        if failure is not None:
            # The platform refused the images: the vendor billed them, nobody pays.
            await self.jobs.fail(job_id, failure, loss=cost, code="delivery_failed", owner=OWNER)
            return
        await self.jobs.settle(job_id, cost)

    async def now_in_flight(self, now: float, paused_at: float) -> None:
        """One job at the vendor and three waiting in the queues, as of ``now``."""
        users = [u for u, _ in USERS]
        running = Plan(now - 95, users[0], ("2K", "high", 1), None, 0, False)
        route = await self.route(running, paused_at)  # the first vendor's next probe
        job_id = await self.submit(running)
        self.clock.advance(1.5)
        await self.send(running, job_id, route.vendor, first=True)
        if route.refusal is not None:
            await self.send(running, job_id, VENDORS[1], first=False)
        for ago, user in ((70, users[2]), (40, users[1]), (15, users[4])):
            self.clock.set(now - ago)
            await self.submit(Plan(now - ago, user, ("1K", "medium", 1), None, 0, False))


def _waves(jobs: Sequence[Plan], size: int) -> list[Sequence[Plan]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


# Jobs written side by side (different users' at once): their transactions share
# commits on SQLite (group commit) and connections on PostgreSQL, as a busy bot's do.
WAVE = 64


async def seed_month(settings: Settings, now: float, days: int = DAYS) -> None:
    """Write ``days`` days of history into ``settings``' database, as of ``now``
    (``settings`` configures ``vendor_env()``)."""
    clock = TaskClock(now - days * DAY)
    store = await open_store(settings.database_url, clock=clock)
    try:
        frontends = Frontends()
        text = Messages(settings.default_locale)
        jobs = JobService(
            store=store,
            files=FileStore(settings.data_dir / "files"),
            vendors=[(c.name, MockVendor(c.preset, latency=0)) for c in settings.vendors],
            text=text,
            frontends=frontends,
            limits=JobLimits(settings.user_max_active_jobs, settings.user_jobs_per_minute),
            image_limits=ImageLimits(max_bytes=settings.max_image_bytes),
            concurrency=VendorLimit(store, ceiling=settings.vendor_concurrency_max, clock=clock),
            clock=clock,
        )
        app = Imagine(
            settings=settings,
            store=store,
            files=jobs.files,
            jobs=jobs,
            frontends=frontends,
            text=text,
        )
        month = Month(app, clock)
        await month.start((int(now // DAY) - days + 1) * DAY - 3600)
        paused_at = now - 30 * 3600
        for wave in _waves(plan(now, days), WAVE):
            # Routing in time order (the vendor's state moves with it), then the jobs.
            routes = [await month.route(job, paused_at) for job in wave]
            by_user: dict[str, list[tuple[Plan, Route]]] = {}
            for job, route in zip(wave, routes, strict=True):
                by_user.setdefault(job.user.key, []).append((job, route))
            await asyncio.gather(*(month.run_all(mine) for mine in by_user.values()))
        await month.now_in_flight(now, paused_at)
    finally:
        await store.close()
