"""``core.ports.Frontend`` for Discord: show a job's status, fetch its source images,
post its result, tell a user something, alert the operators.

Works from ``ChatRef.data`` and Discord's REST API alone, from any
``discord.Client`` that logged in: the gateway bot of ``imagine-bot run``, or an
HTTP-only client in a worker process (``bots.discord.discord_delivery``). A job's
status message is the deferred interaction response (edited with the interaction
token while it is fresh, 15 minutes) or, after that and for mention-replies, the
status message in the channel by id.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from core.errors import InvalidRequest
from core.ports import ChatRef, Delivery
from core.sources import SourceRef
from core.types import GeneratedImage, SourceImage
from core.vendors.base import ProgressCallback

from ._errors import redact
from ._progress import EditStatus, ProgressReporter
from ._render import CHANNEL_UPLOAD_LIMIT, caption_embed, fit_images, image_files
from ._sources import is_discord_media
from ._users import PLATFORM, admin_user_ids
from ._views import result_view

if TYPE_CHECKING:
    from core.app import Imagine

log = logging.getLogger(__name__)

# Interaction tokens are valid for 15 minutes; leave a margin for the request itself.
TOKEN_LIFETIME = 14.5 * 60
MESSAGE_LIMIT = 2000
# A source download: connecting, then the whole body.
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
_CHUNK = 64 * 1024


def _token_fresh(data: dict[str, Any]) -> bool:
    created = data.get("created")
    return (
        bool(data.get("token"))
        and isinstance(created, int | float)
        and (time.time() - created < TOKEN_LIFETIME)
    )


def _elapsed(data: dict[str, Any]) -> float:
    created = data.get("created")
    return max(0.0, time.time() - created) if isinstance(created, int | float) else 0.0


class DiscordFrontend:
    platform = PLATFORM

    def __init__(self, app: Imagine, client: discord.Client) -> None:
        self.app = app
        self.client = client

    # --- Frontend protocol ------------------------------------------------------

    @contextlib.asynccontextmanager
    async def progress(self, chat: ChatRef, locale: str) -> AsyncIterator[ProgressCallback | None]:
        data = chat.data
        edit = self._status_editor(data)
        if edit is None:
            yield None
            return
        limit = int(data.get("upload_limit") or CHANNEL_UPLOAD_LIMIT)
        reporter = ProgressReporter(
            self.app.text, locale, edit, upload_limit=limit, elapsed=_elapsed(data)
        )
        try:
            yield reporter
        finally:
            await reporter.close()

    async def fetch_source(self, ref: SourceRef) -> bytes:
        """An attachment's bytes from Discord's CDN, at most ``MAX_IMAGE_BYTES``."""
        url = ref.ref
        if ref.kind != PLATFORM or not is_discord_media(url):
            # Stored references come from this frontend only; never fetch elsewhere.
            raise InvalidRequest("not a Discord URL", kind="download", reason="unsupported_link")
        limit = self.app.settings.max_image_bytes
        too_large = InvalidRequest("image too large", kind="bytes", limit_mb=limit // (1024 * 1024))
        if ref.size is not None and ref.size > limit:
            raise too_large
        http = self.client.http
        # The bot's connection pool, without its session's Discord headers.
        connector = http.connector if http.connector is not discord.utils.MISSING else None
        try:
            async with (
                aiohttp.ClientSession(
                    connector=connector,
                    connector_owner=connector is None,
                    timeout=FETCH_TIMEOUT,
                    cookie_jar=aiohttp.DummyCookieJar(),
                ) as session,
                session.get(
                    url, allow_redirects=False, proxy=http.proxy, proxy_auth=http.proxy_auth
                ) as resp,
            ):
                if resp.status != 200:
                    log.info("source download answered HTTP %s", resp.status)
                    raise InvalidRequest("download failed", kind="download", reason="unavailable")
                if (resp.content_length or 0) > limit:
                    raise too_large
                body = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise too_large
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("source download failed: %s", type(exc).__name__)
            raise InvalidRequest("download failed", kind="download", reason="no_answer") from None

    async def publish(
        self, job_id: str, sources: tuple[SourceImage, ...]
    ) -> tuple[SourceImage, ...]:
        # Discord sources already carry their public CDN URL.
        return sources

    async def deliver(self, delivery: Delivery) -> None:
        data = delivery.chat.data
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
        """A job ended without images (or a note after a restart): its status message
        goes (an interaction's public "thinking…" is deleted and the sentence goes
        only to the user; a mention-reply's status becomes the sentence), else a
        mention in the channel. Raises when Discord could not be reached, so core
        tries again later; a chat that is gone for good is given up."""
        data = chat.data
        text = text[:MESSAGE_LIMIT]
        try:
            if data.get("kind") == "interaction" and _token_fresh(data):
                webhook = self._webhook(data)
                if data.get("message_id"):
                    with contextlib.suppress(discord.NotFound):
                        await webhook.delete_message(int(data["message_id"]))
                try:
                    await webhook.send(text, ephemeral=True)
                    return
                except discord.NotFound:
                    pass
            elif data.get("kind") == "message" and data.get("message_id"):
                try:
                    await (
                        self._channel(data)
                        .get_partial_message(int(data["message_id"]))
                        .edit(content=text, attachments=[], embed=None, view=None)
                    )
                    return
                except (discord.NotFound, discord.Forbidden):
                    pass
            await self._channel(data).send(
                content=f"{_mention(data) or ''} {text}".strip()[:MESSAGE_LIMIT],
                **_reply_to(data),
                allowed_mentions=discord.AllowedMentions(users=True, replied_user=False),
            )
        except (discord.NotFound, discord.Forbidden) as exc:
            log.warning("could not notify a Discord user: %s", redact(str(exc)))

    async def alert_admins(self, text: str) -> None:
        for uid in admin_user_ids(self.app.settings.admin_ids):
            try:
                dm = await self.client.create_dm(discord.Object(uid))
                await dm.send(text[:MESSAGE_LIMIT])
            except discord.HTTPException as exc:
                log.warning("could not DM admin %s: %s", uid, redact(str(exc)))
        channel_id = self.app.settings.discord_alert_channel_id
        if channel_id is not None:
            try:
                await self.client.get_partial_messageable(channel_id).send(text[:MESSAGE_LIMIT])
            except discord.HTTPException as exc:
                log.warning("could not post to the alert channel: %s", redact(str(exc)))

    # --- helpers ------------------------------------------------------------------

    def _webhook(self, data: dict[str, Any]) -> discord.Webhook:
        """The interaction's follow-up webhook (``Interaction.followup`` without the
        interaction): an application webhook, which may send ephemeral messages."""
        webhook = discord.Webhook.partial(
            int(data["application_id"]), str(data["token"]), client=self.client
        )
        webhook.type = discord.WebhookType.application
        return webhook

    def _channel(self, data: dict[str, Any]) -> discord.PartialMessageable:
        guild_id = data.get("guild_id")
        return self.client.get_partial_messageable(
            int(data["channel_id"]), guild_id=int(guild_id) if guild_id else None
        )

    def _status_editor(self, data: dict[str, Any]) -> EditStatus | None:
        """How to edit the job's status message, or None when it has none."""
        message_id = data.get("message_id")
        if not message_id:
            return None
        mid = int(message_id)
        if data.get("kind") == "interaction" and _token_fresh(data):
            webhook = self._webhook(data)

            async def edit_interaction(text: str, files: list[discord.File] | None) -> None:
                if files is None:
                    await webhook.edit_message(mid, content=text)
                else:
                    await webhook.edit_message(mid, content=text, attachments=files)

            return edit_interaction
        if not data.get("channel_id"):
            return None
        message = self._channel(data).get_partial_message(mid)

        async def edit_message(text: str, files: list[discord.File] | None) -> None:
            if files is None:
                await message.edit(content=text)
            else:
                await message.edit(content=text, attachments=files)

        return edit_message

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
