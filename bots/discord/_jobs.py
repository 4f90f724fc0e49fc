"""Running an image job from Discord: defer at once (the 3-second rule), remember
where the answer goes (``ChatRef``), report progress on that one message, and hand
the request to core. Posting the result is ``DiscordFrontend.deliver``, the same
code a restarted bot uses for a job it resumes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import discord

from core.app import Defaults, Imagine, JobReceipt
from core.ports import ChatRef, UserRef
from core.types import ImageRequest, Progress, SourceImage

from ._context import app_of, bot_of
from ._errors import report_interaction_error, report_message_error
from ._progress import ProgressReporter
from ._render import CHANNEL_UPLOAD_LIMIT
from ._sources import ImageRef, load_refs
from ._users import PLATFORM, interaction_user, user_ref

if TYPE_CHECKING:
    from ._frontend import DiscordFrontend

# Option overrides from slash-command choices, applied over the user's defaults.
Overrides = dict[str, Any]


@dataclass
class JobRun:
    """One job in flight: who asked, in which language, where it is answered."""

    app: Imagine
    http: discord.http.HTTPClient
    user: UserRef
    locale: str
    defaults: Defaults
    chat: ChatRef
    progress: ProgressReporter
    frontend: DiscordFrontend

    async def request(
        self,
        text: str,
        refs: Sequence[ImageRef] = (),
        overrides: Overrides | None = None,
        *,
        base: Defaults | None = None,
        sources: tuple[SourceImage, ...] = (),
    ) -> ImageRequest:
        """Prompt (with inline ``--ar`` style flags) + images -> a validated request."""
        defaults = replace(base or self.defaults, **(overrides or {}))
        parsed = self.app.parse_prompt(text, defaults)
        sources = sources + await load_refs(self.app, self.http, refs)
        return self.app.build_request(
            parsed.prompt, parsed.defaults, sources=sources, user=self.user
        )

    async def run(self, request: ImageRequest) -> JobReceipt:
        return await self.app.run_job(self.user, request, self.chat, on_progress=self.progress)

    async def reroll(self, job_id: str) -> JobReceipt:
        return await self.app.reroll(self.user, job_id, self.chat, on_progress=self.progress)

    def close(self) -> None:
        self.frontend.untrack(self.chat)


def interaction_chat(interaction: discord.Interaction, message_id: int | None) -> ChatRef:
    """Everything a restarted bot needs to answer: the interaction token edits the
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


async def begin_interaction(interaction: discord.Interaction) -> JobRun:
    """Defer publicly (the result is for the channel to see), then look the user up."""
    response = await interaction.response.defer(thinking=True)
    interaction.extras["deferred_public"] = True
    app, bot = app_of(interaction), bot_of(interaction)
    user = interaction_user(interaction)
    profile = await app.profile(user)
    message_id = response.message_id if response is not None else None
    chat = interaction_chat(interaction, message_id)

    async def edit(text: str, files: list[discord.File] | None) -> None:
        if files is None:
            await interaction.edit_original_response(content=text)
        else:
            await interaction.edit_original_response(content=text, attachments=files)

    reporter = ProgressReporter(
        app.text, profile.locale, edit, upload_limit=interaction.filesize_limit
    )
    bot.frontend.track(chat, reporter)
    return JobRun(
        app, bot.http, user, profile.locale, profile.defaults, chat, reporter, bot.frontend
    )


JobStep = Callable[[JobRun], Awaitable[object]]


async def run_for_interaction(interaction: discord.Interaction, step: JobStep, where: str) -> None:
    """Defer, run ``step`` (build a request, one core call) and turn any failure into
    the one ephemeral sentence. The result itself is posted by the frontend."""
    run: JobRun | None = None
    try:
        run = await begin_interaction(interaction)
        await step(run)
    except Exception as err:
        await report_interaction_error(interaction, err, where)
    finally:
        if run is not None:
            run.close()


async def run_for_message(
    app: Imagine, frontend: DiscordFrontend, message: discord.Message, step: JobStep
) -> None:
    run: JobRun | None = None
    status: discord.Message | None = None
    try:
        run, status = await begin_message(app, frontend, message)
        await step(run)
    except Exception as err:
        await report_message_error(app, message, err, status)
    finally:
        if run is not None:
            run.close()


async def begin_message(
    app: Imagine, frontend: DiscordFrontend, message: discord.Message
) -> tuple[JobRun, discord.Message]:
    """A mention-reply has no interaction: a reply to it becomes the status message."""
    user = user_ref(message.author)
    profile = await app.profile(user)
    status = await message.reply(
        app.text.status(Progress(stage="submitted"), profile.locale, 0.0),
        mention_author=False,
    )
    chat = message_chat(message, status)

    async def edit(text: str, files: list[discord.File] | None) -> None:
        if files is None:
            await status.edit(content=text)
        else:
            await status.edit(content=text, attachments=files)

    limit = int(chat.data["upload_limit"])
    reporter = ProgressReporter(app.text, profile.locale, edit, upload_limit=limit)
    frontend.track(chat, reporter)
    run = JobRun(
        app, frontend.bot.http, user, profile.locale, profile.defaults, chat, reporter, frontend
    )
    return run, status


def job_defaults(request: ImageRequest) -> Defaults:
    """A stored job's options, as the base for an edit of its result."""
    return Defaults(
        aspect=request.aspect,
        resolution=request.resolution.value,
        quality=request.quality.value,
        n=1,
    )
