"""Image inputs and vendor outputs: animated files are refused (only frame 0 would be
checked), and an output whose header claims too many pixels is a vendor fault, not
a decode that eats the host's memory."""

from __future__ import annotations

import io
import warnings

import pytest
from PIL import Image

from core.errors import InvalidRequest, VendorUnavailable
from core.images import (
    MAX_OUTPUT_PIXELS,
    ImageLimits,
    inspect_source,
    load_sources,
    read_output,
    read_outputs,
)
from core.messages import Messages
from tests.fakes.images import decompression_bomb_png, png_bytes, render


def _animated(fmt: str, frames: int = 3) -> bytes:
    images = [Image.new("RGB", (32, 32), (i * 80, 40, 200 - i * 60)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, fmt, save_all=True, append_images=images[1:], duration=100, loop=0)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
async def test_animated_inputs_are_refused(fmt: str) -> None:
    data = _animated(fmt)
    with pytest.raises(InvalidRequest) as caught:
        await load_sources([(data, None)], ImageLimits())
    assert caught.value.params["kind"] == "animated"
    for locale in ("en", "zh"):
        sentence = Messages().error(caught.value, locale)
        assert sentence != "invalid.animated" and "{" not in sentence


def test_animated_gif_and_stills() -> None:
    with pytest.raises(InvalidRequest):  # GIF is no input format at all
        inspect_source(_animated("GIF"), ImageLimits())
    one_frame = _animated("WEBP", frames=1)
    assert inspect_source(one_frame, ImageLimits()).mime == "image/webp"
    assert inspect_source(png_bytes(), ImageLimits()).width == 64


@pytest.mark.parametrize(("width", "height"), [(10_000, 6_000), (12_000, 12_000)])
async def test_an_output_over_the_pixel_cap_is_a_vendor_fault(width: int, height: int) -> None:
    assert width * height > MAX_OUTPUT_PIXELS
    bomb = decompression_bomb_png(width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(VendorUnavailable) as caught:
            await read_outputs([render(64, 64), bomb])
    assert caught.value.maybe_billed  # the vendor produced (and billed) something


def test_4k_outputs_still_pass() -> None:
    image = read_output(render(4096, 4096))
    assert (image.width, image.height) == (4096, 4096)
