"""Image bytes in and out: validating inputs before any vendor call, reading what a
vendor returned, and re-encoding results to fit a platform's upload limit.

Pillow work is CPU-bound and blocks, so every coroutine here runs it in a thread.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from core.errors import InvalidRequest, VendorUnavailable
from core.types import GeneratedImage, SourceImage

# Formats every vendor in docs/vendors.md accepts as an edit source.
INPUT_FORMATS = ("PNG", "JPEG", "WEBP")
_OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP")
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_FORMAT_NAME = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}


# Vendor outputs: 4K (4096x4096, 16.8 MP) with room to spare, far below a bomb.
MAX_OUTPUT_PIXELS = 50_000_000


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    # Pixel-bomb guard, checked from the header before any decoding.
    max_pixels: int = 40_000_000
    max_count: int = 16


def inspect_source(
    data: bytes, limits: ImageLimits, *, public_url: str | None = None
) -> SourceImage:
    if len(data) > limits.max_bytes:
        raise InvalidRequest(
            "image too large", limit_mb=limits.max_bytes // (1024 * 1024), kind="bytes"
        )
    try:
        with Image.open(io.BytesIO(data), formats=INPUT_FORMATS) as img:
            width, height = img.size
            if width * height > limits.max_pixels:
                raise InvalidRequest(
                    "image has too many pixels",
                    kind="pixels",
                    limit_mp=limits.max_pixels // 1_000_000,
                )
            fmt = img.format or ""
            # Only frame 0 would be checked and seen; vendors take stills.
            if getattr(img, "n_frames", 1) > 1 or getattr(img, "is_animated", False):
                raise InvalidRequest("animated image", kind="animated")
            img.verify()  # catches truncated or corrupt files without a full decode
    except InvalidRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("not an image", kind="format") from None
    return SourceImage(
        data=data, mime=_MIME[fmt], width=width, height=height, public_url=public_url
    )


async def load_sources(
    blobs: list[tuple[bytes, str | None]], limits: ImageLimits
) -> tuple[SourceImage, ...]:
    """Validate (bytes, public_url) pairs in a thread; refuse more than ``max_count``."""
    if len(blobs) > limits.max_count:
        raise InvalidRequest("too many images", kind="count", limit=limits.max_count)
    return await asyncio.to_thread(
        lambda: tuple(inspect_source(d, limits, public_url=u) for d, u in blobs)
    )


def read_output(data: bytes, max_pixels: int = MAX_OUTPUT_PIXELS) -> GeneratedImage:
    """Identify a vendor's image; a body that is no image, or one whose header claims
    more than ``max_pixels`` (a decompression bomb that ``fit_within`` would decode),
    is a broken vendor."""
    try:
        with Image.open(io.BytesIO(data), formats=_OUTPUT_FORMATS) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise VendorUnavailable(
                    f"vendor returned a {width}x{height} image, above {max_pixels} pixels",
                    maybe_billed=True,
                )
            return GeneratedImage(
                data=data,
                format=_FORMAT_NAME[img.format or "PNG"],
                width=width,
                height=height,
            )
    except VendorUnavailable:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        KeyError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ):
        raise VendorUnavailable(
            "vendor returned bytes that are not an image", maybe_billed=True
        ) from None


async def read_outputs(blobs: list[bytes]) -> tuple[GeneratedImage, ...]:
    return await asyncio.to_thread(lambda: tuple(read_output(b) for b in blobs))


def _encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def fit_within(image: GeneratedImage, max_bytes: int) -> GeneratedImage:
    """The same pixels in a smaller encoding when the original exceeds ``max_bytes``:
    lossless WebP first (keeps transparency), then JPEG at falling quality. Only
    if even that fails are the pixels scaled down, so an image is never dropped."""
    if len(image.data) <= max_bytes:
        return image
    with Image.open(io.BytesIO(image.data)) as src:
        src.load()
        pixels: Image.Image = src
        scale = 1.0
        while True:
            has_alpha = pixels.mode in ("RGBA", "LA") or "transparency" in pixels.info
            if has_alpha:
                data = _encode(pixels, "WEBP", lossless=True, method=2)
                if len(data) <= max_bytes:
                    return GeneratedImage(data, "webp", pixels.width, pixels.height)
            rgb = pixels.convert("RGB") if pixels.mode != "RGB" else pixels
            for quality in (92, 85, 75, 60):
                data = _encode(rgb, "JPEG", quality=quality, optimize=True)
                if len(data) <= max_bytes:
                    return GeneratedImage(data, "jpeg", rgb.width, rgb.height)
            scale *= 0.75
            size = (max(1, int(src.width * scale)), max(1, int(src.height * scale)))
            pixels = src.resize(size, Image.Resampling.LANCZOS)


async def fit_within_async(image: GeneratedImage, max_bytes: int) -> GeneratedImage:
    if len(image.data) <= max_bytes:
        return image
    return await asyncio.to_thread(fit_within, image, max_bytes)
