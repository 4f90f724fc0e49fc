"""What every handler reaches through the interaction: the core facade the bot was
built around. Kept apart from ``_bot`` so views, modals and cogs need not import it."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import discord

if TYPE_CHECKING:
    from core.app import Imagine

    from ._bot import ImagineBot


def bot_of(interaction: discord.Interaction) -> ImagineBot:
    return cast("ImagineBot", interaction.client)


def app_of(interaction: discord.Interaction) -> Imagine:
    return bot_of(interaction).app
