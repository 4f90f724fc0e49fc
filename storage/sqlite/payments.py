"""SQLite ``payments`` table: purchases keyed by the platform's charge id."""

from __future__ import annotations

import sqlite3

from storage.errors import StorageError
from storage.interfaces import Payment, Tx
from storage.payment_rows import PAYMENT_COLS, PAYMENT_STATUSES, payment_from_row
from storage.sqlite.tx import Clock, sqlite_tx

_BY_KEY = f"SELECT {PAYMENT_COLS} FROM payments WHERE platform = ? AND charge_id = ?"


class SqlitePayments:
    """SQLite implementation of ``storage.interfaces.PaymentRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def add(self, tx: Tx, payment: Payment) -> tuple[Payment, bool]:
        t = sqlite_tx(tx, write=True)
        now = self._clock()
        key = (payment.platform, payment.charge_id)

        def op(con: sqlite3.Connection) -> bool:
            cur = con.execute(
                f"INSERT INTO payments ({PAYMENT_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (platform, charge_id) DO NOTHING",
                (
                    *key,
                    payment.account_id,
                    payment.credits,
                    payment.amount,
                    payment.currency,
                    payment.pack,
                    payment.transfer_id,
                    payment.status,
                    payment.consumed_at,
                    now,
                    now,
                    payment.notified_at,
                    payment.platform_refunded_at,
                ),
            )
            return cur.rowcount == 1

        inserted = await t.call(op)
        row = await t.fetchone(_BY_KEY, key)
        if row is None:  # pragma: no cover - the insert or the conflict row is there
            raise StorageError(f"payment {key} vanished")
        return payment_from_row(row), inserted

    async def get(self, tx: Tx, platform: str, charge_id: str) -> Payment | None:
        row = await sqlite_tx(tx).fetchone(_BY_KEY, (platform, charge_id))
        return None if row is None else payment_from_row(row)

    async def set_status(
        self, tx: Tx, platform: str, charge_id: str, from_status: str, to_status: str
    ) -> bool:
        if to_status not in PAYMENT_STATUSES:
            raise StorageError(f"unknown payment status {to_status!r}")
        t = sqlite_tx(tx, write=True)
        return await t.call(
            lambda con: (
                con.execute(
                    "UPDATE payments SET status = ?, updated_at = ? "
                    "WHERE platform = ? AND charge_id = ? AND status = ?",
                    (to_status, self._clock(), platform, charge_id, from_status),
                ).rowcount
                == 1
            )
        )

    async def mark_consumed(self, tx: Tx, platform: str, charge_id: str) -> bool:
        t = sqlite_tx(tx, write=True)
        now = self._clock()
        return await t.call(
            lambda con: (
                con.execute(
                    "UPDATE payments SET consumed_at = ?, updated_at = ? "
                    "WHERE platform = ? AND charge_id = ? AND consumed_at IS NULL",
                    (now, now, platform, charge_id),
                ).rowcount
                == 1
            )
        )

    async def unconsumed(self, tx: Tx, platform: str, limit: int = 100) -> list[Payment]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {PAYMENT_COLS} FROM payments WHERE platform = ? AND consumed_at IS NULL "
            "ORDER BY created_at LIMIT ?",
            (platform, limit),
        )
        return [payment_from_row(r) for r in rows]

    async def recent(self, tx: Tx, limit: int = 20) -> list[Payment]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {PAYMENT_COLS} FROM payments ORDER BY created_at DESC, charge_id LIMIT ?",
            (limit,),
        )
        return [payment_from_row(r) for r in rows]

    async def claim_notice(self, tx: Tx, platform: str, charge_id: str) -> bool:
        t = sqlite_tx(tx, write=True)
        return await t.call(
            lambda con: (
                con.execute(
                    "UPDATE payments SET notified_at = ? "
                    "WHERE platform = ? AND charge_id = ? AND notified_at IS NULL",
                    (self._clock(), platform, charge_id),
                ).rowcount
                == 1
            )
        )

    async def unnotified(self, tx: Tx, platform: str, limit: int = 100) -> list[Payment]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {PAYMENT_COLS} FROM payments WHERE platform = ? AND notified_at IS NULL "
            "AND status = 'credited' ORDER BY created_at LIMIT ?",
            (platform, limit),
        )
        return [payment_from_row(r) for r in rows]

    async def mark_platform_refunded(self, tx: Tx, platform: str, charge_id: str) -> bool:
        t = sqlite_tx(tx, write=True)
        now = self._clock()
        return await t.call(
            lambda con: (
                con.execute(
                    "UPDATE payments SET platform_refunded_at = ?, updated_at = ? "
                    "WHERE platform = ? AND charge_id = ? AND platform_refunded_at IS NULL",
                    (now, now, platform, charge_id),
                ).rowcount
                == 1
            )
        )
