"""A transport wrapper that tells the adaptive concurrency limit (``core.concurrency``)
each time the vendor pushes back: a 429/409, a timeout or a refused connection."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from core.vendors.http import parse_retry_after

_PUSHBACK_STATUSES = frozenset({409, 429})


class PushbackTransport(httpx.AsyncBaseTransport):
    """Reports each 429/409, timeout and refused connection to ``on_pushback``."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, on_pushback: Callable[[float | None], None]
    ) -> None:
        self.inner = inner
        self.on_pushback = on_pushback

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except (httpx.TimeoutException, httpx.ConnectError):
            self.on_pushback(None)
            raise
        if response.status_code in _PUSHBACK_STATUSES:
            self.on_pushback(parse_retry_after(response.headers.get("Retry-After")))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
