"""Job files on disk: the source images a job was asked with and the results it got,
so a reroll, a variation or a delivery after a restart has the original bytes.

Writes are atomic (temp file + rename), so a reader never sees half a file. They
are not fsynced: a killed process loses nothing the kernel already has, and after
a power cut a missing result only means the sweeper cannot deliver it again, so
it releases the user's hold (see core.sweeper). An fsync per image would cost
every job a disk flush for that rare case."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


class FileStore:
    def __init__(self, root: Path) -> None:
        # Resolved once: a per-write resolve() walks every path component with a
        # syscall each, which showed up in profiles of 500 simultaneous jobs.
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        # Keys are built by core from job ids; checked lexically so a key can never
        # name anything outside the store (no absolute paths, no "..", no empty parts).
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or ("\\" in key)
        ):
            raise ValueError(f"key escapes the store: {key!r}")
        return self.root.joinpath(*parts)

    def _write(self, key: str, data: bytes) -> None:
        # Users' images: readable by the bot's own user only (0600 files, 0700 folders).
        path = self._path(key)
        tmp = path.with_name(path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(tmp, flags, FILE_MODE)
        except FileNotFoundError:
            path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(tmp, flags, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    async def put_many(self, items: list[tuple[str, bytes]]) -> None:
        def write_all() -> None:
            for key, data in items:
                self._write(key, data)

        if items:
            await asyncio.to_thread(write_all)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    def _older_dirs(self, prefix: str, before: float) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return [d.name for d in folder.iterdir() if d.is_dir() and d.stat().st_mtime < before]

    async def older_dirs(self, prefix: str, before: float) -> list[str]:
        """Names of the folders under ``prefix`` last changed before ``before``."""
        return await asyncio.to_thread(self._older_dirs, prefix, before)

    async def delete_dir(self, prefix: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._path(prefix), True)
