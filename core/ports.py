"""What core needs from the outside and hands to it: who asks, where to answer, and
the small interface each chat frontend offers so core can deliver or apologise
also for jobs a crash interrupted."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.sources import SourceRef
from core.types import GeneratedImage, ImageRequest, SourceImage
from core.vendors.base import ProgressCallback


@dataclass(frozen=True, slots=True)
class UserRef:
    platform: str  # "telegram" | "discord" | "console" | "cli"
    user_id: str
    username: str | None = None
    locale: str | None = None  # the platform's language hint, e.g. "zh-hans", "en-US"

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class ChatRef:
    """Where a job's answer goes. ``data`` is opaque to core and stored with the job
    as JSON (chat id, message to reply to, status message id...), so a restarted
    bot can still deliver."""

    platform: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    job_id: str
    chat: ChatRef
    user: UserRef
    request: ImageRequest
    images: tuple[GeneratedImage, ...]
    cost: int
    balance_after: int
    locale: str
    caption: str  # prompt, cost and new balance, already in the user's language
    revised_prompt: str | None = None


class Frontend(Protocol):
    """What a worker needs from a platform, in any process: it works from
    ``ChatRef.data`` and the platform's REST API alone, never from a live handler."""

    platform: str

    def progress(
        self, chat: ChatRef, locale: str
    ) -> AbstractAsyncContextManager[ProgressCallback | None]:
        """The job's status message while it runs; closed (no edit lands any more)
        before the result is handed over. ``None``: the platform shows no progress
        (the vendor then need not stream previews)."""
        ...

    async def fetch_source(self, ref: SourceRef) -> bytes:
        """The bytes of one of this platform's source references."""
        ...

    async def publish(
        self, job_id: str, sources: tuple[SourceImage, ...]
    ) -> tuple[SourceImage, ...]:
        """Give sources without a public URL one, for vendors that fetch inputs by
        URL; the sources as they are when the platform has no links of its own."""
        ...

    async def deliver(self, delivery: Delivery) -> None:
        """Post the images. Raising means nothing was delivered: the user is not charged.
        ``DeliveryIncomplete`` says some images did reach the user."""
        ...

    async def notify(self, chat: ChatRef, text: str) -> None:
        """Tell a user something outside a live handler (e.g. after a restart)."""
        ...

    async def alert_admins(self, text: str) -> None: ...
