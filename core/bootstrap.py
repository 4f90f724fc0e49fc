"""The composition root: settings in, a wired ``Imagine`` out. The only place that
creates HTTP clients, opens the database and picks the vendor adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from core.app import Imagine
from core.frontends import Frontends
from core.gate import FairGate
from core.jobs import JobLimits, JobService
from core.messages import Messages
from core.metrics import MetricsRecorder
from core.settings import Settings
from core.sweeper import Sweeper
from core.vendors.factory import build_vendor
from core.vendors.http import RedactingFilter, quiet_http_loggers
from storage import open_store
from storage.files import FileStore

log = logging.getLogger(__name__)


def configure_logging(level: str = "INFO") -> None:
    """Log lines pass a redaction filter: keys and tokens never reach the output."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_http_loggers()


@contextlib.asynccontextmanager
async def build_app(settings: Settings, *, sweep: bool = True) -> AsyncIterator[Imagine]:
    """Open everything, yield the wired app, close it all on the way out.

    With ``sweep`` the sweeper also runs every ``SWEEP_INTERVAL`` seconds; the first
    sweep is each frontend's, once it can deliver (``Imagine.sweep(platform)``).
    One-shot commands (the CLI's ``imagine``, ``credits``) pass ``sweep=False``."""
    store = await open_store(settings.database_url)
    handle = build_vendor(
        settings.preset,
        api_key=settings.vendor_api_key,
        concurrency=settings.vendor_concurrency,
        mock_latency=settings.mock_latency,
    )
    text = Messages(settings.default_locale)
    frontends = Frontends()
    jobs = JobService(
        store=store,
        files=FileStore(settings.data_dir / "files"),
        vendor=handle.vendor,
        gate=FairGate(settings.vendor_concurrency),
        text=text,
        frontends=frontends,
        limits=JobLimits(settings.user_max_active_jobs, settings.user_jobs_per_minute),
    )
    app = Imagine(
        settings=settings, store=store, files=jobs.files, jobs=jobs, frontends=frontends, text=text
    )
    sweeper = Sweeper(
        jobs, delivery_grace=settings.delivery_grace, default_locale=settings.default_locale
    )
    app.sweeper = sweeper
    periodic: asyncio.Task[None] | None = None
    # Off unless METRICS_FILE is set: the bot's own loop lag, CPU and memory figures.
    recorder = MetricsRecorder(settings.metrics_file) if settings.metrics_file else None
    if recorder is not None:
        recorder.start()
    if sweep:
        periodic = asyncio.create_task(sweeper.run_forever(settings.sweep_interval))
    try:
        yield app
    finally:
        if periodic is not None:
            periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await periodic
        await sweeper.aclose()
        await handle.aclose()
        await store.close()
        if recorder is not None:
            await recorder.stop()
