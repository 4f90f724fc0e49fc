"""The one status message a running job shows: queue position, elapsed time, then
streamed previews; removed when the result is delivered.

Edits are throttled (Telegram rate-limits edits per chat); previews go into a
separate photo message because a text message cannot become a photo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from telegram import Bot, InputMediaPhoto, ReplyParameters
from telegram.error import BadRequest, TelegramError

from core.messages import Messages
from core.types import Progress

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.5
# Vendors without progress events leave the status silent; refresh the elapsed time.
TICK_INTERVAL = 10.0
# A result download usually takes milliseconds: announcing it would cost an API call
# for a text the user never gets to read. It is shown only if it lasts this long.
LINGER_STAGES = frozenset({"downloading"})
LINGER = 1.0


class StatusBoard:
    """Preview messages of running jobs, keyed by (chat id, status message id).

    A job's tracker is closed (``StatusTracker.close``) before its status message is
    cleared or replaced: core leaves the progress context before it hands over the
    result or reports a failure."""

    def __init__(
        self,
        bot: Bot,
        text: Messages,
        interval: float | None = None,
        linger: float | None = None,
    ) -> None:
        self.bot = bot
        self.text = text
        self.interval = EDIT_INTERVAL if interval is None else interval
        self.linger = LINGER if linger is None else linger
        self._previews: dict[tuple[int, int], int] = {}

    def tracker(self, chat_id: int, status_id: int, locale: str, shown: str = "") -> StatusTracker:
        """``shown`` is the text the status message already has."""
        tracker = StatusTracker(self, chat_id, status_id, locale)
        tracker._last_text = shown
        return tracker

    async def clear(self, chat_id: int, status_id: int | None) -> None:
        """Delete the status message and its preview (both best effort)."""
        if status_id is None:
            return
        ids = [status_id]
        preview = self._previews.pop((chat_id, status_id), None)
        if preview is not None:
            ids.append(preview)
        for message_id in ids:
            with contextlib.suppress(TelegramError):
                await self.bot.delete_message(chat_id, message_id)

    async def replace(self, chat_id: int, status_id: int | None, text: str) -> bool:
        """Turn the status message into ``text`` (an error or a notice); False if gone."""
        if status_id is None:
            return False
        preview = self._previews.pop((chat_id, status_id), None)
        if preview is not None:
            with contextlib.suppress(TelegramError):
                await self.bot.delete_message(chat_id, preview)
        try:
            await self.bot.edit_message_text(text, chat_id=chat_id, message_id=status_id)
        except BadRequest as err:
            return "not modified" in err.message.lower()
        except TelegramError:
            return False
        return True


class StatusTracker:
    """The ``on_progress`` callback of one job."""

    def __init__(self, board: StatusBoard, chat_id: int, status_id: int, locale: str) -> None:
        self.board = board
        self.chat_id = chat_id
        self.status_id = status_id
        self.locale = locale
        self.started = time.monotonic()
        self._last_edit = 0.0
        self._last_text = ""
        self._last_progress = Progress(stage="submitted")
        # The status message starts out saying the job is being worked on.
        self._shown: tuple[str, int | None] = ("submitted", None)
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None
        self._closed = False

    async def close(self) -> None:
        """The job is over: drop any pending edit and wait for one already under way,
        so that no edit lands on the status message after this returns."""
        self._closed = True
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            await asyncio.wait([pending])
        async with self._lock:
            pass

    async def keep_alive(self) -> None:
        """Re-render the last stage now and then so the elapsed time moves; run as a
        task and cancel it when the job ends."""
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            if self._last_progress.stage != "partial":
                await self(self._last_progress, tick=True)

    async def __call__(self, progress: Progress, *, tick: bool = False) -> None:
        if self._closed:
            return
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if progress.stage in LINGER_STAGES and not tick:
            self._last_progress = progress
            self._pending = asyncio.create_task(self._show_later(progress))
            return
        await self._show(progress, tick=tick)

    async def _show_later(self, progress: Progress) -> None:
        await asyncio.sleep(self.board.linger)
        self._pending = None
        await self._show(progress, tick=False)

    async def _show(self, progress: Progress, *, tick: bool) -> None:
        self._last_progress = progress
        # Only what the user would notice is worth an edit: a new stage or queue
        # position, a preview, or the elapsed time on a tick (each edit is an API call).
        shown = (progress.stage, progress.queue_position)
        if shown == self._shown and progress.partial is None and not tick:
            return
        try:
            async with self._lock:
                if self._closed:
                    return
                if progress.stage == "partial" and progress.partial is not None:
                    await self._preview(progress)
                await self._edit_text(progress)
                self._shown = shown
        except TelegramError as err:  # progress is cosmetic; never fail the job for it
            log.debug("status update failed: %s", type(err).__name__)

    async def _edit_text(self, progress: Progress) -> None:
        now = time.monotonic()
        text = self.board.text.status(progress, self.locale, now - self.started)
        if text == self._last_text or now - self._last_edit < self.board.interval:
            return
        self._last_edit, self._last_text = now, text
        try:
            await self.board.bot.edit_message_text(
                text, chat_id=self.chat_id, message_id=self.status_id
            )
        except BadRequest as err:
            if "not modified" not in err.message.lower():
                raise

    async def _preview(self, progress: Progress) -> None:
        assert progress.partial is not None
        data = progress.partial.image.data
        if len(data) > 10 * 1024 * 1024:
            return
        key = (self.chat_id, self.status_id)
        preview = self.board._previews.get(key)
        if preview is None:
            sent = await self.board.bot.send_photo(
                self.chat_id,
                data,
                reply_parameters=ReplyParameters(self.status_id, allow_sending_without_reply=True),
                disable_notification=True,
            )
            self.board._previews[key] = sent.message_id
        else:
            await self.board.bot.edit_message_media(
                InputMediaPhoto(data), chat_id=self.chat_id, message_id=preview
            )
