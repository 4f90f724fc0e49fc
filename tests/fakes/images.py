"""Test image bytes: real PNG/JPEG/WEBP/GIF files made with Pillow, plus hostile inputs.

Everything here is deterministic and cached, so tests and fake vendors can call these
helpers freely. ``render`` is what the fake vendors use for their outputs.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

from PIL import Image

Color = tuple[int, int, int] | tuple[int, int, int, int]

_CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
}


def content_type_for(fmt: str) -> str:
    """The MIME type for an output format name (``png``, ``jpeg``, ``webp``, ``gif``)."""
    return _CONTENT_TYPES.get(fmt.lower(), "application/octet-stream")


@lru_cache(maxsize=256)
def render(
    width: int,
    height: int,
    fmt: str = "png",
    color: Color = (90, 140, 200),
    transparent: bool = False,
) -> bytes:
    """A solid-colour image of exactly ``width`` x ``height`` pixels in ``fmt``.

    Solid colours compress to almost nothing, so even 4K outputs stay small and fast;
    the result is cached by its arguments.
    """
    fmt = "jpeg" if fmt.lower() == "jpg" else fmt.lower()
    if transparent and fmt in ("png", "webp"):
        img = Image.new("RGBA", (width, height), (*color[:3], 0))
    elif fmt == "gif":
        img = Image.new("P", (width, height), 0)
        img.putpalette([*color[:3]] * 256)
    else:
        img = Image.new("RGB", (width, height), color[:3])
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    elif fmt == "jpeg":
        img.save(buf, "JPEG", quality=80)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=80, method=0)
    elif fmt == "gif":
        img.save(buf, "GIF")
    else:
        raise ValueError(f"unsupported format {fmt!r}")
    return buf.getvalue()


def png_bytes(width: int = 64, height: int = 64, color: Color = (200, 60, 60)) -> bytes:
    """A real PNG (RGB, or RGBA when ``color`` has four channels)."""
    if len(color) == 4:
        img = Image.new("RGBA", (width, height), color)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()
    return render(width, height, "png", color)


def jpeg_bytes(width: int = 64, height: int = 64, color: Color = (60, 200, 60)) -> bytes:
    """A real baseline JPEG."""
    return render(width, height, "jpeg", color)


def webp_bytes(width: int = 64, height: int = 64, color: Color = (60, 60, 200)) -> bytes:
    """A real WEBP."""
    return render(width, height, "webp", color)


def gif_bytes(width: int = 64, height: int = 64, color: Color = (200, 200, 60)) -> bytes:
    """A real (single-frame) GIF; OpenAI-style vendors do not accept GIF input."""
    return render(width, height, "gif", color)


def mask_png(width: int = 64, height: int = 64) -> bytes:
    """An RGBA PNG mask: fully transparent left half (the area to edit), opaque right half."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    img.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def not_an_image() -> bytes:
    """Bytes that look like an upload but are no image (an HTML error page)."""
    return b"<!doctype html><html><body><h1>403 Forbidden</h1></body></html>\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + tag
        + data
        + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    )


@lru_cache(maxsize=4)
def decompression_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit greyscale PNG whose header claims ``width`` x ``height`` pixels.

    The default 900 megapixels is past Pillow's ``DecompressionBombError`` threshold
    (2 x ``Image.MAX_IMAGE_PIXELS``) yet the file is ~100 KB: every scanline is
    zeros, which deflate squeezes about 1000:1. Built by hand (no Pillow pixel
    buffer), so it costs well under a second once and is cached afterwards.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed 1-bit pixels
    comp = zlib.compressobj(9)
    block_rows = max(1, (1 << 20) // len(row))
    block = row * block_rows
    parts: list[bytes] = []
    left = height
    while left > 0:
        take = min(block_rows, left)
        parts.append(comp.compress(block if take == block_rows else row * take))
        left -= take
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def image_size(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` read from the header only (never decodes pixels)."""
    with Image.open(io.BytesIO(data)) as img:
        return (img.format or "").lower(), img.width, img.height
