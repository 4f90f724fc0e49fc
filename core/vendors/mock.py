"""The ``mock`` vendor: renders placeholder images locally with Pillow, so the whole
flow (pricing, ledger, queue, progress, delivery) runs with no key and no network."""

from __future__ import annotations

import asyncio
import hashlib
import io
import textwrap
import uuid

from PIL import Image, ImageDraw

from core.errors import CannotResume
from core.types import Background, GeneratedImage, ImageRequest, ImageResult, Partial, Progress
from core.vendors.base import ProgressCallback, SubmittedCallback
from core.vendors.preset import Preset
from core.vendors.shared import notify
from core.vendors.sizing import check_request


def _render(request: ImageRequest, width: int, height: int, index: int) -> GeneratedImage:
    digest = hashlib.sha256(f"{request.prompt}:{index}".encode()).digest()
    top, bottom = digest[:3], digest[3:6]
    img = Image.new("RGB", (width, height), tuple(top))
    draw = ImageDraw.Draw(img)
    band = max(1, height // 3)
    draw.rectangle((0, height - band, width, height), fill=tuple(bottom))
    if request.sources:
        # Show that an edit saw its source: paste a thumbnail of the first one.
        with Image.open(io.BytesIO(request.sources[0].data)) as src:
            src.thumbnail((width // 3, height // 3))
            img.paste(src.convert("RGB"), (width // 20, height // 20))
    label = "\n".join(textwrap.wrap(f"#{index + 1} {request.prompt}", 40)[:6])
    draw.multiline_text(
        (width // 20, height // 2), label, fill=(255, 255, 255), font_size=max(12, width // 32)
    )
    fmt = request.output_format.value if request.output_format else "png"
    out: Image.Image = img
    if request.background == Background.TRANSPARENT and fmt != "jpeg":
        out = img.convert("RGBA")
        out.putalpha(Image.new("L", img.size, 160))
    buf = io.BytesIO()
    if fmt == "png":
        out.save(buf, format="PNG", compress_level=1)
    else:
        out.save(buf, format=fmt.upper(), quality=90)
    return GeneratedImage(buf.getvalue(), fmt, width, height)


class MockVendor:
    def __init__(self, preset: Preset, *, latency: float = 1.0) -> None:
        self.preset = preset
        self.latency = latency

    async def run(
        self,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
        on_submitted: SubmittedCallback | None = None,
    ) -> ImageResult:
        size = check_request(self.preset, request)
        width, height = size.width or 1024, size.height or 1024
        ref = f"mock_{uuid.uuid4().hex[:12]}"
        if on_progress is not None and self.preset.partial_images:
            await asyncio.sleep(self.latency / 2)
            preview = await asyncio.to_thread(_render, request, width // 4, height // 4, 0)
            await notify(on_progress, Progress(stage="partial", partial=Partial(0, preview)))
            await asyncio.sleep(self.latency / 2)
        else:
            await asyncio.sleep(self.latency)
        images = await asyncio.to_thread(
            lambda: tuple(_render(request, width, height, i) for i in range(request.n))
        )
        return ImageResult(images=images, revised_prompt=None, usage=None, vendor_ref=ref)

    async def resume(
        self, vendor_ref: str, request: ImageRequest, *, on_progress: ProgressCallback | None = None
    ) -> ImageResult:
        raise CannotResume("the mock vendor keeps no tasks")

    async def aclose(self) -> None:
        return None
