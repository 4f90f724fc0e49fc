"""Built-in vendor presets: one per supported image service (OpenAI itself, three
OpenAI-compatible services, an envelope-style and an async-task service) plus a local
``mock``. Each ``description`` names the service a preset is meant for and its wire
style; ``imagine-bot doctor`` prints it. Prices are in credits; where a service
publishes no figure the defaults here are our estimate and an operator should copy
their console's."""

from __future__ import annotations

from core.vendors.preset import Preset, PriceTable

# gpt-image-2 token prices (as OpenAI and the b64 OpenAI-compatible service publish
# them) in credits per 1M tokens, at 1 credit = $0.001.
_TOKEN_PRICES = {
    "text_in_per_mtok": 5_000,
    "cached_text_in_per_mtok": 1_250,
    "image_in_per_mtok": 8_000,
    "image_out_per_mtok": 30_000,
}
# The per-image estimates those services publish (1 credit = $0.001), used as the hold.
_TOKEN_ESTIMATES = {
    "1024x1024:low": 6,
    "1024x1024:medium": 53,
    "1024x1024:high": 211,
    "1024x1536:low": 5,
    "1024x1536:medium": 41,
    "1024x1536:high": 165,
    "1536x1024:low": 5,
    "1536x1024:medium": 41,
    "1536x1024:high": 165,
    # "auto" may pick any of the above: hold the largest.
    "auto:low": 6,
    "auto:medium": 53,
    "auto:high": 211,
}
_SQUARE_AND_PORTRAIT = {"1K": {"1:1": "1024x1024", "2:3": "1024x1536", "3:2": "1536x1024"}}

OPENAI = Preset(
    name="openai",
    style="openai",
    base_url="https://api.openai.com",
    model="gpt-image-2",
    generate_model="gpt-image-2",
    description="OpenAI's own images API (api.openai.com): streaming, multipart edits",
    sizes={"1K": {**_SQUARE_AND_PORTRAIT["1K"], "auto": "auto"}},
    n_max=10,
    edit_shape="multipart",
    stream=True,
    partial_images=2,
    supports_mask=True,
    supports_background=True,
    price=PriceTable(mode="tokens", per_image=dict(_TOKEN_ESTIMATES), **_TOKEN_PRICES),
)

AIGPTIMAGE = Preset(
    name="aigptimage",
    style="tasks",
    base_url="https://aigptimage.com",
    model="gpt-image-2-image-to-image",
    description="aigptimage.com: asynchronous tasks (createTask, then poll recordInfo); edits only",
    generate_model=None,
    can_generate=False,
    size_mode="ratio_resolution",
    sizes={
        tier: {a: a for a in ("auto", "1:1", "4:5", "3:4", "2:3", "16:9", "9:16")}
        for tier in ("1K", "2K", "4K")
    },
    n_max=1,
    edit_shape="task_urls",
    max_prompt_chars=20_000,
    needs_public_urls=True,
    output_formats=("png", "jpeg", "webp"),
    # aigptimage.com prices by resolution; quality does not change the price.
    price=PriceTable(per_image={"1K": 6, "2K": 10, "4K": 16}),
)

GPTIMAGEAPI = Preset(
    name="gptimageapi",
    style="envelope",
    base_url="https://api.gptimageapi.dev",
    model="gpt-image-2",
    description="gptimageapi.dev: image edits in a code/data JSON envelope",
    generate_model=None,
    can_generate=False,
    size_mode="ratio",
    sizes={"1K": {a: a for a in ("1:1", "4:3", "16:9", "9:16", "2:1", "1:2")}},
    n_max=4,
    edit_shape="json_image",
    max_input_images=1,
    output_formats=(),
    price=PriceTable(per_image={"low": 2, "medium": 6, "high": 12}),
)

_SIZE_MATRIX = {
    "1K": {
        "4:3": "1024x768",
        "3:4": "768x1024",
        "1:1": "1024x1024",
        "16:9": "1536x864",
        "9:16": "864x1536",
    },
    "2K": {"16:9": "1920x1080", "9:16": "1080x1920", "1:1": "1536x1536"},
    "4K": {"1:1": "2048x2048", "16:9": "3840x2160", "9:16": "2160x3840"},
}


