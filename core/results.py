"""What core's use cases answer, in one place: frontends and the message catalogue
read these, and nothing here knows how it was computed."""

from __future__ import annotations

from dataclasses import dataclass

from core.options import Defaults


@dataclass(frozen=True, slots=True)
class Profile:
    account_id: int
    balance: int
    defaults: Defaults
    locale: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class PriceInfo:
    price: int
    balance: int
    # With several vendors whose prices differ: the cheapest; ``price`` is the
    # dearest, which is what the job holds.
    low: int | None = None

    @property
    def affordable(self) -> bool:
        return self.balance >= self.price


@dataclass(frozen=True, slots=True)
class Submitted:
    """What the intake answers: the job is queued and its price held."""

    job_id: str
    price: int
    # 0 when a vendor slot is free now; else how many queued jobs go first, this one
    # included (the fair order: fewest running jobs per user first, then oldest).
    position: int


@dataclass(frozen=True, slots=True)
class JobReceipt:
    """A finished job, for a caller that waited for it (the command line)."""

    job_id: str
    cost: int
    balance_after: int
    delivered: int
