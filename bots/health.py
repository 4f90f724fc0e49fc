"""The health endpoint every bot process serves when ``HEALTH_LISTEN`` is set
(``imagine-bot run`` and ``imagine-bot worker``):

- ``GET /livez``: 200 while the event loop answers (this handler running proves it).
- ``GET /healthz``: liveness and readiness as JSON. Ready when the database answers a
  trivial read within 2 s and every platform this process runs (its token is set) is
  registered and connected; 503 naming what is not. ``vendors`` lists each configured
  vendor's state (``healthy``, ``paused``, ``failing``): a vendor out of the rotation
  is the vendor's problem, not this process's, so it never makes the process unready.
- ``GET /metrics``: Prometheus text format (``core.observability.Metrics``).

Bind it to a private address (the image uses 127.0.0.1:9090): it names no secret,
but the figures are the operator's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from core.app import Imagine
from core.errors import ConfigError
from core.observability import CONTENT_TYPE, DATABASE_TIMEOUT, database_problem

log = logging.getLogger(__name__)

DEFAULT_PORT = 9090


def split_listen(listen: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``host`` as a (host, port) pair."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        return listen.strip("[]") or "127.0.0.1", default_port
    return host.strip("[]") or "0.0.0.0", int(port)


def frontend_problem(frontend: Any) -> str | None:
    """None when the platform frontend can reach its platform, as far as a cheap look
    tells: a Telegram ``Bot`` has fetched its own user (``initialize``), a Discord
    client is logged in and not closed. Any other frontend counts as connected."""
    bot = getattr(frontend, "bot", None)
    if bot is not None and hasattr(type(bot), "initialize"):
        try:
            bot.bot  # noqa: B018 (raises until Bot.initialize() has run)
        except RuntimeError:
            return "not connected"
    client = getattr(frontend, "client", None)
    if (
        client is not None
        and callable(getattr(client, "is_closed", None))
        and (client.is_closed() or getattr(client, "user", None) is None)
    ):
        return "not connected"
    return None


class HealthServer:
    """The endpoint's aiohttp server; ``start``/``stop`` around the process's life."""

    def __init__(self, app: Imagine, listen: str) -> None:
        self.app = app
        self.listen = listen
        self.host, self.port = split_listen(listen)
        self._runner: web.AppRunner | None = None

    def platforms(self) -> list[str]:
        """The platforms this process must reach: those whose token is set."""
        settings = self.app.settings
        wanted = []
        if settings.telegram_token:
            wanted.append("telegram")
        if settings.discord_token:
            wanted.append("discord")
        return wanted

    async def readiness(self) -> dict[str, str]:
        """Each check's answer: ``ok`` or what is wrong."""
        checks = {"database": await database_problem(self.app.store) or "ok"}
        for platform in self.platforms():
            frontend = self.app.frontends.get(platform)
            if frontend is None:
                checks[platform] = "not started"
            else:
                checks[platform] = frontend_problem(frontend) or "ok"
        return checks

    async def _livez(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def vendors(self) -> list[dict[str, object]]:
        """Each vendor's state as every process sees it; empty when the database
        does not answer (readiness then says so)."""
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT):
                states = await self.app.vendor_states()
        except Exception as exc:
            log.warning("healthz: vendor states unavailable (%s)", type(exc).__name__)
            return []
        return [{"name": s.name, "state": s.state, "since": s.since, "why": s.why} for s in states]

    async def _healthz(self, request: web.Request) -> web.Response:
        checks = await self.readiness()
        failing = sorted(name for name, answer in checks.items() if answer != "ok")
        body = {
            "live": True,
            "ready": not failing,
            "checks": checks,
            "failing": failing,
            "vendors": await self.vendors() if checks["database"] == "ok" else [],
        }
        return web.json_response(body, status=503 if failing else 200)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self.app.jobs.metrics.scrape(self.app.store)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        server = web.Application()
        server.router.add_get("/livez", self._livez)
        server.router.add_get("/healthz", self._healthz)
        server.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(server, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as err:
            await self._runner.cleanup()
            self._runner = None
            taken = err.errno == errno.EADDRINUSE
            raise ConfigError(
                f"HEALTH_LISTEN {self.listen} "
                + (
                    "is already in use: give each bot process on this machine its own "
                    "port, or leave HEALTH_LISTEN empty."
                    if taken
                    else f"cannot be listened on: {err.strerror or type(err).__name__}."
                ),
                setting="HEALTH_LISTEN",
            ) from None
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("health endpoint on http://%s:%s (/livez, /healthz, /metrics)", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@contextlib.asynccontextmanager
async def serve_health(
    app: Imagine, listen: str | None = None
) -> AsyncIterator[HealthServer | None]:
    """Serve the endpoint on ``listen`` (default ``HEALTH_LISTEN``) while the block
    runs; nothing (``None``) when it is not set."""
    listen = listen if listen is not None else app.settings.health_listen
    if not listen:
        yield None
        return
    server = HealthServer(app, listen)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
