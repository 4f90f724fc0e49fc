"""The real Telegram frontend (``run_telegram``: real ``Application``, real long
polling) against the fake Bot API server, on top of a real core and SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bots.telegram import _handlers as handlers_module
from bots.telegram import _progress as progress_module
from bots.telegram import run_telegram
from core.app import Imagine
from core.bootstrap import build_app
from core.settings import load_settings
from tests.fakes.telegram_api import Call, FakeTelegramAPI

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
BOT_USERNAME = "imagine_test_bot"
ADMIN_ID = 1
USER_ID = 42
OTHER_ID = 77


def png(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Harness:
    app: Imagine
    fake: FakeTelegramAPI
    tmp_path: Path

    def send(self, text: str | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("user_id", USER_ID)
        update = self.fake.message(text, **kwargs)
        self.fake.push_update(update)
        return update

    def press(self, data: str, message: dict[str, Any], user_id: int = USER_ID) -> dict[str, Any]:
        update = self.fake.callback_query(data, user_id=user_id, message=message)
        self.fake.push_update(update)
        return update

    async def said(
        self,
        needle: str,
        *,
        chat_id: int | None = None,
        method: str | tuple[str, ...] = ("sendMessage", "editMessageText"),
        within: float = 5.0,
    ) -> Call:
        """The first call of ``method`` whose text (or caption) contains ``needle``;
        errors replace a job's status message, so edits count by default."""
        methods = (method,) if isinstance(method, str) else method

        def match(call: Call) -> bool:
            if call.method not in methods:
                return False
            text = call.params.get("text") or call.params.get("caption") or ""
            if chat_id is not None and call.params.get("chat_id") != chat_id:
                return False
            return needle in str(text)

        deadline = asyncio.get_running_loop().time() + within
        while True:
            for call in self.fake.calls:
                if match(call):
                    return call
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nobody said {needle!r}; texts: {self.texts()}")
            await asyncio.sleep(0.02)

    def texts(self, chat_id: int | None = None) -> list[str]:
        out = []
        for call in self.fake.calls:
            if call.method not in ("sendMessage", "editMessageText"):
                continue
            if chat_id is not None and call.params.get("chat_id") != chat_id:
                continue
            out.append(str(call.params.get("text")))
        return out

    async def settled(self, within: float = 10.0) -> None:
        """Wait until no job is running: results are charged after they are posted."""
        from storage.interfaces import ACTIVE_STATES

        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            async with self.app.store.read() as tx:
                if not await self.app.store.jobs.in_states(tx, ACTIVE_STATES, limit=1):
                    return
            await asyncio.sleep(0.02)
        raise TimeoutError("jobs still running")

    async def balance(self, user_id: int = USER_ID) -> int:
        """After the running jobs have been charged."""
        from core.ports import UserRef

        await self.settled()
        return await self.app.balance(UserRef("telegram", str(user_id)))


def env_for(fake: FakeTelegramAPI, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "VENDOR": "mock",
        "MOCK_LATENCY": "0.05",
        "DATABASE_URL": f"sqlite:///{tmp_path}/imagine.sqlite3",
        "DATA_DIR": str(tmp_path / "data"),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "WELCOME_CREDITS": "100",
        "ADMIN_USER_IDS": f"telegram:{ADMIN_ID}",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": fake.base_url,
        "TELEGRAM_BASE_FILE_URL": fake.base_file_url,
        "SWEEP_INTERVAL": "3600",
    }
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeTelegramAPI, tmp_path: Path, **extra: str
) -> AsyncIterator[Harness]:
    settings = load_settings(environ=env_for(fake, tmp_path, **extra), env_file=None)
    async with build_app(settings, sweep=False) as app:
        stop = asyncio.Event()
        task = asyncio.create_task(run_telegram(app, stop))
        try:
            await fake.wait_for("getUpdates", timeout=10)
            yield Harness(app, fake, tmp_path)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@pytest.fixture(autouse=True)
def fast_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers_module, "ALBUM_SETTLE", 0.3)
    monkeypatch.setattr(progress_module, "EDIT_INTERVAL", 0.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN, bot_username=BOT_USERNAME) as f:
        yield f


@pytest.fixture
async def bot(fake: FakeTelegramAPI, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(fake, tmp_path) as harness:
        yield harness


Predicate = Callable[[Call], bool]
