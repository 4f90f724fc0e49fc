"""One token bucket per user for every chat event: menus, option buttons, settings
and refused commands create no job, yet each costs a database read or write. A
user who sends more than the bucket allows is told once and ignored until it
refills. Per process: behind a load balancer each intake keeps its own buckets."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# Users with a bucket kept in memory; the least recently seen go first (a bucket
# left alone for a while is full again anyway).
MAX_USERS = 50_000
# Seconds between two "slow down" notices to the same user.
NOTICE_INTERVAL = 30.0


class Throttle:
    def __init__(
        self,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._noticed: dict[str, float] = {}

    def allow(self, user_key: str) -> bool:
        now = self.clock()
        tokens, last = self._buckets.pop(user_key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[user_key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > MAX_USERS:
            gone, _ = self._buckets.popitem(last=False)
            self._noticed.pop(gone, None)
        return allowed

    def should_notice(self, user_key: str) -> bool:
        """Whether to tell this throttled user (once per ``NOTICE_INTERVAL``)."""
        now = self.clock()
        if now - self._noticed.get(user_key, -NOTICE_INTERVAL) < NOTICE_INTERVAL:
            return False
        self._noticed[user_key] = now
        return True
