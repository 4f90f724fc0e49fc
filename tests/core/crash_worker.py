"""A real bot process for the crash tests: it runs jobs until the parent kills it
with SIGKILL at a chosen step, or it restarts on the same files, sweeps, and
reports the books as JSON on stdout.

    python -m tests.core.crash_worker MODE WORKDIR VENDOR_BASE_URL [SOURCE_URL]

MODE is queue, deliver, poll, failover or recover.

``poll`` (and ``recover`` after it) speak the async-task vendor (aigptimage); the
others speak aiearth (aiearth). ``failover`` runs one job with two vendors
(``VENDORS=primary,backup``) as ``WORKDIR/failover.json`` describes them (written by
the test: ``database``, ``preset``, ``primary`` and ``backup`` base URLs, prices),
on the database it names; ``recover`` then uses the same configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from core.bootstrap import build_app
from core.ports import ChatRef, Delivery, UserRef
from core.settings import load_settings
from core.sources import SourceRef
from core.types import Progress, SourceImage
from core.vendors.base import ProgressCallback
from storage.interfaces import ACTIVE_STATES
from tests.core.helpers import fund, request

USER = UserRef("test", "alice")


class Frontend:
    platform = "test"

    def __init__(self, workdir: Path, block: bool) -> None:
        self.workdir = workdir
        self.block = block
        self.delivered: list[str] = []
        self.notices: list[str] = []

    async def deliver(self, delivery: Delivery) -> None:
        if self.block:
            (self.workdir / "delivering").write_text(delivery.job_id)
            await asyncio.Event().wait()  # until SIGKILL
        self.delivered.append(delivery.job_id)

    async def notify(self, chat: ChatRef, text: str) -> None:
        self.notices.append(text)

    @contextlib.asynccontextmanager
    async def progress(self, chat: ChatRef, locale: str) -> AsyncIterator[ProgressCallback | None]:
        yield None

    async def fetch_source(self, ref: SourceRef) -> bytes:
        return await _fetch(ref.ref)

    async def publish(
        self, job_id: str, sources: tuple[SourceImage, ...]
    ) -> tuple[SourceImage, ...]:
        return sources

    async def alert_admins(self, text: str) -> None:
        return None


def _failover_env(workdir: Path) -> dict[str, str]:
    """Two vendors of one preset, the primary dearer, with fast polling."""
    spec = json.loads((workdir / "failover.json").read_text())
    blocks = []
    for name in ("primary", "backup"):
        blocks.append(
            f"[vendors.{name}]\npreset = {json.dumps(spec['preset'])}\n"
            "poll_initial = 0.05\npoll_max = 0.1\nmax_retries = 0\nretry_after_cap = 0.05\n"
            f"[vendors.{name}.price.per_image]\n"
            f"{json.dumps(spec['price_key'])} = {int(spec[name + '_price'])}\n"
        )
    (workdir / "vendors.toml").write_text("\n".join(blocks))
    return {
        "VENDORS": "primary,backup",
        "VENDOR_CONFIG": str(workdir / "vendors.toml"),
        "VENDOR_PRIMARY_BASE_URL": spec["primary"],
        "VENDOR_PRIMARY_API_KEY": "sk-test",
        "VENDOR_BACKUP_BASE_URL": spec["backup"],
        "VENDOR_BACKUP_API_KEY": "sk-test",
        "DATABASE_URL": spec["database"],
    }


async def main(mode: str, workdir: Path, vendor_url: str, source_url: str | None) -> None:
    tasks = (workdir / "tasks").exists() or mode == "poll"
    if tasks:
        (workdir / "tasks").touch()
        (workdir / "fast.toml").write_text("poll_initial = 0.05\npoll_max = 0.1\n")
    failover = _failover_env(workdir) if (workdir / "failover.json").exists() else {}
    single = {
        "VENDOR": "aigptimage" if tasks else "aiearth",
        "VENDOR_CONFIG": str(workdir / "fast.toml") if tasks else "",
        "VENDOR_BASE_URL": vendor_url,
        "VENDOR_API_KEY": "sk-test",
        "DATABASE_URL": f"sqlite:///{workdir}/db.sqlite3",
    }
    settings = load_settings(
        {
            **(failover or single),
            "DATA_DIR": str(workdir / "data"),
            "VENDOR_CONCURRENCY_MAX": "1",
            # Short, so the restarted process finds the killed one's leases run out.
            "JOB_LEASE_SECONDS": "0.5",
            "ADMIN_USER_IDS": "cli:admin",
            "DELIVERY_GRACE": "0",
        },
        env_file=None,
    )
    async with build_app(settings, sweep=False) as app:
        frontend = Frontend(workdir, block=(mode == "deliver"))
        app.add_frontend(frontend)
        if mode == "recover":
            await asyncio.sleep(0.6)  # the killed process's leases run out
            report = await app.sweep()
            for _ in range(200):  # resumed polling and queued jobs, if any, settle
                async with app.store.read() as tx:
                    busy = await app.store.jobs.in_states(tx, ACTIVE_STATES)
                if not busy:
                    break
                await asyncio.sleep(0.05)
            account_id = (await app.profile(USER)).account_id
            async with app.store.read() as tx:
                jobs = await app.store.jobs.recent(tx, 100)
                out = {
                    "report": {"voided": report.voided, "redelivered": report.redelivered}
                    if report
                    else {},
                    "states": sorted(j.state for j in jobs),
                    "errors": sorted(j.error or "" for j in jobs),
                    "balance": (await app.store.ledger.balance(tx, account_id)).posted,
                    "pending": len(await app.store.ledger.open_holds(tx)),
                    "totals": await app.store.ledger.totals(tx),
                    "invariants": await app.store.ledger.check_invariants(tx),
                    "delivered": frontend.delivered,
                    "notices": frontend.notices,
                    "vendors": sorted(j.vendor or "" for j in jobs),
                }
            print(json.dumps(out))
            return
        await fund(app, USER, 1000)

        async def mark_queued(progress: Progress) -> None:
            if progress.stage in ("queued", "polling"):
                (workdir / progress.stage).write_text("1")

        if source_url:
            profile = await app.profile(USER)
            req = app.build_request(
                "studio light",
                profile.defaults,
                refs=(SourceRef("test", source_url, public_url=source_url),),
            )
        else:
            req = request(app)
        jobs = [asyncio.create_task(app.run_job(USER, req, ChatRef("test"), mark_queued))]
        if mode == "queue":
            await asyncio.sleep(0.2)
            jobs.append(
                asyncio.create_task(app.run_job(USER, request(app), ChatRef("test"), mark_queued))
            )
        await asyncio.gather(*jobs)


async def _fetch(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).content


if __name__ == "__main__":
    source = sys.argv[4] if len(sys.argv) > 4 else None
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], source))
