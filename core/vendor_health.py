"""The vendor's own health: a 402 (its account is empty) pauses new jobs and alerts
the admins once; one probe job every ``PROBE_INTERVAL`` or an admin's resume lifts
the pause. A misconfiguration (401, wrong URL) alerts at most once an hour.

With several vendors (``VENDORS``) each has its own state under its name, and a
vendor also leaves the rotation when it fails its health window: ``FAILURE_LIMIT``
faults (timeouts, 5xx, 429 past the retries, a refused connection) within
``FAILURE_WINDOW`` seconds. The state is a flag row in the database, so every
worker process sees it and it survives a restart."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import (
    ServicePaused,
    TaskTimedOut,
    VendorBusy,
    VendorError,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorUnavailable,
)
from core.frontends import Frontends
from core.messages import Messages
from storage.interfaces import Store, Tx

log = logging.getLogger(__name__)

PAUSE_FLAG = "vendor_paused"
MISCONFIG_ALERT_FLAG = "alert:vendor_misconfigured"
# With several vendors: ``<prefix><name>``.
VENDOR_PAUSE_PREFIX = "vendor_paused:"
VENDOR_FAILURES_PREFIX = "vendor_failures:"
# After a 402 one job is let through as a probe this often; success lifts the pause.
PROBE_INTERVAL = 300.0
MISCONFIG_ALERT_INTERVAL = 3600.0
# Seconds between looks at the pause flag after successful calls.
PAUSE_LOOK = 2.0
# The health window: this many faults within this many seconds take a vendor out
# of the rotation until a probe succeeds (several vendors only: with one, a fault
# is only that job's failure, as it always was).
FAILURE_LIMIT = 3
FAILURE_WINDOW = 120.0
# Faults that count towards the window: the vendor is broken or overloaded, not
# refusing this one request.
WINDOW_FAULTS = (VendorUnavailable, VendorBusy, TaskTimedOut, VendorMisconfigured)

HEALTHY = "healthy"
PAUSED = "paused"  # answered 402: its account is out of credits
FAILING = "failing"  # failed its health window


@dataclass(frozen=True, slots=True)
class VendorState:
    """What ``doctor`` and ``/jobs`` show for one vendor."""

    name: str
    state: str
    since: float | None = None
    why: str | None = None
    probe_at: float | None = None


async def read_state(store: Store, tx: Tx, name: str | None) -> VendorState:
    """One vendor's state (``name`` None: the one vendor of ``VENDOR=``)."""
    raw = await store.flags.get(tx, PAUSE_FLAG if name is None else VENDOR_PAUSE_PREFIX + name)
    if raw is None:
        return VendorState(name or "", HEALTHY)
    pause = json.loads(raw)
    return VendorState(
        name or "",
        str(pause.get("state", PAUSED)),
        float(pause["since"]) if "since" in pause else None,
        pause.get("why") or VendorOutOfCredits.code,
        float(pause["probe_at"]) if "probe_at" in pause else None,
    )


