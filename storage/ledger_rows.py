"""What both ledger backends share: column lists, turning a row (an ``sqlite3.Row``
or an asyncpg ``Record``) into the values of ``storage.interfaces``, and the checks
every ledger operation makes before it writes anything."""

from __future__ import annotations

from typing import Any, Final

from storage.errors import AccountNotFound, IdempotencyConflict, InvalidAmount
from storage.interfaces import (
    MAX_AMOUNT,
    SYSTEM_ACCOUNTS,
    Account,
    Hold,
    Resolution,
    Transfer,
)

ACCOUNT_COLS: Final = (
    "id, kind, platform, external_id, username, balance, pending, created_at, updated_at"
)
TRANSFER_COLS: Final = (
    "seq, transfer_id, debit_account_id, credit_account_id, amount, kind, actor, reason, "
    "job_id, hold_id, created_at"
)
HOLD_COLS: Final = (
    "id, account_id, amount, status, job_id, expires_at, created_at, resolved_at, charged, "
    "transfer_id, reason"
)


def account_from_row(row: Any) -> Account:
    return Account(
        id=int(row["id"]),
        kind=row["kind"],
        platform=row["platform"],
        external_id=row["external_id"],
        username=row["username"],
        balance=int(row["balance"]),
        pending=int(row["pending"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


def transfer_from_row(row: Any) -> Transfer:
    return Transfer(
        seq=int(row["seq"]),
        transfer_id=row["transfer_id"],
        debit_account_id=int(row["debit_account_id"]),
        credit_account_id=int(row["credit_account_id"]),
        amount=int(row["amount"]),
        kind=row["kind"],
        actor=row["actor"],
        reason=row["reason"],
        job_id=row["job_id"],
        hold_id=row["hold_id"],
        created_at=float(row["created_at"]),
    )


def hold_from_row(row: Any) -> Hold:
    return Hold(
        id=row["id"],
        account_id=int(row["account_id"]),
        amount=int(row["amount"]),
        status=row["status"],
        job_id=row["job_id"],
        expires_at=None if row["expires_at"] is None else float(row["expires_at"]),
        created_at=float(row["created_at"]),
        resolved_at=None if row["resolved_at"] is None else float(row["resolved_at"]),
        charged=int(row["charged"]),
        transfer_id=row["transfer_id"],
        reason=row["reason"],
    )


def existing_resolution(hold: Hold) -> Resolution:
    assert hold.status != "pending" and hold.resolved_at is not None
    return Resolution(
        hold_id=hold.id,
        account_id=hold.account_id,
        status=hold.status,
        held=hold.amount,
        charged=hold.charged,
        released=hold.amount - hold.charged,
        transfer_id=hold.transfer_id,
        reason=hold.reason,
        resolved_at=hold.resolved_at,
        already=True,
    )


def check_int(name: str, value: object) -> int:
    # bool is an int subclass; True credits is always a bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAmount(f"{name} must be an int, got {type(value).__name__}")
    if abs(value) > MAX_AMOUNT:
        # Far above any real balance; what keeps sums inside 64-bit integers.
        raise InvalidAmount(f"{name} must be at most {MAX_AMOUNT:,}, got {value:,}")
    return value


def system_key(name: str) -> str:
    key = name if name.startswith("system:") else f"system:{name}"
    if key not in SYSTEM_ACCOUNTS:
        raise AccountNotFound(f"unknown system account {name!r}; known: {SYSTEM_ACCOUNTS}")
    return key


def normalize_username(username: str | None) -> str | None:
    if username is None:
        return None
    u = username.strip().lstrip("@").strip()
    return u or None


def replayed_transfer(existing: Transfer, p: dict[str, Any]) -> Transfer:
    same = (
        existing.debit_account_id == p["debit"]
        and existing.credit_account_id == p["credit"]
        and existing.amount == p["amount"]
        and existing.kind == p["kind"]
        and existing.job_id == p["job_id"]
    )
    if not same:
        raise IdempotencyConflict(
            f"transfer id {existing.transfer_id!r} already used for a different transfer "
            f"({existing.kind} {existing.amount} from #{existing.debit_account_id} "
            f"to #{existing.credit_account_id})"
        )
    return existing
