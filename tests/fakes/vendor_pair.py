"""Two fake OpenAI-style vendors configured as ``VENDORS=first,second``: the
settings a frontend test needs to run the bot against both, in failover order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.fakes.vendor_openai import FakeOpenAIVendor

FIRST_PRICE = 40
SECOND_PRICE = 25
# The first vendor is the dearer one, so the hold covers it and a job the second
# serves is charged less than was held.
PRICED = f"""
[vendors.first]
preset = "compat-sizes"
[vendors.first.price.per_image]
"1024x1024:medium" = {FIRST_PRICE}

[vendors.second]
preset = "compat-sizes"
[vendors.second.price.per_image]
"1024x1024:medium" = {SECOND_PRICE}
"""
# The first vendor: 1K square only, two images at most; the second: the full matrix.
NARROW_FIRST = PRICED.replace(
    '[vendors.first]\npreset = "compat-sizes"\n',
    '[vendors.first]\npreset = "compat-sizes"\nn_max = 2\n'
    '[vendors.first.sizes]\n"1K" = {"1:1" = "1024x1024"}\n',
)


@contextlib.asynccontextmanager
async def vendor_pair() -> AsyncIterator[tuple[FakeOpenAIVendor, FakeOpenAIVendor]]:
    async with (
        FakeOpenAIVendor(flavor="compat-sizes", key="sk-first-key") as first,
        FakeOpenAIVendor(flavor="compat-sizes", key="sk-second-key") as second,
    ):
        yield first, second


def pair_settings(
    folder: Path, config: str, first: FakeOpenAIVendor, second: FakeOpenAIVendor
) -> dict[str, str]:
    """The settings naming both vendors, with ``config`` as the VENDOR_CONFIG file."""
    path = folder / "vendors.toml"
    path.write_text(config)
    return {
        "VENDOR": "",
        "VENDORS": "first,second",
        "VENDOR_CONFIG": str(path),
        "VENDOR_FIRST_BASE_URL": first.base_url,
        "VENDOR_FIRST_API_KEY": first.key,
        "VENDOR_SECOND_BASE_URL": second.base_url,
        "VENDOR_SECOND_API_KEY": second.key,
    }
