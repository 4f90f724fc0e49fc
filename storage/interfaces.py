"""Backend-neutral storage interface: value types, repository Protocols, constants.

This module owns the contract between ``core`` and whatever database backs it.  It
contains no SQL and imports no driver: the SQLite implementation lives in
``storage/sqlite/`` and a later PostgreSQL one will implement the same Protocols.

Usage pattern (every repository method takes the transaction first so several
operations can be combined atomically)::

    async with store.transaction() as tx:
        hold = await store.ledger.reserve(tx, hold_id, account.id, estimate, job_id=job.id)
        await store.jobs.transition(tx, job.id, ("NEW",), "RESERVED", hold_id=hold.id)

Credits are always ``int``.  Timestamps are ``float`` unix seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from storage.errors import (
    AccountNotFound,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    StorageError,
)

# --------------------------------------------------------------------------- constants

SYSTEM_TOPUP = "system:topup"
"""Source of admin top-ups and sink of admin deductions / corrections (may go negative)."""
SYSTEM_REVENUE = "system:revenue"
"""Receives the charges posted from holds."""
SYSTEM_VENDOR_LOSS = "system:vendor_loss"
"""Books vendor costs the operator absorbed (may go negative)."""
SYSTEM_WELCOME = "system:welcome"
"""Source of welcome grants (goes negative as grants are handed out)."""
SYSTEM_SALES = "system:sales"
"""Source of the credits users buy and sink of their refunds (goes negative as
packs are sold: it mirrors the money taken in)."""
SYSTEM_ACCOUNTS: tuple[str, ...] = (
    SYSTEM_TOPUP,
    SYSTEM_REVENUE,
    SYSTEM_VENDOR_LOSS,
    SYSTEM_WELCOME,
    SYSTEM_SALES,
)

AccountKind = Literal["user", "system"]
PaymentStatus = Literal["credited", "refunding", "refunded"]
HoldStatus = Literal["pending", "posted", "voided", "expired"]
ResolutionStatus = Literal["posted", "voided", "expired"]


class JobState(StrEnum):
    """Job lifecycle states.  Values are plain strings; methods accept either."""

    NEW = "NEW"
    RESERVED = "RESERVED"
    SUBMITTING = "SUBMITTING"
    POLLING = "POLLING"
    DELIVERING = "DELIVERING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


JOB_STATES: tuple[str, ...] = tuple(s.value for s in JobState)
TERMINAL_STATES: tuple[str, ...] = (JobState.SUCCEEDED.value, JobState.FAILED.value)
ACTIVE_STATES: tuple[str, ...] = tuple(s for s in JOB_STATES if s not in TERMINAL_STATES)
JOB_KINDS: tuple[str, ...] = ("generate", "edit")
CLAIMED_STATES: tuple[str, ...] = (
    JobState.RESERVED.value,
    JobState.SUBMITTING.value,
    JobState.POLLING.value,
)
"""States in which a claimed job occupies a vendor slot (see ``JobRepo.claim``)."""
VENDOR_LIMIT = "vendor"
"""Name of the shared concurrency limit on vendor calls (``LimitRepo``)."""
MAX_AMOUNT = 10**12
"""The largest credit amount any single movement may carry: far above any real
balance, far below 2**63, so sums of amounts can never leave integer range."""
JOB_MUTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "vendor_ref",
        "attempts",
        "result",
        "cost",
        "error",
        "hold_id",
        "notified",
        "estimate",
        "chat",
        "vendor",
    }
)
"""Fields ``JobRepo.transition``/``update`` may set (besides ``state``/``updated_at``)."""


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    kind: AccountKind
    platform: str
    """'telegram', 'discord', ... for users; 'system' for system accounts."""
    external_id: str
    """Platform user id for users; the short name ('topup', ...) for system accounts."""
    username: str | None
    balance: int
    """Posted balance."""
    pending: int
    """Sum of the account's open holds."""
    created_at: float
    updated_at: float

    @property
    def available(self) -> int:
        return self.balance - self.pending

    @property
    def name(self) -> str:
        """'system:topup' for system accounts, 'telegram:123' for users."""
        return f"{self.platform}:{self.external_id}"

    @property
    def is_system(self) -> bool:
        return self.kind == "system"


