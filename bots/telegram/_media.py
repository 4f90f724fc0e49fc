"""Source images from Telegram messages: picking the file of each message, gathering
albums (media groups) and downloading bytes through the Bot API.

Telegram delivers an album as separate messages that share a ``media_group_id``;
a reply names only one of them. ``AlbumCache`` remembers recent album items per
chat as they pass by so a reply to any item gathers the whole album.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from telegram import Bot, Message
from telegram.error import BadRequest

from core.errors import InvalidRequest

# getFile refuses files over 20 MB on the public Bot API.
DOWNLOAD_LIMIT = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileRef:
    """One downloadable image of a message."""

    file_id: str
    file_size: int | None
    message_id: int


def image_of(message: Message) -> FileRef | None:
    """The largest photo size, or an image document; None for anything else."""
    if message.photo:
        best = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return FileRef(best.file_id, best.file_size, message.message_id)
    doc = message.document
    if doc is not None and (doc.mime_type or "").startswith("image/"):
        return FileRef(doc.file_id, doc.file_size, message.message_id)
    return None


def has_media(message: Message) -> bool:
    return bool(message.photo or message.document)


class AlbumCache:
    """Recent album items per (chat, media_group_id), bounded LRU."""

    def __init__(self, max_groups: int = 200) -> None:
        self.max_groups = max_groups
        self._groups: OrderedDict[tuple[int, str], dict[int, FileRef | None]] = OrderedDict()

    def remember(self, message: Message) -> None:
        if not message.media_group_id:
            return
        key = (message.chat_id, message.media_group_id)
        group = self._groups.setdefault(key, {})
        self._groups.move_to_end(key)
        group[message.message_id] = image_of(message)
        while len(self._groups) > self.max_groups:
            self._groups.popitem(last=False)

    def remember_sent(self, messages: tuple[Message, ...] | list[Message]) -> None:
        for message in messages:
            self.remember(message)

    def items(self, message: Message) -> list[FileRef | None]:
        """Every known item of ``message``'s album (itself included), in order."""
        if not message.media_group_id:
            return [image_of(message)]
        self.remember(message)
        group = self._groups.get((message.chat_id, message.media_group_id), {})
        return [group[mid] for mid in sorted(group)]


def collect(message: Message, albums: AlbumCache, limit: int) -> list[FileRef]:
    """The images a reply (or a captioned photo) refers to: the whole album when
    there is one, at most ``limit`` (the item replied to always among them)."""
    refs = albums.items(message)
    images = [r for r in refs if r is not None]
    if not images:
        if has_media(message):
            raise InvalidRequest("not an image", kind="format")
        raise InvalidRequest("no image", kind="no_image")
    if len(images) > limit:
        chosen = image_of(message)
        rest = [r for r in images if chosen is None or r.message_id != chosen.message_id]
        keep = ([chosen] if chosen else []) + rest[: max(0, limit - (1 if chosen else 0))]
        images = sorted(keep, key=lambda r: r.message_id)
    return images


async def download(bot: Bot, ref: FileRef) -> bytes:
    """The file's bytes via getFile; the file URL (it holds the token) stays here."""
    if ref.file_size is not None and ref.file_size > DOWNLOAD_LIMIT:
        raise InvalidRequest("image too large", kind="bytes", limit_mb=DOWNLOAD_LIMIT // 2**20)
    try:
        tg_file = await bot.get_file(ref.file_id)
        data = await tg_file.download_as_bytearray()
    except BadRequest as err:
        if "too big" in err.message.lower():
            raise InvalidRequest(
                "image too large", kind="bytes", limit_mb=DOWNLOAD_LIMIT // 2**20
            ) from None
        raise InvalidRequest(
            "Telegram would not hand it over", kind="download", reason="refused"
        ) from None
    return bytes(data)


async def download_all(bot: Bot, refs: list[FileRef]) -> list[bytes]:
    return list(await asyncio.gather(*(download(bot, r) for r in refs)))
