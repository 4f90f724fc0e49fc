"""SQLite credit ledger: accounts, append-only transfers, two-phase holds.

Owns every SQL statement that moves credits.  Guarantees (payments style):

* Double entry: every posted movement is one ``transfers`` row with a debit and a
  credit account, and both ``accounts.balance`` columns change in the same
  transaction, so ``SUM(balance) == 0`` always.  ``accounts.balance`` is a cache of
  the transfer log; ``check_invariants`` recomputes it.
* Idempotency: transfers and holds carry caller-supplied ids.  Replaying an id with
  the same input returns the original row and changes nothing; different input
  raises ``IdempotencyConflict``.
* No overspending, even across processes: the availability check and the
  decrement are ONE guarded ``UPDATE ... WHERE balance - pending >= :amount`` and
  run inside ``BEGIN IMMEDIATE`` (see ``storage.sqlite.db``).
* Exactly-once hold resolution: post/void/expire are a compare-and-swap on
  ``holds.status``; a later resolution changes nothing and reports the first one.
* Domain errors (InsufficientFunds, IdempotencyConflict, HoldNotFound,
  InvalidAmount) are raised BEFORE the method writes anything, so a caller may
  catch them and keep using the same transaction.

The statements and the write operations live in ``ledger_sql``; this module is the
repository that runs them.
"""

from __future__ import annotations

from typing import Any

from storage.errors import (
    AccountNotFound,
    IdempotencyConflict,
    InvalidAmount,
    StorageError,
)
from storage.interfaces import (
    SYSTEM_REVENUE,
    SYSTEM_TOPUP,
    SYSTEM_WELCOME,
    Account,
    Balance,
    Hold,
    Resolution,
    ResolutionStatus,
    Transfer,
    Tx,
)
from storage.ledger_rows import (
    ACCOUNT_COLS,
    HOLD_COLS,
    TRANSFER_COLS,
    account_from_row,
    check_int,
    hold_from_row,
    normalize_username,
    system_key,
    transfer_from_row,
)
from storage.sqlite.ledger_sql import (
    SQL_ACCOUNT_BY_ID,
    SQL_HOLD_BY_ID,
    SQL_TRANSFER_BY_ID,
    _get_or_create_op,
    _post_op,
    _release_op,
    _reserve_op,
    _transfer_op,
)
from storage.sqlite.tx import Clock, SqliteTx, sqlite_tx

# --------------------------------------------------------------------------- repository


