"""The message catalogue every frontend renders from: one sentence per outcome, in
each of ``core.locales.LANGUAGES`` (gettext catalogues, with plural forms).
``error()`` is the one place a domain error becomes chat text; it never shows a
vendor body, a secret or an English reason inside another language's sentence."""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from babel.numbers import format_decimal

from core.errors import (
    ImagineError,
    InsufficientCredits,
    InvalidRequest,
    TaskFailed,
    VendorRejected,
)
from core.job_ids import short_id
from core.locales import ENGLISH, LANGUAGES, catalogue, normalize_locale
from core.types import Progress

if TYPE_CHECKING:
    from core.admin import AccountReport, HistoryEntry, JobSummary
    from core.options import Defaults
    from core.payments import PaymentSummary
    from core.results import PriceInfo
    from core.stats import Today
    from core.types import ImageRequest
    from core.vendor_health import VendorState
    from core.vendors.preset import Preset
    from storage.interfaces import Payment

log = logging.getLogger(__name__)

__all__ = ["LANGUAGES", "Messages", "normalize_locale"]
# A vendor error code safe to show: short, and nothing a chat could render as markup.
_VENDOR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


# Why a download failed, as the catalogue's ``download.<reason>`` keys: the
# reason an error carries is a code, never a sentence.
_DOWNLOAD_REASONS = frozenset(
    {"gone", "missing", "unsupported_link", "unavailable", "no_answer", "refused"}
)


