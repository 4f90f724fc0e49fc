"""Admin credit commands shared by every frontend: top up, set, deduct, inspect,
list jobs, lift a vendor-402 pause. Every attempt is audited with its actor,
refused ones included; only ``ADMIN_USER_IDS`` may act."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.errors import InvalidRequest, NotAdmin, UnknownUser
from core.job_params import prompt_of
from core.ports import UserRef
from core.vendor_health import PAUSE_FLAG
from core.vendor_pool import VendorPool
from storage.errors import InsufficientFunds
from storage.interfaces import MAX_AMOUNT, SYSTEM_TOPUP, Account, JobRecord, Store, Transfer, Tx

log = logging.getLogger(__name__)

AccountOf = Callable[[Tx, UserRef], Awaitable[Account]]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    when: float
    kind: str
    amount: int  # signed, from the user's point of view
    note: str
    job_id: str | None = None

    @property
    def shows_image(self) -> bool:
        """A charge is a delivered image: ``/show`` can post it again."""
        return self.kind == "charge" and bool(self.job_id)

    @classmethod
    def of(cls, account_id: int, transfer: Transfer) -> HistoryEntry:
        # A note the ledger wrote itself ("welcome grant") is English for operators;
        # the kind already says it in the user's language.
        note = "" if transfer.actor == "system" else transfer.reason or ""
        return cls(
            transfer.created_at,
            transfer.kind,
            transfer.delta_for(account_id),
            note,
            transfer.job_id,
        )

    @classmethod
    def failed_job(cls, job: JobRecord) -> HistoryEntry:
        """A job that ended without an image: it moved no credits, so no transfer
        shows it, but the user should see it was not charged."""
        prompt = prompt_of(job.params)
        note = prompt if len(prompt) <= 40 else prompt[:39] + "…"
        return cls(job.updated_at, "failed", 0, note, job.id)


@dataclass(frozen=True, slots=True)
class AccountReport:
    user_key: str
    balance: int
    pending: int
    history: list[HistoryEntry]


@dataclass(frozen=True, slots=True)
class JobSummary:
    job_id: str
    user_key: str
    state: str
    kind: str
    cost: int | None
    estimate: int
    created_at: float
    error: str | None


def _positive(amount: int, *, zero_ok: bool = False) -> int:
    if (
        not isinstance(amount, int)
        or amount < 0
        or (amount == 0 and not zero_ok)
        or amount > MAX_AMOUNT
    ):
        raise InvalidRequest(
            f"bad amount {amount!r}", kind="amount", low=0 if zero_ok else 1, high=MAX_AMOUNT
        )
    return amount


class CreditAdmin:
    def __init__(
        self,
        store: Store,
        admin_ids: frozenset[str],
        account_of: AccountOf,
        pool: VendorPool | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.admin_ids = admin_ids
        self._account_of = account_of

    def is_admin(self, user: UserRef) -> bool:
        return user.key in self.admin_ids

    async def authorize(self, actor: UserRef, action: str, target: str | None = None) -> None:
        """Raise ``NotAdmin`` (audited) unless ``actor`` is an admin; for admin-only
        reads outside this class (``core.stats``). Allowed uses are audited too."""
        await self._authorize(actor, action, target)
        async with self.store.transaction() as tx:
            await self.store.audit.record(tx, actor.key, action, target, None, True)

    async def _authorize(self, actor: UserRef, action: str, target: str | None) -> None:
        # A refusal is audited in its own transaction: raising inside the action's
        # transaction would roll the audit row back with it.
        if self.is_admin(actor):
            return
        async with self.store.transaction() as tx:
            await self.store.audit.record(tx, actor.key, action, target, None, False)
        log.warning("refused admin action %s by %s", action, actor.key)
        raise NotAdmin()

    @staticmethod
    def _transfer_id(action: str, actor: UserRef, request_id: str | None) -> str:
        # A platform's own event id makes a re-delivered command a no-op.
        return f"{action}:{actor.platform}:{request_id or uuid.uuid4().hex}"

    async def topup(
        self,
        actor: UserRef,
        target: UserRef,
        amount: int,
        reason: str | None,
        request_id: str | None = None,
    ) -> int:
        return await self._move("topup", actor, target, _positive(amount), reason, request_id)

    async def deduct(
        self,
        actor: UserRef,
        target: UserRef,
        amount: int,
        reason: str | None,
        request_id: str | None = None,
    ) -> int:
        return await self._move("deduct", actor, target, _positive(amount), reason, request_id)

    async def _move(
        self,
        action: str,
        actor: UserRef,
        target: UserRef,
        amount: int,
        reason: str | None,
        request_id: str | None,
    ) -> int:
        await self._authorize(actor, action, target.key)
        async with self.store.transaction() as tx:
            await self.store.audit.record(
                tx, actor.key, action, target.key, f"{amount} {reason or ''}".strip(), True
            )
            account = await self._account_of(tx, target)
            pool = await self.store.ledger.system_account(tx, SYSTEM_TOPUP)
            debit, credit = (pool.id, account.id) if action == "topup" else (account.id, pool.id)
            try:
                await self.store.ledger.transfer(
                    tx,
                    self._transfer_id(action, actor, request_id),
                    debit,
                    credit,
                    amount,
                    action,
                    actor=actor.key,
                    reason=reason,
                    allow_overdraft=action == "topup",
                )
            except InsufficientFunds as exc:
                raise InvalidRequest(
                    "deduct above the balance",
                    kind="deduct_above_balance",
                    amount=amount,
                    balance=exc.available,
                ) from None
            return (await self.store.ledger.balance(tx, account.id)).available

    async def set(
        self,
        actor: UserRef,
        target: UserRef,
        amount: int,
        reason: str | None,
        request_id: str | None = None,
    ) -> int:
        await self._authorize(actor, "set", target.key)
        _positive(amount, zero_ok=True)
        async with self.store.transaction() as tx:
            await self.store.audit.record(
                tx, actor.key, "set", target.key, f"{amount} {reason or ''}".strip(), True
            )
            account = await self._account_of(tx, target)
            await self.store.ledger.set_balance(
                tx,
                self._transfer_id("set", actor, request_id),
                account.id,
                amount,
                actor=actor.key,
                reason=reason or "",
            )
            return (await self.store.ledger.balance(tx, account.id)).available

    async def show(self, actor: UserRef, target: UserRef) -> AccountReport:
        await self._authorize(actor, "show", target.key)
        async with self.store.transaction() as tx:
            await self.store.audit.record(tx, actor.key, "show", target.key, None, True)
            account = await self.store.ledger.find_account(tx, target.platform, target.user_id)
            if account is None:
                raise UnknownUser()
            rows = await self.store.ledger.history(tx, account.id, 10)
        return AccountReport(
            target.key,
            account.balance,
            account.pending,
            [HistoryEntry.of(account.id, t) for t in rows],
        )

    async def jobs(self, actor: UserRef, limit: int = 10) -> list[JobSummary]:
        await self._authorize(actor, "jobs", None)
        async with self.store.transaction() as tx:
            await self.store.audit.record(tx, actor.key, "jobs", None, None, True)
            summaries = []
            for job in await self.store.jobs.recent(tx, limit):
                account = await self.store.ledger.get_account(tx, job.account_id)
                summaries.append(
                    JobSummary(
                        job.id,
                        account.name,
                        job.state,
                        job.kind,
                        job.cost,
                        job.estimate,
                        job.created_at,
                        job.error,
                    )
                )
        return summaries

    async def resume(self, actor: UserRef, vendor: str | None = None) -> bool:
        """True if a pause was cleared. ``vendor``: that vendor only; without it the
        one vendor's pause, or with several every vendor's."""
        await self._authorize(actor, "resume", vendor)
        members = list(self.pool.members) if self.pool is not None else []
        if vendor is not None:
            member = self.pool.find(vendor) if self.pool is not None else None
            if member is None:
                raise InvalidRequest(
                    "unknown vendor",
                    kind="unknown_vendor",
                    vendor=vendor,
                    names=", ".join(m.name for m in members),
                )
            members = [member]
        async with self.store.transaction() as tx:
            await self.store.audit.record(tx, actor.key, "resume", vendor, None, True)
            if not members:
                return await self.store.flags.delete(tx, PAUSE_FLAG)
            cleared = False
            for member in members:
                cleared = await member.health.clear_in(tx) or cleared
            return cleared
