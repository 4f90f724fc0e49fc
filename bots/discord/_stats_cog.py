"""``/stats`` (admins only): the jobs chart as a PNG attachment and the UTC day's
three numbers, ephemeral. Like ``/credits`` it is hidden from ordinary members, but
core checks every call against ``ADMIN_USER_IDS`` (``NotAdmin``, audited)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from ._context import app_of
from ._translator import text
from ._users import interaction_user

if TYPE_CHECKING:
    from ._bot import ImagineBot


class StatsCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @app_commands.command(name="stats", description=text("command.stats"))
    @app_commands.default_permissions(administrator=True)
    async def stats(self, interaction: discord.Interaction) -> None:
        app = app_of(interaction)
        user = interaction_user(interaction)
        # Indexed reads and a few tens of milliseconds of drawing: well inside
        # Discord's 3 seconds, so no deferral (a refusal is then answered at once).
        card = await app.admin_stats(user)
        locale = (await app.profile(user)).locale
        await interaction.response.send_message(
            app.text.stats(locale, card.today),
            file=discord.File(io.BytesIO(card.png), filename="stats.png"),
            ephemeral=True,
        )
