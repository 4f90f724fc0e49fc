"""Translate what a user asks for into a preset's vocabulary, refusing before any
call what the vendor cannot do and saying what it can."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import Unsupported
from core.types import ImageRequest
from core.vendors.preset import Preset


@dataclass(frozen=True, slots=True)
class VendorSize:
    tier: str
    aspect: str
    # The value sent as ``size`` (pixels "1536x864" or a ratio "16:9").
    size: str
    width: int | None
    height: int | None


def resolve_size(preset: Preset, aspect: str, tier: str) -> VendorSize:
    tier_sizes = preset.sizes.get(tier)
    if tier_sizes is None:
        raise Unsupported(
            f"resolution {tier} is not offered by {preset.name}",
            option="resolution",
            value=tier,
            supported=", ".join(preset.tiers),
        )
    size = tier_sizes.get(aspect)
    if size is None:
        raise Unsupported(
            f"aspect {aspect} at {tier} is not offered by {preset.name}",
            option="aspect",
            value=aspect,
            supported=", ".join(tier_sizes),
        )
    width = height = None
    if preset.size_mode == "pixels" and "x" in size:
        w, h = size.split("x", 1)
        width, height = int(w), int(h)
    return VendorSize(tier=tier, aspect=aspect, size=size, width=width, height=height)


def check_request(preset: Preset, request: ImageRequest) -> VendorSize:
    """Everything a preset refuses, checked without touching the network."""
    if request.is_edit and not preset.can_edit:
        raise Unsupported(f"{preset.name} cannot edit images", kind="edit_unavailable")
    if not request.is_edit and not (preset.can_generate and preset.generate_model):
        raise Unsupported(f"{preset.name} only edits images", kind="generate_unavailable")
    if not 1 <= request.n <= preset.n_max:
        raise Unsupported(
            f"n={request.n} outside 1..{preset.n_max}",
            option="count",
            value=str(request.n),
            supported=f"1-{preset.n_max}",
        )
    if request.quality.value not in preset.qualities:
        raise Unsupported(
            f"quality {request.quality}",
            option="quality",
            value=request.quality.value,
            supported=", ".join(preset.qualities),
        )
    if request.source_count > preset.max_input_images:
        raise Unsupported(
            f"{request.source_count} input images",
            option="images",
            value=str(request.source_count),
            supported=str(preset.max_input_images),
        )
    if request.has_mask and not preset.supports_mask:
        raise Unsupported("mask", option="mask", value="mask", supported="no mask")
    if (
        request.output_format is not None
        and request.output_format.value not in preset.output_formats
    ):
        raise Unsupported(
            f"format {request.output_format}",
            option="format",
            value=request.output_format.value,
            supported=", ".join(preset.output_formats) or "the vendor's default",
        )
    if len(request.prompt) > preset.max_prompt_chars:
        raise Unsupported(
            f"prompt of {len(request.prompt)} characters",
            option="prompt",
            value=str(len(request.prompt)),
            supported=str(preset.max_prompt_chars),
        )
    return resolve_size(preset, request.aspect, request.resolution.value)
