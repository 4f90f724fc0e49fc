"""Results as Discord files and embeds, within Discord's upload limits.

An image over the per-file limit (``Interaction.filesize_limit``; 10 MiB for a plain
channel message) or a set of images over the 25 MiB per-request limit is re-encoded
by ``core.images.fit_within_async`` (same pixels, smaller format), never dropped.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import discord

from core.images import fit_within_async
from core.types import GeneratedImage

MIB = 1024 * 1024
CHANNEL_UPLOAD_LIMIT = 10 * MIB
REQUEST_LIMIT = 25 * MIB
# Multipart framing and the JSON payload travel in the same request.
_REQUEST_HEADROOM = 64 * 1024
EMBED_COLOUR = discord.Colour.blurple()


async def fit_images(
    images: Sequence[GeneratedImage], per_file: int, per_request: int = REQUEST_LIMIT
) -> list[GeneratedImage]:
    fitted = [await fit_within_async(img, per_file) for img in images]
    budget = per_request - _REQUEST_HEADROOM
    if fitted and sum(len(img.data) for img in fitted) > budget:
        share = budget // len(fitted)
        fitted = [await fit_within_async(img, min(per_file, share)) for img in fitted]
    return fitted


def image_files(images: Sequence[GeneratedImage], stem: str) -> list[discord.File]:
    return [
        discord.File(io.BytesIO(img.data), filename=f"{stem}-{i + 1}.{img.extension}")
        for i, img in enumerate(images)
    ]


def plain_text(text: str) -> str:
    """User (or vendor) text shown literally: the prompt and ``revised_prompt`` must
    not render as a masked link ``[x](http://evil)``, a header or a mention under the
    bot's name."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def caption_embed(caption: str) -> discord.Embed:
    # Core's caption wording has no Markdown of its own, so escaping all of it only
    # neutralises the prompt and the revised prompt inside it.
    description = plain_text(caption)
    if len(description) > 4096:  # an embed description's limit
        description = description[:4095].rstrip("\\") + "…"
    return discord.Embed(description=description, colour=EMBED_COLOUR)