@dataclass(frozen=True, slots=True)
class Balance:
    posted: int
    pending: int
    available: int


@dataclass(frozen=True, slots=True)
class Transfer:
    """One append-only ledger row: ``amount`` moves from debit to credit account."""

    seq: int
    """Monotonic insertion order (newest = largest)."""
    transfer_id: str
    """Caller-supplied idempotency id (unique)."""
    debit_account_id: int
    credit_account_id: int
    amount: int
    kind: str
    """'topup', 'deduct', 'grant', 'charge', 'correction', 'refund', 'vendor_loss', ..."""
    actor: str | None
    reason: str | None
    job_id: str | None
    hold_id: str | None
    created_at: float

    def delta_for(self, account_id: int) -> int:
        """Signed effect of this transfer on ``account_id``'s balance."""
        if account_id == self.credit_account_id:
            return self.amount
        if account_id == self.debit_account_id:
            return -self.amount
        return 0


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    account_id: int
    amount: int
    """Amount held (reserved) at creation."""
    status: HoldStatus
    job_id: str | None
    expires_at: float | None
    created_at: float
    resolved_at: float | None
    charged: int
    """Amount posted to revenue (0 unless status == 'posted')."""
    transfer_id: str | None
    """Charge transfer id when posted with a non-zero amount."""
    reason: str | None


