"""Buttons under each result: Reroll, Variations, Edit.

Each is a ``DynamicItem`` whose state (the job id) lives in its ``custom_id``
(``imagine:reroll:<job_id>``, ``imagine:vary:<job_id>``, ``imagine:edit:<job_id>``),
so the buttons keep working after a restart: the bot registers the templates, not
the messages. Only the person who made the image (or an admin) may press them, and
pays for the new job; core checks that (``InvalidRequest(kind="not_yours")``) and
anyone else gets one ephemeral sentence.
"""

from __future__ import annotations

import re
from typing import Any, Self

import discord

from core.messages import Messages
from core.results import Submitted

from ._context import app_of
from ._errors import locale_for, report_interaction_error
from ._jobs import Intake, job_defaults, submit_for_interaction
from ._modals import InstructionModal
from ._show import ShowButton
from ._throttle import allowed
from ._users import interaction_user

_JOB_ID = r"(?P<job_id>[A-Za-z0-9_-]{1,64})"
Button = discord.ui.Button[discord.ui.View]


def _button(action: str, job_id: str, label: str, style: discord.ButtonStyle) -> Button:
    return discord.ui.Button(label=label, style=style, custom_id=f"imagine:{action}:{job_id}")


def _label(item: discord.ui.Item[Any], default: str) -> str:
    # The label the message was sent with (the user's language), kept across restarts.
    return getattr(item, "label", None) or default


class RerollButton(discord.ui.DynamicItem[Button], template=rf"imagine:reroll:{_JOB_ID}"):
    def __init__(self, job_id: str, label: str = "Reroll") -> None:
        super().__init__(_button("reroll", job_id, label, discord.ButtonStyle.secondary))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["job_id"], _label(item, "Reroll"))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await allowed(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        job_id = self.job_id

        async def step(intake: Intake) -> Submitted:
            return await intake.reroll(job_id)

        await submit_for_interaction(interaction, step, "reroll")


class VariationsButton(discord.ui.DynamicItem[Button], template=rf"imagine:vary:{_JOB_ID}"):
    def __init__(self, job_id: str, label: str = "Variations") -> None:
        super().__init__(_button("vary", job_id, label, discord.ButtonStyle.secondary))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["job_id"], _label(item, "Variations"))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await allowed(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        job_id = self.job_id

        async def step(intake: Intake) -> Submitted:
            return await intake.variation(job_id)

        await submit_for_interaction(interaction, step, "variations")


class EditButton(discord.ui.DynamicItem[Button], template=rf"imagine:edit:{_JOB_ID}"):
    def __init__(self, job_id: str, label: str = "Edit") -> None:
        super().__init__(_button("edit", job_id, label, discord.ButtonStyle.primary))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["job_id"], _label(item, "Edit"))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await allowed(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            app = app_of(interaction)
            job_id = self.job_id
            # Someone else's image: the sentence now, not after a modal.
            await app.variation_request(interaction_user(interaction), job_id)

            async def on_instruction(submit: discord.Interaction, instruction: str) -> None:
                async def step(intake: Intake) -> Submitted:
                    # An edit of this job's first result, keeping its size and quality.
                    base = await intake.app.variation_request(intake.user, job_id)
                    request = await intake.request(instruction, base.refs, base=job_defaults(base))
                    return await intake.submit(request)

                await submit_for_interaction(submit, step, "edit button")

            modal = InstructionModal(
                text=app.text,
                locale=await locale_for(app, interaction),
                custom_id=f"imagine:edit-modal:{job_id}:{interaction.id}",
                on_instruction=on_instruction,
                max_length=app.preset.max_prompt_chars,
            )
            await interaction.response.send_modal(modal)
        except Exception as err:
            await report_interaction_error(interaction, err, "edit button")


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    RerollButton,
    VariationsButton,
    EditButton,
    ShowButton,
)


def result_view(job_id: str, text: Messages, locale: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id, text.t("button.reroll", locale)[:80]))
    view.add_item(VariationsButton(job_id, text.t("button.variations", locale)[:80]))
    view.add_item(EditButton(job_id, text.t("button.edit", locale)[:80]))
    return view
