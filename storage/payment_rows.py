"""What both backends share about the ``payments`` table: its columns and turning
a row into a ``Payment``."""

from __future__ import annotations

from typing import Any, Final, cast

from storage.interfaces import Payment, PaymentStatus

PAYMENT_COLS: Final = (
    "platform, charge_id, account_id, credits, amount, currency, pack, transfer_id, "
    "status, consumed_at, created_at, updated_at, notified_at, platform_refunded_at"
)
PAYMENT_STATUSES: Final = ("credited", "refunding", "refunded")


def payment_from_row(row: Any) -> Payment:
    return Payment(
        platform=str(row["platform"]),
        charge_id=str(row["charge_id"]),
        account_id=int(row["account_id"]),
        credits=int(row["credits"]),
        amount=int(row["amount"]),
        currency=str(row["currency"]),
        pack=str(row["pack"]),
        transfer_id=str(row["transfer_id"]),
        status=cast(PaymentStatus, str(row["status"])),
        consumed_at=None if row["consumed_at"] is None else float(row["consumed_at"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        notified_at=None if row["notified_at"] is None else float(row["notified_at"]),
        platform_refunded_at=(
            None if row["platform_refunded_at"] is None else float(row["platform_refunded_at"])
        ),
    )
