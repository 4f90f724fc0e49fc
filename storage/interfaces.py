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
    AlreadyResolved,
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
SYSTEM_ACCOUNTS: tuple[str, ...] = (
    SYSTEM_TOPUP,
    SYSTEM_REVENUE,
    SYSTEM_VENDOR_LOSS,
    SYSTEM_WELCOME,
)

AccountKind = Literal["user", "system"]
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
JOB_MUTABLE_FIELDS: frozenset[str] = frozenset(
    {"vendor_ref", "attempts", "result", "cost", "error", "hold_id", "notified", "estimate"}
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

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    detail: str | None
    allowed: bool


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
        self, tx: Tx, job_id: str, from_states: Sequence[str], to_state: str, **fields: object
    ) -> bool: ...
    async def update(self, tx: Tx, job_id: str, **fields: object) -> bool: ...
    async def in_states(
        self, tx: Tx, states: Sequence[str], *, older_than: float | None = None, limit: int = 100
    ) -> list[JobRecord]: ...
    async def recent(self, tx: Tx, limit: int = 20) -> list[JobRecord]: ...
    async def for_account(self, tx: Tx, account_id: int, limit: int = 20) -> list[JobRecord]: ...
    async def count_active(self, tx: Tx, account_id: int) -> int: ...
    async def count_since(self, tx: Tx, account_id: int, since: float) -> int: ...
    async def mark_notified(self, tx: Tx, job_id: str) -> bool: ...
    async def unnotified_terminal(self, tx: Tx, limit: int = 100) -> list[JobRecord]: ...
    async def claim_next(
        self, tx: Tx, states: Sequence[str], worker_id: str, *, stale_before: float | None = None
    ) -> JobRecord | None: ...


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


class Store(Protocol):
    ledger: LedgerRepo
    jobs: JobRepo
    audit: AuditRepo
    flags: FlagRepo

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Writable unit of work: BEGIN IMMEDIATE ... COMMIT, ROLLBACK on exception."""
        ...

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """Read-only consistent snapshot (no write lock taken)."""
        ...

    async def close(self) -> None: ...


__all__ = [
    "ACTIVE_STATES",
    "JOB_KINDS",
    "JOB_MUTABLE_FIELDS",
    "JOB_STATES",
    "SYSTEM_ACCOUNTS",
    "SYSTEM_REVENUE",
    "SYSTEM_TOPUP",
    "SYSTEM_VENDOR_LOSS",
    "SYSTEM_WELCOME",
    "TERMINAL_STATES",
    "Account",
    "AccountKind",
    "AccountNotFound",
    "AlreadyResolved",
    "AuditEntry",
    "AuditRepo",
    "Balance",
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
    "LedgerRepo",
    "Resolution",
    "ResolutionStatus",
    "StorageError",
    "Store",
    "Transfer",
    "Tx",
]
