"""httpx's transport over aiohttp: the vendor adapters keep httpx's API, the bytes go
through aiohttp's C HTTP parser.

httpx's own transport (httpcore + anyio + h11, all pure Python) costs two to three
times the CPU per request, more as one large pool (`bench/vendor_transport.py`
prints the three; the figures are in docs/performance.md). A job makes two or three
vendor requests.

The exception mapping is what the retry policy in ``core.vendors.http`` relies on,
so it is spelled out here rather than taken from a generic adapter package:

* the request never left: ``ConnectTimeout`` (connecting, or waiting for a free
  connection in the pool), ``ConnectError`` (refused, DNS, TLS handshake);
* it may have reached the vendor: ``ReadTimeout``, ``RemoteProtocolError``
  (disconnected, malformed answer), ``ReadError`` (reset, truncated body).

aiohttp has no write timeout and does not say whether a reset happened while the
body was still being written, so a failed upload counts as possibly delivered:
the cautious side of "retry only what cannot have been billed".
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import aiohttp
import certifi
import httpx

# Idle keep-alive connections are dropped after this long (httpx's default too).
KEEPALIVE_EXPIRY = 5.0


@cache
def ssl_context() -> ssl.SSLContext:
    """One verifying TLS context shared by every client: building one reads the CA
    bundle, ~50 ms each."""
    return ssl.create_default_context(cafile=certifi.where())


@contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(
            "server disconnected without a complete response", request=request
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except aiohttp.ClientResponseError as exc:  # unparseable status line or headers
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except TimeoutError as exc:  # a bare one, not a subclass mapped above
        raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp receives it: no re-chunking, no copies."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A fully read body hands the connection back to the pool; one abandoned half
        # way (a download over its size cap) must not: the rest of it would be read
        # as the next answer on that connection.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        max_connections: int,
        *,
        verify: ssl.SSLContext | None = None,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        """``resolver``: how hosts become addresses (``core.fetch_guard`` filters them)."""
        self.max_connections = max_connections
        self._ssl = verify or ssl_context()
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections,
                    limit_per_host=0,
                    keepalive_timeout=KEEPALIVE_EXPIRY,
                    ssl=self._ssl,
                    resolver=self._resolver,
                ),
                # httpx already set every header it wants; aiohttp must not add its own
                # or rewrite the body's encoding.
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout: dict[str, float | None] = request.extensions.get("timeout", {})
        connect, pool = timeout.get("connect"), timeout.get("pool")
        data: Any
        try:
            data = request.content or None  # already in memory: sent as is
        except httpx.RequestNotRead:
            # A multipart upload: streamed; httpx has set its Content-Length, so
            # aiohttp sends it whole rather than chunked.
            data = request.stream
        with _mapped(request):
            response = await self._client().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    # aiohttp's "connect" includes waiting for a free pooled connection.
                    connect=None if connect is None or pool is None else connect + pool,
                    sock_connect=connect,
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
