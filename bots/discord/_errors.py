"""The one place a failure becomes chat text on Discord.

``ImagineError`` -> ``app.text.error(err, locale)`` as an ephemeral message; any
other exception is logged (with interaction tokens redacted) and answered with the
catalogue's generic apology. Interactions that were deferred publicly have their
"thinking" message removed first, so the sentence reaches only the person who asked.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from core import redaction
from core.errors import ImagineError

from ._context import app_of
from ._users import interaction_user, user_ref

if TYPE_CHECKING:
    from core.app import Imagine

log = logging.getLogger(__name__)


def redact(text: str) -> str:
    """Interaction and webhook tokens in URLs (credentials for 15 minutes), the bot
    token and every other configured secret scrubbed; see ``core.redaction``."""
    return redaction.redact(text)


def unwrap(error: BaseException) -> BaseException:
    """The exception a handler raised, out of discord.py's wrappers."""
    while isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        inner = error.__cause__ or getattr(error, "original", None)
        if inner is None:
            break
        error = inner
    return error


def log_error(error: BaseException, where: str) -> None:
    if isinstance(error, ImagineError):
        # Expected outcomes; ``detail`` may quote a vendor body, which logs may keep.
        log.info("%s: %s (%s)", where, error.code, redact(error.detail))
        return
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    log.error("%s failed: %s", where, redact(trace))


async def locale_for(app: Imagine, interaction: discord.Interaction) -> str:
    user = interaction_user(interaction)
    try:
        return (await app.profile(user)).locale
    except Exception:  # the error path must not fail on a second error
        return app.locale_for(user)


def error_text(app: Imagine, error: BaseException, locale: str) -> str:
    return app.text.error(error, locale)


async def report_interaction_error(
    interaction: discord.Interaction, error: BaseException, where: str = "interaction"
) -> None:
    """Answer ``interaction`` with one friendly ephemeral sentence for ``error``."""
    error = unwrap(error)
    log_error(error, where)
    app = app_of(interaction)
    text = error_text(app, error, await locale_for(app, interaction))
    try:
        await send_ephemeral(interaction, text)
    except discord.HTTPException as exc:
        log.warning("could not report an error to the user: %s", redact(str(exc)))
        return  # unacknowledged: the sweeper tells them later
    await app.acknowledge(error)


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    if interaction.response.type == discord.InteractionResponseType.modal:
        return  # a modal was shown; its own submit will answer
    if interaction.extras.get("ephemeral"):
        await interaction.edit_original_response(content=text, attachments=[], view=None)
        return
    if interaction.extras.get("deferred_public"):
        # The public "thinking…" (or progress) message would tell the channel; drop it.
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.debug("could not delete the progress message: %s", redact(str(exc)))
    await interaction.followup.send(text, ephemeral=True)


async def report_message_error(
    app: Imagine,
    message: discord.Message,
    error: BaseException,
    status: discord.Message | None = None,
) -> None:
    """Mention-replies have no ephemeral answer: the status reply becomes the sentence."""
    error = unwrap(error)
    log_error(error, "mention reply")
    user = user_ref(message.author)
    try:
        locale = (await app.profile(user)).locale
    except Exception:
        locale = app.locale_for(user)
    text = error_text(app, error, locale)
    try:
        if status is not None:
            await status.edit(content=text, attachments=[], embed=None, view=None)
        else:
            await message.reply(text, mention_author=False)
    except discord.HTTPException as exc:
        log.warning("could not report an error to the user: %s", redact(str(exc)))
