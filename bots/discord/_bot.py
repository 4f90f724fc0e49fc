"""The Discord client: intents, cogs, persistent buttons, command sync and the
error funnel for application commands."""

from __future__ import annotations

import hashlib
import json
import logging

import discord
from discord import app_commands
from discord.ext import commands

from core.app import Imagine

from ._account_cog import AccountCog
from ._buy_cog import BuyCog
from ._credits_cog import CreditsCog
from ._errors import report_interaction_error
from ._frontend import DiscordFrontend
from ._imagine_cog import ImagineCog
from ._stats_cog import StatsCog
from ._throttle import ThrottledTree
from ._translator import CatalogueTranslator
from ._views import DYNAMIC_ITEMS

log = logging.getLogger(__name__)

# The hash of the command definitions last synced to Discord (and where to).
COMMANDS_HASH_FLAG = "discord:commands_hash"

# The bot never joins a voice channel: discord.py's start-up warnings that its voice
# libraries (PyNaCl, davey) are missing would only worry the operator. Clearing its
# own warn-once flags silences exactly those two lines.
for _flag in ("warn_nacl", "warn_dave"):
    if hasattr(discord.VoiceClient, _flag):
        setattr(discord.VoiceClient, _flag, False)


def intents_for(mention_replies: bool) -> discord.Intents:
    """Only what the bot uses: guilds (channels, the bot's own member) and, for
    mention-replies alone, guild messages with their content (a privileged intent
    that must also be switched on in the developer portal)."""
    intents = discord.Intents.none()
    intents.guilds = True
    if mention_replies:
        intents.guild_messages = True
        intents.message_content = True
    return intents


class ImagineBot(commands.Bot):
    def __init__(
        self, app: Imagine, *, sync_on_start: bool = True, guild_ready_timeout: float = 2.0
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents_for(app.settings.discord_mention_replies),
            allowed_mentions=discord.AllowedMentions(
                everyone=False, roles=False, users=True, replied_user=False
            ),
            guild_ready_timeout=guild_ready_timeout,
            tree_cls=ThrottledTree,
        )
        self.app = app
        self.frontend = DiscordFrontend(app, self)
        self.sync_on_start = sync_on_start
        self.sync_summary = ""
        self.tree.on_error = self._on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        await self.tree.set_translator(CatalogueTranslator(self.app.text))
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        await self.add_cog(ImagineCog(self))
        await self.add_cog(AccountCog(self))
        await self.add_cog(CreditsCog(self))
        await self.add_cog(BuyCog(self))
        await self.add_cog(StatsCog(self))
        if self.sync_on_start:
            self.sync_summary = await self.sync_app_commands(force=False)
            log.info("%s", self.sync_summary)

    async def on_message(self, message: discord.Message, /) -> None:
        # No prefix commands: mention-replies are handled by ImagineCog's listener.
        return

    async def commands_hash(self) -> str:
        """What a sync would send (every command's payload with its translations,
        the application and the guilds), hashed: equal hashes mean Discord already
        has these commands, so an edited translation syncs again too."""
        translator = self.tree.translator
        payloads = [
            await c.get_translated_payload(self.tree, translator)
            if translator is not None
            else c.to_dict(self.tree)
            for c in self.tree.get_commands()
        ]
        commands = sorted(payloads, key=lambda d: (int(d.get("type", 1)), str(d["name"])))
        what = {
            "application": self.application_id,
            "guilds": sorted(self.app.settings.discord_guild_ids),
            "commands": commands,
        }
        raw = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    async def sync_app_commands(self, *, force: bool = True) -> str:
        """To each of DISCORD_GUILD_IDS when set (instant), globally otherwise (Discord
        may take up to an hour to show changes everywhere). Without ``force`` (a start)
        only when the definitions changed since the last sync: each sync counts against
        Discord's daily limit on command registrations."""
        store = self.app.store
        digest = await self.commands_hash()
        if not force:
            async with store.read() as tx:
                if await store.flags.get(tx, COMMANDS_HASH_FLAG) == digest:
                    return "Discord commands unchanged since the last sync; not synced again."
        guild_ids = self.app.settings.discord_guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            summary = f"Synced {len(synced)} Discord commands globally."
        else:
            counts = []
            for guild_id in guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                counts.append(len(await self.tree.sync(guild=guild)))
            where = ", ".join(str(g) for g in guild_ids)
            summary = f"Synced {max(counts)} Discord commands to guild(s) {where}."
        async with store.transaction() as tx:
            await store.flags.set(tx, COMMANDS_HASH_FLAG, digest)
        return summary

    async def _on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await report_interaction_error(interaction, error, _command_name(interaction))


def _command_name(interaction: discord.Interaction) -> str:
    command = interaction.command
    return f"/{command.qualified_name}" if command is not None else "app command"


def build_bot(app: Imagine, *, guild_ready_timeout: float = 2.0) -> ImagineBot:
    """A bot wired to ``app``; it registers itself as core's Discord frontend."""
    bot = ImagineBot(app, guild_ready_timeout=guild_ready_timeout)
    app.add_frontend(bot.frontend)
    return bot
