"""Prices mirror each vendor's bill: per quality, per size (non-square sizes too),
per resolution tier or per token, times the count, plus the markup."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.errors import Unsupported
from core.pricing import actual_cost, quote
from core.types import ImageRequest, Quality, Resolution, SourceImage, Usage
from core.vendors.presets import PRESETS


def _req(**kw: object) -> ImageRequest:
    return ImageRequest(prompt="p", **kw)  # type: ignore[arg-type]


SRC = SourceImage(b"x", "image/png", 10, 10, "https://cdn.test/a.png")


@pytest.mark.parametrize(("quality", "each"), [("low", 2), ("medium", 6), ("high", 12)])
def test_seed_001_per_quality_times_n(quality: str, each: int) -> None:
    q = quote(PRESETS["gptimageapi"], _req(sources=(SRC,), quality=Quality(quality), n=3))
    assert q.hold == each * 3


def test_seed_002_prices_the_actual_size_not_the_square() -> None:
    preset = PRESETS["compat-sizes"]
    square = quote(preset, _req(aspect="1:1", quality=Quality.HIGH)).hold
    wide = quote(preset, _req(aspect="16:9", quality=Quality.HIGH)).hold
    tall = quote(preset, _req(aspect="9:16", quality=Quality.HIGH)).hold
    uhd = quote(preset, _req(aspect="16:9", resolution=Resolution.R4K, quality=Quality.HIGH)).hold
    assert q_size(preset, "16:9") == "1536x864"
    assert wide == tall > square and uhd > wide
    assert (
        quote(preset, _req(aspect="16:9", n=4)).hold == 4 * quote(preset, _req(aspect="16:9")).hold
    )


def q_size(preset: object, aspect: str) -> str:
    return quote(preset, _req(aspect=aspect)).size.size  # type: ignore[arg-type]


def test_seed_000_prices_by_resolution_tier() -> None:
    preset = PRESETS["aigptimage"]
    tiers = [quote(preset, _req(sources=(SRC,), resolution=r)).hold for r in Resolution]
    assert tiers == sorted(tiers) and len(set(tiers)) == 3


def test_token_vendor_holds_the_estimate_and_charges_usage() -> None:
    preset = PRESETS["compat-b64"]
    q = quote(preset, _req(quality=Quality.HIGH, n=2))
    assert q.per_image == 211 and q.hold >= 422
    usage = Usage(input_tokens=40, input_text_tokens=40, output_tokens=4160, total_tokens=4200)
    cost = actual_cost(preset, q, usage, delivered=2)
    assert cost == 125  # 40 * 5000/1e6 + 4160 * 30000/1e6 = 124.999..., rounded up
    assert actual_cost(preset, q, None, delivered=2) == 422  # no usage: the estimate
    huge = Usage(output_tokens=10**8, total_tokens=10**8)
    assert actual_cost(preset, q, huge, delivered=2) == q.hold  # never above the hold
    assert actual_cost(preset, q, usage, delivered=0) == 0


def test_markup_rounds_up() -> None:
    preset = PRESETS["gptimageapi"]
    marked = replace(preset, price=replace(preset.price, markup_percent=10))
    assert quote(marked, _req(sources=(SRC,), quality=Quality.LOW)).hold == 3  # 2.2 -> 3


def test_unsupported_is_refused_before_pricing() -> None:
    with pytest.raises(Unsupported) as caught:
        quote(PRESETS["compat-b64"], _req(resolution=Resolution.R2K))
    assert caught.value.params["supported"] == "1K"
