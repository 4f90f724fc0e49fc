"""The chat frontends core can reach by platform, for deliveries after a restart and
for admin alerts."""

from __future__ import annotations

import logging

from core.ports import Frontend

log = logging.getLogger(__name__)


class Frontends:
    """Registered chat frontends by platform, the job queues they serve, and the
    admin alert fan-out."""

    def __init__(self) -> None:
        self._by_platform: dict[str, Frontend] = {}
        self._queues: dict[str, str] = {}

    def add(self, frontend: Frontend, *, queue: str | None = None) -> None:
        """``queue``: the job queue this process serves for the platform; defaults
        to the platform's name (any process running the platform can deliver).
        A frontend only this process can deliver to (a folder) names its own."""
        self._by_platform[frontend.platform] = frontend
        self._queues[frontend.platform] = queue or frontend.platform

    def get(self, platform: str) -> Frontend | None:
        return self._by_platform.get(platform)

    def queues(self) -> list[str]:
        return list(self._queues.values())

    def queue_for(self, platform: str) -> str:
        return self._queues.get(platform, platform)

    async def alert_admins(self, text: str) -> None:
        for frontend in list(self._by_platform.values()):
            try:
                await frontend.alert_admins(text)
            except Exception:  # an alert must never break the job that raised it
                log.exception("alerting admins via %s failed", frontend.platform)
