"""Queueing an image job from Discord: defer at once (the 3-second rule), remember
where the answer goes (``ChatRef``), and make the one intake call. A worker runs
the job later, in this process or another, and shows its progress, result or
failure through ``DiscordFrontend`` from the ``ChatRef`` alone; the handler only
reports a refusal raised by the intake itself (price, limits, bad input).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from core.app import Imagine
from core.options import Defaults
from core.ports import ChatRef, UserRef
from core.results import Profile, Submitted
from core.sources import SourceRef
from core.types import ImageRequest, Progress

from ._context import app_of, bot_of
from ._errors import redact, report_interaction_error, report_message_error
from ._render import CHANNEL_UPLOAD_LIMIT
from ._users import PLATFORM, interaction_user, user_ref

if TYPE_CHECKING:
    from ._frontend import DiscordFrontend

log = logging.getLogger(__name__)

# Option overrides from slash-command choices, applied over the user's defaults.
Overrides = dict[str, Any]


@dataclass(frozen=True)
class Intake:
    """One chat event asking for a job: who asks, with which defaults, where the
    answer goes."""

    app: Imagine
    user: UserRef
    profile: Profile
    chat: ChatRef

    async def request(
        self,
        text: str,
        refs: Sequence[SourceRef] = (),
        overrides: Overrides | None = None,
        *,
        base: Defaults | None = None,
    ) -> ImageRequest:
        """Prompt (with inline ``--ar`` style flags) + image references -> a checked
        request; nothing is downloaded."""
        return await self.app.request(
            self.user,
            text,
            defaults=base,
            overrides=overrides,
            refs=refs,
            profile=self.profile,
        )

    async def submit(self, request: ImageRequest) -> Submitted:
        return await self.app.submit(self.user, request, self.chat, profile=self.profile)

    async def reroll(self, job_id: str) -> Submitted:
        return await self.app.reroll(self.user, job_id, self.chat, profile=self.profile)

    async def variation(self, job_id: str) -> Submitted:
        return await self.app.variation(self.user, job_id, self.chat, profile=self.profile)


def interaction_chat(interaction: discord.Interaction, message_id: int | None) -> ChatRef:
    """Everything any process needs to answer: the interaction token edits the
    deferred message for 15 minutes; after that the channel gets a new message."""
    return ChatRef(
        PLATFORM,
        {
            "kind": "interaction",
            "channel_id": interaction.channel_id,
            "guild_id": interaction.guild_id,
            "user_id": interaction.user.id,
            "application_id": interaction.application_id,
            "token": interaction.token,
            "message_id": message_id,
            "created": time.time(),
            "upload_limit": interaction.filesize_limit,
        },
    )


def message_chat(message: discord.Message, status: discord.Message) -> ChatRef:
    guild = message.guild
    return ChatRef(
        PLATFORM,
        {
            "kind": "message",
            "channel_id": message.channel.id,
            "guild_id": guild.id if guild else None,
            "user_id": message.author.id,
            "message_id": status.id,
            "reply_to": message.id,
            "created": time.time(),
            "upload_limit": guild.filesize_limit if guild else CHANNEL_UPLOAD_LIMIT,
        },
    )


async def begin_interaction(interaction: discord.Interaction) -> Intake:
    """Defer publicly (the result is for the channel to see), then look the user up."""
    response = await interaction.response.defer(thinking=True)
    interaction.extras["deferred_public"] = True
    app = app_of(interaction)
    user = interaction_user(interaction)
    profile = await app.profile(user)
    message_id = response.message_id if response is not None else None
    return Intake(app, user, profile, interaction_chat(interaction, message_id))


JobStep = Callable[[Intake], Awaitable[Submitted]]


async def submit_for_interaction(
    interaction: discord.Interaction, step: JobStep, where: str
) -> None:
    """Defer, run ``step`` (build a request, one intake call) and turn a refusal into
    the one ephemeral sentence. Everything after that is the worker's."""
    try:
        intake = await begin_interaction(interaction)
        submitted = await step(intake)
    except Exception as err:
        await report_interaction_error(interaction, err, where)
        return
    await show_queued(bot_of(interaction).frontend, intake, submitted)


async def submit_for_message(
    app: Imagine, frontend: DiscordFrontend, message: discord.Message, step: JobStep
) -> None:
    """A mention-reply has no interaction: a reply to it becomes the status message,
    and a refusal is written into that reply."""
    status: discord.Message | None = None
    try:
        user = user_ref(message.author)
        profile = await app.profile(user)
        status = await message.reply(
            app.text.status(Progress(stage="submitted"), profile.locale, 0.0),
            mention_author=False,
        )
        intake = Intake(app, user, profile, message_chat(message, status))
        submitted = await step(intake)
    except Exception as err:
        await report_message_error(app, message, err, status)
        return
    await show_queued(frontend, intake, submitted)


async def show_queued(frontend: DiscordFrontend, intake: Intake, submitted: Submitted) -> None:
    """A job that waits for a vendor slot says where it is in the queue; the worker
    keeps the position current and takes the message over once the job runs."""
    if not submitted.position:
        return
    try:
        async with frontend.progress(intake.chat, intake.profile.locale) as show:
            if show is not None:
                await show(Progress(stage="queued", queue_position=submitted.position))
    except discord.HTTPException as exc:  # cosmetic
        log.debug("showing the queue position failed: %s", redact(str(exc)))


def job_defaults(request: ImageRequest) -> Defaults:
    """A stored job's options, as the base for an edit of its result."""
    return Defaults(
        aspect=request.aspect,
        resolution=request.resolution.value,
        quality=request.quality.value,
        n=1,
    )
