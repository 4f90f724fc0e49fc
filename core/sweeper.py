"""Finishing what a crash left half-way, at start-up and then periodically.

Recovery is lease expiry: a job is only recovered once the lease of the worker that
held it ran out (that worker died or hung), and the sweeper first takes the job
over with a compare-and-swap on that lease, so a live instance's jobs are never
touched and two sweepers never recover the same job. The written policy, per state
such a job can be found in:

- RESERVED (claimed, never sent): back to the queue; the vendor never saw it.
  A queued job nobody claimed within ``QUEUE_TIMEOUT`` (no worker serves its
  platform) is failed and its hold released.
- SUBMITTING: the request may have reached a synchronous vendor, which may have
  billed us, but its answer is lost and cannot be fetched again. The user is not
  charged (they got nothing); the hold is voided and the price of the vendor the
  job was sent to (recorded on the job before the request left) is booked to the
  vendor-loss account so the books still match the vendor's bill.
- POLLING (async tasks): the task id is stored, so polling resumes; the job is then
  delivered and charged, or failed and voided like a live one.
- DELIVERING: the images are on disk. If the delivery was recorded, only the
  charge is retried (the images are never sent twice); otherwise they are
  delivered again by a process that runs the platform, and charged once; with no
  such process for ``delivery_grace`` seconds the hold is voided and the cost
  booked as a loss.
- FAILED but the user never heard: they are told, once the platform runs here.
- Holds past their expiry whose job is over (or gone) are expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.drafts import Drafts
from core.errors import CannotResume, ImagineError
from core.images import read_outputs
from core.job_params import JobResult, load_request
from core.jobs import JobService, balance_after_charge, charge_for
from core.pricing import quote
from core.types import GeneratedImage
from core.worker import Worker
from storage.interfaces import JobRecord, JobState

log = logging.getLogger(__name__)

# Seconds a frontend has to show a live failure before the sweeper tells the user.
NOTIFY_GRACE = 60.0
# Recovered jobs looked at per sweep.
SWEEP_BATCH = 500
# Seconds between looks for job files past their retention.
RETENTION_INTERVAL = 3600.0


@dataclass
class SweepReport:
    voided: int = 0
    requeued: int = 0
    resumed: int = 0
    redelivered: int = 0
    settled: int = 0
    notified: int = 0
    expired: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)


class Interrupted(ImagineError):
    code = "job_interrupted"


class QueueTimedOut(ImagineError):
    code = "job_interrupted"


class Sweeper:
    def __init__(
        self,
        jobs: JobService,
        worker: Worker,
        *,
        delivery_grace: float,
        queue_timeout: float,
        retention: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``retention``: seconds an ended job's files are kept (0: forever)."""
        self.jobs = jobs
        self.worker = worker
        self.store = jobs.store
        self.delivery_grace = delivery_grace
        self.queue_timeout = queue_timeout
        self.retention = retention
        self.clock = clock
        self._retained_at: float | None = None

    @property
    def owner(self) -> str:
        return self.worker.worker_id

    async def sweep(self, platform: str | None = None) -> SweepReport:
        """``platform``: only that platform's jobs, for a frontend that has just come
        up (another platform in the same process may not be connected yet)."""
        report = SweepReport()
        now = self.clock()
        async with self.store.read() as tx:
            expired = await self.store.jobs.expired_claims(tx, now, limit=SWEEP_BATCH)
            # Rows from before leases existed, or left by a version without them.
            unclaimed = [
                j
                for j in await self.store.jobs.in_states(
                    tx,
                    (JobState.SUBMITTING, JobState.POLLING, JobState.DELIVERING),
                    limit=SWEEP_BATCH,
                )
                if j.claimed_by is None
            ]
            stale = await self.store.jobs.in_states(
                tx, (JobState.RESERVED,), older_than=now - self.queue_timeout, limit=SWEEP_BATCH
            )
        for job in [*expired, *unclaimed]:
            if platform and job.platform != platform:
                continue
            try:
                await self._recover(job, report)
            except Exception as exc:  # one bad row must not stop the sweep
                log.exception("sweeping job %s failed", job.id)
                report.errors.append(f"{job.id}: {type(exc).__name__}")
        for job in stale:
            if job.claimed_by is not None or job.created_at >= now - self.queue_timeout:
                continue
            # Taken first, so a worker claiming it this instant cannot also run it.
            taken = await self._take(job)
            if taken is not None and await self.jobs.fail(
                job.id, QueueTimedOut(), owner=self.owner
            ):
                report.voided += 1
        await self._notify_failed(report, platform)
        await self._expire_holds(report)
        await self._remove_old_files(report)
        return report

    async def _remove_old_files(self, report: SweepReport) -> None:
        """Ended jobs' images past ``FILE_RETENTION_DAYS``: the disk does not grow
        forever. Their Reroll and Variations buttons then say the image is gone."""
        now = time.monotonic()
        if not self.retention or (
            self._retained_at is not None and now - self._retained_at < RETENTION_INTERVAL
        ):
            return
        self._retained_at = now
        report.removed += await Drafts(self.store).purge_expired(self.clock())
        candidates = await self.jobs.files.older_dirs("jobs", self.clock() - self.retention)
        for job_id in candidates:
            async with self.store.read() as tx:
                job = await self.store.jobs.get(tx, job_id)
            if job is None or job.terminal:
                await self.jobs.files.delete_dir(f"jobs/{job_id}")
                report.removed += 1

    async def _take(self, job: JobRecord) -> JobRecord | None:
        async with self.store.transaction() as tx:
            return await self.store.jobs.take_over(
                tx, job.id, self.owner, now=self.clock(), lease_until=self.worker.lease_until()
            )

    async def _recover(self, job: JobRecord, report: SweepReport) -> None:
        needs_platform = job.state in (JobState.POLLING, JobState.DELIVERING)
        if needs_platform and self.jobs.frontends.get(job.platform) is None:
            # Another process runs that platform; give it time before giving up.
            if job.state == JobState.DELIVERING and (
                self.clock() - job.updated_at > self.delivery_grace
            ):
                taken = await self._take(job)
                if taken is not None and await self.jobs.fail(
                    job.id, Interrupted(), loss=job.cost or 0, owner=self.owner
                ):
                    report.voided += 1
            return
        taken = await self._take(job)
        if taken is None:
            return  # someone else holds it now
        state = taken.state
        if state == JobState.RESERVED:
            async with self.store.transaction() as tx:
                if await self.store.jobs.release(tx, job.id, self.owner):
                    report.requeued += 1
            await self.store.notify_jobs()
        elif state == JobState.SUBMITTING or (state == JobState.POLLING and not taken.vendor_ref):
            # The vendor recorded on the job was asked: its price, not the hold (which
            # covered the dearest vendor), is what it may have billed.
            loss = self.jobs.asked_price(taken)
            if await self.jobs.fail(job.id, Interrupted(), loss=loss, owner=self.owner):
                report.voided += 1
        elif state == JobState.POLLING:
            self.worker.spawn(job.id, self._resume(taken))
            report.resumed += 1
        elif state == JobState.DELIVERING and await self._redeliver(taken, report):
            report.redelivered += 1

    async def _resume(self, job: JobRecord) -> None:
        ctx = self.jobs.context(job)
        request = load_request(job.params)
        # The vendor the task was created at (a vendor since removed from the
        # configuration cannot be asked again).
        member = self.jobs.pool.get(job.vendor)
        try:
            assert job.vendor_ref is not None
            if member is None:
                raise CannotResume(f"vendor {job.vendor} is no longer configured")
            q = quote(member.preset, request)
            result = await member.vendor.resume(job.vendor_ref, request)
        except ImagineError as err:
            if await self.jobs.fail(
                job.id,
                err,
                loss=self.jobs.asked_price(job) if getattr(err, "maybe_billed", False) else 0,
                owner=self.owner,
            ):
                await self.jobs.tell_failure(job.id, ctx, err)
            return
        except Exception:
            log.exception("resuming job %s failed", job.id)
            loss = self.jobs.asked_price(job)
            if await self.jobs.fail(job.id, Interrupted(), loss=loss, owner=self.owner):
                await self.jobs.tell_failure(job.id, ctx, Interrupted())
            return
        await self.jobs.deliver(job, self.owner, ctx, request, q, result, member=member)

    async def _redeliver(self, job: JobRecord, report: SweepReport) -> bool:
        cost = job.cost or 0
        result = JobResult.from_json(job.result)
        if result.delivered is not None:
            # The user has the images: only the charge is missing. Retried every
            # sweep (the interval is the backoff) and the admins hear of each failure.
            charge = charge_for(cost, result.delivered, len(result.files) or 1)
            try:
                await self.jobs.settle(job.id, charge, loss=cost - charge)
            except Exception as exc:
                log.error("settling delivered job %s failed again", job.id, exc_info=exc)
                await self.jobs.frontends.alert_admins(
                    self.jobs.text.t("alert.settle_failed", job=job.id, error=type(exc).__name__)
                )
                raise
            report.settled += 1
            return False
        ctx = self.jobs.context(job)
        try:
            blobs = [await self.jobs.files.get(key) for key in result.files]
            images: tuple[GeneratedImage, ...] = await read_outputs(blobs)
            request = load_request(job.params)
        except (OSError, ImagineError):
            # The files did not survive (a power cut): nothing to deliver, nothing charged.
            log.warning("job %s lost its result files; releasing its hold", job.id)
            if await self.jobs.fail(job.id, Interrupted(), loss=cost, owner=self.owner):
                report.voided += 1
            return False
        async with self.store.read() as tx:
            balance = await self.store.ledger.balance(tx, job.account_id)
        # Under this worker's lease (renewed while the upload runs).
        self.worker.spawn(
            job.id,
            self.jobs.hand_over(
                job.id,
                ctx,
                request,
                images,
                cost,
                balance_after_charge(balance.available, job.estimate, cost),
                result.revised_prompt,
                owner=self.owner,
                service=self.jobs.pool.label(job.vendor),
            ),
        )
        return True

    async def _notify_failed(self, report: SweepReport, platform: str | None = None) -> None:
        async with self.store.read() as tx:
            pending = await self.store.jobs.unnotified_terminal(tx, limit=200)
        for job in pending:
            if job.state != JobState.FAILED or job.id in self.worker.running:
                continue
            if platform and job.platform != platform:
                continue
            # A live failure is told by the worker that ended it; give it time.
            ours = job.error == Interrupted.code
            if not ours and self.clock() - job.updated_at < NOTIFY_GRACE:
                continue
            frontend = self.jobs.frontends.get(job.platform)
            if frontend is None:
                continue
            ctx = self.jobs.context(job)
            key = "job_interrupted" if job.error == Interrupted.code else "job_failed"
            try:
                await frontend.notify(ctx.chat, self.jobs.text.t(key, ctx.locale))
            except Exception:
                log.warning("could not tell %s about job %s", ctx.user.key, job.id)
                continue
            async with self.store.transaction() as tx:
                if await self.store.jobs.mark_notified(tx, job.id):
                    report.notified += 1

    async def _expire_holds(self, report: SweepReport) -> None:
        async with self.store.transaction() as tx:
            for hold in await self.store.ledger.expired_holds(tx, self.clock()):
                job = await self.store.jobs.get(tx, hold.job_id) if hold.job_id else None
                if job is None or job.terminal:
                    await self.store.ledger.expire(tx, hold.id)
                    report.expired += 1

    async def run_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                report = await self.sweep()
                if report.voided or report.resumed or report.redelivered or report.requeued:
                    log.info("sweep: %s", report)
            except Exception:
                log.exception("sweep failed")
