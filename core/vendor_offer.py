"""What the configured vendors can do together: the options chat menus, slash-command
choices and inline flags offer with several vendors (``VENDORS``).

The offer is the primary's preset with its capabilities widened to the union of
every vendor's (sizes per tier, qualities, counts, input images, edits). It is a
vocabulary for users, never sent to a vendor: routing still asks each vendor's own
preset (``core.vendor_pool``), and a request only some vendor can do goes there.
With one vendor the offer is that vendor's preset itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.types import Quality, Resolution
from core.vendors.preset import Preset


def _ordered(values: Sequence[str], order: Sequence[str]) -> tuple[str, ...]:
    """``values`` without repeats, in ``order`` first, the rest as they came."""
    seen = dict.fromkeys(values)
    known = [v for v in order if v in seen]
    return (*known, *(v for v in seen if v not in order))


def offered(presets: Sequence[Preset]) -> Preset:
    if len(presets) == 1:
        return presets[0]
    primary = presets[0]
    tiers = _ordered([t for p in presets for t in p.sizes], [r.value for r in Resolution])
    sizes: dict[str, dict[str, str]] = {}
    for tier in tiers:
        merged: dict[str, str] = {}
        for preset in presets:
            for aspect, size in preset.sizes.get(tier, {}).items():
                merged.setdefault(aspect, size)
        sizes[tier] = merged
    editors = [p for p in presets if p.can_edit]
    generators = [p for p in presets if p.can_generate and p.generate_model]
    return replace(
        primary,
        sizes=sizes,
        qualities=_ordered([q for p in presets for q in p.qualities], [q.value for q in Quality]),
        n_max=max(p.n_max for p in presets),
        can_generate=bool(generators),
        generate_model=generators[0].generate_model if generators else None,
        can_edit=bool(editors),
        max_input_images=max((p.max_input_images for p in editors), default=0),
        max_prompt_chars=max(p.max_prompt_chars for p in presets),
        # Any vendor that fetches sources by URL needs the public file server.
        needs_public_urls=any(p.needs_public_urls for p in editors),
        supports_mask=any(p.supports_mask for p in editors),
        supports_background=any(p.supports_background for p in presets),
        output_formats=_ordered([f for p in presets for f in p.output_formats], ()),
    )