class SqliteLedger:
    """SQLite implementation of ``storage.interfaces.LedgerRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # System account ids never change once the migration created them.
        self._system_ids: dict[str, int] = {}

    # ----------------------------------------------------------------- accounts

    async def _system_id(self, t: SqliteTx, name: str) -> int:
        key = system_key(name)
        cached = self._system_ids.get(key)
        if cached is not None:
            return cached
        row = await t.fetchone(
            "SELECT id FROM accounts WHERE kind = 'system' AND platform = 'system' "
            "AND external_id = ?",
            (key.removeprefix("system:"),),
        )
        if row is None:
            raise AccountNotFound(f"system account {key} missing (schema not migrated?)")
        self._system_ids[key] = int(row["id"])
        return int(row["id"])

    async def system_account(self, tx: Tx, name: str) -> Account:
        t = sqlite_tx(tx)
        return await self._get_account(t, await self._system_id(t, name))

    async def get_account(self, tx: Tx, account_id: int) -> Account:
        return await self._get_account(sqlite_tx(tx), account_id)

    async def _get_account(self, t: SqliteTx, account_id: int) -> Account:
        row = await t.fetchone(SQL_ACCOUNT_BY_ID, (account_id,))
        if row is None:
            raise AccountNotFound(f"no account with id {account_id}")
        return account_from_row(row)

    async def find_account(self, tx: Tx, platform: str, external_id: str) -> Account | None:
        t = sqlite_tx(tx)
        row = await t.fetchone(
            f"SELECT {ACCOUNT_COLS} FROM accounts WHERE platform = ? AND external_id = ?",
            (platform, str(external_id)),
        )
        return None if row is None else account_from_row(row)

    async def find_by_username(self, tx: Tx, platform: str, username: str) -> Account | None:
        t = sqlite_tx(tx)
        name = normalize_username(username)
        if name is None:
            return None
        # COLLATE NOCASE on the column makes this case-insensitive; newest first in
        # case a stale duplicate slipped in.
        row = await t.fetchone(
            f"SELECT {ACCOUNT_COLS} FROM accounts WHERE platform = ? AND username = ? "
            "AND kind = 'user' ORDER BY updated_at DESC LIMIT 1",
            (platform, name),
        )
        return None if row is None else account_from_row(row)

    async def get_or_create_account(
        self,
        tx: Tx,
        platform: str,
        external_id: str,
        *,
        username: str | None = None,
        welcome_grant: int = 0,
    ) -> Account:
        t = sqlite_tx(tx, write=True)
        external_id = str(external_id)
        if not platform or platform == "system":
            raise StorageError(f"invalid platform {platform!r} for a user account")
        check_int("welcome_grant", welcome_grant)
        if welcome_grant < 0:
            raise InvalidAmount("welcome_grant must be >= 0")
        name = normalize_username(username)
        welcome_id = f"welcome:{platform}:{external_id}"
        grant: dict[str, Any] | None = None
        if welcome_grant > 0:
            grant = {
                "transfer_id": welcome_id,
                "debit": await self._system_id(t, SYSTEM_WELCOME),
                "credit": None,  # the account's id, once known
                "amount": welcome_grant,
                "kind": "grant",
                "actor": "system",
                "reason": "welcome grant",
                "job_id": None,
                "hold_id": None,
            }
        now = self._clock()
        # One worker-thread hop for the whole lookup-or-create: a burst of new users
        # all queue for the writer here, before their first reply can be sent.
        return await t.call(
            lambda con: _get_or_create_op(con, platform, external_id, name, welcome_id, grant, now)
        )

    async def balance(self, tx: Tx, account_id: int) -> Balance:
        acct = await self.get_account(tx, account_id)
        return Balance(posted=acct.balance, pending=acct.pending, available=acct.available)

    # ----------------------------------------------------------------- transfers

    async def get_transfer(self, tx: Tx, transfer_id: str) -> Transfer | None:
        t = sqlite_tx(tx)
        row = await t.fetchone(SQL_TRANSFER_BY_ID, (transfer_id,))
        return None if row is None else transfer_from_row(row)

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
    ) -> Transfer:
        """Post ``amount`` from debit to credit immediately.

        Replay semantics: identical (debit, credit, amount, kind, job_id) returns the
        original row; ``actor``/``reason`` are descriptive and not compared.

        ``allow_overdraft`` only relaxes the check for non-user accounts (system
        accounts are always allowed).  A USER account can never go below zero
        available — that invariant is also a CHECK constraint in the schema.
        """
        t = sqlite_tx(tx, write=True)
        check_int("amount", amount)
        if not transfer_id:
            raise StorageError("transfer_id is required")
        if not kind:
            raise StorageError("transfer kind is required")
        if amount <= 0:
            raise InvalidAmount(f"transfer amount must be > 0, got {amount}")
        if debit_account_id == credit_account_id:
            raise InvalidAmount("debit and credit accounts must differ")
        p: dict[str, Any] = {
            "transfer_id": transfer_id,
            "debit": debit_account_id,
            "credit": credit_account_id,
            "amount": amount,
            "kind": kind,
            "actor": actor,
            "reason": reason,
            "job_id": job_id,
            "hold_id": None,
            "now": self._clock(),
        }
        return await t.call(lambda con: _transfer_op(con, p))

    async def set_balance(
        self, tx: Tx, transfer_id: str, account_id: int, target: int, *, actor: str, reason: str
    ) -> Transfer | None:
        """Bring a user's posted balance to ``target`` with a correcting transfer
        against ``system:topup`` (rows are never edited).  None if already there."""
        t = sqlite_tx(tx, write=True)
        check_int("target", target)
        topup = await self._system_id(t, SYSTEM_TOPUP)
        existing = await t.fetchone(SQL_TRANSFER_BY_ID, (transfer_id,))
        if existing is not None:
            tr = transfer_from_row(existing)
            if {tr.debit_account_id, tr.credit_account_id} != {account_id, topup}:
                raise IdempotencyConflict(
                    f"transfer id {transfer_id!r} already used for a different transfer"
                )
            return tr
        acct = await self._get_account(t, account_id)
        if acct.is_system:
            raise StorageError("set_balance is only for user accounts")
        if target < 0:
            raise InvalidAmount(f"balance cannot be set below zero ({target})")
        if target < acct.pending:
            raise InvalidAmount(
                f"cannot set balance to {target}: {acct.pending} credits are held by running jobs"
            )
        diff = target - acct.balance
        if diff == 0:
            return None
        debit, credit = (topup, account_id) if diff > 0 else (account_id, topup)
        return await self.transfer(
            t, transfer_id, debit, credit, abs(diff), "correction", actor=actor, reason=reason
        )

    # ----------------------------------------------------------------- holds

    async def reserve(
        self,
        tx: Tx,
        hold_id: str,
        account_id: int,
        amount: int,
        *,
        job_id: str | None = None,
        expires_at: float | None = None,
    ) -> Hold:
        t = sqlite_tx(tx, write=True)
        check_int("amount", amount)
        if not hold_id:
            raise StorageError("hold_id is required")
        if amount <= 0:
            raise InvalidAmount(f"hold amount must be > 0, got {amount}")
        p = {
            "hold_id": hold_id,
            "account_id": account_id,
            "amount": amount,
            "job_id": job_id,
            "expires_at": expires_at,
            "now": self._clock(),
        }
        return await t.call(lambda con: _reserve_op(con, p))

    async def post(
        self, tx: Tx, hold_id: str, amount: int, *, transfer_id: str | None = None
    ) -> Resolution:
        """Charge ``amount`` (0..held) to ``system:revenue`` and release the rest."""
        t = sqlite_tx(tx, write=True)
        check_int("amount", amount)
        if amount < 0:
            raise InvalidAmount(f"post amount must be >= 0, got {amount}")
        revenue = self._system_ids.get(SYSTEM_REVENUE)
        if revenue is None:
            revenue = await self._system_id(t, SYSTEM_REVENUE)
        p: dict[str, Any] = {
            "hold_id": hold_id,
            "amount": amount,
            "transfer_id": transfer_id or f"charge:{hold_id}",
            "now": self._clock(),
            "revenue": revenue,
        }
        return await t.call(lambda con: _post_op(con, p))

    async def void(self, tx: Tx, hold_id: str, reason: str) -> Resolution:
        return await self._release(tx, hold_id, "voided", reason)

    async def expire(self, tx: Tx, hold_id: str) -> Resolution:
        return await self._release(tx, hold_id, "expired", "expired")

    async def _release(
        self, tx: Tx, hold_id: str, status: ResolutionStatus, reason: str
    ) -> Resolution:
        t = sqlite_tx(tx, write=True)
        p: dict[str, Any] = {
            "hold_id": hold_id,
            "status": status,
            "reason": reason,
            "now": self._clock(),
        }
        return await t.call(lambda con: _release_op(con, p))

    async def get_hold(self, tx: Tx, hold_id: str) -> Hold | None:
        row = await sqlite_tx(tx).fetchone(SQL_HOLD_BY_ID, (hold_id,))
        return None if row is None else hold_from_row(row)

    async def open_holds(self, tx: Tx) -> list[Hold]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {HOLD_COLS} FROM holds WHERE status = 'pending' ORDER BY created_at, id"
        )
        return [hold_from_row(r) for r in rows]

    async def expired_holds(self, tx: Tx, now: float) -> list[Hold]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {HOLD_COLS} FROM holds WHERE status = 'pending' "
            "AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, id",
            (now,),
        )
        return [hold_from_row(r) for r in rows]

    async def holds_for_job(self, tx: Tx, job_id: str) -> list[Hold]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {HOLD_COLS} FROM holds WHERE job_id = ? ORDER BY created_at, id", (job_id,)
        )
        return [hold_from_row(r) for r in rows]

    # ----------------------------------------------------------------- reporting

    async def history(self, tx: Tx, account_id: int, limit: int = 20) -> list[Transfer]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {TRANSFER_COLS} FROM transfers "
            "WHERE debit_account_id = :id OR credit_account_id = :id "
            "ORDER BY seq DESC LIMIT :limit",
            {"id": account_id, "limit": limit},
        )
        return [transfer_from_row(r) for r in rows]

    async def check_invariants(self, tx: Tx) -> list[str]:
        t = sqlite_tx(tx)
        problems: list[str] = []
        row = await t.fetchone("SELECT COALESCE(SUM(balance), 0) FROM accounts")
        assert row is not None
        if int(row[0]) != 0:
            problems.append(f"sum of all balances is {row[0]}, expected 0")
        for r in await t.fetchall(
            "SELECT id, platform, external_id, balance, pending FROM accounts "
            "WHERE kind = 'user' AND (balance < 0 OR pending < 0 OR balance - pending < 0)"
        ):
            problems.append(
                f"user account #{r['id']} ({r['platform']}:{r['external_id']}) has balance "
                f"{r['balance']}, pending {r['pending']}"
            )
        for r in await t.fetchall(
            "SELECT a.id, a.pending, COALESCE(h.held, 0) AS held FROM accounts a "
            "LEFT JOIN (SELECT account_id, SUM(amount) AS held FROM holds "
            "           WHERE status = 'pending' GROUP BY account_id) h ON h.account_id = a.id "
            "WHERE a.pending <> COALESCE(h.held, 0)"
        ):
            problems.append(
                f"account #{r['id']} pending is {r['pending']} but open holds sum to {r['held']}"
            )
        for r in await t.fetchall(
            "SELECT a.id, a.balance, COALESCE(c.s, 0) - COALESCE(d.s, 0) AS replayed "
            "FROM accounts a "
            "LEFT JOIN (SELECT credit_account_id AS id, SUM(amount) AS s FROM transfers "
            "           GROUP BY credit_account_id) c ON c.id = a.id "
            "LEFT JOIN (SELECT debit_account_id AS id, SUM(amount) AS s FROM transfers "
            "           GROUP BY debit_account_id) d ON d.id = a.id "
            "WHERE a.balance <> COALESCE(c.s, 0) - COALESCE(d.s, 0)"
        ):
            problems.append(
                f"account #{r['id']} balance is {r['balance']} but its transfers sum to "
                f"{r['replayed']}"
            )
        for r in await t.fetchall(
            "SELECT hold_id, COUNT(*) AS n FROM transfers WHERE kind = 'charge' "
            "AND hold_id IS NOT NULL GROUP BY hold_id HAVING COUNT(*) > 1"
        ):
            problems.append(f"hold {r['hold_id']!r} was charged {r['n']} times")
        for r in await t.fetchall(
            "SELECT h.id, h.status, h.charged, COALESCE(SUM(tr.amount), 0) AS booked "
            "FROM holds h LEFT JOIN transfers tr ON tr.hold_id = h.id AND tr.kind = 'charge' "
            "GROUP BY h.id HAVING h.charged <> COALESCE(SUM(tr.amount), 0) "
            "OR (h.status <> 'posted' AND h.charged <> 0) "
            "OR (h.status = 'pending' AND h.resolved_at IS NOT NULL)"
        ):
            problems.append(
                f"hold {r['id']!r} ({r['status']}) records charged={r['charged']} but "
                f"charge transfers sum to {r['booked']}"
            )
        return problems

    async def totals(self, tx: Tx) -> dict[str, int]:
        t = sqlite_tx(tx)
        out: dict[str, int] = {}
        for r in await t.fetchall(
            "SELECT external_id, balance FROM accounts WHERE kind = 'system' ORDER BY id"
        ):
            out[f"system:{r['external_id']}"] = int(r["balance"])
        row = await t.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(balance), 0), COALESCE(SUM(pending), 0) "
            "FROM accounts WHERE kind = 'user'"
        )
        assert row is not None
        out["users"] = int(row[0])
        out["users_balance"] = int(row[1])
        out["users_pending"] = int(row[2])
        out["users_available"] = int(row[1]) - int(row[2])
        row = await t.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM holds WHERE status = 'pending'"
        )
        assert row is not None
        out["open_holds"] = int(row[0])
        out["open_holds_amount"] = int(row[1])
        out["sum"] = (
            sum(v for k, v in out.items() if k.startswith("system:")) + out["users_balance"]
        )
        return out
