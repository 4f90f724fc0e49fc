"""A manually advanced clock for the storage tests (own module: the name
``conftest`` is shared with other test folders)."""

from __future__ import annotations


class FakeClock:
    """Deterministic, manually advanced unix clock."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
