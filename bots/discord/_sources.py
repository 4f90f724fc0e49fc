"""Images a user points at: attachment options, and the attachments or image embeds
of a message. Discord CDN URLs carry no secret, so each is kept as the source's
``public_url`` for vendors that fetch inputs themselves; the bytes are validated
by core (``app.load_images``)."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import discord

from core.app import Imagine
from core.errors import InvalidRequest
from core.types import SourceImage

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image to fetch: an attachment (read through discord.py) or an embed URL."""

    url: str
    attachment: discord.Attachment | None = None


def _looks_like_image(content_type: str | None, filename: str) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower().startswith("image/")
    guessed = mimetypes.guess_type(filename)[0]
    return bool(guessed and guessed.startswith("image/")) or filename.lower().endswith(
        _IMAGE_EXTENSIONS
    )


def attachment_refs(attachments: Sequence[discord.Attachment], app: Imagine) -> list[ImageRef]:
    """Attachment options: each must be an image (refused before any download)."""
    refs: list[ImageRef] = []
    for att in attachments:
        if not _looks_like_image(att.content_type, att.filename):
            raise InvalidRequest("not an image", kind="format")
        _check_size(att, app)
        refs.append(ImageRef(att.url, att))
    return refs


def message_refs(message: discord.Message, app: Imagine) -> list[ImageRef]:
    """The images of a message: image attachments, then images of its embeds."""
    refs: list[ImageRef] = []
    for att in message.attachments:
        if _looks_like_image(att.content_type, att.filename):
            _check_size(att, app)
            refs.append(ImageRef(att.url, att))
    for embed in message.embeds:
        for url in (embed.image.url, embed.thumbnail.url if embed.type == "image" else None):
            if url and all(r.url != url for r in refs):
                refs.append(ImageRef(url))
    return refs


def _check_size(att: discord.Attachment, app: Imagine) -> None:
    limit = app.settings.max_image_bytes
    if att.size > limit:
        raise InvalidRequest("image too large", kind="bytes", limit_mb=limit // (1024 * 1024))


async def load_refs(
    app: Imagine, http: discord.http.HTTPClient, refs: Sequence[ImageRef]
) -> tuple[SourceImage, ...]:
    if not refs:
        return ()
    limit = min(app.preset.max_input_images, app.limits.max_count)
    if len(refs) > limit:
        raise InvalidRequest("too many images", kind="count", limit=limit)
    blobs: list[tuple[bytes, str | None]] = []
    for ref in refs:
        try:
            data = await (ref.attachment.read() if ref.attachment else http.get_from_cdn(ref.url))
        except discord.HTTPException as exc:
            raise InvalidRequest(
                "download failed", kind="download", reason=f"HTTP {exc.status}"
            ) from None
        except (aiohttp.ClientError, TimeoutError):
            raise InvalidRequest("download failed", kind="download", reason="network") from None
        blobs.append((data, ref.url))
    return await app.load_images(blobs)
