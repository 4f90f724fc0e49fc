"""``Imagine``: the facade every frontend calls (see docs/core-api.md).

One call per chat intent: profiles and defaults, pricing, queueing a job
(``submit``, ``reroll``, ``variation``), balances and the admin commands. Built
by ``core.bootstrap.build_app``; it holds no platform knowledge."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from core.admin import AccountReport, CreditAdmin, HistoryEntry, JobSummary
from core.drafts import Drafts
from core.errors import DeliveryFailed, InvalidRequest
from core.frontends import Frontends
from core.job_params import load_request, result_files
from core.jobs import JobService
from core.locales import parse_locale
from core.messages import Messages, normalize_locale
from core.options import Defaults, ParsedPrompt, parse_prompt
from core.payments import Payments
from core.ports import ChatRef, Delivery, Frontend, UserRef
from core.results import JobReceipt, PriceInfo, Profile, Submitted
from core.settings import Settings
from core.show import Shows
from core.sources import STORED, SourceRef, stored_mask_key, stored_source_key
from core.stats import Stats, StatsCard
from core.sweeper import Sweeper, SweepReport
from core.throttle import Throttle
from core.types import (
    Background,
    ImageRequest,
    OutputFormat,
    Quality,
    Resolution,
    SourceImage,
)
from core.vendor_health import VendorState
from core.vendors.base import ProgressCallback
from core.vendors.preset import Preset
from core.worker import Worker
from storage.files import FileStore
from storage.interfaces import Account, JobRecord, Store, Tx

log = logging.getLogger(__name__)

__all__ = [
    "AccountReport",
    "Defaults",
    "HistoryEntry",
    "Imagine",
    "JobReceipt",
    "JobSummary",
    "ParsedPrompt",
    "PriceInfo",
    "Profile",
    "Submitted",
]


def _prefs_key(user: UserRef) -> str:
    return f"prefs:{user.key}"


class Imagine:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        files: FileStore,
        jobs: JobService,
        frontends: Frontends,
        text: Messages,
    ) -> None:
        self.settings = settings
        # What users are offered (with several vendors, what they can do together).
        self.preset: Preset = jobs.pool.offer
        self.store = store
        self.files = files
        self.jobs = jobs
        self.frontends = frontends
        self.text = text
        self.drafts = Drafts(store)
        self.admin = CreditAdmin(store, settings.admin_ids, self._account, jobs.pool)
        self.shows = Shows(store, files, text, self.is_admin, settings.default_locale)
        self.payments = Payments(
            store,
            settings,
            self.admin,
            self._account,
            text=text,
            alert_admins=frontends.alert_admins,
        )
        self.throttle = Throttle(settings.user_actions_per_minute, settings.user_actions_burst)
        # Set by the composition root; frontends call ``app.sweep()`` once registered.
        self.sweeper: Sweeper | None = None
        self.worker: Worker | None = None
        self.limits = jobs.image_limits
        self.stats = Stats(store, self.preset, self.admin, pool=jobs.pool)

    def add_frontend(self, frontend: Frontend, *, queue: str | None = None) -> None:
        """Deliver this platform's jobs from here; see ``Frontends.add``. The worker
        of this process starts claiming the platform's queue at once."""
        self.frontends.add(frontend, queue=queue)

    async def sweep(self, platform: str | None = None) -> SweepReport | None:
        """Finish what a crashed instance left (see core.sweeper). A frontend calls
        this once it can deliver, for its own ``platform``; a periodic sweep covers all."""
        return await self.sweeper.sweep(platform) if self.sweeper is not None else None

    # --- users ------------------------------------------------------------------

    def is_admin(self, user: UserRef) -> bool:
        return self.admin.is_admin(user)

    def locale_for(self, user: UserRef, saved: str | None = None) -> str:
        """The stored choice (a legacy ``zh`` reads as Simplified Chinese), else the
        platform's hint, else DEFAULT_LOCALE."""
        return normalize_locale(saved or user.locale, self.settings.default_locale)

    async def _account(self, tx: Tx, user: UserRef) -> Account:
        return await self.store.ledger.get_or_create_account(
            tx,
            user.platform,
            user.user_id,
            username=user.username,
            welcome_grant=self.settings.welcome_credits,
        )

    async def profile(self, user: UserRef) -> Profile:
        # Every chat event asks for this: read first, and pay for a durable write only
        # when the account is new or its username changed.
        async with self.store.read() as tx:
            account = await self.store.ledger.find_account(tx, user.platform, user.user_id)
            raw_prefs = await self.store.flags.get(tx, _prefs_key(user))
        username = user.username.strip().lstrip("@") if user.username else None
        if account is None or (username and account.username != username):
            async with self.store.transaction() as tx:
                account = await self._account(tx, user)
        prefs = Defaults.from_json(raw_prefs)
        return Profile(
            account_id=account.id,
            balance=account.available,
            defaults=prefs.fitted(self.preset),
            locale=self.locale_for(user, prefs.locale),
            is_admin=self.is_admin(user),
        )

    async def save_defaults(
        self,
        user: UserRef,
        *,
        aspect: str | None = None,
        resolution: str | None = None,
        quality: str | None = None,
        n: int | None = None,
        locale: str | None = None,
    ) -> Defaults:
        changes = {
            k: v
            for k, v in {
                "aspect": aspect,
                "resolution": resolution,
                "quality": quality,
                "n": n,
                "locale": locale,
            }.items()
            if v is not None
        }
        if "locale" in changes:
            # Stored as one of LANGUAGES, whatever alias was typed (zh-tw, es-419...).
            chosen = parse_locale(str(changes["locale"]))
            if chosen is None:
                raise InvalidRequest(
                    f"unknown language {changes['locale']!r}",
                    kind="language",
                    value=str(changes["locale"])[:32],
                )
            changes["locale"] = chosen
        async with self.store.transaction() as tx:
            current = Defaults.from_json(await self.store.flags.get(tx, _prefs_key(user)))
            updated = replace(current, **changes)  # type: ignore[arg-type]
            # Validate against the vendor now rather than at the next /imagine.
            self._request("x", updated.fitted(self.preset) if not changes else updated)
            await self.store.flags.set(tx, _prefs_key(user), updated.to_json())
        return updated

    async def find_user(self, platform: str, username: str) -> UserRef | None:
        async with self.store.read() as tx:
            account = await self.store.ledger.find_by_username(tx, platform, username.lstrip("@"))
        if account is None:
            return None
        return UserRef(platform, account.external_id, account.username)

    # --- requests ---------------------------------------------------------------

    def parse_prompt(self, text: str, defaults: Defaults) -> ParsedPrompt:
        return parse_prompt(text, defaults, self.preset)

    def _request(
        self,
        prompt: str,
        defaults: Defaults,
        sources: tuple[SourceImage, ...] = (),
        mask: SourceImage | None = None,
        user: UserRef | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        refs: tuple[SourceRef, ...] = (),
        mask_ref: SourceRef | None = None,
    ) -> ImageRequest:
        if len(refs) > self.limits.max_count:
            raise InvalidRequest("too many images", kind="count", limit=self.limits.max_count)
        request = ImageRequest(
            prompt=prompt,
            aspect=defaults.aspect,
            resolution=Resolution(defaults.resolution),
            quality=Quality(defaults.quality),
            n=defaults.n,
            sources=sources,
            mask=mask,
            background=background,
            output_format=output_format,
            user_tag=user.key if user else None,
            refs=refs,
            mask_ref=mask_ref,
        )
        # Raises Unsupported before anything else happens (with several vendors, only
        # when none of them can do it).
        self.jobs.pool.candidates(request)
        return request

    def build_request(
        self,
        prompt: str,
        defaults: Defaults,
        sources: tuple[SourceImage, ...] = (),
        mask: SourceImage | None = None,
        user: UserRef | None = None,
        *,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        refs: tuple[SourceRef, ...] = (),
        mask_ref: SourceRef | None = None,
    ) -> ImageRequest:
        """A checked request: prompt, options the vendor can do, at most as many
        sources as it takes (``refs``: where they are, fetched by the worker)."""
        prompt = prompt.strip()
        if not prompt:
            raise InvalidRequest("empty prompt", kind="prompt_empty")
        if len(prompt) > self.preset.max_prompt_chars:
            raise InvalidRequest(
                "prompt too long",
                kind="prompt_too_long",
                length=len(prompt),
                limit=self.preset.max_prompt_chars,
            )
        return self._request(
            prompt, defaults, sources, mask, user, background, output_format, refs, mask_ref
        )

    async def request(
        self,
        user: UserRef,
        text: str,
        *,
        defaults: Defaults | None = None,
        overrides: Mapping[str, str | int] | None = None,
        refs: Sequence[SourceRef] = (),
        mask_ref: SourceRef | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        profile: Profile | None = None,
        inline_flags: bool = True,
    ) -> ImageRequest:
        """Chat input -> a checked request: ``defaults`` (the user's saved ones unless
        given; ``profile`` spares looking them up), then ``overrides`` (``aspect``,
        ``resolution``, ``quality``, ``n`` from buttons, slash-command choices or
        command-line flags), then the ``--ar`` style flags typed in ``text``, which
        win. ``inline_flags=False`` takes ``text`` as the prompt as it is (an
        already parsed draft, a command-line argument). Nothing is fetched."""
        if defaults is None:
            defaults = (profile or await self.profile(user)).defaults
        if overrides:
            defaults = replace(defaults, **overrides)  # type: ignore[arg-type]
        prompt = text
        if inline_flags:
            parsed = self.parse_prompt(text, defaults)
            prompt, defaults = parsed.prompt, parsed.defaults
        return self.build_request(
            prompt,
            defaults,
            user=user,
            background=background,
            output_format=output_format,
            refs=tuple(refs),
            mask_ref=mask_ref,
        )

    async def quote(self, user: UserRef, request: ImageRequest) -> PriceInfo:
        """The hold (the dearest vendor that can do it) and, when the vendors' prices
        differ, the cheapest as ``low``: the charge is the serving vendor's."""
        low, high = self.jobs.pool.price_range(request)
        return PriceInfo(
            price=high, balance=await self.balance(user), low=low if low != high else None
        )

    async def submit(
        self,
        user: UserRef,
        request: ImageRequest,
        chat: ChatRef,
        *,
        profile: Profile | None = None,
    ) -> Submitted:
        """The intake: hold the price and queue the job; a worker runs it and the
        platform's frontend shows its progress, result or failure. Raises the
        refusal (balance, limits, paused vendor) with nothing held or fetched.
        ``profile``: the one the frontend already fetched for this event, if any."""
        profile = profile or await self.profile(user)
        return await self.jobs.submit(user, profile.account_id, request, chat, profile.locale)

    async def run_job(
        self,
        user: UserRef,
        request: ImageRequest,
        chat: ChatRef,
        on_progress: ProgressCallback | None = None,
        *,
        profile: Profile | None = None,
        queue: str | None = None,
    ) -> JobReceipt:
        """Queue the job and wait for its end in this process (the command line):
        the receipt, or the error that ended it (already told through the frontend)."""
        profile = profile or await self.profile(user)
        return await self.jobs.run_and_wait(
            user, profile.account_id, request, chat, profile.locale, on_progress, queue=queue
        )

    async def acknowledge(self, err: BaseException) -> None:
        """The frontend has shown ``err`` to its user: the job's outcome is told."""
        job_id = getattr(err, "job_id", None)
        if job_id:
            await self.jobs.acknowledge(job_id)

    async def _job(self, job_id: str) -> JobRecord:
        async with self.store.read() as tx:
            job = await self.store.jobs.get(tx, job_id)
        if job is None:
            raise InvalidRequest("no such job", kind="job_not_found")
        return job

    async def _own_job(self, user: UserRef, job_id: str) -> JobRecord:
        """A job whose buttons ``user`` may press: their own, or anyone's for an admin."""
        job = await self._job(job_id)
        if self.is_admin(user):
            return job
        async with self.store.read() as tx:
            account = await self.store.ledger.find_account(tx, user.platform, user.user_id)
        if account is None or account.id != job.account_id:
            raise InvalidRequest("not the owner", kind="not_yours")
        return job

    async def job_request(self, job_id: str) -> ImageRequest:
        """A stored job's request, its sources as references."""
        return load_request((await self._job(job_id)).params)

    async def reroll_request(self, user: UserRef, job_id: str) -> ImageRequest:
        """The same request again, its sources read back from the earlier job's copies."""
        job = await self._own_job(user, job_id)
        request = load_request(job.params)
        refs = tuple(
            r if r.kind == STORED else SourceRef(STORED, stored_source_key(job_id, i))
            for i, r in enumerate(request.refs)
        )
        mask = request.mask_ref
        if mask is not None and mask.kind != STORED:
            mask = SourceRef(STORED, stored_mask_key(job_id))
        for ref in (*refs, *([mask] if mask else [])):
            await self._still_kept(ref.ref)
        return replace(request, refs=refs, mask_ref=mask, user_tag=user.key)

    async def _still_kept(self, key: str) -> None:
        """Refused at intake, before any hold, when retention removed the files."""
        if not await self.files.exists(key):
            raise InvalidRequest("files removed", kind="job_not_found")

    async def reroll(
        self, user: UserRef, job_id: str, chat: ChatRef, *, profile: Profile | None = None
    ) -> Submitted:
        return await self.submit(
            user, await self.reroll_request(user, job_id), chat, profile=profile
        )

    async def variation_request(self, user: UserRef, job_id: str) -> ImageRequest:
        """An edit of the job's first result with the same prompt and options."""
        job = await self._own_job(user, job_id)
        files = result_files(job.result)
        if not files:
            raise InvalidRequest("no result", kind="job_not_found")
        await self._still_kept(files[0])
        request = load_request(job.params)
        return replace(
            request,
            refs=(SourceRef(STORED, files[0]),),
            mask_ref=None,
            sources=(),
            mask=None,
            n=1,
            user_tag=user.key,
        )

    async def variation(
        self, user: UserRef, job_id: str, chat: ChatRef, *, profile: Profile | None = None
    ) -> Submitted:
        return await self.submit(
            user, await self.variation_request(user, job_id), chat, profile=profile
        )

    async def show(
        self, actor: UserRef, job_id: str, chat: ChatRef, *, profile: Profile | None = None
    ) -> Delivery:
        """Post an earlier result to ``chat`` again, through the platform's own
        delivery (same caption, same buttons), in the actor's language. ``job_id``:
        as typed (the short id of ``/history`` or the full one). Free; only the
        owner's jobs, or anyone's for an admin (see core.show)."""
        locale = (profile or await self.profile(actor)).locale
        delivery = await self.shows.delivery(actor, job_id, chat, locale)
        frontend = self.frontends.get(chat.platform)
        if frontend is None:
            raise DeliveryFailed(f"no frontend for {chat.platform}")
        await frontend.deliver(delivery)
        return delivery

    # --- account ----------------------------------------------------------------

    async def balance(self, user: UserRef) -> int:
        return (await self.profile(user)).balance

    async def history(self, user: UserRef, limit: int = 10) -> list[HistoryEntry]:
        """The user's credit movements and the jobs that cost nothing (failed ones),
        newest first."""
        account_id = (await self.profile(user)).account_id
        async with self.store.read() as tx:
            rows = await self.store.ledger.history(tx, account_id, limit)
            jobs = await self.store.jobs.for_account(tx, account_id, limit)
        entries = [HistoryEntry.of(account_id, t) for t in rows]
        entries += [HistoryEntry.failed_job(job) for job in jobs if job.state == "FAILED"]
        entries.sort(key=lambda e: e.when, reverse=True)
        return entries[:limit]

    # --- admin (see core.admin) -------------------------------------------------

    async def admin_topup(
        self,
        actor: UserRef,
        target: UserRef,
        amount: int,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> int:
        return await self.admin.topup(actor, target, amount, reason, request_id)

    async def admin_deduct(
        self,
        actor: UserRef,
        target: UserRef,
        amount: int,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> int:
        return await self.admin.deduct(actor, target, amount, reason, request_id)

    async def admin_set(
        self,
        actor: UserRef,
        target: UserRef,
        amount: int,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> int:
        return await self.admin.set(actor, target, amount, reason, request_id)

    async def admin_show(self, actor: UserRef, target: UserRef) -> AccountReport:
        return await self.admin.show(actor, target)

    async def admin_jobs(self, actor: UserRef, limit: int = 10) -> list[JobSummary]:
        return await self.admin.jobs(actor, limit)

    async def admin_resume(self, actor: UserRef, vendor: str | None = None) -> bool:
        """Clear a vendor's pause: ``vendor`` by name (several vendors), or without a
        name the one vendor's 402 pause, or every vendor's (``InvalidRequest`` kind
        ``unknown_vendor`` for a name that is not configured)."""
        return await self.admin.resume(actor, vendor)

    async def vendor_states(self) -> list[VendorState]:
        """Each configured vendor's state (healthy, paused by a 402, failing its
        health window), as every process sees it."""
        async with self.store.read() as tx:
            return await self.jobs.pool.states(tx)

    async def admin_stats(self, actor: UserRef) -> StatsCard:
        """``/stats``: the jobs chart as a PNG and today's numbers (see core.stats)."""
        return await self.stats.card(actor)
