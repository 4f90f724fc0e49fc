"""One status message per job, edited as core reports progress.

Edits are throttled (Discord rate-limits message edits; about one per 1.5 s keeps a
job's status lively without queueing behind discord.py's limiter). Core closes the
reporter (``DiscordFrontend.progress``) before the result is delivered, so a late
status can never overwrite it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import discord

from core.messages import Messages
from core.types import Progress

from ._errors import redact
from ._render import fit_images, image_files

log = logging.getLogger(__name__)

EditStatus = Callable[[str, list[discord.File] | None], Awaitable[None]]


class ProgressReporter:
    def __init__(
        self,
        text: Messages,
        locale: str,
        edit: EditStatus,
        *,
        upload_limit: int,
        interval: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
        elapsed: float = 0.0,
    ) -> None:
        self._text = text
        self._locale = locale
        self._edit = edit
        self._upload_limit = upload_limit
        self._interval = interval
        self._clock = clock
        # ``elapsed``: seconds since the user asked, before this reporter existed.
        self._started = clock() - max(0.0, elapsed)
        self._last: float | None = None
        self._lock = asyncio.Lock()
        self.closed = False
        self.edits = 0

    async def __call__(self, progress: Progress) -> None:
        now = self._clock()
        too_soon = self._last is not None and now - self._last < self._interval
        # Previews are few (a vendor streams at most three) and worth showing at once.
        if self.closed or (too_soon and progress.partial is None):
            return
        self._last = now
        text = self._text.status(progress, self._locale, now - self._started)
        files: list[discord.File] | None = None
        if progress.partial is not None:
            preview = await fit_images([progress.partial.image], self._upload_limit)
            files = image_files(preview, "preview")
        async with self._lock:
            if self.closed:
                return
            try:
                await self._edit(text, files)
                self.edits += 1
            except (discord.NotFound, discord.Forbidden) as exc:
                # The status message is gone or out of reach: stop trying.
                self.closed = True
                log.info("status message unavailable: %s", redact(str(exc)))
            except discord.HTTPException as exc:
                # A lost status edit must never fail the job itself.
                log.warning("status edit failed: %s", redact(str(exc)))

    async def close(self) -> None:
        """Wait for an edit in flight, then ignore every later progress report."""
        async with self._lock:
            self.closed = True
