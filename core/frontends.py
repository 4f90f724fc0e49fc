"""The chat frontends core can reach by platform, for deliveries after a restart and
for admin alerts."""

from __future__ import annotations

import logging

from core.ports import Frontend

log = logging.getLogger(__name__)


class Frontends:
    """Registered chat frontends by platform, and the admin alert fan-out."""

    def __init__(self) -> None:
        self._by_platform: dict[str, Frontend] = {}

    def add(self, frontend: Frontend) -> None:
        self._by_platform[frontend.platform] = frontend

    def get(self, platform: str) -> Frontend | None:
        return self._by_platform.get(platform)

    async def alert_admins(self, text: str) -> None:
        for frontend in list(self._by_platform.values()):
            try:
                await frontend.alert_admins(text)
            except Exception:  # an alert must never break the job that raised it
                log.exception("alerting admins via %s failed", frontend.platform)
