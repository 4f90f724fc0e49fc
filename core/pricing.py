"""Prices in credits that mirror the vendor's billing: quality and size tiers (or the
vendor's token prices) times the image count, plus the operator's markup.

The hold is the most a job can cost; the charge is the actual cost, from the
vendor's reported ``usage`` where it bills by token, never more than the hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import ConfigError
from core.types import ImageRequest, Usage
from core.vendors.preset import Preset, PriceTable
from core.vendors.sizing import VendorSize, check_request

# Upper bound of input tokens per source image at high input fidelity.
_SOURCE_IMAGE_TOKENS = 6_500


@dataclass(frozen=True, slots=True)
class Quote:
    per_image: int
    n: int
    size: VendorSize
    # Token vendors also bill the prompt and source images once per request.
    input_estimate: int = 0

    @property
    def hold(self) -> int:
        return self.per_image * self.n + self.input_estimate


def _with_markup(credits: float, table: PriceTable) -> int:
    # Round up: a fraction of a credit is the operator's, never given away.
    return max(0, math.ceil(credits * (100 + table.markup_percent) / 100 - 1e-9))


def per_image_price(preset: Preset, size: VendorSize, quality: str) -> int:
    table = preset.price.per_image
    for key in (
        f"{size.size}:{quality}",
        f"{size.tier}:{quality}",
        size.tier,
        quality,
        "*",
    ):
        if key in table:
            return _with_markup(table[key], preset.price)
    raise ConfigError(
        f"the price table of {preset.name} has no entry for {size.size} {quality}",
        setting="VENDOR_CONFIG",
    )


def quote(preset: Preset, request: ImageRequest) -> Quote:
    """Checks the request against the preset, then prices it."""
    size = check_request(preset, request)
    per_image = per_image_price(preset, size, request.quality.value)
    input_estimate = 0
    if preset.price.mode == "tokens":
        table = preset.price
        text_tokens = len(request.prompt) // 2 + 16  # generous: CJK runs ~1 token per char
        image_tokens = _SOURCE_IMAGE_TOKENS * (len(request.sources) + (request.mask is not None))
        input_estimate = _with_markup(
            (text_tokens * table.text_in_per_mtok + image_tokens * table.image_in_per_mtok)
            / 1_000_000,
            table,
        )
    return Quote(per_image, request.n, size, input_estimate)


def actual_cost(preset: Preset, q: Quote, usage: Usage | None, delivered: int) -> int:
    """What the user pays for ``delivered`` images; never above the hold."""
    if delivered <= 0:
        return 0
    table = preset.price
    if table.mode == "tokens" and usage is not None and usage.total_tokens > 0:
        text_in = usage.input_text_tokens or max(0, usage.input_tokens - usage.input_image_tokens)
        credits = (
            text_in * table.text_in_per_mtok
            + usage.cached_text_tokens * table.cached_text_in_per_mtok
            + usage.input_image_tokens * table.image_in_per_mtok
            + usage.output_tokens * table.image_out_per_mtok
        ) / 1_000_000
        cost = _with_markup(credits, table)
    else:
        cost = q.per_image * delivered
    return min(cost, q.hold)
