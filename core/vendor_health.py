"""The vendor's own health: a 402 (its account is empty) pauses new jobs and alerts
the admins once; one probe job every ``PROBE_INTERVAL`` or an admin's resume lifts
the pause. A misconfiguration (401, wrong URL) alerts at most once an hour."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from core.errors import ServicePaused, VendorError, VendorMisconfigured, VendorOutOfCredits
from core.frontends import Frontends
from core.messages import Messages
from storage.interfaces import Store, Tx

log = logging.getLogger(__name__)

PAUSE_FLAG = "vendor_paused"
MISCONFIG_ALERT_FLAG = "alert:vendor_misconfigured"
# After a 402 one job is let through as a probe this often; success lifts the pause.
PROBE_INTERVAL = 300.0
MISCONFIG_ALERT_INTERVAL = 3600.0
# Seconds between looks at the pause flag after successful calls.
PAUSE_LOOK = 2.0


class VendorHealth:
    def __init__(
        self,
        store: Store,
        frontends: Frontends,
        text: Messages,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.frontends = frontends
        self.text = text
        self.clock = clock
        self._looked_at = -PAUSE_LOOK

    async def admit(self, tx: Tx, now: float) -> None:
        """Inside the job's reserve transaction: refuse quickly while paused."""
        raw = await self.store.flags.get(tx, PAUSE_FLAG)
        if raw is None:
            return
        pause = json.loads(raw)
        if now < float(pause.get("probe_at", 0)):
            raise ServicePaused()
        # Let exactly this job through as the probe; the next one waits again.
        pause["probe_at"] = now + PROBE_INTERVAL
        await self.store.flags.set(tx, PAUSE_FLAG, json.dumps(pause))

    async def after_error(self, err: VendorError) -> None:
        self._looked_at = -PAUSE_LOOK  # the next success looks at once
        now = self.clock()
        alert: str | None = None
        async with self.store.transaction() as tx:
            if isinstance(err, VendorOutOfCredits):
                if await self.store.flags.get(tx, PAUSE_FLAG) is None:
                    alert = "alert.vendor_out_of_credits"
                # A failed probe also lands here: push the next probe out.
                await self.store.flags.set(
                    tx, PAUSE_FLAG, json.dumps({"since": now, "probe_at": now + PROBE_INTERVAL})
                )
            elif isinstance(err, VendorMisconfigured):
                last = await self.store.flags.get(tx, MISCONFIG_ALERT_FLAG)
                if last is None or now - float(last) > MISCONFIG_ALERT_INTERVAL:
                    await self.store.flags.set(tx, MISCONFIG_ALERT_FLAG, str(now))
                    alert = "alert.vendor_misconfigured"
        if alert is not None:
            log.warning("vendor alert: %s (%s)", err.code, err.detail[:200])
            await self.frontends.alert_admins(self.text.t(alert, None, code=err.code))

    async def succeeded(self) -> None:
        # A pause is rare and may have been set by another process: look at most
        # every PAUSE_LOOK seconds instead of a read per job (a probe that succeeds
        # after a quiet spell is always looked at).
        now = time.monotonic()
        if now - self._looked_at < PAUSE_LOOK:
            return
        self._looked_at = now
        async with self.store.read() as tx:
            paused = await self.store.flags.get(tx, PAUSE_FLAG)
        if paused is None:
            return
        async with self.store.transaction() as tx:
            cleared = await self.store.flags.delete(tx, PAUSE_FLAG)
        if cleared:
            await self.frontends.alert_admins(self.text.t("alert.vendor_recovered"))

    async def clear(self) -> bool:
        async with self.store.transaction() as tx:
            return await self.store.flags.delete(tx, PAUSE_FLAG)
