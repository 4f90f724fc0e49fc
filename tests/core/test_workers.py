"""Several processes on one queue, on both backends: a worker killed mid-delivery is
finished by another once its lease expires (delivered once, charged once), and an
instance starting next to a live one leaves that one's jobs alone."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from core.app import Imagine
from core.ports import ChatRef, UserRef
from storage.interfaces import JobState
from tests.core.helpers import assert_books_balance, fund, request, wait_done

ROOT = Path(__file__).resolve().parents[2]
ALICE = UserRef("test", "alice")
CHAT = ChatRef("test", {"chat_id": 1})


@pytest.fixture
async def spawn(tmp_path: Path, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(name: str, *flags: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.core.queue_worker",
            str(tmp_path),
            database_url,
            name,
            *flags,
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        await _appears(tmp_path / f"ready-{name}", proc)
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _appears(path: Path, proc: asyncio.subprocess.Process, within: float = 20) -> None:
    for _ in range(int(within / 0.05)):
        if path.exists():
            return
        if proc.returncode is not None:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(err.decode()[-2000:])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path.name} never appeared")


@pytest.fixture
async def intake(
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> AsyncIterator[Imagine]:
    """This process only takes requests: it runs no worker of its own."""
    async with make_app(MOCK_LATENCY="0.3") as app:
        assert app.worker is not None
        app.worker.stop()  # the queue is served by the spawned processes only
        await asyncio.sleep(0)
        yield app


async def _state(app: Imagine, job_id: str) -> Any:
    async with app.store.read() as tx:
        return await app.store.jobs.get(tx, job_id)


async def test_a_killed_workers_job_is_finished_by_another_once(
    intake: Imagine, spawn: Callable[..., Any], tmp_path: Path
) -> None:
    await fund(intake, ALICE, 100)
    first = await spawn("a", "block")
    submitted = await intake.submit(ALICE, request(intake), CHAT)
    await _appears(tmp_path / "delivering-a", first)
    job = await _state(intake, submitted.job_id)
    assert job.state == JobState.DELIVERING and job.claimed_by is not None
    os.kill(first.pid, signal.SIGKILL)
    await first.wait()
    await spawn("b")  # sweeps every half second; the lease runs out after one
    assert await wait_done(intake, submitted.job_id) == "SUCCEEDED"
    delivered = sorted(p.name for p in tmp_path.glob("delivered-*"))
    assert delivered == [f"delivered-{submitted.job_id}-b"]
    assert await intake.balance(ALICE) == 100 - submitted.price
    async with intake.store.read() as tx:
        totals = await intake.store.ledger.totals(tx)
        assert await intake.store.ledger.open_holds(tx) == []
    assert totals["system:revenue"] == submitted.price
    await assert_books_balance(intake)


async def test_an_instance_starting_beside_a_live_one_leaves_its_jobs_alone(
    intake: Imagine, spawn: Callable[..., Any], tmp_path: Path
) -> None:
    await fund(intake, ALICE, 100)
    first = await spawn("a", "block")
    submitted = await intake.submit(ALICE, request(intake), CHAT)
    await _appears(tmp_path / "delivering-a", first)
    await spawn("b")  # a second worker process: it must not take the job either
    # A second instance comes up and sweeps, as every start does: the job is
    # running elsewhere under a live lease, so nothing of it changes.
    assert intake.sweeper is not None
    report = await intake.sweep()
    assert report is not None and report.voided == report.redelivered == report.requeued == 0
    await asyncio.sleep(1.5)  # longer than a lease: the heartbeat keeps it
    job = await _state(intake, submitted.job_id)
    assert job.state == JobState.DELIVERING and job.claimed_by.startswith("worker:")
    async with intake.store.read() as tx:
        (hold,) = await intake.store.ledger.open_holds(tx)
    assert hold.job_id == submitted.job_id
