"""What a vendor preset is: plain data describing a vendor's wire style, vocabulary,
limits and prices. Built-in presets live in ``presets.py``; an operator overrides
any field from a TOML file (``VENDOR_CONFIG``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

WireStyle = Literal["openai", "envelope", "tasks", "mock"]
# How the user's (aspect, resolution tier) becomes the vendor's ``size`` vocabulary.
SizeMode = Literal["pixels", "ratio", "ratio_resolution"]
EditShape = Literal["json_image", "json_images", "multipart", "task_urls"]
PriceMode = Literal["per_image", "tokens"]


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices in integer credits.

    ``per_image`` keys are looked up most specific first:
    ``"<vendor size>:<quality>"``, ``"<tier>:<quality>"``, ``"<tier>"``, ``"<quality>"``, ``"*"``.
    For ``tokens`` vendors ``per_image`` holds the per-image estimate used as the hold,
    and the ``*_per_mtok`` fields price the ``usage`` the vendor reports.
    """

    mode: PriceMode = "per_image"
    per_image: dict[str, int] = field(default_factory=dict)
    text_in_per_mtok: int = 0
    cached_text_in_per_mtok: int = 0
    image_in_per_mtok: int = 0
    image_out_per_mtok: int = 0
    markup_percent: int = 0


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    style: WireStyle
    base_url: str
    model: str
    # The service this preset is meant for and its wire style, in a few words.
    description: str = ""
    # Model used for text-to-image; None when the vendor only edits (aigptimage,
    # gptimageapi).
    generate_model: str | None = None
    can_generate: bool = True
    can_edit: bool = True
    size_mode: SizeMode = "pixels"
    # pixels: tier -> aspect -> "WxH"; ratio modes: tier -> aspect -> vendor string.
    sizes: dict[str, dict[str, str]] = field(default_factory=dict)
    qualities: tuple[str, ...] = ("low", "medium", "high")
    n_max: int = 4
    edit_shape: EditShape = "multipart"
    # What to ask for; None sends no response_format (the vendor's default).
    response_format: Literal["url", "b64_json"] | None = None
    stream: bool = False
    partial_images: int = 0
    max_input_images: int = 16
    max_prompt_chars: int = 32000
    needs_public_urls: bool = False
    supports_mask: bool = False
    supports_background: bool = False
    output_formats: tuple[str, ...] = ("png", "jpeg", "webp")
    default_output_format: str | None = None
    # Seconds. ``request_timeout`` bounds one HTTP exchange with the vendor (image
    # generation is slow); ``task_deadline`` bounds polling an async task.
    connect_timeout: float = 10.0
    request_timeout: float = 300.0
    task_deadline: float = 600.0
    poll_initial: float = 2.0
    poll_max: float = 15.0
    max_retries: int = 3
    retry_after_cap: float = 30.0
    price: PriceTable = field(default_factory=PriceTable)

    def aspects(self, tier: str | None = None) -> tuple[str, ...]:
        tiers = [tier] if tier else list(self.sizes)
        seen: dict[str, None] = {}
        for t in tiers:
            for aspect in self.sizes.get(t, {}):
                seen[aspect] = None
        return tuple(seen)

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(self.sizes)
