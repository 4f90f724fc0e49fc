"""Who is asking: Discord users as core ``UserRef``s, and their language hint."""

from __future__ import annotations

import discord

from core.ports import UserRef

PLATFORM = "discord"


def user_ref(user: discord.abc.User, locale: discord.Locale | str | None = None) -> UserRef:
    """``locale`` is the client's language (``interaction.locale``, e.g. ``zh-CN``);
    core maps it to a catalogue locale unless the user saved one."""
    return UserRef(
        platform=PLATFORM,
        user_id=str(user.id),
        username=user.name,
        locale=str(locale) if locale is not None else None,
    )


def interaction_user(interaction: discord.Interaction) -> UserRef:
    return user_ref(interaction.user, interaction.locale)


def admin_user_ids(admin_ids: frozenset[str]) -> list[int]:
    """The Discord ids among ``ADMIN_USER_IDS`` (entries look like ``discord:123``)."""
    out: list[int] = []
    for key in sorted(admin_ids):
        platform, _, uid = key.partition(":")
        if platform == PLATFORM and uid.isdigit():
            out.append(int(uid))
    return out
