"""``/show job:<id>`` and the Show buttons under ``/history``: an earlier result
posted again in the channel, with its Reroll / Variations / Edit buttons, through
the same delivery as the original (``DiscordFrontend.deliver``).

The button is a ``DynamicItem`` whose ``custom_id`` (``imagine:show:<job_id>``)
holds the job, so it works after a restart. Core lets only the job's owner (or an
admin) see it; anyone else gets the "not found" sentence, ephemeral."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Self

import discord
from discord import app_commands

from core.job_ids import short_id
from core.messages import Messages

from ._errors import report_interaction_error
from ._jobs import begin_interaction
from ._throttle import allowed
from ._translator import text

Button = discord.ui.Button[discord.ui.View]
# A message holds at most five rows of five buttons.
MAX_BUTTONS = 25


async def show_job(interaction: discord.Interaction, job_id: str, where: str) -> None:
    """Defer publicly (the result is for the channel), then one core call posts it."""
    try:
        intake = await begin_interaction(interaction)
        await intake.app.show(intake.user, job_id, intake.chat, profile=intake.profile)
    except Exception as err:
        await report_interaction_error(interaction, err, where)


@app_commands.describe(job=text("option.job"))
async def show(interaction: discord.Interaction, job: str) -> None:
    await show_job(interaction, job, "/show")


def show_command() -> app_commands.Command[Any, ..., None]:
    return app_commands.Command(name="show", description=text("command.show"), callback=show)


class ShowButton(
    discord.ui.DynamicItem[Button], template=r"imagine:show:(?P<job_id>[A-Za-z0-9_-]{1,64})"
):
    def __init__(self, job_id: str, label: str | None = None) -> None:
        # Without a label (never expected from Discord) the id alone reads in any language.
        super().__init__(
            discord.ui.Button(
                label=label or f"🖼 #{short_id(job_id)}",
                style=discord.ButtonStyle.secondary,
                custom_id=f"imagine:show:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["job_id"], getattr(item, "label", None))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await allowed(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        await show_job(interaction, self.job_id, "show button")


def history_view(job_ids: Sequence[str], text: Messages, locale: str) -> discord.ui.View | None:
    """A Show button per image ``/history`` lists, or None when it lists none."""
    if not job_ids:
        return None
    view = discord.ui.View(timeout=None)
    for job_id in list(job_ids)[:MAX_BUTTONS]:
        label = text.t("button.show", locale, job=short_id(job_id))[:80]
        view.add_item(ShowButton(job_id, label))
    return view
