"""The dashboard's web server (aiohttp): ``/`` the page, ``/api/stats`` its figures
as JSON, ``/login`` and ``/logout``. Every route but the login form refuses a request
without the token: 401 without one, 403 with a wrong one.

Served by ``imagine-bot dashboard`` and, when DASHBOARD_LISTEN or DASHBOARD_PORT is
set, by ``imagine-bot run``. It binds 127.0.0.1 unless told otherwise; reach it from
elsewhere through a reverse proxy with TLS (docs/dashboard.md)."""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TextIO

from aiohttp import web

from bots.dashboard.auth import TokenAuth
from bots.dashboard.pages import dashboard_page, login_page, report_json
from bots.health import split_listen
from core import redaction
from core.errors import ConfigError
from core.settings import DEFAULT_DASHBOARD_LISTEN
from core.stats import DEFAULT_DAYS, MAX_DAYS, Stats

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HEADERS = {
    # Nothing here is for caches, frames, other origins or scripts.
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_OPEN = {("GET", "/login"), ("POST", "/login")}


def _days(request: web.Request) -> int:
    raw = request.query.get("days", "")
    return min(max(1, int(raw)), MAX_DAYS) if raw.isdigit() else DEFAULT_DAYS


class DashboardServer:
    def __init__(self, stats: Stats, listen: str, token: str) -> None:
        self.stats = stats
        self.listen = listen
        self.host, self.port = split_listen(listen, 8090)
        self.auth = TokenAuth(token)
        self._runner: web.AppRunner | None = None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.method, request.path) not in _OPEN:
            verdict = self.auth.verdict(request)
            if verdict is not True:
                status = 401 if verdict is None else 403
                if request.path.startswith("/api/"):
                    response: web.StreamResponse = web.json_response(
                        {"error": "unauthorized" if status == 401 else "forbidden"},
                        status=status,
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                else:
                    # The login form, and nothing else: no figure leaves without the token.
                    response = web.Response(
                        text=login_page("Wrong token." if status == 403 else None),
                        content_type="text/html",
                        status=status,
                    )
                response.headers.update(_HEADERS)
                return response
        response = await handler(request)
        response.headers.update(_HEADERS)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        report = await self.stats.report(_days(request))
        return web.Response(text=dashboard_page(report), content_type="text/html")

    async def _api(self, request: web.Request) -> web.Response:
        return web.json_response(report_json(await self.stats.report(_days(request))))

    async def _login_form(self, request: web.Request) -> web.Response:
        return web.Response(text=login_page(), content_type="text/html")

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not self.auth.token_matches(token):
            log.warning("dashboard: a wrong token from %s", request.remote)
            return web.Response(
                text=login_page("Wrong token."), content_type="text/html", status=403
            )
        response = web.HTTPSeeOther("/")
        self.auth.log_in(request, response)
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        self.auth.log_out(response)
        raise response

    def application(self) -> web.Application:
        server = web.Application(middlewares=[self._guard], client_max_size=4096)
        server.router.add_get("/", self._page)
        server.router.add_get("/api/stats", self._api)
        server.router.add_get("/login", self._login_form)
        server.router.add_post("/login", self._login)
        server.router.add_post("/logout", self._logout)
        return server

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as err:
            await self._runner.cleanup()
            self._runner = None
            setting = "DASHBOARD_LISTEN"
            raise ConfigError(
                f"the dashboard cannot listen on {self.listen}: "
                + (
                    "the address is already in use."
                    if err.errno == errno.EADDRINUSE
                    else f"{err.strerror or type(err).__name__}."
                ),
                setting=setting,
            ) from None
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("dashboard on %s", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def dashboard_token(configured: str | None, out: TextIO | None = None) -> str:
    """DASHBOARD_TOKEN, or a new one printed once to ``out`` (the terminal, never a
    log) and scrubbed from every log line."""
    if configured:
        return configured
    token = secrets.token_urlsafe(24)
    redaction.add_secrets(token)
    print(f"dashboard login token (this run only): {token}", file=out or sys.stdout, flush=True)
    return token


@contextlib.asynccontextmanager
async def serve_dashboard(
    stats: Stats,
    listen: str | None,
    token: str | None,
    *,
    out: TextIO | None = None,
) -> AsyncIterator[DashboardServer | None]:
    """Serve the dashboard on ``listen`` while the block runs; nothing when None."""
    if not listen:
        yield None
        return
    server = DashboardServer(stats, listen, dashboard_token(token, out))
    await server.start()
    print(f"dashboard: {server.url}", file=out or sys.stdout, flush=True)
    try:
        yield server
    finally:
        await server.stop()


__all__ = ["DEFAULT_DASHBOARD_LISTEN", "DashboardServer", "dashboard_token", "serve_dashboard"]
