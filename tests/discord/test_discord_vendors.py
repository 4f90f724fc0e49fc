"""Several vendors (``VENDORS``) behind the Discord bot: the slash commands it
registers offer the choices any configured vendor can do, not only the first's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.bootstrap import build_app
from core.settings import load_settings
from tests.fakes.discord_api import FakeDiscord

from .conftest import APP_ID, base_env, running

# The first vendor: 1K square only, two images at most; the second: the full matrix.
CONFIG = """
[vendors.first]
preset = "compat-sizes"
n_max = 2
qualities = ["medium"]
[vendors.first.sizes]
"1K" = {"1:1" = "1024x1024"}

[vendors.second]
preset = "compat-sizes"
"""


def _choices(commands: list[dict[str, Any]], command: str, option: str) -> list[Any]:
    found = next(c for c in commands if c["name"] == command)
    opt = next(o for o in found["options"] if o["name"] == option)
    return [c["value"] for c in opt.get("choices", [])]


async def test_slash_choices_are_the_union_of_the_vendors(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    config = tmp_path / "vendors.toml"
    config.write_text(CONFIG)
    env = base_env(
        tmp_path,
        VENDORS="first,second",
        VENDOR_CONFIG=str(config),
        VENDOR_FIRST_BASE_URL="http://127.0.0.1:9",
        VENDOR_FIRST_API_KEY="sk-first",
        VENDOR_SECOND_BASE_URL="http://127.0.0.1:9",
        VENDOR_SECOND_API_KEY="sk-second",
    )
    async with (
        build_app(load_settings(env, env_file=None), sweep=False) as app,
        running(fake, app),
    ):
        pass
    [put] = fake.calls_to(f"/applications/{APP_ID}/commands", "PUT")
    commands = put.json
    assert _choices(commands, "imagine", "resolution") == ["1K", "2K", "4K"]
    assert _choices(commands, "imagine", "quality") == ["low", "medium", "high"]
    assert _choices(commands, "imagine", "count") == list(range(1, 9))
    assert "16:9" in _choices(commands, "imagine", "aspect")
