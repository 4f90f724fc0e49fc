"""SIGKILL a real bot process running two vendors (``VENDORS=primary,backup``) after
its job moved on to the backup, restart it on the same files and database (SQLite
and PostgreSQL), and check what the sweeper does with the job the backup took: a
lost synchronous answer books the backup's price as the loss (not the hold, which
covered the dearer primary) and releases the rest once; an async task resumes at
the backup, where it was created."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.core.test_crash import _kill, _recover, _spawn, _wait_for
from tests.fakes.images import png_bytes
from tests.fakes.vendor_base import FakeVendor, Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor
from tests.fakes.vendor_tasks import FakeTaskVendor

PRIMARY_PRICE = 40
BACKUP_PRICE = 25


def _describe(
    workdir: Path,
    database_url: str,
    preset: str,
    price_key: str,
    primary: FakeVendor,
    backup: FakeVendor,
) -> None:
    spec = {
        "database": database_url,
        "preset": preset,
        "price_key": price_key,
        "primary": primary.base_url,
        "backup": backup.base_url,
        "primary_price": PRIMARY_PRICE,
        "backup_price": BACKUP_PRICE,
    }
    (workdir / "failover.json").write_text(json.dumps(spec))


async def _wait_until_asked(vendor: FakeVendor, proc: asyncio.subprocess.Process) -> None:
    for _ in range(400):
        if vendor.requests:
            return
        if proc.returncode is not None:
            raise AssertionError("the bot died before asking the backup")
        await asyncio.sleep(0.05)
    raise AssertionError("the backup was never asked")


async def test_kill_after_the_backup_was_asked_books_its_price(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        FakeOpenAIVendor("compat-sizes", key="sk-test") as primary,
        FakeOpenAIVendor("compat-sizes", key="sk-test") as backup,
    ):
        primary.inject(Fault("402"))  # refused, nothing billed: the job moves on
        backup.inject(Fault("hang"))  # the backup has the request when the bot dies
        _describe(tmp_path, database_url, "compat-sizes", "1024x1024:medium", primary, backup)
        proc = await _spawn("failover", tmp_path, primary.base_url)
        await _wait_until_asked(backup, proc)
        await _kill(proc)
        result = await _recover(tmp_path, primary.base_url)
        assert result["invariants"] == []
        assert result["states"] == ["FAILED"] and result["vendors"] == ["backup"]
        assert result["pending"] == 0 and result["balance"] == 1000  # not charged
        # What the backup may have billed, not the primary's price the hold covered.
        assert result["totals"]["system:vendor_loss"] == -BACKUP_PRICE
        assert len(result["notices"]) == 1 and "not charged" in result["notices"][0]
        again = await _recover(tmp_path, primary.base_url)
        assert again["totals"] == result["totals"] and again["balance"] == 1000
        assert again["notices"] == []


async def test_a_task_the_backup_took_resumes_at_the_backup(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        FakeTaskVendor(key="sk-test") as primary,
        FakeTaskVendor(key="sk-test") as backup,
    ):
        primary.inject(Fault("402"))
        backup.task_polls_to_finish = 10_000  # runs until the bot is gone
        source = backup.publish(png_bytes(320, 240))
        _describe(tmp_path, database_url, "aigptimage", "1K", primary, backup)
        proc = await _spawn("failover", tmp_path, primary.base_url, source)
        await _wait_for(tmp_path / "polling", proc)
        await _kill(proc)
        assert len(backup.tasks) == 1 and primary.tasks == {}
        backup.task_polls_to_finish = 0  # the backup finishes it while the bot is down
        polled = sum(t.polls for t in backup.tasks.values())
        result = await _recover(tmp_path, primary.base_url)
        assert result["invariants"] == []
        assert result["states"] == ["SUCCEEDED"] and result["vendors"] == ["backup"]
        assert len(result["delivered"]) == 1
        # Resumed where the task lives: polled again at the backup, never created
        # (or looked for) at the primary.
        assert sum(t.polls for t in backup.tasks.values()) > polled
        assert primary.tasks == {} and len(backup.billed) == 1 and primary.billed == []
        assert result["pending"] == 0 and result["balance"] == 1000 - BACKUP_PRICE
        assert result["totals"]["system:revenue"] == BACKUP_PRICE
        assert result["totals"]["system:vendor_loss"] == 0
