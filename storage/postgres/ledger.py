"""PostgreSQL credit ledger: accounts, append-only transfers, two-phase holds.

Owns every PostgreSQL statement that moves credits.  Same guarantees as
``storage.sqlite.ledger`` (double entry, idempotent ids, no overspending, holds
resolved exactly once, domain errors raised before anything is written), with
row locks instead of SQLite's database-wide write lock:

* Every operation that changes balances first locks the account rows involved
  (``SELECT ... FOR UPDATE``) and decides under the lock.  One transaction may make
  several such calls (a job's end: the charge or the void, and a vendor loss), so
  the order is one for the whole transaction, not per statement: system accounts
  first (by id), then hold rows, then user accounts (by id).  ``post`` therefore
  locks ``system:revenue`` before its hold, and a caller that books a vendor loss
  does so before it touches the hold (``core.jobs``).  Two transactions then never
  wait on each other in a cycle.  Under READ COMMITTED each later
  statement sees what the previous lock holder committed, so the availability check
  and the exactly-once check are exact across processes.
* Rows with caller-supplied ids (transfers, holds) are inserted with
  ``ON CONFLICT DO NOTHING`` before balances change: a concurrent insert of the
  same id becomes a replay or an ``IdempotencyConflict``, never a driver error
  that would abort the caller's transaction.

Row mapping and the replay comparisons are shared with the SQLite ledger
(``storage.ledger_rows``) so both backends report identical values.
"""

from __future__ import annotations

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
    existing_resolution,
    hold_from_row,
    normalize_username,
    replayed_transfer,
    system_key,
    transfer_from_row,
)
from storage.postgres.store import Clock, PgTx, pg_tx

SQL_ACCOUNT_BY_ID: Final = f"SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1"
SQL_LOCK_ACCOUNTS: Final = (
    f"SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ANY($1::bigint[]) "
    "ORDER BY kind <> 'system', id FOR UPDATE"
)
SQL_TRANSFER_BY_ID: Final = f"SELECT {TRANSFER_COLS} FROM transfers WHERE transfer_id = $1"
SQL_HOLD_BY_ID: Final = f"SELECT {HOLD_COLS} FROM holds WHERE id = $1"
SQL_INSERT_TRANSFER: Final = (
    "INSERT INTO transfers (transfer_id, debit_account_id, credit_account_id, amount, kind, "
    "actor, reason, job_id, hold_id, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
    "ON CONFLICT (transfer_id) DO NOTHING RETURNING seq"
)
# Both legs in one statement; the rows are already locked by SQL_LOCK_ACCOUNTS.
SQL_MOVE: Final = (
    "UPDATE accounts SET "
    "balance = balance + CASE WHEN id = $2 THEN $3::bigint ELSE -$3::bigint END, "
    "updated_at = $4 WHERE id IN ($1, $2)"
)


