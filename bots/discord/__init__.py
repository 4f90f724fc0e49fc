"""The Discord frontend: slash commands, the "Edit image" context menu, mention
replies, persistent result buttons and admin commands over the core facade.

Entry points: ``run_discord`` (gateway, handlers and delivery: ``imagine-bot run``),
``discord_delivery`` (delivery only, over HTTP, for a worker process without a
gateway connection) and ``sync_commands``. Everything else in
this package is private.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import discord

from core import redaction
from core.app import Imagine
from core.errors import ConfigError

from ._bot import ImagineBot, build_bot
from ._frontend import DiscordFrontend
from ._users import PLATFORM

__all__ = [
    "DiscordFrontend",
    "build_bot",
    "discord_delivery",
    "run_discord",
    "sync_commands",
]

log = logging.getLogger(__name__)


def _token(app: Imagine) -> str:
    token = app.settings.discord_token
    if not token:
        raise ConfigError("DISCORD_BOT_TOKEN is not set.", setting="DISCORD_BOT_TOKEN")
    # discord.py logs gateway and HTTP failures; whoever started logging, scrub it.
    redaction.add_secrets(token)
    redaction.install()
    return token


async def _login(bot: discord.Client, token: str) -> None:
    try:
        await bot.login(token)
    except discord.LoginFailure:
        raise ConfigError(
            "Discord refused DISCORD_BOT_TOKEN; copy the bot token again from the "
            "developer portal.",
            setting="DISCORD_BOT_TOKEN",
        ) from None


async def run_discord(app: Imagine, stop: asyncio.Event) -> None:
    """Log in, sync commands, stay connected until ``stop`` is set, then close."""
    token = _token(app)
    bot = build_bot(app)
    async with bot:
        await _login(bot, token)
        connection = asyncio.create_task(bot.connect(reconnect=True), name="discord-gateway")
        # Deliveries go over REST, which works once logged in: finish what a previous
        # run left for Discord.
        await app.sweep(PLATFORM)
        stopping = asyncio.create_task(stop.wait(), name="discord-stop")
        try:
            await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await connection
        if connection.done() and not connection.cancelled():
            error = connection.exception()
            if isinstance(error, discord.PrivilegedIntentsRequired):
                raise ConfigError(
                    "DISCORD_MENTION_REPLIES needs the Message Content intent: enable it "
                    "under Bot -> Privileged Gateway Intents in the developer portal.",
                    setting="DISCORD_MENTION_REPLIES",
                )
            if error is not None:
                raise error


@contextlib.asynccontextmanager
async def discord_delivery(app: Imagine) -> AsyncIterator[DiscordFrontend]:
    """Deliver Discord jobs from this process without a gateway connection (the
    ``imagine-bot worker`` process): log in over HTTP only, register the frontend
    with ``app`` (its worker starts claiming Discord jobs), yield it, and close the
    client on the way out. Status edits, source downloads, results and notices all
    go over REST; the buttons on delivered results are answered by whichever
    process runs ``run_discord``."""
    token = _token(app)
    client = discord.Client(intents=discord.Intents.none())
    try:
        await _login(client, token)
        frontend = DiscordFrontend(app, client)
        app.add_frontend(frontend)
        yield frontend
    finally:
        await client.close()


async def sync_commands(app: Imagine) -> str:
    """``imagine-bot discord sync``: register the commands now and say where."""
    token = _token(app)
    bot = ImagineBot(app, sync_on_start=False)
    async with bot:
        await _login(bot, token)
        return await bot.sync_app_commands()
