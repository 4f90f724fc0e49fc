"""The bot as an operator scales it: ``imagine-bot run --workers 2`` on PostgreSQL,
against the fake Bot API. Jobs from several users are delivered (by the intake's
own worker or the two worker processes), each charged once, and SIGTERM stops the
whole group cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from core.settings import load_settings
from storage import open_store
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram.conftest import TOKEN, env_for

ROOT = Path(__file__).resolve().parents[2]
USERS = range(9001, 9007)


async def test_run_with_two_worker_processes_on_postgres(pg_url: str, tmp_path: Path) -> None:
    async with FakeTelegramAPI(token=TOKEN, bot_username="imagine_test_bot") as fake:
        env = {**os.environ, **env_for(fake, tmp_path, DATABASE_URL=pg_url, MOCK_LATENCY="0.5")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bots.cli",
            "run",
            "--workers",
            "2",
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)},
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await fake.wait_for("getUpdates", timeout=30)
            for uid in USERS:
                fake.push_update(
                    fake.message(f"/imagine a lighthouse number {uid} --n 1", user_id=uid)
                )
            for uid in USERS:
                await fake.wait_for(
                    "sendPhoto",
                    lambda c, uid=uid: c.params.get("chat_id") == uid and c.params.get("caption"),
                    timeout=30,
                )
            # Six users were greeted with 100 credits and each paid for one image.
            settings = load_settings({**env, "DATABASE_URL": pg_url}, env_file=None)
            store = await open_store(settings.database_url)
            try:
                for _ in range(100):
                    async with store.read() as tx:
                        if not await store.ledger.open_holds(tx):
                            break
                    await asyncio.sleep(0.05)
                async with store.read() as tx:
                    assert await store.ledger.check_invariants(tx) == []
                    jobs = await store.jobs.recent(tx, 100)
                    assert sorted(j.state for j in jobs) == ["SUCCEEDED"] * len(USERS)
                    workers = {j.claimed_by for j in jobs}  # dropped at the end
                    assert workers == {None}
                    for uid in USERS:
                        account = await store.ledger.find_account(tx, "telegram", str(uid))
                        assert account is not None and account.balance == 100 - 2
            finally:
                await store.close()
            results = [c for c in fake.calls_of("sendPhoto") if c.params.get("caption")]
            assert len(results) == len(USERS)  # each delivered once (previews aside)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-3000:]
        assert b"Traceback" not in err, err.decode()[-3000:]
