"""The ledger's SQL, row mapping and write operations.

Each write operation is one synchronous function that runs on the connection's
thread in a single hop (``SqliteTx.call``). Statement texts are module constants
so ``bench/ledger.py`` replays exactly the same SQL through raw ``sqlite3``.
The guarantees these statements give are described in ``storage.sqlite.ledger``.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from storage.errors import (
    AccountNotFound,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    StorageError,
)
from storage.interfaces import (
    MAX_AMOUNT,
    SYSTEM_ACCOUNTS,
    Account,
    Hold,
    Resolution,
    Transfer,
)

# --------------------------------------------------------------------------- SQL

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

SQL_ACCOUNT_BY_ID: Final = f"SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?"
SQL_ACCOUNT_BY_EXT: Final = (
    f"SELECT {ACCOUNT_COLS}, "
    "EXISTS (SELECT 1 FROM transfers WHERE transfer_id = :welcome_id) AS welcomed "
    "FROM accounts WHERE platform = :platform AND external_id = :external_id"
)
SQL_INSERT_USER: Final = (
    "INSERT INTO accounts (kind, platform, external_id, username, created_at, updated_at) "
    "VALUES ('user', :platform, :external_id, :username, :now, :now) "
    f"RETURNING {ACCOUNT_COLS}"
)

# Reserve: the availability check and the pending increment are one statement, so
# no interleaving (other coroutine, other process) can overspend.  NOT EXISTS makes
# a replayed hold id a no-op here; the caller then inspects the existing hold.
SQL_RESERVE: Final = (
    "UPDATE accounts SET pending = pending + :amount, updated_at = :now "
    "WHERE id = :account_id AND kind = 'user' AND balance - pending >= :amount "
    "AND NOT EXISTS (SELECT 1 FROM holds WHERE id = :hold_id) "
    "RETURNING id"
)
SQL_INSERT_HOLD: Final = (
    "INSERT INTO holds (id, account_id, amount, status, job_id, expires_at, created_at) "
    "VALUES (:hold_id, :account_id, :amount, 'pending', :job_id, :expires_at, :now)"
)

# Post: compare-and-swap on status; all preconditions are in the WHERE so that a
# failed post has written nothing.
SQL_POST_CAS: Final = (
    "UPDATE holds SET status = 'posted', resolved_at = :now, charged = :amount, "
    "transfer_id = CASE WHEN :amount > 0 THEN :transfer_id END "
    "WHERE id = :hold_id AND status = 'pending' AND amount >= :amount "
    "AND (:amount = 0 OR NOT EXISTS (SELECT 1 FROM transfers WHERE transfer_id = :transfer_id)) "
    "RETURNING account_id, amount, job_id"
)
# One statement moves the charge user -> revenue and releases the whole hold.
SQL_POST_ACCOUNTS: Final = (
    "UPDATE accounts SET "
    "balance = balance + CASE WHEN id = :revenue THEN :amount ELSE -:amount END, "
    "pending = pending - CASE WHEN id = :revenue THEN 0 ELSE :held END, "
    "updated_at = :now "
    "WHERE id IN (:account_id, :revenue)"
)
SQL_RELEASE_CAS: Final = (
    "UPDATE holds SET status = :status, resolved_at = :now, reason = :reason "
    "WHERE id = :hold_id AND status = 'pending' "
    "RETURNING account_id, amount"
)
SQL_RELEASE_ACCOUNT: Final = (
    "UPDATE accounts SET pending = pending - :held, updated_at = :now WHERE id = :account_id"
)
SQL_INSERT_TRANSFER: Final = (
    "INSERT INTO transfers (transfer_id, debit_account_id, credit_account_id, amount, kind, "
    "actor, reason, job_id, hold_id, created_at) "
    "VALUES (:transfer_id, :debit, :credit, :amount, :kind, :actor, :reason, :job_id, "
    ":hold_id, :now) RETURNING seq"
)
# Transfer legs.  The debit is guarded (user accounts never go below available);
# the credit can only fail if the account does not exist.  Two statements rather
# than one multi-row UPDATE because the guard reads the table being updated.
SQL_DEBIT: Final = (
    "UPDATE accounts SET balance = balance - :amount, updated_at = :now "
    "WHERE id = :debit "
    "AND (kind = 'system' OR balance - pending >= :amount) "
    "AND NOT EXISTS (SELECT 1 FROM transfers WHERE transfer_id = :transfer_id) "
    "RETURNING id"
)
SQL_CREDIT: Final = (
    "UPDATE accounts SET balance = balance + :amount, updated_at = :now "
    "WHERE id = :credit RETURNING id"
)

SQL_HOLD_BY_ID: Final = f"SELECT {HOLD_COLS} FROM holds WHERE id = ?"
SQL_HOLD_DIAG: Final = (
    f"SELECT {HOLD_COLS}, "
    "EXISTS (SELECT 1 FROM transfers WHERE transfer_id = :transfer_id) AS tid_used "
    "FROM holds WHERE id = :hold_id"
)
SQL_TRANSFER_BY_ID: Final = f"SELECT {TRANSFER_COLS} FROM transfers WHERE transfer_id = ?"


# --------------------------------------------------------------------------- row mapping


def _account(row: sqlite3.Row) -> Account:
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


def _transfer(row: sqlite3.Row) -> Transfer:
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


def _hold(row: sqlite3.Row) -> Hold:
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


def _existing_resolution(hold: Hold) -> Resolution:
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


def _check_int(name: str, value: object) -> int:
    # bool is an int subclass; True credits is always a bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAmount(f"{name} must be an int, got {type(value).__name__}")
    if abs(value) > MAX_AMOUNT:
        # Far above any real balance; what keeps sums inside SQLite's 64-bit integers.
        raise InvalidAmount(f"{name} must be at most {MAX_AMOUNT:,}, got {value:,}")
    return value


def _system_key(name: str) -> str:
    key = name if name.startswith("system:") else f"system:{name}"
    if key not in SYSTEM_ACCOUNTS:
        raise AccountNotFound(f"unknown system account {name!r}; known: {SYSTEM_ACCOUNTS}")
    return key


def normalize_username(username: str | None) -> str | None:
    if username is None:
        return None
    u = username.strip().lstrip("@").strip()
    return u or None


# --------------------------------------------------------------------------- operations
# Each ledger write is one synchronous function run on the connection thread in a
# single hop (see SqliteTx.call).  All domain checks that can fail come before the
# first write, so a raised domain error leaves the transaction untouched.


def _replayed(existing: Transfer, p: dict[str, Any]) -> Transfer:
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


def _transfer_op(con: sqlite3.Connection, p: dict[str, Any]) -> Transfer:
    # The credit leg can only fail if the account is missing: check first so we
    # never debit and then fail.
    if con.execute("SELECT 1 FROM accounts WHERE id = ?", (p["credit"],)).fetchone() is None:
        existing = con.execute(SQL_TRANSFER_BY_ID, (p["transfer_id"],)).fetchone()
        if existing is not None:
            return _replayed(_transfer(existing), p)
        raise AccountNotFound(f"no account with id {p['credit']}")
    if con.execute(SQL_DEBIT, p).fetchone() is None:
        existing = con.execute(SQL_TRANSFER_BY_ID, (p["transfer_id"],)).fetchone()
        if existing is not None:
            return _replayed(_transfer(existing), p)
        acct = con.execute(SQL_ACCOUNT_BY_ID, (p["debit"],)).fetchone()
        if acct is None:
            raise AccountNotFound(f"no account with id {p['debit']}")
        raise InsufficientFunds(available=_account(acct).available, needed=p["amount"])
    con.execute(SQL_CREDIT, p).fetchall()
    seq = con.execute(SQL_INSERT_TRANSFER, p).fetchone()[0]
    return Transfer(
        seq=int(seq),
        transfer_id=p["transfer_id"],
        debit_account_id=p["debit"],
        credit_account_id=p["credit"],
        amount=p["amount"],
        kind=p["kind"],
        actor=p["actor"],
        reason=p["reason"],
        job_id=p["job_id"],
        hold_id=None,
        created_at=p["now"],
    )


def _claim_username(
    con: sqlite3.Connection, account_id: int, platform: str, name: str, now: float
) -> None:
    # Usernames move between users on the platform; the latest holder wins so
    # @username lookups never hit a stale account.
    con.execute(
        "UPDATE accounts SET username = NULL, updated_at = ? "
        "WHERE platform = ? AND username = ? AND id <> ?",
        (now, platform, name, account_id),
    )


def _get_or_create_op(
    con: sqlite3.Connection,
    platform: str,
    external_id: str,
    name: str | None,
    welcome_id: str,
    grant: dict[str, Any] | None,
    now: float,
) -> Account:
    row = con.execute(
        SQL_ACCOUNT_BY_EXT,
        {"welcome_id": welcome_id, "platform": platform, "external_id": external_id},
    ).fetchone()
    changed = False
    if row is None:
        welcomed = False
        account = _account(
            con.execute(
                SQL_INSERT_USER,
                {"platform": platform, "external_id": external_id, "username": name, "now": now},
            ).fetchone()
        )
        if name is not None:
            _claim_username(con, account.id, platform, name, now)
    else:
        welcomed = bool(row["welcomed"])
        account = _account(row)
        if name is not None and name != account.username:
            _claim_username(con, account.id, platform, name, now)
            con.execute(
                "UPDATE accounts SET username = ?, updated_at = ? WHERE id = ?",
                (name, now, account.id),
            )
            changed = True
    if grant is not None and not welcomed:
        # Idempotent by id: a user gets exactly one welcome grant ever, even if the
        # configured amount changes later.
        _transfer_op(con, {**grant, "credit": account.id, "now": now})
        changed = True
    if changed:
        account = _account(con.execute(SQL_ACCOUNT_BY_ID, (account.id,)).fetchone())
    return account


def _reserve_op(con: sqlite3.Connection, p: dict[str, Any]) -> Hold:
    if con.execute(SQL_RESERVE, p).fetchone() is None:
        row = con.execute(SQL_HOLD_BY_ID, (p["hold_id"],)).fetchone()
        if row is not None:
            hold = _hold(row)
            if (hold.account_id, hold.amount, hold.job_id) != (
                p["account_id"],
                p["amount"],
                p["job_id"],
            ):
                raise IdempotencyConflict(
                    f"hold id {hold.id!r} already used for {hold.amount} credits on "
                    f"account #{hold.account_id} (job {hold.job_id})"
                )
            return hold
        acct = con.execute(SQL_ACCOUNT_BY_ID, (p["account_id"],)).fetchone()
        if acct is None:
            raise AccountNotFound(f"no account with id {p['account_id']}")
        a = _account(acct)
        if a.is_system:
            raise StorageError("holds can only be placed on user accounts")
        raise InsufficientFunds(available=a.available, needed=p["amount"])
    con.execute(SQL_INSERT_HOLD, p)
    return Hold(
        id=p["hold_id"],
        account_id=p["account_id"],
        amount=p["amount"],
        status="pending",
        job_id=p["job_id"],
        expires_at=p["expires_at"],
        created_at=p["now"],
        resolved_at=None,
        charged=0,
        transfer_id=None,
        reason=None,
    )


def _post_op(con: sqlite3.Connection, p: dict[str, Any]) -> Resolution:
    amount: int = p["amount"]
    row = con.execute(SQL_POST_CAS, p).fetchone()
    if row is None:
        diag = con.execute(SQL_HOLD_DIAG, p).fetchone()
        if diag is None:
            raise HoldNotFound(f"no hold with id {p['hold_id']!r}")
        hold = _hold(diag)
        if hold.status != "pending":
            return _existing_resolution(hold)
        if amount > hold.amount:
            raise InvalidAmount(f"cannot post {amount}: hold {hold.id!r} is {hold.amount}")
        if amount > 0 and diag["tid_used"]:
            raise IdempotencyConflict(f"transfer id {p['transfer_id']!r} already used")
        raise StorageError(f"post of hold {hold.id!r} failed for an unknown reason")
    account_id, held, job_id = int(row[0]), int(row[1]), row[2]
    p.update(account_id=account_id, held=held)
    con.execute(SQL_POST_ACCOUNTS, p)
    if amount > 0:
        p.update(
            debit=account_id,
            credit=p["revenue"],
            kind="charge",
            actor=None,
            reason=None,
            job_id=job_id,
        )
        con.execute(SQL_INSERT_TRANSFER, p).fetchall()
    return Resolution(
        hold_id=p["hold_id"],
        account_id=account_id,
        status="posted",
        held=held,
        charged=amount,
        released=held - amount,
        transfer_id=p["transfer_id"] if amount > 0 else None,
        reason=None,
        resolved_at=p["now"],
        already=False,
    )


def _release_op(con: sqlite3.Connection, p: dict[str, Any]) -> Resolution:
    row = con.execute(SQL_RELEASE_CAS, p).fetchone()
    if row is None:
        existing = con.execute(SQL_HOLD_BY_ID, (p["hold_id"],)).fetchone()
        if existing is None:
            raise HoldNotFound(f"no hold with id {p['hold_id']!r}")
        return _existing_resolution(_hold(existing))
    account_id, held = int(row[0]), int(row[1])
    p.update(account_id=account_id, held=held)
    con.execute(SQL_RELEASE_ACCOUNT, p)
    return Resolution(
        hold_id=p["hold_id"],
        account_id=account_id,
        status=p["status"],
        held=held,
        charged=0,
        released=held,
        transfer_id=None,
        reason=p["reason"],
        resolved_at=p["now"],
        already=False,
    )
