"""What monitoring reads from a bot process (served by ``bots.health`` when
``HEALTH_LISTEN`` is set), and the JSON log lines of ``LOG_FORMAT=json``.

:class:`Metrics` keeps this process's counters (jobs by outcome, vendor call
latency) in a registry of its own, one per ``JobService``, and reads the figures
every process shares (queue, holds, revenue, the vendor limit, each vendor's
state) from the database when scraped: a few async reads, never a blocking call.

Nothing here names a secret: labels are outcomes and error codes, figures are
counts and credits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from core import redaction
from core.vendor_health import FAILING, HEALTHY, PAUSE_FLAG, PAUSED, read_state
from storage.interfaces import (
    SYSTEM_REVENUE,
    SYSTEM_VENDOR_LOSS,
    VENDOR_LIMIT,
    JobState,
    Store,
)

__all__ = [
    "CONTENT_TYPE",
    "JsonFormatter",
    "Metrics",
    "RedactingJsonFormatter",
    "Snapshot",
    "database_problem",
    "read_snapshot",
]

log = logging.getLogger(__name__)

# The text format generate_latest writes (names use only [a-zA-Z0-9_:]).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds a readiness check or a scrape waits for the database.
DATABASE_TIMEOUT = 2.0
# Queued jobs are counted up to this many per scrape (rows are read, not COUNTed).
QUEUE_COUNT_CAP = 5_000
# Every state a vendor can be in, so each has a sample (0 or 1) on every scrape.
VENDOR_STATES = (HEALTHY, PAUSED, FAILING)
# Vendor calls take seconds to minutes (a 4K image: one to three).
VENDOR_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
_CODE_CHARS = 64


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The shared figures, read in one database snapshot."""

    queued: int
    in_flight: int
    held: int
    charged: int
    vendor_loss: int
    limit_value: int | None
    limit_ceiling: int | None
    paused: bool
    # (vendor name, state) for each configured vendor, in failover order.
    vendors: tuple[tuple[str, str], ...] = ()


async def read_snapshot(
    store: Store, now: float | None = None, vendors: Sequence[tuple[str, str | None]] = ()
) -> Snapshot:
    """``vendors``: (name shown, name its state is kept under: None for the one
    vendor of ``VENDOR=``) for each configured vendor."""
    now = time.time() if now is None else now
    async with store.read() as tx:
        totals = await store.ledger.totals(tx)
        reserved = await store.jobs.in_states(tx, [JobState.RESERVED], limit=QUEUE_COUNT_CAP)
        in_flight = await store.jobs.in_flight(tx, now)
        limit = await store.limits.get(tx, VENDOR_LIMIT)
        paused = await store.flags.get(tx, PAUSE_FLAG) is not None
        states = tuple(
            [(shown, (await read_state(store, tx, key)).state) for shown, key in vendors]
        )
    if len(states) > 1:
        # Several vendors: new jobs are refused only while none is in the rotation.
        paused = all(state != HEALTHY for _, state in states)
    # Losses are booked from the vendor-loss account to revenue: revenue minus them
    # is what users were charged.
    loss = -totals.get(SYSTEM_VENDOR_LOSS, 0)
    return Snapshot(
        queued=sum(1 for job in reserved if job.claimed_by is None),
        in_flight=in_flight,
        held=totals.get("open_holds_amount", 0),
        charged=totals.get(SYSTEM_REVENUE, 0) - loss,
        vendor_loss=loss,
        limit_value=limit.value if limit is not None else None,
        limit_ceiling=limit.ceiling if limit is not None else None,
        paused=paused,
        vendors=states,
    )


async def database_problem(store: Store, within: float = DATABASE_TIMEOUT) -> str | None:
    """None when the database answers a trivial read within ``within`` seconds, else
    what went wrong (an exception's type only: its text may name the server)."""
    try:
        async with asyncio.timeout(within):
            async with store.read() as tx:
                await store.limits.get(tx, VENDOR_LIMIT)
    except TimeoutError:
        return f"no answer within {within:g} s"
    except Exception as exc:
        return type(exc).__name__
    return None


