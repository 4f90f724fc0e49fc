"""Images a user points at, as references a worker fetches later: attachment
options, and the attachments or image embeds of a message.

Nothing is downloaded here: the intake only checks what Discord already told us
(content type, size, how many) and keeps each attachment's CDN URL, which carries
no secret and doubles as the source's ``public_url`` for vendors that fetch inputs
themselves. Image embeds count only when their URL is on Discord's own media hosts:
an embed can point anywhere (an internal address, a huge file), and the worker
must never fetch an arbitrary URL on a user's say-so.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from urllib.parse import urlsplit

import discord

from core.app import Imagine
from core.errors import InvalidRequest
from core.sources import SourceRef

from ._users import PLATFORM

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Where Discord serves attachments and proxies embedded media.
DISCORD_MEDIA_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})


def is_discord_media(url: str) -> bool:
    """Whether ``url`` is on Discord's CDN or media proxy (https only), or on the
    origin the bot's REST calls go to (``discord.http.Route.BASE``: Discord itself,
    or the fake Discord in tests, which serves attachments from its own address)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username or parts.password:
        return False
    if parts.scheme == "https" and parts.hostname in DISCORD_MEDIA_HOSTS and port in (None, 443):
        return True
    api = urlsplit(discord.http.Route.BASE)
    return bool(parts.netloc) and (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


def _looks_like_image(content_type: str | None, filename: str) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower().startswith("image/")
    guessed = mimetypes.guess_type(filename)[0]
    return bool(guessed and guessed.startswith("image/")) or filename.lower().endswith(
        _IMAGE_EXTENSIONS
    )


def _attachment_ref(att: discord.Attachment, app: Imagine) -> SourceRef:
    limit = app.settings.max_image_bytes
    if att.size > limit:
        raise InvalidRequest("image too large", kind="bytes", limit_mb=limit // (1024 * 1024))
    return SourceRef(PLATFORM, att.url, size=att.size, public_url=att.url)


def max_sources(app: Imagine) -> int:
    return min(app.preset.max_input_images, app.limits.max_count)


def _checked(refs: list[SourceRef], app: Imagine) -> tuple[SourceRef, ...]:
    limit = max_sources(app)
    if len(refs) > limit:
        raise InvalidRequest("too many images", kind="count", limit=limit)
    return tuple(refs)


def attachment_refs(
    attachments: Sequence[discord.Attachment], app: Imagine
) -> tuple[SourceRef, ...]:
    """Attachment options: each must look like an image and fit the size limit."""
    refs: list[SourceRef] = []
    for att in attachments:
        if not _looks_like_image(att.content_type, att.filename):
            raise InvalidRequest("not an image", kind="format")
        refs.append(_attachment_ref(att, app))
    return _checked(refs, app)


def message_refs(message: discord.Message, app: Imagine) -> list[SourceRef]:
    """The images of a message: its image attachments, then the images of its embeds
    that Discord itself hosts. Not yet checked for count (see ``checked_refs``)."""
    refs: list[SourceRef] = []
    for att in message.attachments:
        if _looks_like_image(att.content_type, att.filename):
            refs.append(_attachment_ref(att, app))
    for embed in message.embeds:
        for url in (embed.image.url, embed.thumbnail.url if embed.type == "image" else None):
            if url and is_discord_media(url) and all(r.ref != url for r in refs):
                refs.append(SourceRef(PLATFORM, url, public_url=url))
    return refs


def checked_refs(refs: Sequence[SourceRef], app: Imagine) -> tuple[SourceRef, ...]:
    """At most as many sources as the vendor takes in one request."""
    return _checked(list(refs), app)
