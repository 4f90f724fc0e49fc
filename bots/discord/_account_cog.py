"""A user's own account: ``/balance``, ``/history`` (with a Show button per image,
see ``_show``), ``/show``, ``/price``, ``/help`` and ``/settings`` (per-user
defaults). Answers are ephemeral: they are nobody else's business (``/show`` posts
a result in the channel, as the original was). Failures go to the tree's error
handler (``_errors``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from core.locales import LANGUAGES, NATIVE_NAMES

from ._context import app_of
from ._imagine_cog import overrides_of
from ._options import Choice, describe, preset_choices, with_choices
from ._show import history_view, show_command
from ._translator import text
from ._users import PLATFORM, interaction_user

if TYPE_CHECKING:
    from ._bot import ImagineBot

MESSAGE_LIMIT = 2000


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


async def _reply(
    interaction: discord.Interaction, text: str, view: discord.ui.View | None = None
) -> None:
    if view is None:
        await interaction.response.send_message(_clip(text), ephemeral=True)
    else:
        await interaction.response.send_message(_clip(text), ephemeral=True, view=view)


async def balance(interaction: discord.Interaction) -> None:
    app = app_of(interaction)
    profile = await app.profile(interaction_user(interaction))
    await _reply(interaction, app.text.balance(profile.locale, profile.balance))


async def history(interaction: discord.Interaction) -> None:
    app = app_of(interaction)
    user = interaction_user(interaction)
    profile = await app.profile(user)
    entries = await app.history(user)
    shown = list(dict.fromkeys(e.job_id for e in entries if e.shows_image and e.job_id))
    await _reply(
        interaction,
        app.text.history(profile.locale, entries),
        history_view(shown, app.text, profile.locale),
    )


async def help_(interaction: discord.Interaction) -> None:
    app = app_of(interaction)
    profile = await app.profile(interaction_user(interaction))
    can_buy = bool(app.payments.packs(PLATFORM))
    await _reply(
        interaction,
        app.text.help(profile.locale, app.preset, profile.is_admin, PLATFORM, can_buy),
    )


async def price(
    interaction: discord.Interaction,
    prompt: str,
    aspect: str | None = None,
    resolution: str | None = None,
    quality: str | None = None,
    count: int | None = None,
) -> None:
    app = app_of(interaction)
    user = interaction_user(interaction)
    profile = await app.profile(user)
    request = await app.request(
        user,
        prompt,
        overrides=overrides_of(aspect, resolution, quality, count),
        profile=profile,
    )
    info = await app.quote(user, request)
    await _reply(interaction, app.text.price(profile.locale, info, request, button_hint=False))


async def settings(
    interaction: discord.Interaction,
    aspect: str | None = None,
    resolution: str | None = None,
    quality: str | None = None,
    count: int | None = None,
    language: str | None = None,
) -> None:
    app = app_of(interaction)
    user = interaction_user(interaction)
    changes = overrides_of(aspect, resolution, quality, count)
    if changes or language:
        saved = await app.save_defaults(
            user,
            aspect=aspect,
            resolution=resolution,
            quality=quality,
            n=count,
            locale=language,
        )
        locale = app.locale_for(user, saved.locale)
        summary = app.text.options_summary(locale, saved)
        await _reply(interaction, app.text.t("options.saved", locale, summary=summary))
        return
    profile = await app.profile(user)
    await _reply(interaction, app.text.options_summary(profile.locale, profile.defaults))


_DESCRIPTIONS = {
    "prompt": text("option.price_prompt"),
    "aspect": text("option.aspect"),
    "resolution": text("option.resolution"),
    "quality": text("option.quality"),
    "count": text("option.count"),
    "language": text("option.language"),
}


def account_commands(bot: ImagineBot) -> list[app_commands.Command[Any, ..., None]]:
    choices = preset_choices(bot.app.preset)
    settings_choices = {
        **choices,
        "language": [Choice(name=NATIVE_NAMES[code], value=code) for code in LANGUAGES],
    }
    return [
        app_commands.Command(name="balance", description=text("command.balance"), callback=balance),
        app_commands.Command(name="history", description=text("command.history"), callback=history),
        show_command(),
        app_commands.Command(name="help", description=text("command.help"), callback=help_),
        app_commands.Command(
            name="price",
            description=text("command.price"),
            callback=describe(with_choices(price, choices), _DESCRIPTIONS),
        ),
        app_commands.Command(
            name="settings",
            description=text("command.settings"),
            callback=describe(with_choices(settings, settings_choices), _DESCRIPTIONS),
        ),
    ]


class AccountCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.slash = account_commands(bot)

    async def cog_load(self) -> None:
        for command in self.slash:
            self.bot.tree.add_command(command)

    async def cog_unload(self) -> None:
        for command in self.slash:
            self.bot.tree.remove_command(command.name)