@dataclass(frozen=True, slots=True)
class Resolution:
    """Outcome of post/void/expire.  ``already`` = this call changed nothing and
    the values describe the hold's FIRST (and only) resolution."""

    hold_id: str
    account_id: int
    status: ResolutionStatus
    held: int
    charged: int
    released: int
    transfer_id: str | None
    reason: str | None
    resolved_at: float
    already: bool


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    account_id: int
    platform: str
    chat: str
    """Opaque JSON the frontend uses to reply (chat id, message id...)."""
    kind: str
    """'generate' | 'edit'"""
    params: str
    """JSON text."""
    estimate: int
    state: str = JobState.NEW.value
    hold_id: str | None = None
    vendor_ref: str | None = None
    attempts: int = 0
    result: str | None = None
    cost: int | None = None
    error: str | None = None
    notified: bool = False
    created_at: float = 0.0
    """0.0 on insert = 'now'."""
    updated_at: float = 0.0
    queue: str = ""
    """Which workers may run the job ('' on insert = ``platform``): a worker serves
    the queues of the platforms it can deliver to."""
    claimed_by: str | None = None
    """The worker holding the job's lease, if any."""
    lease_until: float | None = None
    """Unix time the lease runs out unless renewed; an expired lease is recovered."""
    vendor: str | None = None
    """The configured vendor (``VENDORS`` name) the request went to; None: the one
    vendor of ``VENDOR=``."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class Limit:
    """A concurrency limit shared by every process on the database."""

    name: str
    value: int
    """How many claims may hold a slot at once now (1 <= value <= ceiling)."""
    ceiling: int
    not_before: float
    """No new claim before this unix time (a vendor's Retry-After)."""
    cut_at: float
    """When ``value`` was last halved."""


@dataclass(frozen=True, slots=True)
class Payment:
    """A purchase a user made on their platform; ``(platform, charge_id)`` is unique."""

    platform: str
    charge_id: str
    """Telegram's ``telegram_payment_charge_id`` or a Discord entitlement id."""
    account_id: int
    credits: int
    amount: int
    """What the user paid, in ``currency`` units (Stars; 0 when the platform does not say)."""
    currency: str
    pack: str
    transfer_id: str
    """The ledger transfer (kind ``purchase``) that credited it."""
    status: PaymentStatus = "credited"
    consumed_at: float | None = None
    """Discord: when the entitlement was consumed (None = still to do)."""
    created_at: float = 0.0
    updated_at: float = 0.0
    notified_at: float | None = None
    """When the buyer was told their new balance (None = not yet)."""
    platform_refunded_at: float | None = None
    """When the bot acted on the platform's own refund of it (Discord deleted the
    entitlement); None = the platform has not refunded it. With status ``credited``
    the credits had been spent and stayed with the user."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    detail: str | None
    allowed: bool


@dataclass(frozen=True, slots=True)
class DayJobs:
    """Jobs created on one UTC day (``day``: days since 1970-01-01), by outcome."""

    day: int
    succeeded: int
    failed: int
    active: int
    """Not ended yet (queued or running)."""

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.active


@dataclass(frozen=True, slots=True)
class DayMoney:
    """Credit movements of one UTC day that the operator watches."""

    day: int
    charged: int
    """Sum of ``charge`` transfers: what users paid for delivered images."""
    loss: int
    """Sum of ``vendor_loss`` transfers: vendor bills the operator absorbed."""
    jobs_charged: int
    purchases: int
    """How many ``purchase`` transfers (credits bought)."""
    purchased: int
    """Their sum."""


@dataclass(frozen=True, slots=True)
class JobTimes:
    """Nearest-rank percentiles of the time from queueing to the end of succeeded
    jobs, for one vendor and size tier, read off a log-spaced histogram: each is its
    bucket's geometric middle, within ~5 % of the exact time."""

    vendor: str
    """The job's ``vendor`` column; '' when NULL (the one configured vendor)."""
    tier: str
    count: int
    p50: float
    p95: float


@dataclass(frozen=True, slots=True)
class TopUser:
    account_id: int
    name: str
    """``platform:@username`` when known, else ``platform:external_id``."""
    jobs: int
    """Charged jobs."""
    charged: int


@dataclass(frozen=True, slots=True)
class FailureCount:
    error: str
    count: int


@dataclass(frozen=True, slots=True)
class QueueNow:
    queue: str
    queued: int
    """Waiting for a worker (RESERVED, unclaimed)."""
    running: int
    """Claimed by a worker and not ended."""
    oldest_queued_at: float | None


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class Tx(Protocol):
    """An open unit of work.  Opaque to callers: only pass it to repository methods.

    Obtained from ``Store.transaction()`` (writable, serialised against every other
    writer, including other processes) or ``Store.read()`` (consistent snapshot,
    read-only).  Invalid once its ``async with`` block exits.
    """

    @property
    def writable(self) -> bool: ...

    @property
    def active(self) -> bool: ...


class LedgerRepo(Protocol):
    # accounts
    async def get_or_create_account(
        self,
        tx: Tx,
        platform: str,
        external_id: str,
        *,
        username: str | None = None,
        welcome_grant: int = 0,
    ) -> Account: ...
    async def find_account(self, tx: Tx, platform: str, external_id: str) -> Account | None: ...
    async def find_by_username(self, tx: Tx, platform: str, username: str) -> Account | None: ...
    async def system_account(self, tx: Tx, name: str) -> Account: ...
    async def get_account(self, tx: Tx, account_id: int) -> Account: ...
    async def balance(self, tx: Tx, account_id: int) -> Balance: ...

    # posted transfers
    async def transfer(
        self,
        tx: Tx,
        transfer_id: str,
        debit_account_id: int,
        credit_account_id: int,
        amount: int,
        kind: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        job_id: str | None = None,
        allow_overdraft: bool = False,
    ) -> Transfer: ...
    async def get_transfer(self, tx: Tx, transfer_id: str) -> Transfer | None: ...
    async def set_balance(
        self, tx: Tx, transfer_id: str, account_id: int, target: int, *, actor: str, reason: str
    ) -> Transfer | None: ...

    # two-phase holds
    async def reserve(
        self,
        tx: Tx,
        hold_id: str,
        account_id: int,
        amount: int,
        *,
        job_id: str | None = None,
        expires_at: float | None = None,
    ) -> Hold: ...
    async def post(
        self, tx: Tx, hold_id: str, amount: int, *, transfer_id: str | None = None
    ) -> Resolution: ...
    async def void(self, tx: Tx, hold_id: str, reason: str) -> Resolution: ...
    async def expire(self, tx: Tx, hold_id: str) -> Resolution: ...
    async def get_hold(self, tx: Tx, hold_id: str) -> Hold | None: ...
    async def open_holds(self, tx: Tx) -> list[Hold]: ...
    async def expired_holds(self, tx: Tx, now: float) -> list[Hold]: ...
    async def holds_for_job(self, tx: Tx, job_id: str) -> list[Hold]: ...

    # reporting
    async def history(self, tx: Tx, account_id: int, limit: int = 20) -> list[Transfer]: ...
    async def check_invariants(self, tx: Tx) -> list[str]: ...
    async def totals(self, tx: Tx) -> dict[str, int]: ...


class JobRepo(Protocol):
    async def insert(self, tx: Tx, job: JobRecord) -> JobRecord: ...
    async def get(self, tx: Tx, job_id: str) -> JobRecord | None: ...
    async def transition(
        self,
        tx: Tx,
        job_id: str,
        from_states: Sequence[str],
        to_state: str,
        *,
        owner: str | None = None,
        **fields: object,
    ) -> bool:
        """Compare-and-swap on the state; with ``owner`` also on the claim, so a
        worker whose job was taken over changes nothing. A move to a terminal state
        drops the claim."""
        ...

    async def update(self, tx: Tx, job_id: str, **fields: object) -> bool: ...
    async def in_states(
        self, tx: Tx, states: Sequence[str], *, older_than: float | None = None, limit: int = 100
    ) -> list[JobRecord]: ...
    async def recent(self, tx: Tx, limit: int = 20) -> list[JobRecord]: ...
    async def for_account(self, tx: Tx, account_id: int, limit: int = 20) -> list[JobRecord]: ...
    async def with_prefix(
        self, tx: Tx, prefix: str, *, account_id: int | None = None, limit: int = 2
    ) -> list[JobRecord]:
        """Jobs whose id starts with ``prefix`` (the short id users see), only
        ``account_id``'s when given; ``limit`` of them, enough to tell a unique one."""
        ...

    async def count_active(self, tx: Tx, account_id: int) -> int: ...
    async def count_since(self, tx: Tx, account_id: int, since: float) -> int: ...
    async def mark_notified(self, tx: Tx, job_id: str) -> bool: ...
    async def unnotified_terminal(self, tx: Tx, limit: int = 100) -> list[JobRecord]: ...

    # --- the queue: claims with leases -----------------------------------------
    async def claim(
        self,
        tx: Tx,
        queues: Sequence[str],
        worker_id: str,
        *,
        lease_until: float,
        limit: str | None = VENDOR_LIMIT,
    ) -> JobRecord | None:
        """Claim one queued job (RESERVED, unclaimed) from ``queues`` for
        ``worker_id`` until ``lease_until``. Fair order: the account with the fewest
        claimed jobs first, then the oldest job. With ``limit``, only while fewer
        live claims than the limit's value hold a slot (``CLAIMED_STATES``, lease
        not expired) and its ``not_before`` has passed; claimers serialise on the
        limit so every process together stays under it. None when nothing can be
        claimed."""
        ...

    async def claim_many(
        self,
        tx: Tx,
        queues: Sequence[str],
        worker_id: str,
        *,
        lease_until: float,
        limit: str | None = VENDOR_LIMIT,
        count: int = 1,
    ) -> list[JobRecord]:
        """Like ``claim``, up to ``count`` jobs in one transaction (never past the
        limit's room), oldest first: a burst is claimed in a few commits, not one
        commit per job."""
        ...

    async def renew(
        self, tx: Tx, worker_id: str, job_ids: Sequence[str], lease_until: float
    ) -> list[str]:
        """Extend the leases ``worker_id`` still holds; returns those ids."""
        ...

    async def release(self, tx: Tx, job_id: str, worker_id: str) -> bool:
        """Give a claimed job that never reached the vendor back to the queue."""
        ...

    async def expired_claims(self, tx: Tx, now: float, limit: int = 100) -> list[JobRecord]:
        """Non-terminal claimed jobs whose lease ran out before ``now``."""
        ...

    async def take_over(
        self, tx: Tx, job_id: str, worker_id: str, *, now: float, lease_until: float
    ) -> JobRecord | None:
        """Claim ``job_id`` for ``worker_id`` only if it is unclaimed or its lease
        expired before ``now`` (compare-and-swap); None if someone holds it."""
        ...

    async def queued(
        self, tx: Tx, queues: Sequence[str] | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Unclaimed RESERVED jobs in claim order (for queue positions)."""
        ...

    async def in_flight(self, tx: Tx, now: float) -> int:
        """Live claims holding a vendor slot (see ``claim``)."""
        ...


class LimitRepo(Protocol):
    """Shared, adaptive concurrency limits (additive increase, multiplicative
    decrease), one row per name, read and changed by every process."""

    async def ensure(self, tx: Tx, name: str, *, initial: int, ceiling: int) -> Limit:
        """Create the limit at ``initial`` if missing; a changed ceiling applies (the
        value is clamped to it)."""
        ...

    async def get(self, tx: Tx, name: str) -> Limit | None: ...
    async def grow(self, tx: Tx, name: str, step: int = 1) -> Limit | None:
        """One more slot, up to the ceiling (after a call that succeeded)."""
        ...

    async def cut(
        self, tx: Tx, name: str, *, now: float, not_before: float = 0.0, window: float = 1.0
    ) -> Limit | None:
        """Halve the value (never below 1) unless it was cut less than ``window``
        seconds ago (one burst of failures is one signal); ``not_before`` (a
        Retry-After) only ever moves later."""
        ...


class AuditRepo(Protocol):
    async def record(
        self,
        tx: Tx,
        actor: str,
        action: str,
        target: str | None,
        detail: str | None,
        allowed: bool,
    ) -> None: ...
    async def recent(self, tx: Tx, limit: int = 20) -> list[AuditEntry]: ...


class FlagRepo(Protocol):
    async def get(self, tx: Tx, key: str) -> str | None: ...
    async def set(self, tx: Tx, key: str, value: str) -> None: ...
    async def delete(self, tx: Tx, key: str) -> bool: ...
    async def purge(self, tx: Tx, prefix: str, before: float) -> int:
        """Delete the flags under ``prefix`` last set before ``before``; how many."""
        ...


class PaymentRepo(Protocol):
    """Purchases, keyed by the platform's charge id (see ``Payment``)."""

    async def add(self, tx: Tx, payment: Payment) -> tuple[Payment, bool]:
        """Insert unless ``(platform, charge_id)`` exists; the stored row and whether
        this call inserted it. Concurrent callers serialise: exactly one gets True."""
        ...

    async def get(self, tx: Tx, platform: str, charge_id: str) -> Payment | None: ...
    async def set_status(
        self, tx: Tx, platform: str, charge_id: str, from_status: str, to_status: str
    ) -> bool:
        """Compare-and-swap on the status."""
        ...

    async def mark_consumed(self, tx: Tx, platform: str, charge_id: str) -> bool: ...
    async def unconsumed(self, tx: Tx, platform: str, limit: int = 100) -> list[Payment]: ...
    async def recent(self, tx: Tx, limit: int = 20) -> list[Payment]: ...
    async def claim_notice(self, tx: Tx, platform: str, charge_id: str) -> bool:
        """Set ``notified_at`` unless it is set: True for exactly one caller, who
        then tells the buyer."""
        ...

    async def unnotified(self, tx: Tx, platform: str, limit: int = 100) -> list[Payment]:
        """Credited payments whose buyer was never told, oldest first."""
        ...

    async def mark_platform_refunded(self, tx: Tx, platform: str, charge_id: str) -> bool:
        """Set ``platform_refunded_at`` unless it is set: True for exactly one caller,
        who acts on the platform's refund."""
        ...


class ReportRepo(Protocol):
    """Read-only figures for the operator's dashboard. Windows are ``[since, until)``
    unix seconds, read as the whole UTC days they touch. The windowed figures come
    from daily rollups kept in the writing transaction (the ``0006_rollups``
    migrations), so a page stays fast on millions of jobs."""

    async def jobs_per_day(self, tx: Tx, since: float, until: float) -> list[DayJobs]:
        """Jobs by the day they were created, oldest day first; days without jobs
        are left out."""
        ...

    async def money_per_day(self, tx: Tx, since: float, until: float) -> list[DayMoney]: ...
    async def job_times(self, tx: Tx, since: float, until: float) -> list[JobTimes]:
        """Succeeded jobs that ended in the window; percentiles to within a
        histogram bucket (~5 %)."""
        ...

    async def top_users(self, tx: Tx, since: float, until: float, limit: int = 10) -> list[TopUser]:
        """Users by credits charged in the window, most first."""
        ...

    async def failures(self, tx: Tx, since: float, until: float) -> list[FailureCount]:
        """Failed jobs that ended in the window, by error code, most first."""
        ...

    async def queue_now(self, tx: Tx) -> list[QueueNow]:
        """Jobs not ended, by queue."""
        ...


class Store(Protocol):
    ledger: LedgerRepo
    jobs: JobRepo
    audit: AuditRepo
    flags: FlagRepo
    limits: LimitRepo
    payments: PaymentRepo
    reports: ReportRepo

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Writable unit of work: BEGIN IMMEDIATE ... COMMIT, ROLLBACK on exception."""
        ...

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """Read-only consistent snapshot (no write lock taken)."""
        ...

    async def notify_jobs(self) -> None:
        """Wake the workers waiting in ``wait_jobs`` (after a queued job or a freed
        slot was committed): in this process at once, in others as the backend can
        (PostgreSQL: NOTIFY; SQLite: they poll)."""
        ...

    async def wait_jobs(self, timeout: float) -> None:  # noqa: ASYNC109 (a bounded wait is the point)
        """Return when ``notify_jobs`` was called (here or, where the backend can
        tell, elsewhere), or after ``timeout`` seconds."""
        ...

    async def close(self) -> None: ...


__all__ = [
    "ACTIVE_STATES",
    "CLAIMED_STATES",
    "JOB_KINDS",
    "JOB_MUTABLE_FIELDS",
    "JOB_STATES",
    "MAX_AMOUNT",
    "SYSTEM_ACCOUNTS",
    "SYSTEM_REVENUE",
    "SYSTEM_SALES",
    "SYSTEM_TOPUP",
    "SYSTEM_VENDOR_LOSS",
    "SYSTEM_WELCOME",
    "TERMINAL_STATES",
    "VENDOR_LIMIT",
    "Account",
    "AccountKind",
    "AccountNotFound",
    "AuditEntry",
    "AuditRepo",
    "Balance",
    "DayJobs",
    "DayMoney",
    "FailureCount",
    "FlagRepo",
    "Hold",
    "HoldNotFound",
    "HoldStatus",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidAmount",
    "JobRecord",
    "JobRepo",
    "JobState",
    "JobTimes",
    "LedgerRepo",
    "Limit",
    "LimitRepo",
    "Payment",
    "PaymentRepo",
    "PaymentStatus",
    "QueueNow",
    "ReportRepo",
    "Resolution",
    "ResolutionStatus",
    "StorageError",
    "Store",
    "TopUser",
    "Transfer",
    "Tx",
]
