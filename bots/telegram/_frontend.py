"""``core.ports.Frontend`` for Telegram: how core posts results, notices and admin
alerts into Telegram chats (also for jobs resumed after a restart)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, TelegramError

from bots.telegram._keyboards import result_keyboard
from bots.telegram._media import AlbumCache, FileRef, download
from bots.telegram._progress import StatusBoard
from bots.telegram._public_files import PublicFiles
from bots.telegram._users import PLATFORM
from core.errors import DeliveryIncomplete, InvalidRequest
from core.images import fit_within_async
from core.messages import Messages
from core.ports import ChatRef, Delivery
from core.sources import SourceRef, stored_source_key
from core.types import GeneratedImage, SourceImage
from core.vendors.base import ProgressCallback

log = logging.getLogger(__name__)

PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES = 10_000  # width + height
PHOTO_MAX_RATIO = 20.0
UPLOAD_MAX_BYTES = 50 * 1024 * 1024
ALBUM_MAX = 10
CAPTION_MAX = MessageLimit.CAPTION_LENGTH


def photo_fits(image: GeneratedImage) -> bool:
    """Whether Telegram accepts the image as a photo as it is."""
    w, h = image.width, image.height
    if w <= 0 or h <= 0 or w + h > PHOTO_MAX_SIDES:
        return False
    if max(w, h) / min(w, h) > PHOTO_MAX_RATIO:
        return False
    return len(image.data) <= PHOTO_MAX_BYTES


def photo_dimensions_fit(image: GeneratedImage) -> bool:
    w, h = image.width, image.height
    return w > 0 and h > 0 and w + h <= PHOTO_MAX_SIDES and max(w, h) / min(w, h) <= 20


def fit_caption(caption: str, prompt: str, limit: int = CAPTION_MAX) -> str:
    """Core already sizes captions; this shortens the prompt part if one slips through."""
    if len(caption) <= limit:
        return caption
    excess = len(caption) - limit
    if prompt and prompt in caption and len(prompt) > excess + 1:
        return caption.replace(prompt, prompt[: len(prompt) - excess - 1] + "…", 1)
    return caption[: limit - 1] + "…"


def telegram_admin_ids(admin_ids: Sequence[str] | frozenset[str]) -> list[int]:
    out = []
    for key in sorted(admin_ids):
        platform, _, uid = key.partition(":")
        if platform == PLATFORM and uid.lstrip("-").isdigit():
            out.append(int(uid))
    return out


def _reply(message_id: Any) -> ReplyParameters | None:
    if not isinstance(message_id, int):
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)


class TelegramFrontend:
    """Works from ``ChatRef.data`` and the Bot API alone: the same object serves the
    process that polls for updates and worker processes that only deliver."""

    platform = PLATFORM

    def __init__(
        self,
        bot: Bot,
        text: Messages,
        admin_ids: frozenset[str],
        albums: AlbumCache,
        status: StatusBoard,
        *,
        can_edit: bool,
        public_files: PublicFiles | None = None,
    ) -> None:
        self.bot = bot
        self.text = text
        self.admin_ids = admin_ids
        self.albums = albums
        self.status = status
        self.can_edit = can_edit
        self.public_files = public_files

    # --- a job's sources and status ---------------------------------------------

    async def fetch_source(self, ref: SourceRef) -> bytes:
        return await download(self.bot, FileRef(ref.ref, ref.size, 0))

    async def publish(
        self, job_id: str, sources: tuple[SourceImage, ...]
    ) -> tuple[SourceImage, ...]:
        if self.public_files is None:
            raise InvalidRequest("PUBLIC_BASE_URL is not set", kind="public_url")
        files = self.public_files
        return tuple(
            s
            if s.public_url
            else replace(s, public_url=files.link(stored_source_key(job_id, i), s.mime))
            for i, s in enumerate(sources)
        )

    @contextlib.asynccontextmanager
    async def progress(self, chat: ChatRef, locale: str) -> AsyncIterator[ProgressCallback | None]:
        status_id = chat.data.get("status_message_id")
        if not isinstance(status_id, int):
            yield None
            return
        tracker = self.status.tracker(int(chat.data["chat_id"]), status_id, locale)
        ticker = asyncio.create_task(tracker.keep_alive())
        try:
            yield tracker
        finally:
            ticker.cancel()
            await asyncio.wait([ticker])
            await tracker.close()

    # --- results ------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> None:
        chat_id = int(delivery.chat.data["chat_id"])
        reply_to = _reply(delivery.chat.data.get("reply_to"))
        status_id = delivery.chat.data.get("status_message_id")
        caption = fit_caption(delivery.caption, delivery.request.prompt)
        keyboard = result_keyboard(
            delivery.job_id, lambda key: self.text.t(key, delivery.locale), can_edit=self.can_edit
        )
        photos: list[GeneratedImage] = []
        documents: list[GeneratedImage] = []
        for image in delivery.images:
            if photo_fits(image):
                photos.append(image)
            elif photo_dimensions_fit(image):
                # Too heavy for a photo: a recompressed photo to look at, the original
                # as a file.
                photos.append(await fit_within_async(image, PHOTO_MAX_BYTES))
                documents.append(image)
            else:
                documents.append(image)

        sent: list[Message] = []
        try:
            await self._post(
                delivery, chat_id, reply_to, caption, keyboard, photos, documents, sent
            )
        except Exception as err:
            # Whatever reached the chat is the user's: they pay for those images.
            if not sent:
                raise
            self.albums.remember_sent(sent)
            if isinstance(status_id, int):  # the result is (partly) here: no status left
                await self.status.clear(chat_id, status_id)
            images = min(len(sent), len(delivery.images))
            raise DeliveryIncomplete(f"{type(err).__name__} after {images} images", images) from err
        if isinstance(status_id, int):
            await self.status.clear(chat_id, status_id)
        self.albums.remember_sent(sent)

    async def _post(
        self,
        delivery: Delivery,
        chat_id: int,
        reply_to: ReplyParameters | None,
        caption: str,
        keyboard: InlineKeyboardMarkup,
        photos: list[GeneratedImage],
        documents: list[GeneratedImage],
        sent: list[Message],
    ) -> None:
        """Post photos (and files where a photo would lose detail), appending each
        message to ``sent`` as it goes."""
        if photos:
            try:
                await self._send_photos(
                    chat_id,
                    photos,
                    caption,
                    keyboard,
                    reply_to,
                    hint=self.text.t("edit.hint", delivery.locale),
                    sent=sent,
                )
            except BadRequest as err:
                # Telegram refused the photos (dimensions it measures differently...):
                # the images still go out, as files.
                if sent:
                    raise
                log.warning("photos refused (%s); sending documents", err.message)
                documents = list(delivery.images)
                photos = []
        if documents:
            await self._send_documents(
                chat_id,
                documents,
                delivery.job_id,
                caption=None if photos else caption,
                keyboard=None if photos else keyboard,
                reply_to=reply_to,
                sent=sent,
            )

    async def _send_photos(
        self,
        chat_id: int,
        photos: list[GeneratedImage],
        caption: str,
        keyboard: InlineKeyboardMarkup,
        reply_to: ReplyParameters | None,
        hint: str,
        sent: list[Message],
    ) -> None:
        if len(photos) == 1:
            message = await self.bot.send_photo(
                chat_id,
                photos[0].data,
                caption=caption,
                reply_markup=keyboard,
                reply_parameters=reply_to,
            )
            sent.append(message)
            return
        for start in range(0, len(photos), ALBUM_MAX):
            chunk = photos[start : start + ALBUM_MAX]
            if len(chunk) == 1:  # an album needs two items; a lone eleventh goes alone
                sent.append(await self.bot.send_photo(chat_id, chunk[0].data))
                continue
            media = [
                InputMediaPhoto(img.data, caption=caption if start == 0 and i == 0 else None)
                for i, img in enumerate(chunk)
            ]
            sent += await self.bot.send_media_group(
                chat_id, media, reply_parameters=reply_to if start == 0 else None
            )
        # An album cannot carry buttons: they go on a short message under it. The
        # images are delivered by now; losing the buttons must not undo that.
        try:
            await self.bot.send_message(
                chat_id,
                hint,
                reply_markup=keyboard,
                reply_parameters=_reply(sent[0].message_id),
            )
        except TelegramError as err:
            log.warning("result buttons not posted: %s", type(err).__name__)

    async def _send_documents(
        self,
        chat_id: int,
        images: list[GeneratedImage],
        job_id: str,
        *,
        caption: str | None,
        keyboard: InlineKeyboardMarkup | None,
        reply_to: ReplyParameters | None,
        sent: list[Message],
    ) -> None:
        for i, image in enumerate(images):
            fitted = await fit_within_async(image, UPLOAD_MAX_BYTES)
            last = i == len(images) - 1
            message = await self.bot.send_document(
                chat_id,
                fitted.data,
                filename=f"{job_id[:8]}-{i + 1}.{fitted.extension}",
                caption=caption if i == 0 else None,
                reply_markup=keyboard if last else None,
                reply_parameters=reply_to if i == 0 else None,
                disable_content_type_detection=True,
            )
            sent.append(message)

    # --- notices --------------------------------------------------------------------

    async def notify(self, chat: ChatRef, text: str) -> None:
        chat_id = int(chat.data["chat_id"])
        status_id = chat.data.get("status_message_id")
        if isinstance(status_id, int) and await self.status.replace(chat_id, status_id, text):
            return
        await self.bot.send_message(
            chat_id, text, reply_parameters=_reply(chat.data.get("reply_to"))
        )

    async def alert_admins(self, text: str) -> None:
        for admin in telegram_admin_ids(self.admin_ids):
            try:
                await self.bot.send_message(admin, text)
            except Forbidden:
                log.warning("admin %s has not started a chat with the bot", admin)
            except TelegramError as err:
                log.warning("alerting admin %s failed: %s", admin, type(err).__name__)
