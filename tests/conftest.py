"""Fixtures every layer's tests share: settings on a temporary data folder, the app
built by the real composition root, and a recording frontend."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from core.app import Imagine
from core.bootstrap import build_app
from core.ports import ChatRef, Delivery
from core.settings import Settings, load_settings
from core.sources import SourceRef
from core.types import Progress, SourceImage
from core.vendors.base import ProgressCallback
from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures: a throwaway PostgreSQL)


class RecordingFrontend:
    """A frontend that keeps what core hands it; ``fail`` makes delivery raise."""

    def __init__(self, platform: str = "test") -> None:
        self.platform = platform
        self.deliveries: list[Delivery] = []
        self.notices: list[tuple[ChatRef, str]] = []
        self.alerts: list[str] = []
        self.progress_seen: list[Progress] = []
        self.watch = False
        # Bytes of the "test" platform's source references, by reference.
        self.sources: dict[str, bytes] = {}
        self.fail = False
        self.unreachable = False
        self.block: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def progress(self, chat: ChatRef, locale: str) -> AsyncIterator[ProgressCallback | None]:
        async def seen(progress: Progress) -> None:
            self.progress_seen.append(progress)

        # Watching makes streaming vendors stream; most tests want the plain call.
        yield seen if self.watch else None

    async def fetch_source(self, ref: SourceRef) -> bytes:
        return self.sources[ref.ref]

    async def publish(
        self, job_id: str, sources: tuple[SourceImage, ...]
    ) -> tuple[SourceImage, ...]:
        return sources

    async def deliver(self, delivery: Delivery) -> None:
        if self.block is not None:
            await self.block.wait()
        if self.fail:
            raise ConnectionError("platform refused the upload")
        self.deliveries.append(delivery)

    async def notify(self, chat: ChatRef, text: str) -> None:
        if self.unreachable:
            raise ConnectionError("the platform is unreachable")
        self.notices.append((chat, text))

    async def alert_admins(self, text: str) -> None:
        self.alerts.append(text)


def base_env(tmp_path: Path, **extra: Any) -> dict[str, str]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DATA_DIR": str(tmp_path / "data"),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MOCK_LATENCY": "0",
        "WELCOME_CREDITS": "0",
        "ADMIN_USER_IDS": "cli:admin",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**extra: Any) -> Settings:
        return load_settings(base_env(tmp_path, **extra), env_file=None)

    return make


@pytest.fixture
def make_app(
    make_settings: Callable[..., Settings],
) -> Callable[..., AbstractAsyncContextManager[Imagine]]:
    def make(**extra: Any) -> AbstractAsyncContextManager[Imagine]:
        return build_app(make_settings(**extra), sweep=False)

    return make


@pytest.fixture
async def app(
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> AsyncIterator[Imagine]:
    async with make_app() as built:
        yield built


@pytest.fixture
def frontend(app: Imagine) -> RecordingFrontend:
    fe = RecordingFrontend()
    app.add_frontend(fe)
    return fe
