"""A frontend for the local machine: results are written to a folder and their paths
printed. Shared by the command line and the console chat, whose jobs only the
process that queued them can deliver (each registers its own queue)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from core.errors import InvalidRequest
from core.messages import Messages
from core.ports import ChatRef, Delivery
from core.sources import SourceRef
from core.types import Progress, SourceImage
from core.vendors.base import ProgressCallback
from core.vendors.http import build_download_client

URL = "url"
# The largest image the command line fetches from a URL.
URL_IMAGE_LIMIT = 20 * 1024 * 1024


class FolderFrontend:
    def __init__(
        self,
        platform: str,
        out_dir: Path,
        emit: Callable[[str], None] = print,
        *,
        text: Messages | None = None,
        show_progress: bool = False,
        notices: Callable[[str], None] | None = None,
        allow_hosts: tuple[str, ...] = (),
    ) -> None:
        self.platform = platform
        self.out_dir = out_dir
        self.emit = emit
        # Where failures and alerts go (the command line: standard error).
        self.notices = notices or emit
        self.allow_hosts = allow_hosts
        self.text = text or Messages()
        self.show_progress = show_progress
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
        self.notices(text)

    async def alert_admins(self, text: str) -> None:
        self.notices(text)

    @contextlib.asynccontextmanager
    async def progress(self, chat: ChatRef, locale: str) -> AsyncIterator[ProgressCallback | None]:
        if not self.show_progress:
            yield None
            return
        started = time.monotonic()
        shown: set[str] = set()

        async def show(progress: Progress) -> None:
            # One line per stage: a terminal is no place for a ticking clock.
            if progress.stage != "partial" and progress.stage in shown:
                return
            shown.add(progress.stage)
            self.emit(self.text.status(progress, locale, time.monotonic() - started))

        yield show

    async def fetch_source(self, ref: SourceRef) -> bytes:
        if ref.kind != URL:
            raise InvalidRequest("unknown source", kind="download", reason=ref.kind)
        return await fetch_url(ref.ref, self.allow_hosts)

    async def publish(
        self, job_id: str, sources: tuple[SourceImage, ...]
    ) -> tuple[SourceImage, ...]:
        # A local file has no public address; give the vendor a URL with --image.
        raise InvalidRequest("no public URL for a local file", kind="public_url")


async def fetch_url(url: str, allow_hosts: tuple[str, ...] = ()) -> bytes:
    """An http(s) image from a public address (or an allowed host), streamed raw
    with a byte cap; on failure a reason code the catalogue words (``download.*``)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest("not an http(s) URL", kind="download", reason="unsupported_link")
    try:
        async with (
            build_download_client(max_connections=4, allow_hosts=allow_hosts) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InvalidRequest(
                    f"download answered HTTP {response.status_code}",
                    kind="download",
                    reason="failed",
                )
            data = bytearray()
            async for chunk in response.aiter_raw():
                data += chunk
                if len(data) > URL_IMAGE_LIMIT:
                    raise InvalidRequest("too big", kind="bytes", limit_mb=URL_IMAGE_LIMIT >> 20)
    except httpx.HTTPError:
        raise InvalidRequest("unreachable", kind="download", reason="failed") from None
    return bytes(data)
