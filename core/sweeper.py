"""Finishing what a crash left half-way, at start-up and then periodically.

The written policy, per state a job can be found in with no live worker:

- NEW / RESERVED: the vendor was never called. Void the hold, fail the job, tell
  the user they were not charged.
- SUBMITTING: the request may have reached a synchronous vendor, which may have
  billed us, but its answer is lost and cannot be fetched again. The user is not
  charged (they got nothing); the hold is voided and the estimate is booked to
  the vendor-loss account so the books still match the vendor's bill.
- POLLING (async tasks): the task id is stored, so polling resumes; the job is
  then delivered and charged, or failed and voided like a live one.
- DELIVERING: the images are on disk. If the platform's frontend is running they
  are delivered again and the user is charged once; if not, after
  ``delivery_grace`` seconds the hold is voided and the cost booked as a loss.
- FAILED but the user never heard: they are told, once the frontend runs.
- Holds past their expiry whose job is over (or gone) are expired.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import ImagineError
from core.images import read_outputs
from core.job_params import restore_request
from core.jobs import JobService, balance_after_charge
from core.messages import normalize_locale
from core.ports import ChatRef, UserRef
from core.pricing import quote
from core.types import GeneratedImage, ImageRequest
from storage.interfaces import TERMINAL_STATES, JobRecord, JobState

log = logging.getLogger(__name__)

# Seconds a frontend has to show a live failure before the sweeper tells the user.
NOTIFY_GRACE = 60.0


@dataclass
class SweepReport:
    voided: int = 0
    resumed: int = 0
    redelivered: int = 0
    notified: int = 0
    expired: int = 0
    errors: list[str] = field(default_factory=list)


class Interrupted(ImagineError):
    code = "job_interrupted"


class Sweeper:
    def __init__(
        self,
        jobs: JobService,
        *,
        delivery_grace: float,
        default_locale: str = "en",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.store = jobs.store
        self.delivery_grace = delivery_grace
        self.default_locale = default_locale
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        # Jobs this sweeper ended itself: nobody else will tell their users.
        self._ended: set[str] = set()

    @staticmethod
    def _who(job: JobRecord) -> tuple[UserRef, ChatRef, str | None]:
        data = json.loads(job.chat)
        user = UserRef(
            job.platform, str(data.get("user", "")), data.get("username"), data.get("locale")
        )
        return user, ChatRef(job.platform, data.get("chat") or {}), data.get("locale")

    async def _request(self, job: JobRecord) -> ImageRequest:
        return await restore_request(self.jobs.files, job.params)

    async def sweep(self, platform: str | None = None) -> SweepReport:
        """``platform``: only that platform's jobs, for a frontend that has just come
        up (another platform in the same process may not be connected yet)."""
        report = SweepReport()
        async with self.store.read() as tx:
            stuck = await self.store.jobs.in_states(
                tx, [s for s in JobState if s.value not in TERMINAL_STATES], limit=1000
            )
        for job in stuck:
            if job.id in self.jobs.live or (platform and job.platform != platform):
                continue
            try:
                await self._recover(job, report)
            except Exception as exc:  # one bad row must not stop the sweep
                log.exception("sweeping job %s failed", job.id)
                report.errors.append(f"{job.id}: {type(exc).__name__}")
        await self._notify_failed(report, platform)
        await self._expire_holds(report)
        return report

    async def _recover(self, job: JobRecord, report: SweepReport) -> None:
        state = job.state
        if state in (JobState.NEW, JobState.RESERVED):
            await self.jobs.fail(job.id, Interrupted(), notified=False)
            report.voided += 1
        elif state == JobState.SUBMITTING:
            await self.jobs.fail(job.id, Interrupted(), loss=job.estimate, notified=False)
            report.voided += 1
        elif state == JobState.POLLING and job.vendor_ref:
            self.jobs.live.add(job.id)
            task = asyncio.create_task(self._resume(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            report.resumed += 1
        elif state == JobState.POLLING:
            await self.jobs.fail(job.id, Interrupted(), loss=job.estimate, notified=False)
            report.voided += 1
        elif state == JobState.DELIVERING:
            if await self._redeliver(job):
                report.redelivered += 1
            else:
                report.voided += 1

    async def _resume(self, job: JobRecord) -> None:
        user, chat, locale = self._who(job)
        try:
            request = await self._request(job)
            q = quote(self.jobs.preset, request)
            assert job.vendor_ref is not None
            result = await self.jobs.vendor.resume(job.vendor_ref, request)
            await self.jobs.deliver(
                job.id,
                user,
                chat,
                normalize_locale(locale, self.default_locale),
                request,
                q,
                result,
            )
        except ImagineError as err:
            self._ended.add(job.id)
            await self.jobs.fail(
                job.id,
                err,
                loss=job.estimate if getattr(err, "maybe_billed", False) else 0,
                notified=False,
            )
        except Exception:
            log.exception("resuming job %s failed", job.id)
            await self.jobs.fail(job.id, Interrupted(), loss=job.estimate, notified=False)
        finally:
            self.jobs.live.discard(job.id)
            await self._notify_failed(SweepReport())

    async def _redeliver(self, job: JobRecord) -> bool:
        user, chat, locale = self._who(job)
        frontend = self.jobs.frontends.get(job.platform)
        cost = job.cost or 0
        if frontend is None:
            if self.clock() - job.updated_at > self.delivery_grace:
                await self.jobs.fail(job.id, Interrupted(), loss=cost, notified=False)
                return False
            return True  # wait for the platform to come back
        result = json.loads(job.result or "{}")
        try:
            blobs = [await self.jobs.files.get(key) for key in result.get("files") or []]
            images: tuple[GeneratedImage, ...] = await read_outputs(blobs)
            request = await self._request(job)
        except (OSError, ImagineError):
            # The files did not survive (a power cut): nothing to deliver, nothing charged.
            log.warning("job %s lost its result files; releasing its hold", job.id)
            await self.jobs.fail(job.id, Interrupted(), loss=cost)
            return False
        async with self.store.read() as tx:
            balance = await self.store.ledger.balance(tx, job.account_id)
        hold = job.estimate
        self.jobs.live.add(job.id)
        try:
            await self.jobs.hand_over(
                job,
                user,
                chat,
                normalize_locale(locale, self.default_locale),
                request,
                images,
                cost,
                balance_after_charge(balance.available, hold, cost),
                result.get("revised_prompt"),
            )
        except Exception:
            return False
        finally:
            self.jobs.live.discard(job.id)
        return True

    async def _notify_failed(self, report: SweepReport, platform: str | None = None) -> None:
        async with self.store.read() as tx:
            pending = await self.store.jobs.unnotified_terminal(tx, limit=200)
        for job in pending:
            if job.state != JobState.FAILED or job.id in self.jobs.live:
                continue
            if platform and job.platform != platform:
                continue
            # A live failure is told by the frontend that raised it; give it time.
            ours = job.id in self._ended or job.error == Interrupted.code
            if not ours and self.clock() - job.updated_at < NOTIFY_GRACE:
                continue
            frontend = self.jobs.frontends.get(job.platform)
            if frontend is None:
                continue
            user, chat, locale = self._who(job)
            loc = normalize_locale(locale, self.default_locale)
            key = "job_interrupted" if job.error == Interrupted.code else "job_failed"
            text = self.jobs.text.t(key, loc)
            try:
                await frontend.notify(chat, text)
            except Exception:
                log.warning("could not tell %s about job %s", user.key, job.id)
                continue
            async with self.store.transaction() as tx:
                await self.store.jobs.mark_notified(tx, job.id)
            self._ended.discard(job.id)
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
                if report.voided or report.resumed or report.redelivered:
                    log.info("sweep: %s", report)
            except Exception:
                log.exception("sweep failed")

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