@dataclass(frozen=True, slots=True)
class _Range:
    """``low–high`` in a sentence; as a count it is ``high``, the number the noun
    agrees with ("3–5 кредитов", not the "кредита" of a bare 2)."""

    text: str
    high: int

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        return format(self.text, spec)

    def __int__(self) -> int:
        return self.high


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True, slots=True)
class Messages:
    default_locale: str = "en"
    buy_platforms: frozenset[str] = frozenset()
    """Platforms where users can buy credit packs: a refusal for lack of credits
    offers /buy there instead of only an admin."""

    def locale(self, hint: str | None) -> str:
        """Any locale hint or stored choice as one of ``LANGUAGES``."""
        return normalize_locale(hint, self.default_locale)

    def number(self, value: object, locale: str | None = None) -> str:
        """A number with the language's digit grouping."""
        if not isinstance(value, int) or isinstance(value, bool):
            return str(value)
        return format_decimal(value, locale=self.locale(locale).replace("-", "_"))

    def t(self, key: str, locale: str | None = None, **params: Any) -> str:
        """The sentence for ``key``; a message with plural forms takes the one its
        count field (``#. plural: <field>`` in the catalogue) asks for."""
        template = catalogue(self.locale(locale)).template(key, params)
        if template is None:
            template = catalogue(ENGLISH).template(key, params)
        if template is None:
            log.error("message key %r is missing", key)
            return key
        try:
            return string.Formatter().vformat(template, (), _Lenient(params))
        except (ValueError, IndexError):
            return template

    # --- errors ---------------------------------------------------------------

    def error(self, err: BaseException, locale: str | None = None) -> str:
        if isinstance(err, InvalidRequest) and "kind" in err.params:
            params = dict(err.params)
            if "n_max" in params:  # option errors list every flag with the real range
                params["flags"] = self.t("options.flags", locale, n_max=params["n_max"])
            if params["kind"] == "download":
                reason = params.get("reason")
                code = reason if reason in _DOWNLOAD_REASONS else "failed"
                params["reason"] = self.t(f"download.{code}", locale)
            if params["kind"] == "amount":  # 1,000,000 or 1 000 000 as the language writes it
                for bound in ("low", "high"):
                    params[bound] = self.number(params[bound], locale)
            if params["kind"] == "language":
                params["languages"] = ", ".join(LANGUAGES)
            return self.t(f"invalid.{params['kind']}", locale, **params)
        if isinstance(err, VendorRejected | TaskFailed):
            return self._vendor_refusal(err, locale)
        if (
            isinstance(err, InsufficientCredits)
            and err.params.get("platform") in self.buy_platforms
        ):
            return self.t("payments.insufficient_credits", locale, **err.params)
        if isinstance(err, ImagineError):
            return self.t(err.code, locale, **err.params)
        return self.t("error", locale)

    def _vendor_refusal(self, err: VendorRejected | TaskFailed, locale: str | None) -> str:
        """One fixed sentence and at most the vendor's short error code: a vendor's
        text may echo the prompt, a key or anything else, so it stays in the log."""
        if err.params.get("moderation"):
            return self.t(f"{err.code}.moderation", locale)
        raw: object = err.fail_code if isinstance(err, TaskFailed) else None
        raw = raw or err.params.get("vendor_code") or err.params.get("status")
        code = str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
        if _VENDOR_CODE.fullmatch(code):
            return self.t(f"{err.code}.code", locale, vendor_code=code)
        return self.t(err.code, locale)

    def delivery_partial(self, locale: str | None, delivered: int, total: int, cost: int) -> str:
        """Two sentences, each with its own count (a gettext message has one)."""
        shown = self.t("delivery_partial", locale, delivered=delivered, total=total)
        return f"{shown} {self.t('delivery_partial.charged', locale, cost=cost)}"

    # --- progress and results -------------------------------------------------

    def status(self, progress: Progress, locale: str | None, elapsed: float) -> str:
        secs = int(elapsed)
        if progress.stage == "queued":
            return self.t("status.queued", locale, position=progress.queue_position or 1)
        if progress.stage == "partial" and progress.partial is not None:
            return self.t("status.partial", locale, index=progress.partial.index + 1, elapsed=secs)
        if progress.stage in ("polling", "downloading"):
            return self.t(f"status.{progress.stage}", locale, elapsed=secs)
        return self.t("status.started", locale, elapsed=secs)

    def caption(
        self,
        locale: str,
        prompt: str,
        cost: int,
        balance: int,
        revised: str | None = None,
        limit: int = 1024,
        *,
        service: str | None = None,
    ) -> str:
        """``service``: the vendor that made the image, named when several could."""
        text = self.t("caption", locale, prompt="{prompt}", cost=cost, balance=balance)
        if service:
            text += "\n" + self.t("caption.service", locale, service=service)
        room = limit - len(text) + len("{prompt}")
        shown = prompt if len(prompt) <= room else prompt[: max(0, room - 1)] + "…"
        text = text.replace("{prompt}", shown)
        if revised and revised != prompt:
            extra = "\n" + self.t("caption.revised", locale, revised=revised)
            if len(text) + len(extra) <= limit:
                text += extra
        return text

    # --- account --------------------------------------------------------------

    def balance(self, locale: str | None, balance: int) -> str:
        return self.t("balance", locale, balance=balance)

    def options_summary(self, locale: str | None, defaults: Defaults) -> str:
        return self.t(
            "options",
            locale,
            aspect=defaults.aspect,
            resolution=defaults.resolution,
            quality=defaults.quality,
            n=defaults.n,
        )

    def price(
        self,
        locale: str | None,
        info: PriceInfo,
        request: ImageRequest,
        *,
        button_hint: bool = True,
    ) -> str:
        what = self.t("price.edit" if request.is_edit else "price.generate", locale)
        details = self.t(
            "options",
            locale,
            aspect=request.aspect,
            resolution=request.resolution.value,
            quality=request.quality.value,
            n=request.n,
        )
        price: int | _Range = info.price
        ranged = info.low is not None and info.low != info.price
        if ranged:
            price = _Range(self.t("price.range", locale, low=info.low, high=info.price), info.price)
        text = self.t(
            "price", locale, what=what, price=price, details=details, balance=info.balance
        )
        if ranged:
            text += "\n" + self.t("price.range_note", locale, high=info.price)
        if not info.affordable:
            return (
                f"{text}\n{self.t('price.unaffordable', locale, missing=info.price - info.balance)}"
            )
        return f"{text}\n{self.t('price.affordable', locale)}" if button_hint else text

    def history(self, locale: str | None, entries: Sequence[HistoryEntry]) -> str:
        if not entries:
            return self.t("history.empty", locale)
        lines = [self.t("history.header", locale)]
        for e in entries:
            note = self.t(f"history.kind.{e.kind}", locale)
            if note == f"history.kind.{e.kind}":
                note = e.kind
            if e.note:
                note = f"{note} · {e.note}"
            if e.job_id:
                note = f"{note} · {self.t('history.job', locale, job=short_id(e.job_id))}"
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.when))
            lines.append(self.t("history.line", locale, when=when, amount=e.amount, note=note))
        if any(e.shows_image for e in entries):
            lines.append(self.t("history.show_hint", locale))
        return "\n".join(lines)

    def account_report(self, locale: str | None, report: AccountReport, user: str) -> str:
        head = self.t(
            "admin.show", locale, user=user, balance=report.balance, pending=report.pending
        )
        return f"{head}\n\n{self.history(locale, report.history)}"

    def stats(self, locale: str | None, today: Today) -> str:
        """The caption of ``/stats``'s chart: the UTC day's three numbers, each its
        own message for its own count, and what the chart's colours mean (the
        chart itself carries no words: its font has no CJK or Cyrillic)."""
        return "\n".join(
            (
                self.t("stats.caption", locale, jobs=today.jobs),
                self.t("stats.charged", locale, charged=today.charged),
                self.t("stats.vendor_cost", locale, cost=today.vendor_cost),
                self.t("stats.legend", locale),
            )
        )

    def jobs(self, locale: str | None, summaries: Sequence[JobSummary]) -> str:
        if not summaries:
            return self.t("admin.jobs_empty", locale)
        lines = [self.t("admin.jobs_header", locale)]
        for job in summaries:
            when = time.strftime("%m-%d %H:%M", time.gmtime(job.created_at))
            line = self.t(
                "admin.job_line",
                locale,
                job=job.job_id[:8],
                user=job.user_key,
                state=job.state,
                kind=job.kind,
                cost="-" if job.cost is None else job.cost,
                estimate=job.estimate,
                error=job.error or "",
            )
            lines.append(f"{when} {line}".rstrip())
        return "\n".join(lines)

    def payments(self, locale: str | None, found: Sequence[PaymentSummary]) -> str:
        """The admin ``/payments`` listing (both platforms), newest first."""
        if not found:
            return self.t("payments.recent_empty", locale)
        lines = [self.t("payments.recent_header", locale)]
        for item in found:
            p = item.payment
            lines.append(
                self.t(
                    "payments.recent_line",
                    locale,
                    when=time.strftime("%m-%d %H:%M", time.gmtime(p.created_at)),
                    user=item.user_key,
                    credits=p.credits,
                    amount=p.amount,
                    currency=p.currency,
                    status=self.t(self._payment_status(p), locale),
                    charge_id=p.charge_id,
                )
            )
        return "\n".join(lines)

    @staticmethod
    def _payment_status(p: Payment) -> str:
        if p.platform_refunded_at is None:
            return f"payments.status.{p.status}"
        # Refunded by the platform: the credits went back, or had been spent.
        return (
            "payments.status.platform_spent"
            if p.status == "credited"
            else ("payments.status.platform_refunded")
        )

    def vendors(self, locale: str | None, states: Sequence[VendorState]) -> str:
        """Each configured vendor's state, for the admin ``/jobs``."""
        lines = [self.t("admin.vendors_header", locale)]
        for v in states:
            lines.append(
                self.t(
                    "admin.vendor_line", locale, vendor=v.name, state=self.vendor_state(locale, v)
                )
            )
        return "\n".join(lines)

    def vendor_state(self, locale: str | None, v: VendorState) -> str:
        def when(at: float | None) -> str:
            return time.strftime("%m-%d %H:%M", time.gmtime(at)) if at else "-"

        return self.t(
            f"vendor.state.{v.state}",
            locale,
            since=when(v.since),
            why=v.why or "",
            probe=when(v.probe_at),
        )

    def help(
        self,
        locale: str | None,
        preset: Preset,
        is_admin: bool = False,
        platform: str = "telegram",
        can_buy: bool = False,
    ) -> str:
        """Commands differ per platform (slash options on Discord, replies on Telegram,
        file paths on the console); the rest of the wording is shared. ``can_buy``:
        the operator sells credit packs on this platform, so ``/buy`` is offered."""
        key = {"discord": "help.discord", "console": "help.console"}.get(platform, "help")
        parts = [self.t(key, locale)]
        if can_buy:
            parts[0] += "\n" + self.t("help.buy", locale)
        parts.append(self.t("help.show.discord" if platform == "discord" else "help.show", locale))
        if not (preset.can_generate and preset.generate_model):
            parts.append(self.t("help.generate_unavailable", locale))
        if platform == "telegram":
            parts.append(self.t("help.privacy", locale))
        if is_admin and platform != "console":
            parts.append(
                self.t("help.admin.discord" if platform == "discord" else "help.admin", locale)
            )
        return "\n\n".join(parts)

    def welcome(
        self,
        locale: str | None,
        balance: int,
        preset: Preset,
        is_admin: bool,
        platform: str = "telegram",
        can_buy: bool = False,
    ) -> str:
        return self.t(
            "welcome",
            locale,
            balance=balance,
            help=self.help(locale, preset, is_admin, platform, can_buy),
        )
