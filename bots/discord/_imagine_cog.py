"""Making and editing images: ``/imagine``, the "Edit image" message context menu and
(when ``DISCORD_MENTION_REPLIES`` is on) ``@bot <instruction>`` as a reply to an
image message. Each handler defers, turns the event into a request whose images are
references (nothing is downloaded here) and makes one intake call; ``_jobs`` does
the deferring and error reporting, a worker the rest."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from core.errors import InvalidRequest
from core.results import Submitted
from core.sources import SourceRef

from ._context import app_of
from ._errors import locale_for, report_interaction_error
from ._jobs import Intake, Overrides, submit_for_interaction, submit_for_message
from ._modals import InstructionModal, OnInstruction
from ._options import IMAGE_OPTIONS, describe, image_option_count, preset_choices, with_choices
from ._sources import attachment_refs, checked_refs, message_refs
from ._translator import text

if TYPE_CHECKING:
    from ._bot import ImagineBot

# Descriptions come from the catalogue: English by default, with every other
# language as Discord localizations (see _translator).
_DESCRIPTIONS = {
    "prompt": text("option.prompt"),
    "aspect": text("option.aspect"),
    "resolution": text("option.resolution"),
    "quality": text("option.quality"),
    "count": text("option.count"),
    "image": text("option.image"),
    "image2": text("option.image2"),
    "image3": text("option.image3"),
    "image4": text("option.image4"),
}


def overrides_of(
    aspect: str | None, resolution: str | None, quality: str | None, count: int | None
) -> Overrides:
    pairs = (("aspect", aspect), ("resolution", resolution), ("quality", quality), ("n", count))
    return {k: v for k, v in pairs if v is not None}


async def imagine(
    interaction: discord.Interaction,
    prompt: str,
    aspect: str | None = None,
    resolution: str | None = None,
    quality: str | None = None,
    count: int | None = None,
    image: discord.Attachment | None = None,
    image2: discord.Attachment | None = None,
    image3: discord.Attachment | None = None,
    image4: discord.Attachment | None = None,
) -> None:
    app = app_of(interaction)
    attachments = [a for a in (image, image2, image3, image4) if a is not None]
    try:
        # A text file as "image" is refused before anything is deferred.
        refs = attachment_refs(attachments, app)
    except InvalidRequest as err:
        await report_interaction_error(interaction, err, "/imagine")
        return
    overrides = overrides_of(aspect, resolution, quality, count)

    async def step(intake: Intake) -> Submitted:
        return await intake.submit(await intake.request(prompt, refs, overrides))

    await submit_for_interaction(interaction, step, "/imagine")


def imagine_command(bot: ImagineBot) -> app_commands.Command[Any, ..., None]:
    preset = bot.app.preset
    drop = IMAGE_OPTIONS[image_option_count(preset) :]
    callback = with_choices(imagine, preset_choices(preset), drop=drop)
    callback = describe(callback, _DESCRIPTIONS)
    return app_commands.Command(
        name="imagine", description=text("command.imagine"), callback=callback
    )


class ImagineCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.imagine = imagine_command(bot)
        self.edit_menu = app_commands.ContextMenu(
            name=text("edit.modal_title"), callback=self.edit_image
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.imagine)
        self.bot.tree.add_command(self.edit_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.imagine.name)
        self.bot.tree.remove_command(self.edit_menu.name, type=self.edit_menu.type)

    async def edit_image(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Context menu: a modal asks what to change (a modal cannot follow a defer)."""
        try:
            app = app_of(interaction)
            refs = message_refs(message, app)
            if not refs:
                raise InvalidRequest("no image", kind="no_image")
            refs = list(checked_refs(refs, app))
            modal = InstructionModal(
                text=app.text,
                locale=await locale_for(app, interaction),
                custom_id=f"imagine:edit-image:{message.id}:{interaction.id}",
                on_instruction=_edit_with(refs),
                max_length=app.preset.max_prompt_chars,
            )
            await interaction.response.send_modal(modal)
        except Exception as err:
            await report_interaction_error(interaction, err, "Edit image")

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """``@bot make it night`` as a reply to an image (needs the message content
        intent, so only when ``DISCORD_MENTION_REPLIES`` is on)."""
        me = self.bot.user
        if (
            not self.bot.app.settings.discord_mention_replies
            or me is None
            or message.author.bot
            or not any(u.id == me.id for u in message.mentions)
        ):
            return
        instruction = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        app = self.bot.app

        async def step(intake: Intake) -> Submitted:
            refs = message_refs(message, app)
            referenced = await self._referenced(message)
            if referenced is not None:
                refs += message_refs(referenced, app)
            return await intake.submit(await intake.request(instruction, checked_refs(refs, app)))

        await submit_for_message(app, self.bot.frontend, message, step)

    async def _referenced(self, message: discord.Message) -> discord.Message | None:
        ref = message.reference
        if ref is None or ref.message_id is None:
            return None
        if isinstance(ref.resolved, discord.Message):
            return ref.resolved
        try:
            return await message.channel.fetch_message(ref.message_id)
        except discord.HTTPException:
            return None


def _edit_with(refs: list[SourceRef]) -> OnInstruction:
    async def on_instruction(interaction: discord.Interaction, instruction: str) -> None:
        async def step(intake: Intake) -> Submitted:
            return await intake.submit(await intake.request(instruction, refs))

        await submit_for_interaction(interaction, step, "Edit image")

    return on_instruction
