"""Fetching a URL someone else chose (a vendor's result link, an image URL given to
the command line) without letting it reach inside: http(s) only, and only public
addresses, checked on the addresses the connection really uses (a name is resolved
once and the connection goes to what passed), on every redirect hop. Hosts the
operator named (the vendor's own, ``FETCH_ALLOW_HOSTS``) are exempt: a vendor on a
private network is the operator's choice, a link pointing there is not.

Bodies are read raw (no transparent decompression: a small gzip must not become
gigabytes) and capped by the caller.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class PublicOnlyResolver(AbstractResolver):
    """aiohttp resolves every connection's host through this: private, loopback,
    link-local and reserved addresses are dropped unless the host is allowed."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self.allow = frozenset(h.lower() for h in allow_hosts if h)
        # Made on first use: aiohttp's resolver belongs to the running event loop.
        self._inner: aiohttp.ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        infos = await self._inner.resolve(host, port, family)
        if host.lower() in self.allow:
            return list(infos)
        public = [info for info in infos if is_public(str(info["host"]))]
        if not public:
            raise OSError(f"{host} has no public address")
        return public

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """Refuses non-http(s) URLs and literal private addresses (which aiohttp connects
    to without asking the resolver) before anything is sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport, allow_hosts: Iterable[str] = ()) -> None:
        self.inner = inner
        self.allow = frozenset(h.lower() for h in allow_hosts if h)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = (url.host or "").lower()
        if url.scheme not in ("http", "https") or not host:
            raise httpx.ConnectError("only http(s) URLs are fetched", request=request)
        if host not in self.allow and _is_ip(host) and not is_public(host.strip("[]")):
            raise httpx.ConnectError("not a public address", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
