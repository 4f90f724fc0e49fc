"""``core.ports.Frontend`` for Discord: post results, tell a user something, alert
the operators. Works from ``ChatRef.data`` alone, so a restarted bot delivers the
jobs it resumes exactly as a live handler would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from core.ports import ChatRef, Delivery
from core.types import GeneratedImage

from ._errors import redact
from ._progress import ProgressReporter
from ._render import CHANNEL_UPLOAD_LIMIT, caption_embed, fit_images, image_files
from ._users import PLATFORM, admin_user_ids
from ._views import result_view

if TYPE_CHECKING:
    from core.app import Imagine

    from ._bot import ImagineBot

log = logging.getLogger(__name__)

# Interaction tokens are valid for 15 minutes; leave a margin for the request itself.
TOKEN_LIFETIME = 14.5 * 60
MESSAGE_LIMIT = 2000


def _chat_key(data: dict[str, Any]) -> str:
    return str(data.get("token") or data.get("message_id"))


def _token_fresh(data: dict[str, Any]) -> bool:
    created = data.get("created")
    return (
        bool(data.get("token"))
        and isinstance(created, int | float)
        and (time.time() - created < TOKEN_LIFETIME)
    )


class DiscordFrontend:
    platform = PLATFORM

    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        # Progress reporters of live jobs, closed before their result is posted.
        self._live: dict[str, ProgressReporter] = {}

    @property
    def app(self) -> Imagine:
        return self.bot.app

    def track(self, chat: ChatRef, reporter: ProgressReporter) -> None:
        self._live[_chat_key(chat.data)] = reporter

    def untrack(self, chat: ChatRef) -> None:
        self._live.pop(_chat_key(chat.data), None)

    # --- Frontend protocol ------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> None:
        data = delivery.chat.data
        reporter = self._live.get(_chat_key(data))
        if reporter is not None:
            await reporter.close()
        limit = int(data.get("upload_limit") or CHANNEL_UPLOAD_LIMIT)
        images = await fit_images(delivery.images, limit)
        embed = caption_embed(delivery.caption)
        view = result_view(delivery.job_id, self.app.text, delivery.locale)
        stem = f"imagine-{delivery.job_id[:8]}"

        if data.get("kind") == "interaction" and _token_fresh(data):
            try:
                await self._edit_interaction(data, images, stem, embed, view)
                return
            except discord.NotFound:
                log.info("job %s: interaction gone, posting to the channel", delivery.job_id)
        elif data.get("kind") == "message" and data.get("message_id"):
            try:
                channel = self._channel(data)
                await channel.get_partial_message(int(data["message_id"])).edit(
                    content=None, embed=embed, attachments=image_files(images, stem), view=view
                )
                return
            except (discord.NotFound, discord.Forbidden):
                log.info("job %s: status message gone, posting anew", delivery.job_id)
        await self._channel(data).send(
            content=_mention(data),
            embed=embed,
            files=image_files(images, stem),
            view=view,
            **_reply_to(data),
            allowed_mentions=discord.AllowedMentions(users=True, replied_user=False),
        )

    async def notify(self, chat: ChatRef, text: str) -> None:
        data = chat.data
        try:
            if data.get("kind") == "interaction" and _token_fresh(data):
                webhook = self._webhook(data)
                try:
                    await webhook.send(text[:MESSAGE_LIMIT], ephemeral=True)
                    return
                except discord.NotFound:
                    pass
            await self._channel(data).send(
                content=f"{_mention(data) or ''} {text}".strip()[:MESSAGE_LIMIT],
                **_reply_to(data),
                allowed_mentions=discord.AllowedMentions(users=True, replied_user=False),
            )
        except discord.HTTPException as exc:
            log.warning("could not notify a Discord user: %s", redact(str(exc)))

    async def alert_admins(self, text: str) -> None:
        for uid in admin_user_ids(self.app.settings.admin_ids):
            try:
                dm = await self.bot.create_dm(discord.Object(uid))
                await dm.send(text[:MESSAGE_LIMIT])
            except discord.HTTPException as exc:
                log.warning("could not DM admin %s: %s", uid, redact(str(exc)))
        channel_id = self.app.settings.discord_alert_channel_id
        if channel_id is not None:
            try:
                await self.bot.get_partial_messageable(channel_id).send(text[:MESSAGE_LIMIT])
            except discord.HTTPException as exc:
                log.warning("could not post to the alert channel: %s", redact(str(exc)))

    # --- helpers ------------------------------------------------------------------

    def _webhook(self, data: dict[str, Any]) -> discord.Webhook:
        return discord.Webhook.partial(
            int(data["application_id"]), str(data["token"]), client=self.bot
        )

    def _channel(self, data: dict[str, Any]) -> discord.PartialMessageable:
        guild_id = data.get("guild_id")
        return self.bot.get_partial_messageable(
            int(data["channel_id"]), guild_id=int(guild_id) if guild_id else None
        )

    async def _edit_interaction(
        self,
        data: dict[str, Any],
        images: Sequence[GeneratedImage],
        stem: str,
        embed: discord.Embed,
        view: discord.ui.View,
    ) -> None:
        webhook = self._webhook(data)
        files = image_files(images, stem)
        if data.get("message_id"):
            await webhook.edit_message(
                int(data["message_id"]), content=None, embed=embed, attachments=files, view=view
            )
        else:
            # The first follow-up after a "thinking" defer replaces the loading message.
            await webhook.send(embed=embed, files=files, view=view, wait=True)


def _mention(data: dict[str, Any]) -> str | None:
    uid = data.get("user_id")
    return f"<@{uid}>" if uid else None


def _reply_to(data: dict[str, Any]) -> dict[str, Any]:
    """``send`` keyword arguments replying to the job's message when there is one; a
    reference to a message deleted meanwhile is dropped rather than an error."""
    target = data.get("reply_to") or data.get("message_id")
    if not target:
        return {}
    reference = discord.MessageReference(
        message_id=int(target), channel_id=int(data["channel_id"]), fail_if_not_exists=False
    )
    return {"reference": reference}