class PgLedger:
    """PostgreSQL implementation of ``storage.interfaces.LedgerRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # System account ids never change once the migration created them.
        self._system_ids: dict[str, int] = {}

    # ----------------------------------------------------------------- accounts

    async def _system_id(self, t: PgTx, name: str) -> int:
        key = system_key(name)
        cached = self._system_ids.get(key)
        if cached is not None:
            return cached
        found = await t.fetchval(
            "SELECT id FROM accounts WHERE kind = 'system' AND platform = 'system' "
            "AND external_id = $1",
            key.removeprefix("system:"),
        )
        if found is None:
            raise AccountNotFound(f"system account {key} missing (schema not migrated?)")
        self._system_ids[key] = int(found)
        return int(found)

    async def system_account(self, tx: Tx, name: str) -> Account:
        t = pg_tx(tx)
        return await self._get_account(t, await self._system_id(t, name))

    async def get_account(self, tx: Tx, account_id: int) -> Account:
        return await self._get_account(pg_tx(tx), account_id)

    async def _get_account(self, t: PgTx, account_id: int) -> Account:
        row = await t.fetchrow(SQL_ACCOUNT_BY_ID, account_id)
        if row is None:
            raise AccountNotFound(f"no account with id {account_id}")
        return account_from_row(row)

    async def _lock(self, t: PgTx, *ids: int) -> dict[int, Account]:
        """Lock the accounts ``ids`` (system accounts first, then by id); the ones
        that exist."""
        rows = await t.fetch(SQL_LOCK_ACCOUNTS, list(set(ids)))
        return {int(r["id"]): account_from_row(r) for r in rows}

    async def find_account(self, tx: Tx, platform: str, external_id: str) -> Account | None:
        row = await pg_tx(tx).fetchrow(
            f"SELECT {ACCOUNT_COLS} FROM accounts WHERE platform = $1 AND external_id = $2",
            platform,
            str(external_id),
        )
        return None if row is None else account_from_row(row)

    async def find_by_username(self, tx: Tx, platform: str, username: str) -> Account | None:
        t = pg_tx(tx)
        name = normalize_username(username)
        if name is None:
            return None
        # lower() on both sides (and in the index): case-insensitive like SQLite's
        # COLLATE NOCASE; newest first in case a stale duplicate slipped in.
        row = await t.fetchrow(
            f"SELECT {ACCOUNT_COLS} FROM accounts WHERE platform = $1 "
            "AND lower(username) = lower($2) AND kind = 'user' "
            "ORDER BY updated_at DESC LIMIT 1",
            platform,
            name,
        )
        return None if row is None else account_from_row(row)

    async def _claim_username(
        self, t: PgTx, account_id: int, platform: str, name: str, now: float
    ) -> None:
        # Usernames move between users on the platform; the latest holder wins so
        # @username lookups never hit a stale account.
        await t.execute(
            "UPDATE accounts SET username = NULL, updated_at = $1 "
            "WHERE platform = $2 AND lower(username) = lower($3) AND id <> $4",
            now,
            platform,
            name,
            account_id,
        )

    async def get_or_create_account(
        self,
        tx: Tx,
        platform: str,
        external_id: str,
        *,
        username: str | None = None,
        welcome_grant: int = 0,
    ) -> Account:
        t = pg_tx(tx, write=True)
        external_id = str(external_id)
        if not platform or platform == "system":
            raise StorageError(f"invalid platform {platform!r} for a user account")
        check_int("welcome_grant", welcome_grant)
        if welcome_grant < 0:
            raise InvalidAmount("welcome_grant must be >= 0")
        name = normalize_username(username)
        welcome_id = f"welcome:{platform}:{external_id}"
        now = self._clock()
        select = (
            f"SELECT {ACCOUNT_COLS}, "
            "EXISTS (SELECT 1 FROM transfers WHERE transfer_id = $3) AS welcomed "
            "FROM accounts WHERE platform = $1 AND external_id = $2"
        )
        row = await t.fetchrow(select, platform, external_id, welcome_id)
        created = None
        if row is None:
            # ON CONFLICT: another process may create the same user right now; its
            # row (once committed) is then ours to use.
            created = await t.fetchrow(
                "INSERT INTO accounts (kind, platform, external_id, username, created_at, "
                "updated_at) VALUES ('user', $1, $2, $3, $4, $4) "
                f"ON CONFLICT (platform, external_id) DO NOTHING RETURNING {ACCOUNT_COLS}",
                platform,
                external_id,
                name,
                now,
            )
            if created is None:
                row = await t.fetchrow(select, platform, external_id, welcome_id)
                if row is None:  # pragma: no cover - the conflicting row vanished
                    raise StorageError(f"account {platform}:{external_id} could not be created")
        changed = False
        if created is not None:
            welcomed = False
            account = account_from_row(created)
            if name is not None:
                await self._claim_username(t, account.id, platform, name, now)
        else:
            welcomed = bool(row["welcomed"])
            account = account_from_row(row)
            if name is not None and name != account.username:
                await self._claim_username(t, account.id, platform, name, now)
                await t.execute(
                    "UPDATE accounts SET username = $1, updated_at = $2 WHERE id = $3",
                    name,
                    now,
                    account.id,
                )
                changed = True
        if welcome_grant > 0 and not welcomed:
            # Idempotent by id: a user gets exactly one welcome grant ever, even if
            # the configured amount changes later.
            welcome = await self._system_id(t, SYSTEM_WELCOME)
            await self.transfer_from_row(
                t,
                {
                    "transfer_id": welcome_id,
                    "debit": welcome,
                    "credit": account.id,
                    "amount": welcome_grant,
                    "kind": "grant",
                    "actor": "system",
                    "reason": "welcome grant",
                    "job_id": None,
                    "hold_id": None,
                    "now": now,
                },
            )
            changed = True
        if changed:
            account = await self._get_account(t, account.id)
        return account

    async def balance(self, tx: Tx, account_id: int) -> Balance:
        acct = await self.get_account(tx, account_id)
        return Balance(posted=acct.balance, pending=acct.pending, available=acct.available)

    # ----------------------------------------------------------------- transfers

    async def get_transfer(self, tx: Tx, transfer_id: str) -> Transfer | None:
        row = await pg_tx(tx).fetchrow(SQL_TRANSFER_BY_ID, transfer_id)
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
        """Post ``amount`` from debit to credit immediately (see
        ``SqliteLedger.transfer`` for the replay and overdraft rules)."""
        t = pg_tx(tx, write=True)
        check_int("amount", amount)
        if not transfer_id:
            raise StorageError("transfer_id is required")
        if not kind:
            raise StorageError("transfer kind is required")
        if amount <= 0:
            raise InvalidAmount(f"transfer amount must be > 0, got {amount}")
        if debit_account_id == credit_account_id:
            raise InvalidAmount("debit and credit accounts must differ")
        return await self.transfer_from_row(
            t,
            {
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
            },
        )

    async def transfer_from_row(self, t: PgTx, p: dict[str, Any]) -> Transfer:
        locked = await self._lock(t, p["debit"], p["credit"])
        existing = await t.fetchrow(SQL_TRANSFER_BY_ID, p["transfer_id"])
        if existing is not None:
            return replayed_transfer(transfer_from_row(existing), p)
        if p["credit"] not in locked:
            raise AccountNotFound(f"no account with id {p['credit']}")
        debit = locked.get(p["debit"])
        if debit is None:
            raise AccountNotFound(f"no account with id {p['debit']}")
        if not debit.is_system and debit.available < p["amount"]:
            raise InsufficientFunds(available=debit.available, needed=p["amount"])
        seq = await self._insert_transfer(t, p)
        if seq is None:
            # Inserted by a concurrent transaction that committed after our check.
            again = await t.fetchrow(SQL_TRANSFER_BY_ID, p["transfer_id"])
            assert again is not None
            return replayed_transfer(transfer_from_row(again), p)
        await t.execute(SQL_MOVE, p["debit"], p["credit"], p["amount"], p["now"])
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
            hold_id=p["hold_id"],
            created_at=p["now"],
        )

    async def _insert_transfer(self, t: PgTx, p: dict[str, Any]) -> int | None:
        seq = await t.fetchval(
            SQL_INSERT_TRANSFER,
            p["transfer_id"],
            p["debit"],
            p["credit"],
            p["amount"],
            p["kind"],
            p["actor"],
            p["reason"],
            p["job_id"],
            p["hold_id"],
            p["now"],
        )
        return None if seq is None else int(seq)

    async def set_balance(
        self, tx: Tx, transfer_id: str, account_id: int, target: int, *, actor: str, reason: str
    ) -> Transfer | None:
        """Bring a user's posted balance to ``target`` with a correcting transfer
        against ``system:topup`` (rows are never edited).  None if already there."""
        t = pg_tx(tx, write=True)
        check_int("target", target)
        topup = await self._system_id(t, SYSTEM_TOPUP)
        # Lock first: the correction is computed from the balance it corrects.
        locked = await self._lock(t, topup, account_id)
        existing = await t.fetchrow(SQL_TRANSFER_BY_ID, transfer_id)
        if existing is not None:
            tr = transfer_from_row(existing)
            if {tr.debit_account_id, tr.credit_account_id} != {account_id, topup}:
                raise IdempotencyConflict(
                    f"transfer id {transfer_id!r} already used for a different transfer"
                )
            return tr
        acct = locked.get(account_id)
        if acct is None:
            raise AccountNotFound(f"no account with id {account_id}")
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
        t = pg_tx(tx, write=True)
        check_int("amount", amount)
        if not hold_id:
            raise StorageError("hold_id is required")
        if amount <= 0:
            raise InvalidAmount(f"hold amount must be > 0, got {amount}")
        now = self._clock()
        acct = (await self._lock(t, account_id)).get(account_id)
        existing = await t.fetchrow(SQL_HOLD_BY_ID, hold_id)
        if existing is not None:
            return self._replayed_hold(hold_from_row(existing), account_id, amount, job_id)
        if acct is None:
            raise AccountNotFound(f"no account with id {account_id}")
        if acct.is_system:
            raise StorageError("holds can only be placed on user accounts")
        if acct.available < amount:
            raise InsufficientFunds(available=acct.available, needed=amount)
        inserted = await t.fetchval(
            "INSERT INTO holds (id, account_id, amount, status, job_id, expires_at, created_at) "
            "VALUES ($1, $2, $3, 'pending', $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
            hold_id,
            account_id,
            amount,
            job_id,
            expires_at,
            now,
        )
        if inserted is None:
            # A concurrent reserve of the same id on another account won the race.
            again = await t.fetchrow(SQL_HOLD_BY_ID, hold_id)
            assert again is not None
            return self._replayed_hold(hold_from_row(again), account_id, amount, job_id)
        await t.execute(
            "UPDATE accounts SET pending = pending + $1, updated_at = $2 WHERE id = $3",
            amount,
            now,
            account_id,
        )
        return Hold(
            id=hold_id,
            account_id=account_id,
            amount=amount,
            status="pending",
            job_id=job_id,
            expires_at=expires_at,
            created_at=now,
            resolved_at=None,
            charged=0,
            transfer_id=None,
            reason=None,
        )

    @staticmethod
    def _replayed_hold(hold: Hold, account_id: int, amount: int, job_id: str | None) -> Hold:
        if (hold.account_id, hold.amount, hold.job_id) != (account_id, amount, job_id):
            raise IdempotencyConflict(
                f"hold id {hold.id!r} already used for {hold.amount} credits on "
                f"account #{hold.account_id} (job {hold.job_id})"
            )
        return hold

    async def _lock_hold(self, t: PgTx, hold_id: str) -> Hold:
        row = await t.fetchrow(f"{SQL_HOLD_BY_ID} FOR UPDATE", hold_id)
        if row is None:
            raise HoldNotFound(f"no hold with id {hold_id!r}")
        return hold_from_row(row)

    async def post(
        self, tx: Tx, hold_id: str, amount: int, *, transfer_id: str | None = None
    ) -> Resolution:
        """Charge ``amount`` (0..held) to ``system:revenue`` and release the rest."""
        t = pg_tx(tx, write=True)
        check_int("amount", amount)
        if amount < 0:
            raise InvalidAmount(f"post amount must be >= 0, got {amount}")
        revenue = await self._system_id(t, SYSTEM_REVENUE)
        tid = transfer_id or f"charge:{hold_id}"
        now = self._clock()
        await self._lock(t, revenue)  # a system account before the hold (see above)
        hold = await self._lock_hold(t, hold_id)
        if hold.status != "pending":
            return existing_resolution(hold)
        if amount > hold.amount:
            raise InvalidAmount(f"cannot post {amount}: hold {hold.id!r} is {hold.amount}")
        if amount > 0 and await t.fetchval(
            "SELECT EXISTS (SELECT 1 FROM transfers WHERE transfer_id = $1)", tid
        ):
            raise IdempotencyConflict(f"transfer id {tid!r} already used")
        await self._lock(t, hold.account_id, revenue)
        if amount > 0:
            seq = await self._insert_transfer(
                t,
                {
                    "transfer_id": tid,
                    "debit": hold.account_id,
                    "credit": revenue,
                    "amount": amount,
                    "kind": "charge",
                    "actor": None,
                    "reason": None,
                    "job_id": hold.job_id,
                    "hold_id": hold_id,
                    "now": now,
                },
            )
            if seq is None:  # taken by a concurrent transaction since the check
                raise IdempotencyConflict(f"transfer id {tid!r} already used")
        await t.execute(
            "UPDATE holds SET status = 'posted', resolved_at = $1, charged = $2, "
            "transfer_id = $3 WHERE id = $4",
            now,
            amount,
            tid if amount > 0 else None,
            hold_id,
        )
        # One statement moves the charge user -> revenue and releases the whole hold.
        await t.execute(
            "UPDATE accounts SET "
            "balance = balance + CASE WHEN id = $1 THEN $2::bigint ELSE -$2::bigint END, "
            "pending = pending - CASE WHEN id = $1 THEN 0 ELSE $3::bigint END, "
            "updated_at = $4 WHERE id IN ($1, $5)",
            revenue,
            amount,
            hold.amount,
            now,
            hold.account_id,
        )
        return Resolution(
            hold_id=hold_id,
            account_id=hold.account_id,
            status="posted",
            held=hold.amount,
            charged=amount,
            released=hold.amount - amount,
            transfer_id=tid if amount > 0 else None,
            reason=None,
            resolved_at=now,
            already=False,
        )

    async def void(self, tx: Tx, hold_id: str, reason: str) -> Resolution:
        return await self._release(tx, hold_id, "voided", reason)

    async def expire(self, tx: Tx, hold_id: str) -> Resolution:
        return await self._release(tx, hold_id, "expired", "expired")

    async def _release(
        self, tx: Tx, hold_id: str, status: ResolutionStatus, reason: str
    ) -> Resolution:
        t = pg_tx(tx, write=True)
        now = self._clock()
        hold = await self._lock_hold(t, hold_id)
        if hold.status != "pending":
            return existing_resolution(hold)
        await t.execute(
            "UPDATE holds SET status = $1, resolved_at = $2, reason = $3 WHERE id = $4",
            status,
            now,
            reason,
            hold_id,
        )
        # One row: the UPDATE's own row lock is all the ordering needed.
        await t.execute(
            "UPDATE accounts SET pending = pending - $1, updated_at = $2 WHERE id = $3",
            hold.amount,
            now,
            hold.account_id,
        )
        return Resolution(
            hold_id=hold_id,
            account_id=hold.account_id,
            status=status,
            held=hold.amount,
            charged=0,
            released=hold.amount,
            transfer_id=None,
            reason=reason,
            resolved_at=now,
            already=False,
        )

    async def get_hold(self, tx: Tx, hold_id: str) -> Hold | None:
        row = await pg_tx(tx).fetchrow(SQL_HOLD_BY_ID, hold_id)
        return None if row is None else hold_from_row(row)

    async def open_holds(self, tx: Tx) -> list[Hold]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {HOLD_COLS} FROM holds WHERE status = 'pending' ORDER BY created_at, id"
        )
        return [hold_from_row(r) for r in rows]

    async def expired_holds(self, tx: Tx, now: float) -> list[Hold]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {HOLD_COLS} FROM holds WHERE status = 'pending' "
            "AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at, id",
            now,
        )
        return [hold_from_row(r) for r in rows]

    async def holds_for_job(self, tx: Tx, job_id: str) -> list[Hold]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {HOLD_COLS} FROM holds WHERE job_id = $1 ORDER BY created_at, id", job_id
        )
        return [hold_from_row(r) for r in rows]

    # ----------------------------------------------------------------- reporting

    async def history(self, tx: Tx, account_id: int, limit: int = 20) -> list[Transfer]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {TRANSFER_COLS} FROM transfers "
            "WHERE debit_account_id = $1 OR credit_account_id = $1 "
            "ORDER BY seq DESC LIMIT $2",
            account_id,
            limit,
        )
        return [transfer_from_row(r) for r in rows]

    async def check_invariants(self, tx: Tx) -> list[str]:
        t = pg_tx(tx)
        problems: list[str] = []
        total = int(await t.fetchval("SELECT COALESCE(SUM(balance), 0)::bigint FROM accounts"))
        if total != 0:
            problems.append(f"sum of all balances is {total}, expected 0")
        for r in await t.fetch(
            "SELECT id, platform, external_id, balance, pending FROM accounts "
            "WHERE kind = 'user' AND (balance < 0 OR pending < 0 OR balance - pending < 0)"
        ):
            problems.append(
                f"user account #{r['id']} ({r['platform']}:{r['external_id']}) has balance "
                f"{r['balance']}, pending {r['pending']}"
            )
        for r in await t.fetch(
            "SELECT a.id, a.pending, COALESCE(h.held, 0)::bigint AS held FROM accounts a "
            "LEFT JOIN (SELECT account_id, SUM(amount) AS held FROM holds "
            "           WHERE status = 'pending' GROUP BY account_id) h ON h.account_id = a.id "
            "WHERE a.pending <> COALESCE(h.held, 0)"
        ):
            problems.append(
                f"account #{r['id']} pending is {r['pending']} but open holds sum to {r['held']}"
            )
        for r in await t.fetch(
            "SELECT a.id, a.balance, (COALESCE(c.s, 0) - COALESCE(d.s, 0))::bigint AS replayed "
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
        for r in await t.fetch(
            "SELECT hold_id, COUNT(*) AS n FROM transfers WHERE kind = 'charge' "
            "AND hold_id IS NOT NULL GROUP BY hold_id HAVING COUNT(*) > 1"
        ):
            problems.append(f"hold {r['hold_id']!r} was charged {r['n']} times")
        for r in await t.fetch(
            "SELECT h.id, h.status, h.charged, COALESCE(SUM(tr.amount), 0)::bigint AS booked "
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
        t = pg_tx(tx)
        out: dict[str, int] = {}
        for r in await t.fetch(
            "SELECT external_id, balance FROM accounts WHERE kind = 'system' ORDER BY id"
        ):
            out[f"system:{r['external_id']}"] = int(r["balance"])
        row = await t.fetchrow(
            "SELECT COUNT(*), COALESCE(SUM(balance), 0)::bigint, "
            "COALESCE(SUM(pending), 0)::bigint FROM accounts WHERE kind = 'user'"
        )
        assert row is not None
        out["users"] = int(row[0])
        out["users_balance"] = int(row[1])
        out["users_pending"] = int(row[2])
        out["users_available"] = int(row[1]) - int(row[2])
        row = await t.fetchrow(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0)::bigint FROM holds WHERE status = 'pending'"
        )
        assert row is not None
        out["open_holds"] = int(row[0])
        out["open_holds_amount"] = int(row[1])
        out["sum"] = (
            sum(v for k, v in out.items() if k.startswith("system:")) + out["users_balance"]
        )
        return out
