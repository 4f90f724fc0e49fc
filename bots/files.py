"""A frontend for the local machine: results are written to a folder and their paths
printed. Shared by the command line and the console chat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from core.ports import ChatRef, Delivery


class FolderFrontend:
    def __init__(self, platform: str, out_dir: Path, emit: Callable[[str], None] = print) -> None:
        self.platform = platform
        self.out_dir = out_dir
        self.emit = emit
        self.saved: list[Path] = []

    def _write(self, delivery: Delivery) -> list[Path]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, image in enumerate(delivery.images, start=1):
            path = self.out_dir / f"{delivery.job_id[:12]}-{i}.{image.extension}"
            path.write_bytes(image.data)
            paths.append(path)
        return paths

    async def deliver(self, delivery: Delivery) -> None:
        paths = await asyncio.to_thread(self._write, delivery)
        self.saved.extend(paths)
        for path in paths:
            self.emit(str(path))

    async def notify(self, chat: ChatRef, text: str) -> None:
        self.emit(text)

    async def alert_admins(self, text: str) -> None:
        self.emit(text)
