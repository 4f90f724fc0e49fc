"""The job use case: price, reserve, queue, call the vendor, deliver, settle.

Each step is one committed transaction and the vendor call sits between steps:

    (insert+hold) RESERVED -> SUBMITTING -> [POLLING] -> DELIVERING -> SUCCEEDED
                                       \\-> FAILED (hold voided) at any point

A user is charged only after the frontend delivered the images. Whatever a
crash leaves half-way is finished by ``core.sweeper`` with the same helpers
(``settle``, ``fail``), so money moves exactly once whichever path gets there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import (
    DeliveryFailed,
    ImagineError,
    InsufficientCredits,
    TooManyActiveJobs,
    UserRateLimited,
    VendorError,
)
from core.frontends import Frontends
from core.gate import FairGate, PositionCallback
from core.job_params import dump_params, result_key, source_files
from core.messages import Messages
from core.ports import ChatRef, Delivery, UserRef
from core.pricing import Quote, actual_cost, quote
from core.types import GeneratedImage, ImageRequest, ImageResult, Progress
from core.vendor_health import VendorHealth
from core.vendors.base import ImageVendor, ProgressCallback
from storage.errors import InsufficientFunds
from storage.files import FileStore
from storage.interfaces import SYSTEM_REVENUE, SYSTEM_VENDOR_LOSS, JobRecord, JobState, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobReceipt:
    job_id: str
    cost: int
    balance_after: int
    delivered: int


@dataclass(frozen=True, slots=True)
class JobLimits:
    max_active: int = 2
    per_minute: int = 10


@dataclass(slots=True)
class _Call:
    started: bool = False


def balance_after_charge(available: int, hold: int, cost: int) -> int:
    """The balance a caption shows once the job's outstanding ``hold`` is settled at
    ``cost``: until then the hold is counted out of ``available``."""
    return available + hold - cost


class JobService:
    def __init__(
        self,
        *,
        store: Store,
        files: FileStore,
        vendor: ImageVendor,
        gate: FairGate,
        text: Messages,
        frontends: Frontends,
        limits: JobLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.files = files
        self.vendor = vendor
        self.preset = vendor.preset
        self.gate = gate
        self.text = text
        self.frontends = frontends
        self.limits = limits
        self.clock = clock
        self.health = VendorHealth(store, frontends, text, clock)
        # Jobs this process is running right now; the sweeper leaves them alone.
        self.live: set[str] = set()

    # --- the live path ----------------------------------------------------------

    async def run(
        self,
        user: UserRef,
        account_id: int,
        request: ImageRequest,
        chat: ChatRef,
        locale: str,
        on_progress: ProgressCallback | None = None,
    ) -> JobReceipt:
        q = quote(self.preset, request)
        job_id = uuid.uuid4().hex
        self.live.add(job_id)
        try:
            await self._reserve(job_id, user, account_id, request, chat, q)
            calling = _Call()
            # Failures stay unnotified until the frontend that shows them calls
            # ``acknowledge``; if it never does (a crash), the sweeper tells the user.
            try:
                async with self.gate.slot(user.key, self._queued(on_progress)):
                    result = await self._call_vendor(job_id, request, on_progress, calling)
            except VendorError as err:
                err.job_id = job_id
                await self.fail(job_id, err, loss=q.hold if err.maybe_billed else 0, notified=False)
                await self.health.after_error(err)
                raise
            except ImagineError as err:  # refused by the adapter before anything was sent
                err.job_id = job_id
                await self.fail(job_id, err, notified=False)
                raise
            except BaseException as err:
                # Cancelled or crashed: once the call started, the vendor may have billed.
                await asyncio.shield(
                    self.fail(job_id, err, loss=q.hold if calling.started else 0, notified=False)
                )
                raise
            await self.health.succeeded()
            return await self.deliver(job_id, user, chat, locale, request, q, result)
        finally:
            self.live.discard(job_id)

    def _queued(self, on_progress: ProgressCallback | None) -> PositionCallback:
        async def report(position: int) -> None:
            if on_progress is not None:
                await on_progress(Progress(stage="queued", queue_position=position))

        return report

    async def _reserve(
        self,
        job_id: str,
        user: UserRef,
        account_id: int,
        request: ImageRequest,
        chat: ChatRef,
        q: Quote,
    ) -> None:
        # Source bytes first: a job row must never point at files that are not there.
        await self.files.put_many(source_files(job_id, request))
        now = self.clock()
        async with self.store.transaction() as tx:
            await self.health.admit(tx, now)
            if await self.store.jobs.count_active(tx, account_id) >= self.limits.max_active:
                raise TooManyActiveJobs(limit=self.limits.max_active)
            if (
                await self.store.jobs.count_since(tx, account_id, now - 60)
                >= self.limits.per_minute
            ):
                raise UserRateLimited()
            await self.store.jobs.insert(
                tx,
                JobRecord(
                    id=job_id,
                    account_id=account_id,
                    platform=user.platform,
                    chat=json.dumps(
                        {
                            "chat": chat.data,
                            "user": user.user_id,
                            "username": user.username,
                            "locale": user.locale,
                        }
                    ),
                    kind="edit" if request.is_edit else "generate",
                    params=dump_params(job_id, request),
                    estimate=q.hold,
                ),
            )
            try:
                hold = await self.store.ledger.reserve(
                    tx,
                    f"hold:{job_id}",
                    account_id,
                    q.hold,
                    job_id=job_id,
                    expires_at=now + 86_400,
                )
            except InsufficientFunds as exc:
                raise InsufficientCredits(price=q.hold, balance=exc.available) from None
            await self.store.jobs.transition(
                tx, job_id, (JobState.NEW,), JobState.RESERVED, hold_id=hold.id
            )

    async def _call_vendor(
        self,
        job_id: str,
        request: ImageRequest,
        on_progress: ProgressCallback | None,
        calling: _Call,
    ) -> ImageResult:
        async with self.store.transaction() as tx:
            await self.store.jobs.transition(
                tx, job_id, (JobState.RESERVED,), JobState.SUBMITTING, attempts=1
            )
        if on_progress is not None:
            await on_progress(Progress(stage="submitted"))

        async def submitted(vendor_ref: str) -> None:
            async with self.store.transaction() as tx:
                await self.store.jobs.transition(
                    tx, job_id, (JobState.SUBMITTING,), JobState.POLLING, vendor_ref=vendor_ref
                )

        calling.started = True
        return await self.vendor.run(request, on_progress=on_progress, on_submitted=submitted)

    # --- steps shared with the sweeper -----------------------------------------

    async def deliver(
        self,
        job_id: str,
        user: UserRef,
        chat: ChatRef,
        locale: str,
        request: ImageRequest,
        q: Quote,
        result: ImageResult,
    ) -> JobReceipt:
        """Store the result, hand it to the frontend, then charge. Nothing is charged
        unless the frontend delivered."""
        cost = actual_cost(self.preset, q, result.usage, len(result.images))
        keys = [result_key(job_id, i, img.extension) for i, img in enumerate(result.images)]
        await self.files.put_many(list(zip(keys, (img.data for img in result.images), strict=True)))
        async with self.store.transaction() as tx:
            await self.store.jobs.transition(
                tx,
                job_id,
                (JobState.SUBMITTING, JobState.POLLING),
                JobState.DELIVERING,
                cost=cost,
                vendor_ref=result.vendor_ref,
                result=json.dumps({"files": keys, "revised_prompt": result.revised_prompt}),
            )
            job = await self.store.jobs.get(tx, job_id)
            assert job is not None
            balance = await self.store.ledger.balance(tx, job.account_id)
        return await self.hand_over(
            job,
            user,
            chat,
            locale,
            request,
            result.images,
            cost,
            balance_after_charge(balance.available, q.hold, cost),
            result.revised_prompt,
        )

    async def hand_over(
        self,
        job: JobRecord,
        user: UserRef,
        chat: ChatRef,
        locale: str,
        request: ImageRequest,
        images: tuple[GeneratedImage, ...],
        cost: int,
        balance_after: int,
        revised_prompt: str | None,
    ) -> JobReceipt:
        frontend = self.frontends.get(chat.platform)
        delivery = Delivery(
            job_id=job.id,
            chat=chat,
            user=user,
            request=request,
            images=images,
            cost=cost,
            balance_after=balance_after,
            locale=locale,
            caption=self.text.caption(locale, request.prompt, cost, balance_after, revised_prompt),
            revised_prompt=revised_prompt,
        )
        try:
            if frontend is None:
                raise RuntimeError(f"no frontend for {chat.platform}")
            await frontend.deliver(delivery)
        except BaseException as err:
            log.warning("delivery of job %s failed: %s", job.id, type(err).__name__)
            # The vendor billed these images; the user never saw them.
            await asyncio.shield(
                self.fail(job.id, err, loss=cost, code="delivery_failed", notified=False)
            )
            if isinstance(err, ImagineError):
                err.job_id = job.id
                raise
            if isinstance(err, Exception):
                failed = DeliveryFailed(f"{type(err).__name__}: {err}")
                failed.job_id = job.id
                raise failed from err
            raise
        await self.settle(job.id, cost)
        return JobReceipt(job.id, cost, balance_after, len(images))

    async def settle(self, job_id: str, cost: int) -> None:
        async with self.store.transaction() as tx:
            job = await self.store.jobs.get(tx, job_id)
            if job is None or job.hold_id is None:
                return
            resolution = await self.store.ledger.post(
                tx, job.hold_id, cost, transfer_id=f"charge:{job_id}"
            )
            if resolution.already and resolution.status != "posted":
                log.error("job %s delivered after its hold was %s", job_id, resolution.status)
            await self.store.jobs.transition(
                tx,
                job_id,
                (JobState.DELIVERING,),
                JobState.SUCCEEDED,
                cost=resolution.charged,
                notified=True,
            )

    async def fail(
        self,
        job_id: str,
        err: BaseException,
        *,
        loss: int = 0,
        code: str | None = None,
        notified: bool = False,
    ) -> None:
        """Release the hold and close the job; book ``loss`` credits the vendor may have
        billed to the vendor-loss account. Safe to call twice."""
        error_code = code or (err.code if isinstance(err, ImagineError) else "error")
        async with self.store.transaction() as tx:
            job = await self.store.jobs.get(tx, job_id)
            if job is None or job.state in (JobState.SUCCEEDED, JobState.FAILED):
                return
            if job.hold_id is not None:
                await self.store.ledger.void(tx, job.hold_id, error_code)
            if loss > 0:
                loss_account = await self.store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)
                revenue = await self.store.ledger.system_account(tx, SYSTEM_REVENUE)
                await self.store.ledger.transfer(
                    tx,
                    f"loss:{job_id}",
                    loss_account.id,
                    revenue.id,
                    loss,
                    "vendor_loss",
                    reason=error_code,
                    job_id=job_id,
                    allow_overdraft=True,
                )
            await self.store.jobs.transition(
                tx,
                job_id,
                (job.state,),
                JobState.FAILED,
                error=error_code,
                cost=0,
                notified=notified,
            )

    async def acknowledge(self, job_id: str) -> None:
        async with self.store.transaction() as tx:
            await self.store.jobs.mark_notified(tx, job_id)
