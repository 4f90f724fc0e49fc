"""Retry waits are jittered: concurrent jobs that met the same failure do not come
back in lockstep, and no wait exceeds the cap."""

from __future__ import annotations

import dataclasses

import httpx

from core.vendors import http
from core.vendors.presets import COMPAT_B64

PRESET = dataclasses.replace(COMPAT_B64, base_url="https://v.example", retry_after_cap=4.0)


def _busy(retry_after: str | None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(429, headers=headers)


def test_backoff_waits_differ_and_stay_within_bounds() -> None:
    for attempt in range(6):
        full = min(0.5 * 2**attempt, PRESET.retry_after_cap)
        waits = [http._backoff(PRESET, attempt) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert len(set(waits)) > 150  # spread, not lockstep
        assert max(waits) - min(waits) > full / 4


def test_retry_after_is_honoured_spread_and_capped() -> None:
    waits = [http._busy_wait(PRESET, _busy("1"), 0) for _ in range(200)]
    assert all(1.0 <= w <= 1.5 for w in waits)
    assert len(set(waits)) > 150

    # Beyond the cap: never above it, still spread.
    waits = [http._busy_wait(PRESET, _busy("30"), 0) for _ in range(200)]
    assert all(PRESET.retry_after_cap / 2 <= w <= PRESET.retry_after_cap for w in waits)
    assert len(set(waits)) > 150

    # No Retry-After: the jittered exponential back-off.
    waits = [http._busy_wait(PRESET, _busy(None), 2) for _ in range(200)]
    assert all(1.0 <= w <= 2.0 for w in waits)
    assert len(set(waits)) > 150


def test_a_tiny_cap_bounds_every_wait() -> None:
    tiny = dataclasses.replace(PRESET, retry_after_cap=0.05)
    for attempt in range(4):
        assert all(0 <= http._backoff(tiny, attempt) <= 0.05 for _ in range(100))
    assert all(0 <= http._busy_wait(tiny, _busy("0.01"), 0) <= 0.05 for _ in range(100))
