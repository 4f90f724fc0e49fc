"""Prices mirror each vendor's bill: per quality, per size (non-square sizes too),
per resolution tier or per token, times the count, plus the markup."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import Unsupported
from core.pricing import Quote, actual_cost, quote
from core.types import ImageRequest, Quality, Resolution, SourceImage, Usage
from core.vendors.openai_compat import parse_usage
from core.vendors.preset import Preset
from core.vendors.presets import PRESETS


def _req(**kw: object) -> ImageRequest:
    return ImageRequest(prompt="p", **kw)


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
    return quote(preset, _req(aspect=aspect)).size.size


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


# --- usage a vendor cannot be trusted with ----------------------------------------------


def _high_pair() -> tuple[Preset, Quote]:
    preset = PRESETS["compat-b64"]
    return preset, quote(preset, _req(quality=Quality.HIGH, n=2))


@pytest.mark.parametrize(
    "raw",
    [
        {"total_tokens": 5000},  # a total alone prices nothing
        {"input_tokens": 40, "output_tokens": -4160, "total_tokens": 4200},
        {"input_tokens": 40, "output_tokens": 0, "total_tokens": 40},
        {"input_tokens": 40, "output_tokens": 3, "total_tokens": 43},  # far below an image
        {"output_tokens": float("nan")},
        {"output_tokens": "lots"},
        {},
    ],
)
def test_usage_that_cannot_explain_the_images_charges_the_estimate(
    raw: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    preset, q = _high_pair()
    usage = parse_usage(raw)
    with caplog.at_level("WARNING", logger="core.pricing"):
        cost = actual_cost(preset, q, usage, delivered=2)
    assert cost == 422  # 2 x the per-image estimate, as with no usage at all
    assert any(r.levelname == "WARNING" for r in caplog.records)


def test_missing_usage_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    preset, q = _high_pair()
    with caplog.at_level("WARNING", logger="core.pricing"):
        assert actual_cost(preset, q, None, delivered=1) == 211
    assert "no usage" in caplog.text


def test_chat_style_usage_names_are_priced() -> None:
    preset, q = _high_pair()
    usage = parse_usage({"prompt_tokens": 40, "completion_tokens": 4160, "total_tokens": 4200})
    assert usage is not None and usage.output_tokens == 4160 and usage.input_tokens == 40
    assert actual_cost(preset, q, usage, delivered=2) == 125


@pytest.mark.parametrize(
    "value", [10**30, float("inf"), float("-inf"), 1e300, -(10**30), 2.5, True, "9" * 40]
)
def test_absurd_numbers_never_raise_nor_exceed_the_hold(value: object) -> None:
    preset, q = _high_pair()
    raw = {
        "input_tokens": value,
        "output_tokens": value,
        "total_tokens": value,
        "input_tokens_details": {"text_tokens": value, "image_tokens": value},
    }
    usage = parse_usage(raw)
    assert usage is not None
    assert all(0 <= getattr(usage, f) <= 10**9 for f in usage.__slots__)
    cost = actual_cost(preset, q, usage, delivered=2)
    assert 0 <= cost <= q.hold


def test_a_usage_built_by_hand_is_clamped_too() -> None:
    preset, q = _high_pair()
    bad = Usage(input_tokens=-5, output_tokens=float("inf"), total_tokens=-1)
    assert actual_cost(preset, q, bad, delivered=2) == 422
    huge = Usage(output_tokens=10**40, input_text_tokens=-(10**40))
    assert actual_cost(preset, q, huge, delivered=2) == q.hold


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
_usage_dicts = st.dictionaries(
    st.sampled_from(
        [
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "prompt_tokens",
            "completion_tokens",
            "input_tokens_details",
            "prompt_tokens_details",
        ]
    ),
    st.one_of(
        _json_scalars,
        st.dictionaries(
            st.sampled_from(["text_tokens", "image_tokens", "cached_tokens"]), _json_scalars
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(raw=_usage_dicts, delivered=st.integers(min_value=-2, max_value=12))
def test_actual_cost_never_raises_for_any_usage_dict(
    raw: dict[str, object], delivered: int
) -> None:
    for name in ("compat-b64", "openai", "aiearth", "gptimageapi"):
        preset = PRESETS[name]
        sources = (SRC,) if not preset.can_generate else ()
        q = quote(preset, _req(quality=Quality.HIGH, n=min(2, preset.n_max), sources=sources))
        cost = actual_cost(preset, q, parse_usage(raw), delivered)
        assert 0 <= cost <= q.hold
