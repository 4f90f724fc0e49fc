"""Every interaction passes the user's token bucket (``core.throttle``) before it
costs anything; a flood gets one ephemeral "slow down" and is otherwise ignored."""

from __future__ import annotations

import contextlib
from typing import Any

import discord
from discord import app_commands

from ._context import app_of
from ._users import PLATFORM, interaction_user


async def allowed(interaction: discord.Interaction) -> bool:
    app = app_of(interaction)
    key = f"{PLATFORM}:{interaction.user.id}"
    if app.throttle.allow(key):
        return True
    if app.throttle.should_notice(key) and not interaction.response.is_done():
        locale = app.locale_for(interaction_user(interaction))
        with contextlib.suppress(discord.HTTPException):
            await interaction.response.send_message(app.text.t("throttled", locale), ephemeral=True)
    return False


class ThrottledTree(app_commands.CommandTree[Any]):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await allowed(interaction)