def _matrix_prices() -> dict[str, int]:
    # The size-matrix service bills size x quality x n without publishing figures;
    # scale the 1K token estimates by pixel count so a bigger picture never costs less.
    base = {"low": 6, "medium": 53, "high": 211}
    prices: dict[str, int] = {}
    for sizes in _SIZE_MATRIX.values():
        for size in sizes.values():
            w, h = (int(v) for v in size.split("x"))
            factor = max(1.0, (w * h) / (1024 * 1024))
            for quality, credits in base.items():
                prices[f"{size}:{quality}"] = round(credits * factor)
    return prices


COMPAT_SIZES = Preset(
    name="compat-sizes",
    style="openai",
    # A self-hosted or reseller gateway with no fixed address: VENDOR_BASE_URL is required.
    base_url="",
    model="gpt-image-2",
    generate_model="gpt-image-2",
    description=(
        "an OpenAI-compatible gateway with a 1K/2K/4K size matrix and JSON image edits "
        "(at VENDOR_BASE_URL)"
    ),
    sizes=_SIZE_MATRIX,
    n_max=8,
    edit_shape="json_image",
    max_input_images=1,
    response_format="url",
    output_formats=("png", "jpeg", "webp"),
    price=PriceTable(per_image=_matrix_prices()),
)

COMPAT_B64 = Preset(
    name="compat-b64",
    style="openai",
    # A self-hosted or reseller gateway with no fixed address: VENDOR_BASE_URL is required.
    base_url="",
    model="gpt-image-2",
    generate_model="gpt-image-2",
    description=(
        "an OpenAI-compatible gateway answering in b64, with JSON images[] edits "
        "(at VENDOR_BASE_URL)"
    ),
    sizes={"1K": {**_SQUARE_AND_PORTRAIT["1K"], "auto": "auto"}},
    n_max=10,
    edit_shape="json_images",
    supports_mask=False,
    supports_background=True,
    output_formats=("png", "jpeg"),
    price=PriceTable(mode="tokens", per_image=dict(_TOKEN_ESTIMATES), **_TOKEN_PRICES),
)

AIEARTH = Preset(
    name="aiearth",
    style="openai",
    base_url="https://api.aiearth.dev/v1",
    model="gpt-image-2",
    generate_model="gpt-image-2",
    description="aiearth.dev: OpenAI-compatible, url or b64, streaming, multipart image[] edits",
    sizes={"1K": {**_SQUARE_AND_PORTRAIT["1K"], "auto": "auto"}},
    n_max=4,
    edit_shape="multipart",
    stream=True,
    partial_images=2,
    max_input_images=16,
    supports_mask=True,
    supports_background=True,
    price=PriceTable(mode="tokens", per_image=dict(_TOKEN_ESTIMATES), **_TOKEN_PRICES),
)

MOCK = Preset(
    name="mock",
    style="mock",
    base_url="",
    model="mock",
    generate_model="mock",
    description="the built-in mock: placeholder images drawn locally; no key, no network",
    sizes={
        "1K": {
            "1:1": "1024x1024",
            "3:2": "1536x1024",
            "2:3": "1024x1536",
            "16:9": "1536x864",
            "9:16": "864x1536",
            "4:3": "1024x768",
            "3:4": "768x1024",
        },
        "2K": {"1:1": "1536x1536", "16:9": "1920x1080", "9:16": "1080x1920"},
        "4K": {"1:1": "2048x2048", "16:9": "3840x2160", "9:16": "2160x3840"},
    },
    n_max=4,
    edit_shape="multipart",
    stream=True,
    partial_images=1,
    supports_mask=True,
    supports_background=True,
    price=PriceTable(
        per_image={
            "low": 1,
            "medium": 2,
            "high": 4,
            "2K:low": 2,
            "2K:medium": 4,
            "2K:high": 8,
            "4K:low": 4,
            "4K:medium": 8,
            "4K:high": 16,
        }
    ),
)

PRESETS: dict[str, Preset] = {
    p.name: p for p in (OPENAI, AIGPTIMAGE, GPTIMAGEAPI, COMPAT_SIZES, COMPAT_B64, AIEARTH, MOCK)
}
