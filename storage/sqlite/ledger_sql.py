"""The ledger's SQLite statements and write operations (row mapping and the checks
both backends share are in ``storage.ledger_rows``).

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
    Account,
    Hold,
    Resolution,
    Transfer,
)
from storage.ledger_rows import (
    ACCOUNT_COLS,
    HOLD_COLS,
    TRANSFER_COLS,
    account_from_row,
    existing_resolution,
    hold_from_row,
    replayed_transfer,
    transfer_from_row,
)

# --------------------------------------------------------------------------- SQL

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


# --------------------------------------------------------------------------- operations
# Each ledger write is one synchronous function run on the connection thread in a
# single hop (see SqliteTx.call).  All domain checks that can fail come before the
# first write, so a raised domain error leaves the transaction untouched.


def _transfer_op(con: sqlite3.Connection, p: dict[str, Any]) -> Transfer:
    # The credit leg can only fail if the account is missing: check first so we
    # never debit and then fail.
    if con.execute("SELECT 1 FROM accounts WHERE id = ?", (p["credit"],)).fetchone() is None:
        existing = con.execute(SQL_TRANSFER_BY_ID, (p["transfer_id"],)).fetchone()
        if existing is not None:
            return replayed_transfer(transfer_from_row(existing), p)
        raise AccountNotFound(f"no account with id {p['credit']}")
    if con.execute(SQL_DEBIT, p).fetchone() is None:
        existing = con.execute(SQL_TRANSFER_BY_ID, (p["transfer_id"],)).fetchone()
        if existing is not None:
            return replayed_transfer(transfer_from_row(existing), p)
        acct = con.execute(SQL_ACCOUNT_BY_ID, (p["debit"],)).fetchone()
        if acct is None:
            raise AccountNotFound(f"no account with id {p['debit']}")
        raise InsufficientFunds(available=account_from_row(acct).available, needed=p["amount"])
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
        account = account_from_row(
            con.execute(
                SQL_INSERT_USER,
                {"platform": platform, "external_id": external_id, "username": name, "now": now},
            ).fetchone()
        )
        if name is not None:
            _claim_username(con, account.id, platform, name, now)
    else:
        welcomed = bool(row["welcomed"])
        account = account_from_row(row)
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
        account = account_from_row(con.execute(SQL_ACCOUNT_BY_ID, (account.id,)).fetchone())
    return account


def _reserve_op(con: sqlite3.Connection, p: dict[str, Any]) -> Hold:
    if con.execute(SQL_RESERVE, p).fetchone() is None:
        row = con.execute(SQL_HOLD_BY_ID, (p["hold_id"],)).fetchone()
        if row is not None:
            hold = hold_from_row(row)
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
        a = account_from_row(acct)
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
        hold = hold_from_row(diag)
        if hold.status != "pending":
            return existing_resolution(hold)
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
        return existing_resolution(hold_from_row(existing))
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
