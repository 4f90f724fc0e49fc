"""Short-lived public links for source images, for vendors that fetch inputs by URL.

A Telegram file URL carries the bot token, so it must never reach a vendor. When
the preset needs public URLs the bot serves the downloaded bytes itself: each image
gets an unguessable path under ``PUBLIC_BASE_URL`` that answers GET for about an
hour and nothing else.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_TTL = 3600.0
MAX_ENTRIES = 2000  # bounds memory: oldest links go first


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    mime: str
    expires: float


def split_listen(listen: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (or ``:port``, or ``host``) as a (host, port) pair."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        return listen or "0.0.0.0", default_port
    return host.strip("[]") or "0.0.0.0", int(port)


class PublicFiles:
    def __init__(self, base_url: str, listen: str, ttl: float = DEFAULT_TTL) -> None:
        self.base_url = base_url.rstrip("/")
        self.host, self.port = split_listen(listen, 8080)
        self.ttl = ttl
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._runner: web.AppRunner | None = None

    def add(self, data: bytes, mime: str) -> str:
        """Register bytes; returns their public URL."""
        self._expire()
        key = secrets.token_urlsafe(24)
        self._entries[key] = _Entry(data, mime, time.monotonic() + self.ttl)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        ext = mime.split("/", 1)[-1].replace("jpeg", "jpg")
        return f"{self.base_url}/i/{key}.{ext}"

    def issued(self, url: str) -> bool:
        """Whether ``url`` is one of our links (it may have expired or died with a
        previous process, so a stored job's link is issued again rather than reused)."""
        return url.startswith(f"{self.base_url}/i/")

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            del self._entries[key]

    async def _serve(self, request: web.Request) -> web.Response:
        key = request.match_info["key"].split(".", 1)[0]
        entry = self._entries.get(key)
        if entry is None or entry.expires <= time.monotonic():
            raise web.HTTPNotFound()
        return web.Response(body=entry.data, content_type=entry.mime)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/i/{key}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("serving source images for the vendor on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._entries.clear()
