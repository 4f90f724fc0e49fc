"""Prices in credits that mirror the vendor's billing: quality and size tiers (or the
vendor's token prices) times the image count, plus the operator's markup.

The hold is the most a job can cost; the charge is the actual cost, from the
vendor's reported ``usage`` where it bills by token, never more than the hold.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from core.errors import ConfigError
from core.types import ImageRequest, Usage
from core.vendors.preset import Preset, PriceTable
from core.vendors.sizing import VendorSize, check_request

log = logging.getLogger(__name__)

# Upper bound of input tokens per source image at high input fidelity.
_SOURCE_IMAGE_TOKENS = 6_500
# Reported output below this share of the tokens the per-image estimate stands for
# cannot have produced an image of that size and quality (real usage sits near half).
_MIN_OUTPUT_SHARE = 0.25


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
        image_tokens = _SOURCE_IMAGE_TOKENS * (request.source_count + request.has_mask)
        input_estimate = _with_markup(
            (text_tokens * table.text_in_per_mtok + image_tokens * table.image_in_per_mtok)
            / 1_000_000,
            table,
        )
    return Quote(per_image, request.n, size, input_estimate)


def _min_output_tokens(table: PriceTable, q: Quote) -> int:
    """The fewest output tokens one delivered image can plausibly have cost: a share
    of the tokens the per-image estimate stands for. Below that the reported usage
    does not explain the images and is not believed."""
    if table.image_out_per_mtok <= 0:
        return 1
    base_credits = q.per_image * 100 / (100 + max(0, table.markup_percent))
    estimate_tokens = base_credits * 1_000_000 / table.image_out_per_mtok
    return max(1, int(estimate_tokens * _MIN_OUTPUT_SHARE))


def _token_cost(preset: Preset, q: Quote, usage: Usage | None, delivered: int) -> int:
    table = preset.price
    estimate = q.per_image * delivered
    if usage is None:
        log.warning(
            "%s reported no usage for %d image(s); charging the per-image estimate %d",
            preset.name,
            delivered,
            estimate,
        )
        return estimate
    u = usage.clamped()
    needed = _min_output_tokens(table, q) * delivered
    if u.output_tokens < needed:
        log.warning(
            "%s usage (input %d, output %d, total %d tokens) cannot explain %d image(s) "
            "of %s, which need at least %d output tokens; charging the per-image estimate %d",
            preset.name,
            u.input_tokens,
            u.output_tokens,
            u.total_tokens,
            delivered,
            q.size.size,
            needed,
            estimate,
        )
        return estimate
    text_in = u.input_text_tokens or max(0, u.input_tokens - u.input_image_tokens)
    credits = (
        text_in * table.text_in_per_mtok
        + u.cached_text_tokens * table.cached_text_in_per_mtok
        + u.input_image_tokens * table.image_in_per_mtok
        + u.output_tokens * table.image_out_per_mtok
    ) / 1_000_000
    return _with_markup(credits, table)


def actual_cost(preset: Preset, q: Quote, usage: Usage | None, delivered: int) -> int:
    """What the user pays for ``delivered`` images: never negative, never above the
    hold, and never an exception, whatever ``usage`` a vendor sent."""
    if delivered <= 0:
        return 0
    if preset.price.mode == "tokens":
        cost = _token_cost(preset, q, usage, delivered)
    else:
        cost = q.per_image * delivered
    return max(0, min(cost, q.hold))
