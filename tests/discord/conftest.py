"""The real Discord frontend (a real ``commands.Bot`` from ``build_bot``) against the
fake Discord REST API and gateway on 127.0.0.1, on top of a real core and SQLite file.

Every test drives handlers with raw gateway payloads (interactions, messages with
attachments, component clicks, modal submits) and reads what the bot sent from the
fake's recorded REST calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bots.discord import build_bot
from bots.discord._bot import ImagineBot
from core.app import Imagine
from core.bootstrap import build_app
from core.settings import load_settings
from tests.fakes.discord_api import Call, FakeDiscord

APP_ID = 1_100_000_000_000_000_001
GUILD_ID = 1_200_000_000_000_000_002
CHANNEL_ID = 1_300_000_000_000_000_003
USER_ID = 1_400_000_000_000_000_004
OTHER_ID = 1_400_000_000_000_000_005
ADMIN_ID = 1_400_000_000_000_000_009
TOKEN = "fake-discord-token"

pytestmark = pytest.mark.timeout(30)


def png(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def base_env(tmp_path: Path, **extra: Any) -> dict[str, str]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DATA_DIR": str(tmp_path / "data"),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MOCK_LATENCY": "0",
        "WELCOME_CREDITS": "100",
        "ADMIN_USER_IDS": f"discord:{ADMIN_ID}",
        "DISCORD_BOT_TOKEN": TOKEN,
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Harness:
    app: Imagine
    fake: FakeDiscord
    bot: ImagineBot
    start_bot: Callable[[], AbstractAsyncContextManager[ImagineBot]]

    async def slash(self, name: str, options: Any = (), **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("user_id", USER_ID)
        payload = self.fake.slash_interaction(name, options, **kwargs)
        await self.fake.send_interaction(payload)
        return payload

    async def click(
        self, custom_id: str, message: dict[str, Any], user_id: int = USER_ID
    ) -> dict[str, Any]:
        payload = self.fake.component_interaction(custom_id, user_id=user_id, message=message)
        await self.fake.send_interaction(payload)
        return payload

    async def submit(
        self, custom_id: str, values: dict[str, str], user_id: int = USER_ID
    ) -> dict[str, Any]:
        payload = self.fake.modal_submit_interaction(custom_id, values, user_id=user_id)
        await self.fake.send_interaction(payload)
        return payload

    def webhook_path(self, payload: dict[str, Any]) -> str:
        return f"/webhooks/{APP_ID}/{payload['token']}"

    async def result(self, payload: dict[str, Any], timeout: float = 10) -> Call:
        """The call that put the job's embed (the delivered result) on the message."""
        prefix = self.webhook_path(payload)

        def match(c: Call) -> bool:
            return c.path.startswith(prefix) and bool(c.payload.get("embeds"))

        return await self.fake.wait_for_call(match, timeout)

    async def callback(self, payload: dict[str, Any]) -> Call:
        return await self.fake.wait_for_call(f"/interactions/{payload['id']}/", method="POST")

    async def ephemeral(self, payload: dict[str, Any], timeout: float = 10) -> str:
        """The text of the ephemeral answer an interaction got (callback or follow-up)."""
        cb = f"/interactions/{payload['id']}/"
        prefix = self.webhook_path(payload)

        def match(c: Call) -> bool:
            if c.path.startswith(cb) and c.method == "POST":
                data = c.payload.get("data") or {}
                return bool(int(data.get("flags") or 0) & 64)
            return (
                c.path.startswith(prefix)
                and c.method == "POST"
                and bool(int(c.payload.get("flags") or 0) & 64)
            )

        call = await self.fake.wait_for_call(match, timeout)
        data = call.payload.get("data") or call.payload
        return str(data.get("content"))

    async def settled(self) -> None:
        """Until no job runs: the charge follows the delivery."""
        from storage.interfaces import ACTIVE_STATES

        for _ in range(500):
            async with self.app.store.read() as tx:
                if not await self.app.store.jobs.in_states(tx, ACTIVE_STATES, limit=1):
                    return
            await asyncio.sleep(0.02)
        raise AssertionError("jobs still running")

    async def balance(self, user_id: int = USER_ID) -> int:
        from core.ports import UserRef

        return await self.app.balance(UserRef("discord", str(user_id)))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return base_env(tmp_path)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord(app_id=APP_ID, guild_id=GUILD_ID, channel_id=CHANNEL_ID)
    await server.start()
    undo = server.install()
    try:
        yield server
    finally:
        await server.stop()
        undo()
    assert not server.errors, server.errors
    assert not server.unhandled, [f"{c.method} {c.path}" for c in server.unhandled]


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord, app: Imagine) -> AsyncIterator[ImagineBot]:
    """A bot as ``run_discord`` starts one: login (+ command sync), gateway, ready."""
    bot = build_bot(app, guild_ready_timeout=0.05)
    task: asyncio.Task[None] | None = None
    try:
        await bot.login(TOKEN)
        task = asyncio.create_task(bot.connect())
        await fake.wait_ready()
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        yield bot
    finally:
        await bot.close()
        if task is not None:
            await asyncio.wait_for(task, 5)


@pytest.fixture
async def harness(fake: FakeDiscord, env: dict[str, str]) -> AsyncIterator[Harness]:
    settings = load_settings(env, env_file=None)
    async with build_app(settings, sweep=False) as app, running(fake, app) as bot:
        yield Harness(app, fake, bot, lambda: running(fake, app))
