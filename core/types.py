"""Domain values shared by every layer: what a user asks for and what a vendor returns."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from core.sources import SourceRef


class Quality(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Resolution(enum.StrEnum):
    """Resolution tier; each preset maps (aspect, tier) to its own vocabulary."""

    R1K = "1K"
    R2K = "2K"
    R4K = "4K"


class Background(enum.StrEnum):
    AUTO = "auto"
    TRANSPARENT = "transparent"
    OPAQUE = "opaque"


class OutputFormat(enum.StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"


@dataclass(frozen=True, slots=True)
class SourceImage:
    """A validated input image. ``data`` is the original file, never recompressed."""

    data: bytes
    mime: str
    width: int
    height: int
    # A public URL a vendor may fetch (Discord CDN, or the bot's own short-lived link).
    # Never a Telegram file URL: that one carries the bot token.
    public_url: str | None = None

    @property
    def extension(self) -> str:
        return self.mime.split("/", 1)[1].replace("jpeg", "jpg")

    def __repr__(self) -> str:  # bytes in a repr would flood logs
        return f"SourceImage({self.mime}, {self.width}x{self.height}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class ImageRequest:
    prompt: str
    aspect: str = "1:1"
    resolution: Resolution = Resolution.R1K
    quality: Quality = Quality.MEDIUM
    n: int = 1
    sources: tuple[SourceImage, ...] = ()
    mask: SourceImage | None = None
    background: Background | None = None
    output_format: OutputFormat | None = None
    # An opaque per-user tag some vendors accept for abuse tracking (OpenAI's ``user``).
    user_tag: str | None = None
    # Queued jobs carry references; a worker turns them into ``sources``/``mask``.
    refs: tuple[SourceRef, ...] = ()
    mask_ref: SourceRef | None = None

    @property
    def is_edit(self) -> bool:
        return bool(self.sources or self.refs)

    @property
    def source_count(self) -> int:
        return len(self.sources) or len(self.refs)

    @property
    def has_mask(self) -> bool:
        return self.mask is not None or self.mask_ref is not None


# No image call bills a billion tokens; a bigger figure is a broken or hostile vendor.
MAX_TOKENS = 10**9


def token_count(value: object) -> int | None:
    """A vendor's token figure as an int in 0..MAX_TOKENS, or None when it is not a
    whole finite number (treated as missing rather than guessed at)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 12:
            return None
        number = int(text)
    else:
        return None
    return min(max(number, 0), MAX_TOKENS)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as reported by OpenAI-style vendors (aiearth)."""

    input_tokens: int = 0
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    cached_text_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def clamped(self) -> Usage:
        """The same figures, each forced into 0..MAX_TOKENS (non-numbers become 0), so
        pricing never trusts a value it did not check."""
        return Usage(**{name: token_count(getattr(self, name)) or 0 for name in _USAGE_FIELDS})


_USAGE_FIELDS = (
    "input_tokens",
    "input_text_tokens",
    "input_image_tokens",
    "cached_text_tokens",
    "output_tokens",
    "total_tokens",
)


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    data: bytes
    format: str  # "png" | "jpeg" | "webp"
    width: int
    height: int

    @property
    def mime(self) -> str:
        return f"image/{self.format}"

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format

    def __repr__(self) -> str:
        return f"GeneratedImage({self.format}, {self.width}x{self.height}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class ImageResult:
    images: tuple[GeneratedImage, ...]
    revised_prompt: str | None = None
    usage: Usage | None = None
    vendor_ref: str | None = None  # vendor request id or task id


@dataclass(frozen=True, slots=True)
class Partial:
    """A streamed preview (aiearth's ``*.partial_image`` events)."""

    index: int
    image: GeneratedImage


@dataclass(slots=True)
class Progress:
    """What a frontend can show while a job runs; sent to a progress callback."""

    stage: str  # "queued" | "submitted" | "polling" | "partial" | "downloading"
    queue_position: int | None = None
    partial: Partial | None = None
    vendor_ref: str | None = None
