"""A worker process for the multi-process queue tests: it claims jobs of the "test"
platform from the database and "delivers" them by writing a file.

    python -m tests.core.queue_worker WORKDIR DATABASE_URL NAME [block]

With ``block`` it writes ``WORKDIR/delivering-NAME`` when a delivery starts and
then hangs there until it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from core.bootstrap import build_app
from core.ports import ChatRef, Delivery
from core.settings import load_settings
from core.sources import SourceRef
from core.types import SourceImage
from core.vendors.base import ProgressCallback


class FileFrontend:
    platform = "test"

    def __init__(self, workdir: Path, name: str, block: bool) -> None:
        self.workdir = workdir
        self.name = name
        self.block = block

    async def deliver(self, delivery: Delivery) -> None:
        if self.block:
            (self.workdir / f"delivering-{self.name}").write_text(delivery.job_id)
            await asyncio.Event().wait()  # until SIGKILL
        (self.workdir / f"delivered-{delivery.job_id}-{self.name}").write_text("1")

    async def notify(self, chat: ChatRef, text: str) -> None:
        (self.workdir / f"notice-{self.name}").write_text(text)

    async def alert_admins(self, text: str) -> None:
        return None

    @contextlib.asynccontextmanager
    async def progress(self, chat: ChatRef, locale: str) -> AsyncIterator[ProgressCallback | None]:
        yield None

    async def fetch_source(self, ref: SourceRef) -> bytes:
        raise NotImplementedError

    async def publish(
        self, job_id: str, sources: tuple[SourceImage, ...]
    ) -> tuple[SourceImage, ...]:
        return sources


async def main(workdir: Path, database_url: str, name: str, block: bool) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "DATA_DIR": str(workdir / "data"),
            "MOCK_LATENCY": "0.3",
            "WELCOME_CREDITS": "0",
            "JOB_LEASE_SECONDS": "1",
            "SWEEP_INTERVAL": "0.5",
        },
        env_file=None,
    )
    async with build_app(settings) as app:
        app.add_frontend(FileFrontend(workdir, name, block))
        (workdir / f"ready-{name}").write_text("1")
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], "block" in sys.argv[4:]))