class _DatabaseCollector(Collector):
    """Yields the snapshot handed to it for the scrape under way (set and cleared
    around a synchronous ``generate_latest``, so scrapes never see each other's)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        yield GaugeMetricFamily(
            "imagine_database_up",
            "1 when the database answered this scrape's reads",
            value=1 if snap is not None else 0,
        )
        if snap is None:
            return
        yield GaugeMetricFamily(
            "imagine_queue_depth", "Queued jobs no worker has claimed yet", value=snap.queued
        )
        yield GaugeMetricFamily(
            "imagine_jobs_in_flight",
            "Claimed jobs holding a vendor slot (all processes)",
            value=snap.in_flight,
        )
        yield GaugeMetricFamily(
            "imagine_credits_held", "Credits held by open holds (jobs not settled)", value=snap.held
        )
        yield CounterMetricFamily(
            "imagine_credits_charged",
            "Credits charged to users for delivered images, in total",
            value=snap.charged,
        )
        yield CounterMetricFamily(
            "imagine_credits_vendor_loss",
            "Credits of vendor cost the operator absorbed (undelivered, maybe billed)",
            value=snap.vendor_loss,
        )
        if snap.limit_value is not None and snap.limit_ceiling is not None:
            yield GaugeMetricFamily(
                "imagine_vendor_limit",
                "Concurrent vendor calls allowed now (adapts to the vendor's push-back)",
                value=snap.limit_value,
            )
            yield GaugeMetricFamily(
                "imagine_vendor_limit_ceiling",
                "VENDOR_CONCURRENCY_MAX: the most the vendor limit grows to",
                value=snap.limit_ceiling,
            )
        yield GaugeMetricFamily(
            "imagine_vendor_paused",
            "1 while new jobs are refused because the vendor answered 402 (with several "
            "vendors: while none of them is in the rotation)",
            value=1 if snap.paused else 0,
        )
        if snap.vendors:
            family = GaugeMetricFamily(
                "imagine_vendor_state",
                "1 for each configured vendor's current state (healthy, paused: answered "
                "402, failing: failed its health window), 0 for the others",
                labels=["vendor", "state"],
            )
            for vendor, current in snap.vendors:
                for state in VENDOR_STATES:
                    family.add_metric([vendor, state], 1 if state == current else 0)
            yield family


class Metrics:
    """This process's counters and the database's figures, in a registry of their own."""

    def __init__(self, vendors: Sequence[tuple[str, str | None]] = ()) -> None:
        """``vendors``: as ``read_snapshot`` takes them, for ``imagine_vendor_state``."""
        self.vendors = tuple(vendors)
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "imagine_jobs",
            "Jobs this process ended: succeeded, partial (some images delivered) or "
            "failed (with its error code)",
            ["outcome", "error"],
            registry=self.registry,
        )
        for outcome in ("succeeded", "partial"):
            self.jobs.labels(outcome, "")
        self.vendor_seconds = Histogram(
            "imagine_vendor_call_seconds",
            "Seconds from a job's vendor submission to its result (successful calls)",
            buckets=VENDOR_BUCKETS,
            registry=self.registry,
        )
        self._database = _DatabaseCollector()
        self.registry.register(self._database)
        ProcessCollector(registry=self.registry)

    def succeeded(self, *, partial: bool = False) -> None:
        self.jobs.labels("partial" if partial else "succeeded", "").inc()

    def failed(self, code: str) -> None:
        self.jobs.labels("failed", code[:_CODE_CHARS]).inc()

    def vendor_call(self, seconds: float) -> None:
        self.vendor_seconds.observe(max(0.0, seconds))

    def render(self, snapshot: Snapshot | None) -> bytes:
        self._database.snapshot = snapshot
        try:
            return generate_latest(self.registry)
        finally:
            self._database.snapshot = None

    async def scrape(self, store: Store, within: float = DATABASE_TIMEOUT) -> bytes:
        """The text exposition; the database figures are left out (and
        ``imagine_database_up`` is 0) when the database does not answer in time."""
        snapshot: Snapshot | None
        try:
            async with asyncio.timeout(within):
                snapshot = await read_snapshot(store, vendors=self.vendors)
        except Exception as exc:
            log.warning("metrics: database figures unavailable (%s)", type(exc).__name__)
            snapshot = None
        return self.render(snapshot)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and
    exception / stack text when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactingJsonFormatter(redaction.RedactingFormatter, JsonFormatter):
    """The JSON line, scrubbed as a whole once written (like the text format)."""
