"""A dashboard served over a real socket by the real server, on a database seeded
through real jobs (mock vendor): both backends, like the core tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from bots.dashboard.server import DashboardServer
from core.app import Imagine
from core.bootstrap import build_app
from core.errors import DeliveryFailed
from core.ports import ChatRef, UserRef
from core.settings import Settings
from tests.conftest import RecordingFrontend
from tests.core.conftest import database_url, make_settings  # noqa: F401 (fixtures)
from tests.core.helpers import fund, request

TOKEN = "dashboard-token-0123456789abcdef"
VENDOR_KEY = "sk-vendor-secret-key-0123456789"
ALICE = UserRef("test", "alice", "alice")
BOB = UserRef("test", "bob")
CHAT = ChatRef("test", {"chat_id": 1, "token": "interaction-secret-0123456789"})


@dataclass
class Served:
    app: Imagine
    server: DashboardServer
    url: str


async def seed(app: Imagine, frontend: RecordingFrontend) -> None:
    """Five jobs: four delivered and charged (alice 3, bob 1), one undelivered."""
    await fund(app, ALICE, 200)
    await fund(app, BOB, 200)
    for _ in range(3):
        await app.run_job(ALICE, request(app), CHAT)
    await app.run_job(BOB, request(app, n=2), CHAT)
    frontend.fail = True
    with pytest.raises(DeliveryFailed):
        await app.run_job(BOB, request(app), CHAT)
    frontend.fail = False


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[Served]:  # noqa: F811
    settings: Settings = make_settings(
        DASHBOARD_TOKEN=TOKEN, VENDOR_API_KEY=VENDOR_KEY, PRICE_MARKUP_PERCENT=25
    )
    async with build_app(settings, sweep=False) as app:
        frontend = RecordingFrontend()
        app.add_frontend(frontend)
        await seed(app, frontend)
        server = DashboardServer(app.stats, "127.0.0.1:0", TOKEN)
        await server.start()
        try:
            yield Served(app, server, server.url)
        finally:
            await server.stop()
