"""Exceptions raised by the storage layer.

Every error the storage package raises on purpose derives from ``StorageError`` so
callers can catch one base class.  Low-level driver errors (sqlite3, later asyncpg)
are wrapped into ``StorageError`` so nothing outside ``storage/`` ever needs to
import a database driver.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class for all storage failures (also wraps driver errors)."""


class InsufficientFunds(StorageError):
    """A debit or hold would take a user account below zero available credits."""

    def __init__(self, available: int, needed: int) -> None:
        super().__init__(f"insufficient funds: available {available}, needed {needed}")
        self.available = available
        self.needed = needed


class IdempotencyConflict(StorageError):
    """An idempotency id (transfer id, hold id, job id) was reused with different input."""


class HoldNotFound(StorageError):
    """No hold exists with the given id."""


class InvalidAmount(StorageError):
    """An amount is out of range (non-positive transfer, post above the held amount...)."""


class AccountNotFound(StorageError):
    """No account exists with the given id or name."""


__all__ = [
    "AccountNotFound",
    "HoldNotFound",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidAmount",
    "StorageError",
]
