"""A dashboard served over a real socket by the real server, on a month of history
written through the real code (``tests.dashboard.month``): both backends, like the
core tests. The dashboard's clock stands still at the month's end, so the windows
and the figures expected from the ledger cannot drift apart mid-test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from bots.dashboard.server import DashboardServer
from core.app import Imagine
from core.bootstrap import build_app
from core.settings import Settings
from core.stats import Stats
from tests.conftest import RecordingFrontend
from tests.core.conftest import database_url, make_settings  # noqa: F401 (fixtures)
from tests.dashboard.month import CHAT_SECRET, DAYS, seed_month, vendor_env

TOKEN = "dashboard-token-0123456789abcdef"
VENDOR_KEY = "sk-vendor-secret-key-0123456789"


@dataclass
class Served:
    app: Imagine
    server: DashboardServer
    url: str
    now: float
    """The dashboard's clock: the end of the seeded month."""


SECRETS = (TOKEN, VENDOR_KEY, CHAT_SECRET)


@pytest.fixture
def month_days() -> int:
    """Days of history to seed (a module overrides it for a shorter one)."""
    return DAYS


@pytest.fixture
async def served(
    make_settings: Callable[..., Settings],  # noqa: F811
    month_days: int,
) -> AsyncIterator[Served]:
    settings: Settings = make_settings(
        DASHBOARD_TOKEN=TOKEN,
        PRICE_MARKUP_PERCENT=25,
        VENDOR_BETA_API_KEY=VENDOR_KEY,
        **vendor_env(),
    )
    now = time.time()
    await seed_month(settings, now, month_days)
    # The dashboard process: it reads the database and runs no jobs.
    async with build_app(settings, sweep=False, work=False) as app:
        app.add_frontend(RecordingFrontend())
        stats = Stats(app.store, app.preset, app.admin, lambda: now, pool=app.jobs.pool)
        server = DashboardServer(stats, "127.0.0.1:0", TOKEN)
        await server.start()
        try:
            yield Served(app, server, server.url, now)
        finally:
            await server.stop()
