"""Slash-command names and descriptions in every catalogue language: each
description is a ``locale_str`` carrying its catalogue key, and the tree's
translator fills ``name_localizations``/``description_localizations`` from the
same ``.po`` files the chat sentences come from."""

from __future__ import annotations

import discord
from discord import app_commands

from core.locales import ENGLISH, parse_locale
from core.messages import Messages

# Discord limits: names 1-32 characters, descriptions 1-100.
_LIMITS = {
    app_commands.TranslationContextLocation.command_name: 32,
    app_commands.TranslationContextLocation.group_name: 32,
    app_commands.TranslationContextLocation.parameter_name: 32,
}
_DESCRIPTION_LIMIT = 100


def text(key: str) -> app_commands.locale_str:
    """The English wording of ``key`` (what Discord shows by default), tagged
    with the key so the translator can find the other languages."""
    return app_commands.locale_str(Messages().t(key, ENGLISH), key=key)


def discord_language(locale: discord.Locale) -> str | None:
    """The catalogue language a Discord client locale reads (``zh-TW`` is
    Traditional Chinese, ``es-419`` Spanish), None when the bot has none."""
    return parse_locale(locale.value)


class CatalogueTranslator(app_commands.Translator):
    def __init__(self, messages: Messages) -> None:
        self.messages = messages

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        language = discord_language(locale)
        if not key or language is None or language == ENGLISH:
            return None  # Discord shows the English default
        limit = _LIMITS.get(context.location, _DESCRIPTION_LIMIT)
        return self.messages.t(key, language)[:limit]
