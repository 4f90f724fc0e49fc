"""PostgreSQL ``payments`` table: purchases keyed by the platform's charge id."""

from __future__ import annotations

from storage.errors import StorageError
from storage.interfaces import Payment, Tx
from storage.payment_rows import PAYMENT_COLS, PAYMENT_STATUSES, payment_from_row
from storage.postgres.store import Clock, pg_tx

_BY_KEY = f"SELECT {PAYMENT_COLS} FROM payments WHERE platform = $1 AND charge_id = $2"


def _updated(status: str) -> bool:
    return status.split()[-1] == "1"


class PgPayments:
    """PostgreSQL implementation of ``storage.interfaces.PaymentRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def add(self, tx: Tx, payment: Payment) -> tuple[Payment, bool]:
        t = pg_tx(tx, write=True)
        now = self._clock()
        # A concurrent insert of the same key waits here on the unique index until
        # the first commits, then does nothing: exactly one caller sees True.
        status = await t.execute(
            f"INSERT INTO payments ({PAYMENT_COLS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
            "ON CONFLICT (platform, charge_id) DO NOTHING",
            payment.platform,
            payment.charge_id,
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
        )
        row = await t.fetchrow(_BY_KEY, payment.platform, payment.charge_id)
        if row is None:  # pragma: no cover - the insert or the conflict row is there
            raise StorageError(f"payment {payment.platform}:{payment.charge_id} vanished")
        return payment_from_row(row), _updated(status)

    async def get(self, tx: Tx, platform: str, charge_id: str) -> Payment | None:
        row = await pg_tx(tx).fetchrow(_BY_KEY, platform, charge_id)
        return None if row is None else payment_from_row(row)

    async def set_status(
        self, tx: Tx, platform: str, charge_id: str, from_status: str, to_status: str
    ) -> bool:
        if to_status not in PAYMENT_STATUSES:
            raise StorageError(f"unknown payment status {to_status!r}")
        status = await pg_tx(tx, write=True).execute(
            "UPDATE payments SET status = $1, updated_at = $2 "
            "WHERE platform = $3 AND charge_id = $4 AND status = $5",
            to_status,
            self._clock(),
            platform,
            charge_id,
            from_status,
        )
        return _updated(status)

    async def mark_consumed(self, tx: Tx, platform: str, charge_id: str) -> bool:
        now = self._clock()
        status = await pg_tx(tx, write=True).execute(
            "UPDATE payments SET consumed_at = $1, updated_at = $1 "
            "WHERE platform = $2 AND charge_id = $3 AND consumed_at IS NULL",
            now,
            platform,
            charge_id,
        )
        return _updated(status)

    async def unconsumed(self, tx: Tx, platform: str, limit: int = 100) -> list[Payment]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {PAYMENT_COLS} FROM payments WHERE platform = $1 AND consumed_at IS NULL "
            "ORDER BY created_at LIMIT $2",
            platform,
            limit,
        )
        return [payment_from_row(r) for r in rows]

    async def recent(self, tx: Tx, limit: int = 20) -> list[Payment]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {PAYMENT_COLS} FROM payments ORDER BY created_at DESC, charge_id LIMIT $1",
            limit,
        )
        return [payment_from_row(r) for r in rows]

    async def claim_notice(self, tx: Tx, platform: str, charge_id: str) -> bool:
        status = await pg_tx(tx, write=True).execute(
            "UPDATE payments SET notified_at = $1 "
            "WHERE platform = $2 AND charge_id = $3 AND notified_at IS NULL",
            self._clock(),
            platform,
            charge_id,
        )
        return _updated(status)

    async def unnotified(self, tx: Tx, platform: str, limit: int = 100) -> list[Payment]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {PAYMENT_COLS} FROM payments WHERE platform = $1 AND notified_at IS NULL "
            "AND status = 'credited' ORDER BY created_at LIMIT $2",
            platform,
            limit,
        )
        return [payment_from_row(r) for r in rows]

    async def mark_platform_refunded(self, tx: Tx, platform: str, charge_id: str) -> bool:
        now = self._clock()
        status = await pg_tx(tx, write=True).execute(
            "UPDATE payments SET platform_refunded_at = $1, updated_at = $1 "
            "WHERE platform = $2 AND charge_id = $3 AND platform_refunded_at IS NULL",
            now,
            platform,
            charge_id,
        )
        return _updated(status)
