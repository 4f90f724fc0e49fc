"""The bot measuring itself: event-loop lag, CPU time and peak memory, written as JSON.

Off unless ``METRICS_FILE`` is set (``core.bootstrap`` starts it). A sampler task
sleeps ``interval`` seconds again and again and records how late each wake-up was:
that lateness is exactly how long some other callback held the loop, so it is the
delay every update, vendor answer and upload waited on top of its own work.

The file is rewritten atomically every ``flush_every`` seconds and at exit, so a
process killed with SIGKILL still leaves its figures up to the last flush::

    {"loop_lag_ms": {"max": 3.1, "p50": 0.2, "p99": 1.4, "samples": 1200,
                     "histogram": {"0.25": 1000, "1": 190, ...}},
     "cpu_seconds": 4.2, "peak_rss_mb": 112.5, "pid": 4242, "written_at": 1.7e9}

``histogram`` maps each bucket's upper bound in milliseconds to a cumulative-over-
the-process count, so a reader can subtract two snapshots and get the figures of
just the window between them (``lag_stats``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import os
import resource
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.05
DEFAULT_FLUSH_EVERY = 1.0


def _bucket_bounds() -> tuple[float, ...]:
    # Fine where the targets are (tens of ms), coarse where only "very bad" matters.
    bounds = [0.25, 0.5, 0.75]
    bounds += [float(ms) for ms in range(1, 100)]
    bounds += [float(ms) for ms in range(100, 1000, 10)]
    bounds += [float(ms) for ms in range(1000, 10_001, 100)]
    return tuple(bounds)


BUCKETS_MS: tuple[float, ...] = _bucket_bounds()


def _label(bound: float) -> str:
    return f"{bound:g}"


def lag_stats(histogram: Mapping[str, int], max_ms: float | None = None) -> dict[str, float]:
    """p50 / p99 / max (bucket upper bounds, in ms) of a ``{bound: count}`` histogram.

    ``max_ms`` (the exact maximum, when the histogram covers the whole run) is used
    in place of the top bucket's bound."""
    items = sorted(((float(k), v) for k, v in histogram.items() if v > 0), key=lambda kv: kv[0])
    total = sum(v for _, v in items)
    if total == 0:
        return {"max": 0.0, "p50": 0.0, "p99": 0.0, "samples": 0}

    def pct(q: float) -> float:
        rank = q * total
        seen = 0
        for bound, count in items:
            seen += count
            if seen >= rank:
                return bound
        return items[-1][0]

    top = items[-1][0] if max_ms is None else max_ms
    return {"max": top, "p50": pct(0.50), "p99": pct(0.99), "samples": total}


def subtract(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    """The histogram of the window between two cumulative snapshots."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def peak_rss_mb() -> float:
    """High-water resident set size of this process (VmHWM), in MB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # Linux reports ru_maxrss in kB (macOS in bytes; close enough for a fallback).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads included."""
    t = os.times()
    return t.user + t.system


class MetricsRecorder:
    """Samples event-loop lag on the running loop and writes the figures to ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        interval: float = DEFAULT_INTERVAL,
        flush_every: float = DEFAULT_FLUSH_EVERY,
    ) -> None:
        self.path = path
        self.interval = interval
        self.flush_every = flush_every
        self.counts = [0] * (len(BUCKETS_MS) + 1)  # the last one: beyond the top bound
        self.max_ms = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def record(self, lag_ms: float) -> None:
        lag_ms = max(0.0, lag_ms)
        self.counts[bisect.bisect_left(BUCKETS_MS, lag_ms)] += 1
        self.samples += 1
        if lag_ms > self.max_ms:
            self.max_ms = lag_ms

    def histogram(self) -> dict[str, int]:
        out = {_label(b): c for b, c in zip(BUCKETS_MS, self.counts, strict=False) if c}
        if self.counts[-1]:
            out["inf"] = self.counts[-1]
        return out

    def snapshot(self) -> dict[str, Any]:
        hist = self.histogram()
        finite = {k: v for k, v in hist.items() if k != "inf"}
        stats = lag_stats(finite, None)
        if "inf" in hist:  # beyond the buckets: the exact max is the honest figure
            stats = lag_stats({**finite, _label(self.max_ms): hist["inf"]}, None)
        stats["max"] = round(self.max_ms, 3)
        return {
            "loop_lag_ms": {**stats, "histogram": hist},
            "cpu_seconds": round(cpu_seconds(), 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "pid": os.getpid(),
            "written_at": time.time(),
        }

    def write(self) -> None:
        data = json.dumps(self.snapshot())
        # Per process: the workers of ``run --workers`` may share one metrics path.
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(data, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as err:  # measuring must never break the bot
            log.warning("could not write metrics to %s: %s", self.path, err)

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        next_flush = loop.time() + self.flush_every
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.record((now - expected) * 1000)
            if now >= next_flush:
                next_flush = now + self.flush_every
                self.write()  # a few hundred bytes: cheaper than a thread hop

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sample(), name="metrics-recorder")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.write()
