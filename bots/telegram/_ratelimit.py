"""Flood control: honour Telegram's 429 ``retry_after`` instead of failing the call.

PTB's own ``AIORateLimiter`` needs the ``rate-limiter`` extra (aiolimiter); reacting
to 429s is all a bot of this size needs, so this small limiter does only that.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]


def retry_seconds(err: RetryAfter) -> float:
    # PTB 22.2+ warns that the int will become a timedelta; both are handled here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = err.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


class RetryAfterLimiter(BaseRateLimiter[None]):
    """Retries a call that hit flood control after the wait Telegram asks for.

    Bounded: at most ``max_retries`` retries and never a single wait longer than
    ``max_wait`` seconds (a longer ban is better surfaced than slept through).
    """

    def __init__(self, max_retries: int = 3, max_wait: float = 60.0) -> None:
        self.max_retries = max_retries
        self.max_wait = max_wait

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | JSONDict | list[JSONDict]:
        attempt = 0
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as err:
                wait = retry_seconds(err)
                if attempt >= self.max_retries or wait > self.max_wait:
                    raise
                attempt += 1
                log.info("flood control on %s: waiting %.1fs (retry %d)", endpoint, wait, attempt)
                await asyncio.sleep(wait + 0.05)
