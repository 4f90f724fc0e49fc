"""``run_discord`` and ``sync_commands``: the entry points ``imagine-bot`` calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bots.discord import run_discord, sync_commands
from core.bootstrap import build_app
from core.settings import load_settings
from tests.fakes.discord_api import FakeDiscord

from .conftest import APP_ID, GUILD_ID, base_env


async def test_run_discord_syncs_to_guilds_and_stops(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = load_settings(base_env(tmp_path, DISCORD_GUILD_IDS=GUILD_ID), env_file=None)
    stop = asyncio.Event()
    async with build_app(settings, sweep=False) as app:
        task = asyncio.create_task(run_discord(app, stop))
        await fake.wait_ready()
        assert fake.calls_to(f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands", "PUT")
        assert not fake.calls_to(f"/applications/{APP_ID}/commands", "PUT")
        names = {c["name"] for c in fake.guild_commands[GUILD_ID]}
        assert {"imagine", "Edit image", "credits"} <= names
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_sync_commands_globally(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = load_settings(base_env(tmp_path), env_file=None)
    async with build_app(settings, sweep=False) as app:
        summary = await sync_commands(app)
    assert "globally" in summary
    assert {c["name"] for c in fake.global_commands} >= {"imagine", "balance", "settings"}
    assert fake.identify is None  # no gateway connection needed