class VendorHealth:
    def __init__(
        self,
        store: Store,
        frontends: Frontends,
        text: Messages,
        clock: Callable[[], float] = time.time,
        *,
        name: str | None = None,
    ) -> None:
        """``name``: this vendor's name among several (``VENDORS``); None for the one
        vendor of ``VENDOR=``, whose pause keeps its historical flag."""
        self.store = store
        self.frontends = frontends
        self.text = text
        self.clock = clock
        self.name = name
        self.flag = PAUSE_FLAG if name is None else VENDOR_PAUSE_PREFIX + name
        self.failures_flag = None if name is None else VENDOR_FAILURES_PREFIX + name
        self.misconfig_flag = (
            MISCONFIG_ALERT_FLAG if name is None else f"{MISCONFIG_ALERT_FLAG}:{name}"
        )
        self._looked_at = -PAUSE_LOOK

    async def admit(self, tx: Tx, now: float) -> None:
        """Inside the job's reserve transaction: refuse quickly while paused."""
        if not await self.take(tx, now):
            raise ServicePaused()

    async def take(self, tx: Tx, now: float) -> bool:
        """True when a job may go to this vendor now; while it is out of the rotation,
        exactly one job per ``PROBE_INTERVAL`` is let through as the probe."""
        raw = await self.store.flags.get(tx, self.flag)
        if raw is None:
            return True
        pause = json.loads(raw)
        if now < float(pause.get("probe_at", 0)):
            return False
        # Let exactly this job through as the probe; the next one waits again.
        pause["probe_at"] = now + PROBE_INTERVAL
        await self.store.flags.set(tx, self.flag, json.dumps(pause))
        return True

    async def in_rotation(self, tx: Tx) -> bool:
        """Neither paused nor failing."""
        return await self.store.flags.get(tx, self.flag) is None

    async def usable(self, tx: Tx, now: float) -> bool:
        """Like ``take`` without claiming the probe: the intake's look."""
        raw = await self.store.flags.get(tx, self.flag)
        return raw is None or now >= float(json.loads(raw).get("probe_at", 0))

    async def state(self, tx: Tx) -> VendorState:
        return await read_state(self.store, tx, self.name)

    def _alert_text(self, key: str, err: VendorError | None = None) -> str:
        if self.name is None:
            return self.text.t(key, None, code=err.code if err else "")
        return self.text.t(f"{key}.named", None, vendor=self.name, code=err.code if err else "")

    async def after_error(self, err: VendorError) -> None:
        self._looked_at = -PAUSE_LOOK  # the next success looks at once
        now = self.clock()
        alert: str | None = None
        async with self.store.transaction() as tx:
            if isinstance(err, VendorOutOfCredits):
                if await self.store.flags.get(tx, self.flag) is None:
                    alert = "alert.vendor_out_of_credits"
                # A failed probe also lands here: push the next probe out.
                await self._pause(tx, now, PAUSED, err.code)
            else:
                if isinstance(err, VendorMisconfigured):
                    last = await self.store.flags.get(tx, self.misconfig_flag)
                    if last is None or now - float(last) > MISCONFIG_ALERT_INTERVAL:
                        await self.store.flags.set(tx, self.misconfig_flag, str(now))
                        alert = "alert.vendor_misconfigured"
                if isinstance(err, WINDOW_FAULTS) and await self._window_failed(tx, now):
                    if await self.store.flags.get(tx, self.flag) is None:
                        alert = alert or "alert.vendor_failing"
                    await self._pause(tx, now, FAILING, err.code)
        if alert is not None:
            log.warning("vendor alert %s: %s (%s)", self.name or "", err.code, err.detail[:200])
            await self.frontends.alert_admins(self._alert_text(alert, err))

    async def _pause(self, tx: Tx, now: float, state: str, why: str) -> None:
        raw = await self.store.flags.get(tx, self.flag)
        since = float(json.loads(raw).get("since", now)) if raw is not None else now
        pause: dict[str, object] = {"since": since, "probe_at": now + PROBE_INTERVAL}
        if self.name is not None:
            pause.update(state=state, why=why)
        await self.store.flags.set(tx, self.flag, json.dumps(pause))

    async def _window_failed(self, tx: Tx, now: float) -> bool:
        """Count one fault; True once the window is full (the count starts again)."""
        if self.failures_flag is None:
            return False
        raw = await self.store.flags.get(tx, self.failures_flag)
        window = json.loads(raw) if raw is not None else {}
        first = float(window.get("first", now))
        count = int(window.get("count", 0))
        if now - first > FAILURE_WINDOW:
            first, count = now, 0
        count += 1
        if count >= FAILURE_LIMIT:
            await self.store.flags.delete(tx, self.failures_flag)
            return True
        await self.store.flags.set(
            tx, self.failures_flag, json.dumps({"first": first, "count": count})
        )
        return False

    async def succeeded(self) -> None:
        # A pause is rare and may have been set by another process: look at most
        # every PAUSE_LOOK seconds instead of a read per job (a probe that succeeds
        # after a quiet spell is always looked at).
        now = time.monotonic()
        if now - self._looked_at < PAUSE_LOOK:
            return
        self._looked_at = now
        async with self.store.read() as tx:
            paused = await self.store.flags.get(tx, self.flag)
        if paused is None:
            return
        if await self.clear():
            await self.frontends.alert_admins(self._alert_text("alert.vendor_recovered"))

    async def clear(self) -> bool:
        async with self.store.transaction() as tx:
            return await self.clear_in(tx)

    async def clear_in(self, tx: Tx) -> bool:
        if self.failures_flag is not None:
            await self.store.flags.delete(tx, self.failures_flag)
        return await self.store.flags.delete(tx, self.flag)
