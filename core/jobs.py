"""The job use case, split where the queue splits it.

Intake (``submit``, in the process that got the chat event): price the validated
request, check the user's limits and balance, hold the credits and queue the job
with *references* to its sources, in one transaction. Nothing is downloaded,
decoded or stored for a user who cannot pay.

Execution (``execute``, by a worker holding the job's lease, in any process):
fetch the sources, call the vendor, store the result, hand it to the platform,
record the delivery, settle:

    RESERVED (queued) -> claimed -> SUBMITTING -> [POLLING] -> DELIVERING -> SUCCEEDED
                                 \\-> FAILED (hold voided) at any point

Every step after the claim is a compare-and-swap on the state AND the claim, so a
worker whose job was taken over (its lease ran out) stops without delivering. A
user pays only for images the platform delivered. Whatever a crash leaves
half-way is finished by ``core.sweeper`` with the same ``hand_over``/``settle``/
``fail`` helpers, so money moves exactly once whichever path gets there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.concurrency import VendorLimit
from core.errors import (
    ConfigError,
    DeliveryFailed,
    DeliveryIncomplete,
    ImagineError,
    InsufficientCredits,
    InvalidRequest,
    LeaseLost,
    ServicePaused,
    TooManyActiveJobs,
    Unsupported,
    UserRateLimited,
    VendorError,
)
from core.frontends import Frontends
from core.images import ImageLimits, load_sources
from core.job_params import JobChat, JobResult, dump_params, load_request, result_key
from core.messages import Messages, normalize_locale
from core.observability import Metrics
from core.ports import ChatRef, Delivery, Frontend, UserRef
from core.pricing import Quote, actual_cost, quote
from core.results import JobReceipt, Submitted
from core.sources import PATH, STORED, SourceRef, stored_mask_key, stored_source_key
from core.types import GeneratedImage, ImageRequest, ImageResult, Progress, SourceImage
from core.vendor_health import VendorHealth
from core.vendor_pool import Candidate, PoolMember, VendorPool, nothing_billed
from core.vendors.base import ImageVendor, ProgressCallback, SubmittedCallback
from storage.errors import InsufficientFunds
from storage.files import FileStore
from storage.interfaces import (
    SYSTEM_REVENUE,
    SYSTEM_VENDOR_LOSS,
    VENDOR_LIMIT,
    JobRecord,
    JobState,
    Store,
    Tx,
)

log = logging.getLogger(__name__)

# A hold outlives any job; the sweeper expires what a lost job left.
HOLD_TTL = 86_400.0
# Seconds in the queue after which the status message may show a queue position.
QUEUED_NOTICE = 1.0


@dataclass(frozen=True, slots=True)
class JobLimits:
    max_active: int = 2
    per_minute: int = 10


@dataclass(frozen=True, slots=True)
class JobContext:
    """Who asked and where the answer goes, as stored with the job."""

    user: UserRef
    chat: ChatRef
    locale: str


def charge_for(cost: int, delivered: int, total: int) -> int:
    """What the user pays when ``delivered`` of ``total`` images reached them: the
    part of ``cost`` they got, rounded down (never more than they received)."""
    return cost if delivered >= total else cost * delivered // max(1, total)


def balance_after_charge(available: int, hold: int, cost: int) -> int:
    """The balance a caption shows once the job's outstanding ``hold`` is settled at
    ``cost``: until then the hold is counted out of ``available``."""
    return available + hold - cost


def _read_path(path: str) -> bytes:
    return Path(path).expanduser().read_bytes()


def job_context(job: JobRecord, default_locale: str) -> JobContext:
    stored = JobChat.from_json(
        job.chat, job.platform, lambda hint: normalize_locale(hint, default_locale)
    )
    return JobContext(stored.user, stored.chat, stored.locale)


class JobService:
    def __init__(
        self,
        *,
        store: Store,
        files: FileStore,
        vendor: ImageVendor | None = None,
        vendors: Sequence[tuple[str, ImageVendor]] = (),
        text: Messages,
        frontends: Frontends,
        limits: JobLimits,
        image_limits: ImageLimits,
        concurrency: VendorLimit,
        default_locale: str = "en",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.files = files
        self.text = text
        self.frontends = frontends
        self.limits = limits
        self.image_limits = image_limits
        self.concurrency = concurrency
        self.default_locale = default_locale
        self.clock = clock
        # ``vendors``: (name, adapter) in failover order (``VENDORS``); ``vendor``
        # alone: the one vendor of ``VENDOR=``, whose health keeps its historical flag.
        if len(vendors) > 1:
            members = [
                PoolMember(name, v, VendorHealth(store, frontends, text, clock, name=name))
                for name, v in vendors
            ]
        else:
            only = vendor or vendors[0][1]
            name = vendors[0][0] if vendors else only.preset.name
            members = [PoolMember(name, only, VendorHealth(store, frontends, text, clock))]
        self.pool = VendorPool(members)
        self.vendor = self.pool.primary.vendor
        self.preset = self.vendor.preset
        self.health = self.pool.primary.health
        # Job outcomes and vendor latency for the health endpoint's /metrics.
        self.metrics = Metrics(vendors=[(m.name, m.health.name) for m in self.pool.members])
        # In-process callers waiting for a job's end (``Imagine.run_job``) and
        # their extra progress listeners.
        self._waiters: dict[str, asyncio.Future[JobReceipt]] = {}
        self._listeners: dict[str, ProgressCallback] = {}

    def context(self, job: JobRecord) -> JobContext:
        return job_context(job, self.default_locale)

    # --- intake -----------------------------------------------------------------

    async def submit(
        self,
        user: UserRef,
        account_id: int,
        request: ImageRequest,
        chat: ChatRef,
        locale: str,
        *,
        queue: str | None = None,
        job_id: str | None = None,
    ) -> Submitted:
        """Hold the price and queue the job, in one transaction; raises the refusal
        (limits, balance, paused vendor) with nothing held or stored."""
        # The hold covers the dearest vendor that can do it: any of them may serve.
        hold_amount = self.pool.hold(request)
        job_id = job_id or uuid.uuid4().hex
        # Bytes handed in by this process (the command line) are kept as stored
        # sources; a chat frontend hands references only.
        request = await self._keep_given(job_id, request)
        now = self.clock()
        async with self.store.transaction() as tx:
            await self.pool.admit(tx, now, request)
            if await self.store.jobs.count_active(tx, account_id) >= self.limits.max_active:
                raise TooManyActiveJobs(limit=self.limits.max_active)
            if (
                await self.store.jobs.count_since(tx, account_id, now - 60)
                >= self.limits.per_minute
            ):
                raise UserRateLimited()
            # The account row is locked (the hold) before the job row refers to it:
            # the other order deadlocks concurrent submits on PostgreSQL, where the
            # job's foreign key share-locks the account first.
            try:
                hold = await self.store.ledger.reserve(
                    tx,
                    f"hold:{job_id}",
                    account_id,
                    hold_amount,
                    job_id=job_id,
                    expires_at=now + HOLD_TTL,
                )
            except InsufficientFunds as exc:
                raise InsufficientCredits(
                    price=hold_amount, balance=exc.available, platform=user.platform
                ) from None
            await self.store.jobs.insert(
                tx,
                JobRecord(
                    id=job_id,
                    account_id=account_id,
                    platform=chat.platform,
                    chat=JobChat(user, chat, locale).to_json(),
                    kind="edit" if request.is_edit else "generate",
                    params=dump_params(request),
                    estimate=hold_amount,
                    state=JobState.RESERVED,
                    hold_id=hold.id,
                    queue=queue or self.frontends.queue_for(chat.platform),
                ),
            )
            position = await self._position(
                tx, job_id, queue or self.frontends.queue_for(chat.platform), now
            )
        await self.store.notify_jobs()
        return Submitted(job_id, hold_amount, position)

    async def _keep_given(self, job_id: str, request: ImageRequest) -> ImageRequest:
        if not request.sources and request.mask is None:
            return request
        keep = [(stored_source_key(job_id, i), s.data) for i, s in enumerate(request.sources)]
        refs = tuple(
            SourceRef(STORED, key, public_url=s.public_url)
            for (key, _), s in zip(keep, request.sources, strict=True)
        )
        mask_ref = None
        if request.mask is not None:
            keep.append((stored_mask_key(job_id), request.mask.data))
            mask_ref = SourceRef(STORED, stored_mask_key(job_id))
        await self.files.put_many(keep)
        return replace(request, sources=(), mask=None, refs=refs, mask_ref=mask_ref)

    async def _position(self, tx: Tx, job_id: str, queue: str, now: float) -> int:
        limit = await self.store.limits.get(tx, VENDOR_LIMIT)
        if limit is None or (
            limit.not_before <= now and await self.store.jobs.in_flight(tx, now) < limit.value
        ):
            return 0
        ahead = await self.store.jobs.queued(tx, [queue])
        return next((i for i, j in enumerate(ahead, start=1) if j.id == job_id), len(ahead))

    # --- in-process waiting (the command line, tests) --------------------------

    async def run_and_wait(
        self,
        user: UserRef,
        account_id: int,
        request: ImageRequest,
        chat: ChatRef,
        locale: str,
        on_progress: ProgressCallback | None = None,
        *,
        queue: str | None = None,
    ) -> JobReceipt:
        """Queue the job and wait for its end: its receipt, or the error that ended it
        (already told to the user through the frontend)."""
        job_id = uuid.uuid4().hex
        waiter: asyncio.Future[JobReceipt] = asyncio.get_running_loop().create_future()
        self._waiters[job_id] = waiter
        if on_progress is not None:
            self._listeners[job_id] = on_progress
        try:
            submitted = await self.submit(
                user, account_id, request, chat, locale, queue=queue, job_id=job_id
            )
            if submitted.position and on_progress is not None:
                await on_progress(Progress(stage="queued", queue_position=submitted.position))
            return await waiter
        finally:
            self._waiters.pop(job_id, None)
            self._listeners.pop(job_id, None)

    def _finished(self, job_id: str, outcome: JobReceipt | BaseException) -> None:
        waiter = self._waiters.get(job_id)
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    def _progress(self, job_id: str, shown: ProgressCallback | None) -> ProgressCallback | None:
        """``None`` when nobody watches: vendors then need not stream previews."""
        listener = self._listeners.get(job_id)
        if listener is None or shown is None:
            return shown or listener

        async def both(progress: Progress) -> None:
            await shown(progress)
            await listener(progress)

        return both

    # --- execution (a worker holding the lease) ---------------------------------

    async def execute(self, job: JobRecord, owner: str) -> None:
        """Run a claimed job to its end. Every failure is told to the user here,
        through the platform's frontend: the one path for job errors."""
        ctx = self.context(job)
        frontend = self.frontends.get(job.platform)
        request = load_request(job.params)
        hold = job.estimate
        route = _Route()
        try:
            candidates = self.pool.candidates(request)
            if frontend is None:
                raise DeliveryFailed(f"no frontend for {job.platform} in this process")
            async with frontend.progress(ctx.chat, ctx.locale) as shown:
                report = self._progress(job.id, shown)
                request = await self._sources(job.id, request, frontend)
                result = await self._call(job, owner, request, candidates, report, route)
        except LeaseLost as err:
            log.warning("%s", err.detail)
            self._finished(job.id, err)
            return
        except asyncio.CancelledError as err:
            # Shutting down: a job the vendor never saw goes back to the queue; one it
            # may have billed is booked as a loss, like a crash would be.
            loss = route.asked_price(hold) if route.started else None
            await asyncio.shield(self._abandon(job.id, owner, err, loss))
            self._finished(job.id, err)
            raise
        except Exception as err:
            await self._failed(
                job, ctx, err, owner, route.asked_price(hold) if route.started else 0
            )
            return
        assert route.chosen is not None
        member, q = route.chosen.member, route.chosen.quote
        self.metrics.vendor_call(time.monotonic() - route.began)
        await member.health.succeeded()
        await self.concurrency.succeeded()
        await self.deliver(job, owner, ctx, request, q, result, member=member)

    async def _call(
        self,
        job: JobRecord,
        owner: str,
        request: ImageRequest,
        candidates: list[Candidate],
        report: ProgressCallback | None,
        route: _Route,
    ) -> ImageResult:
        """Ask the vendors in order until one answers. A job moves on to the next
        vendor only when nothing can have been billed (``nothing_billed``); the
        vendor asked is recorded on the job before each request leaves."""
        last: Exception | None = None
        for index, candidate in enumerate(candidates):
            member = candidate.member
            if self.pool.failover and not await self._take(member):
                continue
            sources = request.sources
            if member.preset.needs_public_urls and any(s.public_url is None for s in sources):
                frontend = self.frontends.get(job.platform)
                assert frontend is not None
                sources = await frontend.publish(job.id, sources)
            asked = replace(request, sources=sources)
            fields: dict[str, object] = {"attempts": job.attempts + 1}
            if self.pool.failover:
                fields["vendor"] = member.name
            first = not route.started
            if not first:
                # A task the last vendor reported failed leaves its id: not this one's.
                fields["vendor_ref"] = None
            async with self.store.transaction() as tx:
                moved = await self.store.jobs.transition(
                    tx,
                    job.id,
                    (JobState.RESERVED,) if first else (JobState.SUBMITTING, JobState.POLLING),
                    JobState.SUBMITTING,
                    owner=owner,
                    **fields,
                )
            if not moved:
                raise LeaseLost(f"job {job.id} was taken over before the vendor call")
            route.started = True
            route.asked = candidate
            if first and report is not None:
                # Position 0: "your turn now", so a status that showed a queue
                # position is updated; a job that never waited shows no change.
                waited = self.clock() - job.created_at > QUEUED_NOTICE
                await report(Progress(stage="submitted", queue_position=0 if waited else None))
            route.began = time.monotonic()
            try:
                result = await member.vendor.run(
                    asked, on_progress=report, on_submitted=self._on_submitted(job.id, owner)
                )
            except (VendorError, Unsupported) as err:
                if isinstance(err, VendorError):
                    await member.health.after_error(err)
                if not (nothing_billed(err) and index + 1 < len(candidates)):
                    raise
                log.warning(
                    "job %s: vendor %s failed (%s); trying the next", job.id, member.name, err.code
                )
                last = err
                continue
            route.chosen = candidate
            return result
        # Every vendor that could do it is out of the rotation (or refused it).
        raise last if last is not None else ServicePaused()

    def asked_price(self, job: JobRecord) -> int:
        """What the vendor a job was sent to may have billed for it: that vendor's
        quote (recorded on the job before the request left), never more than the
        hold; the whole hold when that vendor is no longer configured."""
        member = self.pool.get(job.vendor)
        if member is None:
            return job.estimate
        try:
            return min(quote(member.preset, load_request(job.params)).hold, job.estimate)
        except (InvalidRequest, ConfigError):
            return job.estimate

    async def _take(self, member: PoolMember) -> bool:
        """May this job go to ``member`` now? A read while it is in the rotation (the
        usual case); a write only to claim a probe."""
        now = self.clock()
        async with self.store.read() as tx:
            if await member.health.in_rotation(tx):
                return True
        async with self.store.transaction() as tx:
            return await member.health.take(tx, now)

    async def _abandon(self, job_id: str, owner: str, err: BaseException, loss: int | None) -> None:
        if loss is None:
            async with self.store.transaction() as tx:
                if await self.store.jobs.release(tx, job_id, owner):
                    return
        await self.fail(job_id, err, loss=loss or 0, owner=owner)

    async def _failed(
        self, job: JobRecord, ctx: JobContext, err: Exception, owner: str, hold: int
    ) -> None:
        if isinstance(err, VendorError):
            await self.fail(job.id, err, loss=hold if err.maybe_billed else 0, owner=owner)
        elif isinstance(err, ImagineError):  # refused before anything was sent
            await self.fail(job.id, err, owner=owner)
        else:
            log.error("job %s failed: %s", job.id, type(err).__name__, exc_info=err)
            # Once the call started, the vendor may have billed.
            await self.fail(job.id, err, loss=hold, owner=owner)
        err = err if isinstance(err, ImagineError) else DeliveryFailed(type(err).__name__)
        err.job_id = job.id
        await self.tell_failure(job.id, ctx, err)
        self._finished(job.id, err)

    async def _sources(
        self, job_id: str, request: ImageRequest, frontend: Frontend
    ) -> ImageRequest:
        """Fetch, check and keep the job's sources (rerolls read them back), and give
        them public links when the vendor fetches inputs by URL."""
        if not request.refs and request.mask_ref is None:
            return request
        refs = list(request.refs)
        blobs = [(await self._fetch(ref, frontend), ref.public_url) for ref in refs]
        sources = await load_sources(blobs, self.image_limits)
        mask: SourceImage | None = None
        if request.mask_ref is not None:
            data = await self._fetch(request.mask_ref, frontend)
            (mask,) = await load_sources([(data, None)], replace(self.image_limits, max_count=1))
        keep = [(stored_source_key(job_id, i), s.data) for i, s in enumerate(sources)]
        if mask is not None:
            keep.append((stored_mask_key(job_id), mask.data))
        await self.files.put_many(keep)
        return replace(request, sources=sources, mask=mask, refs=(), mask_ref=None)

    async def _fetch(self, ref: SourceRef, frontend: Frontend) -> bytes:
        if ref.kind == STORED:
            try:
                return await self.files.get(ref.ref)
            except OSError:
                raise InvalidRequest("source gone", kind="download", reason="gone") from None
        if ref.kind == PATH:
            try:
                return await asyncio.to_thread(_read_path, ref.ref)
            except OSError:
                raise InvalidRequest(
                    f"missing file {ref.ref}", kind="download", reason="missing"
                ) from None
        return await frontend.fetch_source(ref)

    def _on_submitted(self, job_id: str, owner: str) -> SubmittedCallback:
        async def submitted(vendor_ref: str) -> None:
            async with self.store.transaction() as tx:
                await self.store.jobs.transition(
                    tx,
                    job_id,
                    (JobState.SUBMITTING,),
                    JobState.POLLING,
                    owner=owner,
                    vendor_ref=vendor_ref,
                )

        return submitted

    # --- steps shared with the sweeper -----------------------------------------

    async def deliver(
        self,
        job: JobRecord,
        owner: str,
        ctx: JobContext,
        request: ImageRequest,
        q: Quote,
        result: ImageResult,
        *,
        member: PoolMember | None = None,
    ) -> JobReceipt | None:
        """Store the result, hand it to the platform, then charge. Nothing is charged
        unless the platform delivered; nothing is delivered once the job is not ours.
        ``member``: the vendor that served, whose prices make the charge (never more
        than the job's hold, which covered the dearest candidate)."""
        member = member or self.pool.get(job.vendor) or self.pool.primary
        try:
            cost = min(
                actual_cost(member.preset, q, result.usage, len(result.images)), job.estimate
            )
            keys = [result_key(job.id, i, img.extension) for i, img in enumerate(result.images)]
            await self.files.put_many(
                list(zip(keys, (img.data for img in result.images), strict=True))
            )
            async with self.store.transaction() as tx:
                balance = await self.store.ledger.balance(tx, job.account_id)
                balance_after = balance_after_charge(balance.available, job.estimate, cost)
                moved = await self.store.jobs.transition(
                    tx,
                    job.id,
                    (JobState.SUBMITTING, JobState.POLLING),
                    JobState.DELIVERING,
                    owner=owner,
                    cost=cost,
                    vendor_ref=result.vendor_ref,
                    result=JobResult(
                        tuple(keys), result.revised_prompt, balance_after=balance_after
                    ).to_json(),
                )
        except Exception as err:
            # The vendor billed these images; we could not even keep them. The serving
            # vendor's quote, not the hold (which covered the dearest vendor).
            log.error("storing the result of job %s failed", job.id, exc_info=err)
            await self.fail(job.id, err, loss=min(q.hold, job.estimate), owner=owner)
            failed = DeliveryFailed(type(err).__name__)
            await self.tell_failure(job.id, ctx, failed)
            self._finished(job.id, failed)
            return None
        if not moved:
            lost = LeaseLost(f"job {job.id} was taken over before delivery")
            log.warning("%s", lost.detail)
            self._finished(job.id, lost)
            return None
        return await self.hand_over(
            job.id,
            ctx,
            request,
            result.images,
            cost,
            balance_after,
            result.revised_prompt,
            owner=owner,
            service=self.pool.label(member.name),
        )

    async def hand_over(
        self,
        job_id: str,
        ctx: JobContext,
        request: ImageRequest,
        images: tuple[GeneratedImage, ...],
        cost: int,
        balance_after: int,
        revised_prompt: str | None,
        *,
        owner: str,
        service: str | None = None,
    ) -> JobReceipt | None:
        """``service``: the vendor the caption names (several vendors only)."""
        frontend = self.frontends.get(ctx.chat.platform)
        delivery = Delivery(
            job_id=job_id,
            chat=ctx.chat,
            user=ctx.user,
            request=request,
            images=images,
            cost=cost,
            balance_after=balance_after,
            locale=ctx.locale,
            caption=self.text.caption(
                ctx.locale, request.prompt, cost, balance_after, revised_prompt, service=service
            ),
            revised_prompt=revised_prompt,
        )
        delivered = len(images)
        try:
            if frontend is None:
                raise DeliveryFailed(f"no frontend for {ctx.chat.platform}")
            await frontend.deliver(delivery)
        except DeliveryIncomplete as err:
            if err.delivered <= 0:
                await self._undelivered(job_id, ctx, err, cost, owner)
                return None
            # The user has some of the images: they pay for those, once.
            log.warning("job %s: %d of %d images delivered", job_id, err.delivered, len(images))
            delivered = err.delivered
        except (Exception, asyncio.CancelledError) as err:
            # Not GeneratorExit: a coroutine being closed must not await anything.
            await self._undelivered(job_id, ctx, err, cost, owner)
            return None
        charge = charge_for(cost, delivered, len(images))
        await self.mark_delivered(job_id, delivered)
        if delivered < len(images) and frontend is not None:
            # The caption announced the full price; say what was really charged.
            with contextlib.suppress(Exception):
                await frontend.notify(
                    ctx.chat,
                    self.text.delivery_partial(ctx.locale, delivered, len(images), charge),
                )
        try:
            await self.settle(job_id, charge, loss=cost - charge)
        except Exception as exc:
            # Delivered and recorded: the sweeper retries the charge alone (never
            # the images) once this worker's lease has run out.
            log.error("charging delivered job %s failed; the sweeper retries", job_id)
            await self.frontends.alert_admins(
                self.text.t("alert.settle_failed", job=job_id, error=type(exc).__name__)
            )
            raise
        receipt = JobReceipt(job_id, charge, balance_after + cost - charge, delivered)
        self._finished(job_id, receipt)
        return receipt

    async def _undelivered(
        self, job_id: str, ctx: JobContext, err: BaseException, cost: int, owner: str
    ) -> None:
        log.warning("delivery of job %s failed: %s", job_id, type(err).__name__)
        # The vendor billed these images; the user never saw them.
        await asyncio.shield(self.fail(job_id, err, loss=cost, code="delivery_failed", owner=owner))
        if not isinstance(err, Exception):  # cancelled: shutting down
            self._finished(job_id, err)
            raise err
        failed = err if isinstance(err, ImagineError) else DeliveryFailed(type(err).__name__)
        failed.job_id = job_id
        await self.tell_failure(job_id, ctx, failed)
        self._finished(job_id, failed)

    async def mark_delivered(self, job_id: str, delivered: int) -> None:
        """Recorded before the charge: if settling fails, recovery retries only the
        ledger write and never sends the images again."""
        async with self.store.transaction() as tx:
            job = await self.store.jobs.get(tx, job_id)
            if job is None or job.state != JobState.DELIVERING:
                return
            result = replace(JobResult.from_json(job.result), delivered=delivered)
            await self.store.jobs.update(tx, job_id, result=result.to_json())

    async def settle(self, job_id: str, cost: int, *, loss: int = 0) -> None:
        async with self.store.transaction() as tx:
            job = await self.store.jobs.get(tx, job_id)
            if job is None or job.hold_id is None or job.state != JobState.DELIVERING:
                return
            # The loss first: it locks system accounts only, and the ledger's one
            # lock order (system accounts, holds, users) keeps concurrent job ends
            # from deadlocking on PostgreSQL.
            if loss > 0:
                await self._book_loss(tx, job_id, loss, "partly_delivered")
            resolution = await self.store.ledger.post(
                tx, job.hold_id, cost, transfer_id=f"charge:{job_id}"
            )
            if resolution.already and resolution.status != "posted":
                log.error("job %s delivered after its hold was %s", job_id, resolution.status)
            ended = await self.store.jobs.transition(
                tx,
                job_id,
                (JobState.DELIVERING,),
                JobState.SUCCEEDED,
                cost=resolution.charged,
                notified=True,
                chat=JobChat.ended(job.chat),
            )
        if ended:
            self.metrics.succeeded(partial=loss > 0)

    async def _book_loss(self, tx: Tx, job_id: str, loss: int, reason: str) -> None:
        loss_account = await self.store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)
        revenue = await self.store.ledger.system_account(tx, SYSTEM_REVENUE)
        await self.store.ledger.transfer(
            tx,
            f"loss:{job_id}",
            loss_account.id,
            revenue.id,
            loss,
            "vendor_loss",
            reason=reason,
            job_id=job_id,
            allow_overdraft=True,
        )

    async def fail(
        self,
        job_id: str,
        err: BaseException,
        *,
        loss: int = 0,
        code: str | None = None,
        notified: bool = False,
        owner: str | None = None,
    ) -> bool:
        """Release the hold and close the job; book ``loss`` credits the vendor may have
        billed to the vendor-loss account. Safe to call twice; with ``owner``, only
        while that worker still holds the job. True if this call ended it."""
        error_code = code or (err.code if isinstance(err, ImagineError) else "error")
        async with self.store.transaction() as tx:
            job = await self.store.jobs.get(tx, job_id)
            if job is None or job.terminal:
                return False
            if owner is not None and job.claimed_by != owner:
                return False
            if loss > 0:  # before the hold: the ledger's lock order (see settle)
                await self._book_loss(tx, job_id, loss, error_code)
            if job.hold_id is not None:
                await self.store.ledger.void(tx, job.hold_id, error_code)
            ended = await self.store.jobs.transition(
                tx,
                job_id,
                (job.state,),
                JobState.FAILED,
                error=error_code,
                cost=0,
                notified=notified,
                chat=JobChat.ended(job.chat),
            )
        if ended:
            self.metrics.failed(error_code)
        return ended

    async def tell_failure(self, job_id: str, ctx: JobContext, err: ImagineError) -> None:
        """The one place a job's failure reaches its user; until it has, the job
        counts as untold and the sweeper tries again."""
        frontend = self.frontends.get(ctx.chat.platform)
        if frontend is None:
            return
        try:
            await frontend.notify(ctx.chat, self.text.error(err, ctx.locale))
        except Exception as exc:
            log.warning(
                "could not tell %s about job %s: %s", ctx.user.key, job_id, type(exc).__name__
            )
            return
        await self.acknowledge(job_id)

    async def acknowledge(self, job_id: str) -> None:
        async with self.store.transaction() as tx:
            await self.store.jobs.mark_notified(tx, job_id)


@dataclass
class _Route:
    """How far a job's vendor calls got: ``started`` once a request may have left
    (a failure then may have been billed, at most ``asked``'s price), ``chosen``
    the vendor that answered."""

    started: bool = False
    began: float = 0.0
    chosen: Candidate | None = None
    # The vendor the last request went to: what it may have billed is its quote.
    asked: Candidate | None = None

    def asked_price(self, hold: int) -> int:
        return hold if self.asked is None else min(self.asked.quote.hold, hold)


@contextlib.asynccontextmanager
async def no_progress() -> AsyncIterator[ProgressCallback | None]:
    """For frontends that show no status while a job runs."""
    yield None
