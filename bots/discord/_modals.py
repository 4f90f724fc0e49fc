"""The instruction modal: "what should change?" for the Edit image context menu and
the Edit button. A modal is the only answer a context menu can give that asks for
text, and it cannot follow a defer, so the job is deferred inside ``on_submit``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from core.messages import Messages

from ._errors import report_interaction_error

OnInstruction = Callable[[discord.Interaction, str], Awaitable[None]]

# Discord caps a text input at 4000 characters.
_INPUT_MAX = 4000


class InstructionModal(discord.ui.Modal):
    def __init__(
        self,
        *,
        text: Messages,
        locale: str,
        custom_id: str,
        on_instruction: OnInstruction,
        max_length: int = _INPUT_MAX,
    ) -> None:
        super().__init__(
            title=text.t("edit.modal_title", locale)[:45], custom_id=custom_id, timeout=900
        )
        self.instruction: discord.ui.TextInput[InstructionModal] = discord.ui.TextInput(
            label=text.t("edit.modal_label", locale)[:45],
            style=discord.TextStyle.paragraph,
            custom_id="instruction",
            max_length=min(_INPUT_MAX, max_length),
        )
        self.add_item(self.instruction)
        self._on_instruction = on_instruction

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._on_instruction(interaction, self.instruction.value)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report_interaction_error(interaction, error, "edit modal")
