"""Who is asking and whom an admin command names: Telegram users as core ``UserRef``s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Message, User

from core.errors import UnknownUser
from core.locales import normalize_locale
from core.ports import UserRef

PLATFORM = "telegram"


def user_ref(user: User) -> UserRef:
    return UserRef(
        platform=PLATFORM,
        user_id=str(user.id),
        username=user.username,
        locale=user.language_code,
    )


def hint_locale(language_code: str | None, default: str = "en") -> str:
    """Telegram's language hint (``zh-hans``, ``zh-tw``, ``es-419``...) as one of
    the catalogue's languages."""
    return normalize_locale(language_code, default)


def replied_user(message: Message | None) -> User | None:
    """The human author of the message this one replies to, if any."""
    if message is None or message.reply_to_message is None:
        return None
    author = message.reply_to_message.from_user
    if author is None or author.is_bot:
        return None
    return author


FindUser = Callable[[str, str], Awaitable[UserRef | None]]


async def resolve_target(find_user: FindUser, token: str) -> UserRef:
    """A numeric id, or the ``@username`` of someone the bot has seen
    (``find_user`` is ``Imagine.find_user``)."""
    raw = token.strip()
    if raw.lstrip("-").isdigit():
        return UserRef(PLATFORM, str(int(raw)))
    name = raw.removeprefix("@")
    if not name:
        raise UnknownUser(f"no user named {raw!r}", user=raw)
    found = await find_user(PLATFORM, name)
    if found is None:
        raise UnknownUser(f"no user named {raw!r}", user=raw)
    return found
