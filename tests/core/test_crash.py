"""SIGKILL a real bot process at the two dangerous moments, restart it on the same
files, and check that nothing was lost and nothing was charged twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tests.fakes.images import png_bytes
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor
from tests.fakes.vendor_tasks import FakeTaskVendor

ROOT = Path(__file__).resolve().parents[2]


async def _spawn(mode: str, workdir: Path, url: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.core.crash_worker",
        mode,
        str(workdir),
        url,
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _wait_for(path: Path, proc: asyncio.subprocess.Process, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if path.exists():
            return
        if proc.returncode is not None:
            raise AssertionError((await proc.stderr.read()).decode() if proc.stderr else "died")
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path.name} never appeared")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL


async def _recover(workdir: Path, url: str) -> dict[str, Any]:
    proc = await _spawn("recover", workdir, url)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_kill_between_reserve_and_send(tmp_path: Path) -> None:
    async with FakeOpenAIVendor("aiearth") as vendor:
        vendor.inject(Fault("hang"))  # job 1 sits at the vendor; job 2 waits its turn
        proc = await _spawn("queue", tmp_path, vendor.base_url)
        await _wait_for(tmp_path / "queued", proc)
        await _kill(proc)
        result = await _recover(tmp_path, vendor.base_url)
        assert result["invariants"] == []
        # Job 1 was sent and its answer lost: failed, not charged, and what the vendor
        # may have billed is booked as a loss. Job 2 was still queued: the queue is
        # durable, so the restarted bot runs it and charges it once.
        assert result["states"] == ["FAILED", "SUCCEEDED"]
        assert result["pending"] == 0
        charged = 1000 - result["balance"]
        assert charged > 0 and len(result["delivered"]) == 1
        assert result["totals"]["system:revenue"] > charged
        assert result["totals"]["system:vendor_loss"] == -(
            result["totals"]["system:revenue"] - charged
        )
        assert len(result["notices"]) == 1 and "not charged" in result["notices"][0]
        again = await _recover(tmp_path, vendor.base_url)
        assert again["totals"] == result["totals"] and again["notices"] == []
        assert again["delivered"] == []


async def test_kill_between_vendor_success_and_settle(tmp_path: Path) -> None:
    async with FakeOpenAIVendor("aiearth") as vendor:
        proc = await _spawn("deliver", tmp_path, vendor.base_url)
        await _wait_for(tmp_path / "delivering", proc)
        await _kill(proc)
        assert len(vendor.billed) == 1
        job_id = (tmp_path / "delivering").read_text()
        result = await _recover(tmp_path, vendor.base_url)
        assert result["invariants"] == []
        assert result["delivered"] == [job_id]  # delivered from the stored result
        assert result["states"] == ["SUCCEEDED"]
        assert result["pending"] == 0
        charged = 1000 - result["balance"]
        assert charged > 0 and result["totals"]["system:revenue"] == charged
        assert result["totals"]["system:vendor_loss"] == 0
        again = await _recover(tmp_path, vendor.base_url)
        assert again["balance"] == result["balance"] and again["delivered"] == []


async def test_kill_while_polling_an_async_task_resumes_it(tmp_path: Path) -> None:
    async with FakeTaskVendor(key="sk-test") as vendor:
        vendor.task_polls_to_finish = 10_000  # the task runs until we let it finish
        source = vendor.publish(png_bytes(320, 240))
        proc = await _spawn("poll", tmp_path, vendor.base_url, source)
        await _wait_for(tmp_path / "polling", proc)
        await _kill(proc)
        assert vendor.billed == []
        vendor.task_polls_to_finish = 0  # the vendor finishes it while the bot is down
        result = await _recover(tmp_path, vendor.base_url)
        assert result["invariants"] == []
        assert result["states"] == ["SUCCEEDED"] and len(result["delivered"]) == 1
        assert len(vendor.billed) == 1
        assert result["pending"] == 0 and result["balance"] < 1000
        assert result["totals"]["system:revenue"] == 1000 - result["balance"]


async def test_result_files_lost_with_the_machine_release_the_hold(tmp_path: Path) -> None:
    async with FakeOpenAIVendor("aiearth") as vendor:
        proc = await _spawn("deliver", tmp_path, vendor.base_url)
        await _wait_for(tmp_path / "delivering", proc)
        await _kill(proc)
        for result in (tmp_path / "data").rglob("result-*"):
            result.unlink()  # what a power cut may do to unsynced files
        result = await _recover(tmp_path, vendor.base_url)
        assert result["invariants"] == [] and result["pending"] == 0
        assert result["states"] == ["FAILED"] and result["delivered"] == []
        assert result["balance"] == 1000  # never charged for what never arrived
        assert result["totals"]["system:vendor_loss"] < 0  # the vendor's bill, booked
        assert any("not charged" in n for n in result["notices"])
