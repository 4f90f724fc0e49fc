"""Command sync at start only when the definitions changed; ``imagine-bot discord
sync`` always syncs; no voice-library warnings at start."""

from __future__ import annotations

import logging
from pathlib import Path

import discord
import pytest

from bots.discord import sync_commands
from bots.discord._bot import COMMANDS_HASH_FLAG
from core.bootstrap import build_app
from core.settings import load_settings
from tests.fakes.discord_api import FakeDiscord

from .conftest import APP_ID, GUILD_ID, base_env, running


def _puts(fake: FakeDiscord, path: str) -> int:
    return len(fake.calls_to(path, "PUT"))


async def test_a_second_start_does_not_overwrite_unchanged_commands(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    settings = load_settings(base_env(tmp_path), env_file=None)
    global_path = f"/applications/{APP_ID}/commands"
    async with build_app(settings, sweep=False) as app:
        async with running(fake, app) as bot:
            assert bot.sync_summary.startswith("Synced")
        assert _puts(fake, global_path) == 1
        async with app.store.read() as tx:
            assert await app.store.flags.get(tx, COMMANDS_HASH_FLAG)

        async with running(fake, app) as bot:
            assert "unchanged" in bot.sync_summary
        assert _puts(fake, global_path) == 1  # no bulk overwrite the second time

        # The operator's explicit sync always goes out.
        assert "globally" in await sync_commands(app)
        assert _puts(fake, global_path) == 2


async def test_changed_guilds_sync_again(fake: FakeDiscord, tmp_path: Path) -> None:
    guild_path = f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"
    global_path = f"/applications/{APP_ID}/commands"
    first = load_settings(base_env(tmp_path), env_file=None)
    async with build_app(first, sweep=False) as app, running(fake, app):
        pass
    assert _puts(fake, global_path) == 1 and _puts(fake, guild_path) == 0
    # Same database, now with a guild: the hash covers where commands go.
    second = load_settings(base_env(tmp_path, DISCORD_GUILD_IDS=GUILD_ID), env_file=None)
    async with build_app(second, sweep=False) as app, running(fake, app) as bot:
        assert bot.sync_summary.startswith("Synced")
    assert _puts(fake, guild_path) == 1


async def test_no_voice_library_warnings_at_start(
    fake: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert discord.VoiceClient.warn_nacl is False
    settings = load_settings(base_env(tmp_path), env_file=None)
    caplog.set_level(logging.WARNING)
    async with build_app(settings, sweep=False) as app, running(fake, app):
        pass
    voice = [r for r in caplog.records if "voice will NOT be supported" in r.getMessage()]
    assert voice == []
