"""The composition root: settings in, a wired ``Imagine`` out. The only place that
creates HTTP clients, opens the database and picks the vendor adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from core import redaction
from core.app import Imagine
from core.concurrency import VendorLimit
from core.frontends import Frontends
from core.images import ImageLimits
from core.jobs import JobLimits, JobService
from core.messages import Messages
from core.metrics import MetricsRecorder
from core.observability import RedactingJsonFormatter
from core.payments import sales_platforms
from core.settings import Settings, VendorConfig
from core.sweeper import Sweeper
from core.vendors.factory import build_vendor
from core.vendors.http import quiet_http_loggers
from core.worker import Worker
from storage import open_store
from storage.files import FileStore

log = logging.getLogger(__name__)


def configure_logging(
    level: str = "INFO", *, secrets: Iterable[str | None] = (), fmt: str = "text"
) -> None:
    """Log lines pass a redaction filter: keys and tokens never reach the output.

    ``secrets`` are the configured values to scrub (``redaction.secrets_from(settings)``);
    the filter sits on the root handler, so every logger's records pass it. ``fmt``
    (``LOG_FORMAT``): ``text`` lines, or ``json`` (one object per line), scrubbed
    again as a whole either way."""
    redaction.add_secrets(*secrets)
    handler = redaction.RedactingStreamHandler()
    handler.setFormatter(
        RedactingJsonFormatter()
        if fmt == "json"
        else redaction.RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(redaction.SecretFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_http_loggers()


@contextlib.asynccontextmanager
async def build_app(
    settings: Settings,
    *,
    sweep: bool = True,
    work: bool = True,
    announce: bool = False,
    worker_id: str | None = None,
) -> AsyncIterator[Imagine]:
    """Open everything, yield the wired app, close it all on the way out.

    ``work``: this process runs a worker that claims the jobs of the platforms
    registered with ``app.add_frontend`` (``imagine-bot run`` and ``worker``, and the
    command line for its own jobs). ``announce``: it also keeps queued jobs' status
    messages showing their position (the process that takes chat events).
    With ``sweep`` the sweeper also runs every ``SWEEP_INTERVAL`` seconds; the first
    sweep is each frontend's, once it can deliver (``Imagine.sweep(platform)``)."""
    store = await open_store(settings.database_url)
    limit = VendorLimit(store, ceiling=settings.vendor_concurrency_max)
    await limit.start()
    configs = settings.vendors or (
        VendorConfig(settings.preset.name, settings.preset, settings.vendor_api_key),
    )
    # One adapter (and its own HTTP clients) per configured vendor, in failover order.
    handles = [
        (
            config.name,
            build_vendor(
                config.preset,
                api_key=config.api_key,
                concurrency=settings.vendor_concurrency_max,
                mock_latency=settings.mock_latency,
                on_pushback=limit.observe,
                allow_hosts=settings.fetch_allow_hosts,
            ),
        )
        for config in configs
    ]
    text = Messages(settings.default_locale, buy_platforms=sales_platforms(settings))
    frontends = Frontends()
    jobs = JobService(
        store=store,
        files=FileStore(settings.data_dir / "files"),
        vendors=[(name, handle.vendor) for name, handle in handles],
        text=text,
        frontends=frontends,
        limits=JobLimits(settings.user_max_active_jobs, settings.user_jobs_per_minute),
        image_limits=ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            # Any vendor may serve: as many sources as the most generous takes
            # (a request with more is refused by the ones that take fewer).
            max_count=min(16, max(c.preset.max_input_images for c in configs)),
        ),
        concurrency=limit,
        default_locale=settings.default_locale,
    )
    app = Imagine(
        settings=settings, store=store, files=jobs.files, jobs=jobs, frontends=frontends, text=text
    )
    worker = Worker(
        jobs,
        queues=frontends.queues,
        capacity=settings.worker_jobs,
        lease=settings.job_lease,
        worker_id=worker_id,
        announce=announce,
    )
    sweeper = Sweeper(
        jobs,
        worker,
        delivery_grace=settings.delivery_grace,
        queue_timeout=settings.queue_timeout,
        retention=settings.file_retention_days * 86_400,
    )
    app.sweeper = sweeper
    app.worker = worker
    background: list[asyncio.Task[None]] = []
    # Off unless METRICS_FILE is set: the bot's own loop lag, CPU and memory figures.
    recorder = MetricsRecorder(settings.metrics_file) if settings.metrics_file else None
    if recorder is not None:
        recorder.start()
    working = asyncio.create_task(worker.run()) if work else None
    if sweep:
        background.append(asyncio.create_task(sweeper.run_forever(settings.sweep_interval)))
    try:
        yield app
    finally:
        for task in background:
            task.cancel()
        if working is not None:
            worker.stop()
            await working
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await limit.aclose()
        for _, handle in handles:
            await handle.aclose()
        await store.close()
        if recorder is not None:
            await recorder.stop()
