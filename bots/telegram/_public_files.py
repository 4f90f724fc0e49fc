"""Short-lived public links for source images, for vendors that fetch inputs by URL.

A Telegram file URL carries the bot token, so it must never reach a vendor. When
the preset needs public URLs the bot serves the job's own copy of each source (the
worker keeps it in the file store) under ``PUBLIC_BASE_URL``. A link is signed
with a key derived from the bot token and names its expiry, so any process of the
bot (the one running the link server, or a worker elsewhere on the same data
folder) can issue links, and nothing is held in memory per link. A link answers
GET until it expires (minutes) and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import time

from aiohttp import web

from storage.files import FileStore

log = logging.getLogger(__name__)

DEFAULT_TTL = 600.0
# Only job sources may be published: a link can name nothing else in the store.
PUBLISHABLE_PREFIX = "jobs/"
_SIG_BYTES = 24


def split_listen(listen: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (or ``:port``, or ``host``) as a (host, port) pair."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        return listen or "0.0.0.0", default_port
    return host.strip("[]") or "0.0.0.0", int(port)


def link_key(token: str) -> bytes:
    """The signing key: derived from the bot token, never the token itself."""
    return hmac.new(token.encode(), b"imagine-bot public files", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PublicFiles:
    def __init__(
        self,
        base_url: str,
        listen: str,
        files: FileStore,
        key: bytes,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host, self.port = split_listen(listen, 8080)
        self.files = files
        self._key = key
        self.ttl = ttl
        self._runner: web.AppRunner | None = None

    def _sign(self, store_key: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{store_key}\n{expires}".encode(), hashlib.sha256)
        return _b64(mac.digest()[:_SIG_BYTES])

    def link(self, store_key: str, mime: str) -> str:
        """A URL for a file-store key under ``jobs/``, valid for ``ttl`` seconds."""
        if not store_key.startswith(PUBLISHABLE_PREFIX):
            raise ValueError(f"not publishable: {store_key!r}")
        expires = math.ceil(time.time() + self.ttl)
        ext = mime.split("/", 1)[-1].replace("jpeg", "jpg")
        name = _b64(store_key.encode())
        return f"{self.base_url}/i/{expires}/{self._sign(store_key, expires)}/{name}.{ext}"

    def issued(self, url: str) -> bool:
        """Whether ``url`` is one of our links (it may have expired)."""
        return url.startswith(f"{self.base_url}/i/")

    def _resolve(self, expires: str, sig: str, name: str) -> str | None:
        try:
            store_key = _unb64(name.split(".", 1)[0]).decode()
            when = int(expires)
        except (ValueError, UnicodeDecodeError):
            return None
        if when < time.time() or not store_key.startswith(PUBLISHABLE_PREFIX):
            return None
        if not hmac.compare_digest(sig, self._sign(store_key, when)):
            return None
        return store_key

    async def _serve(self, request: web.Request) -> web.Response:
        info = request.match_info
        store_key = self._resolve(info["expires"], info["sig"], info["name"])
        if store_key is None:
            raise web.HTTPNotFound()
        try:
            data = await self.files.get(store_key)
        except (OSError, ValueError):
            raise web.HTTPNotFound() from None
        ext = info["name"].rsplit(".", 1)[-1]
        mime = "image/jpeg" if ext == "jpg" else f"image/{ext}"
        return web.Response(body=data, content_type=mime)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/i/{expires}/{sig}/{name}", self._serve)
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
