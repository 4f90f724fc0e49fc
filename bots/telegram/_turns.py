"""Who is asking and how the bot answers: ``Turn`` (one update from one user with
their core profile), the ``turn`` decorator every handler runs in, and
``TurnBase.report`` — the one place an error becomes chat text."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bots.telegram._errors import redact
from bots.telegram._progress import StatusBoard
from bots.telegram._users import hint_locale, user_ref
from core.app import Imagine
from core.errors import ImagineError
from core.options import Defaults
from core.ports import UserRef
from core.results import Profile

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
MESSAGE_MAX = 4096


@dataclass(frozen=True, slots=True)
class Turn:
    """One update from one user, with the profile core keeps for them."""

    update: Update
    user: UserRef
    profile: Profile | None
    locale: str

    @property
    def message(self) -> Message | None:
        return self.update.effective_message

    @property
    def request_id(self) -> str:
        """Telegram re-delivers an update it thinks was lost: keyed by its id, a
        repeated admin command moves no credits twice."""
        return f"update:{self.update.update_id}"

    @property
    def chat_id(self) -> int:
        chat = self.update.effective_chat
        assert chat is not None
        return chat.id

    @property
    def is_private(self) -> bool:
        chat = self.update.effective_chat
        return chat is not None and chat.type == ChatType.PRIVATE

    @property
    def defaults(self) -> Defaults:
        return self.profile.defaults if self.profile else Defaults()

    @property
    def is_admin(self) -> bool:
        return bool(self.profile and self.profile.is_admin)


B = TypeVar("B", bound="TurnBase")
Handler = Callable[[B, Turn, Context], Awaitable[None]]


def turn(fn: Handler[B]) -> Callable[[B, Update, Context], Coroutine[Any, Any, None]]:
    @functools.wraps(fn)
    async def wrapper(self: B, update: Update, context: Context) -> None:
        tg_user = update.effective_user
        if tg_user is None or tg_user.is_bot:
            return
        user = user_ref(tg_user)
        locale = hint_locale(tg_user.language_code, self.app.settings.default_locale)
        current = Turn(update, user, None, locale)
        try:
            profile = await self.app.profile(user)  # also records the @username
            current = replace(current, profile=profile, locale=profile.locale)
            await fn(self, current, context)
        except Exception as err:
            await self.report(current, err)

    return wrapper


def text_after_command(message: Message | None) -> str:
    """The text after ``/command`` (or ``/command@bot``), newlines kept."""
    if message is None:
        return ""
    text = message.text or message.caption or ""
    if text.startswith("/"):
        parts = text.split(maxsplit=1)
        return parts[1] if len(parts) > 1 else ""
    return text


class TurnBase:
    """What every handler group shares: the facade, the status board, answering."""

    def __init__(self, app: Imagine, status: StatusBoard) -> None:
        self.app = app
        self.status = status

    async def report(self, turn: Turn, err: BaseException, status_id: int | None = None) -> None:
        query = turn.update.callback_query
        if query is not None:  # stop the button's spinner; answering twice is harmless
            with contextlib.suppress(TelegramError):
                await query.answer()
        if isinstance(err, ImagineError):
            text = self.app.text.error(err, turn.locale)
            log.info("%s for %s: %s", type(err).__name__, turn.user.key, redact(err.detail))
        elif isinstance(err, TelegramError) and status_id is not None:
            # The job finished but Telegram refused the upload: core did not charge.
            text = self.app.text.t("delivery_failed", turn.locale)
            log.warning("delivery to Telegram failed: %s", redact(str(err)))
        else:
            text = self.app.text.t("error", turn.locale)
            # Our own bug: keep the traceback (frames, not values; messages redacted).
            log.error(
                "unexpected %s for %s: %s",
                type(err).__name__,
                turn.user.key,
                redact(str(err)),
                exc_info=not isinstance(err, TelegramError),
            )
        if not (status_id is not None and await self.status.replace(turn.chat_id, status_id, text)):
            await self.say(turn, text)
        await self.app.acknowledge(err)

    async def say(
        self, turn: Turn, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        message = turn.message
        chat = turn.update.effective_chat
        if chat is None:
            return None
        reply = (
            ReplyParameters(message.message_id, allow_sending_without_reply=True)
            if message is not None and turn.update.callback_query is None
            else None
        )
        try:
            return await turn.update.get_bot().send_message(
                chat.id, text[:MESSAGE_MAX], reply_markup=markup, reply_parameters=reply
            )
        except TelegramError as err:
            log.warning("could not answer in chat: %s", redact(str(err)))
            return None
