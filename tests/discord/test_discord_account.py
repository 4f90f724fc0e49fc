"""Account and admin commands, vendor faults and operator alerts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.bootstrap import build_app
from core.ports import UserRef
from core.settings import load_settings
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor

from .conftest import ADMIN_ID, CHANNEL_ID, OTHER_ID, USER_ID, Harness, base_env, running


async def answer(harness: Harness, name: str, options: object = (), **kwargs: object) -> dict:
    payload = await harness.slash(name, options, **kwargs)
    cb = await harness.callback(payload)
    assert cb.json["type"] == 4, cb.json
    data: dict = cb.json["data"]
    return data


async def test_balance_history_help_are_ephemeral(harness: Harness) -> None:
    data = await answer(harness, "balance")
    assert data["flags"] == 64 and "100 credits" in data["content"]
    data = await answer(harness, "history")
    assert data["flags"] == 64 and "welcome gift" in data["content"]
    data = await answer(harness, "help")
    assert data["flags"] == 64 and "/imagine" in data["content"]


async def test_price_and_settings(harness: Harness) -> None:
    data = await answer(harness, "price", {"prompt": "a cat", "quality": "high", "count": 2})
    assert "costs 8 credits" in data["content"]
    data = await answer(harness, "settings", {"aspect": "16:9", "quality": "low"})
    assert "16:9" in data["content"] and "low" in data["content"]
    payload = await harness.slash("imagine", {"prompt": "a dog"})
    await harness.result(payload)
    assert await harness.balance() == 100 - 1  # the saved defaults: low quality, 16:9


async def test_settings_language_and_discord_locale(harness: Harness) -> None:
    data = await answer(harness, "balance", locale="zh-CN")
    assert "100" in data["content"] and "credits" not in data["content"]
    data = await answer(harness, "settings", {"language": "en"}, locale="zh-TW")
    data = await answer(harness, "balance", locale="zh-CN")
    assert "100 credits" in data["content"]  # the saved language wins over the client's


async def test_non_admin_cannot_use_credits(harness: Harness) -> None:
    other = harness.fake.user(OTHER_ID, "other")
    data = await answer(
        harness, "credits", {"user": other, "amount": 50}, subcommand="topup", user_id=USER_ID
    )
    assert data["flags"] == 64 and "Only the bot's admins" in data["content"]
    assert await harness.balance(OTHER_ID) == 100


async def test_admin_topup_show_set_jobs_resume(harness: Harness) -> None:
    other = harness.fake.user(OTHER_ID, "other")
    data = await answer(
        harness,
        "credits",
        {"user": other, "amount": 50, "reason": "gift"},
        subcommand="topup",
        user_id=ADMIN_ID,
    )
    assert data["flags"] == 64 and "150" in data["content"]
    assert data["allowed_mentions"]["parse"] == []
    data = await answer(harness, "credits", {"user": other}, subcommand="show", user_id=ADMIN_ID)
    assert "150" in data["content"] and "gift" in data["content"]
    data = await answer(
        harness, "credits", {"user": other, "amount": 7}, subcommand="set", user_id=ADMIN_ID
    )
    assert await harness.balance(OTHER_ID) == 7
    data = await answer(harness, "credits", {}, subcommand="jobs", user_id=ADMIN_ID)
    assert "No jobs" in data["content"]
    data = await answer(harness, "credits", {}, subcommand="resume", user_id=ADMIN_ID)
    assert "Nothing was paused" in data["content"]


@pytest.fixture
async def vendor() -> AsyncIterator[FakeOpenAIVendor]:
    async with FakeOpenAIVendor(flavor="aiearth") as fake_vendor:
        yield fake_vendor


@pytest.fixture
async def vendor_harness(
    fake: FakeDiscord, vendor: FakeOpenAIVendor, tmp_path: Path
) -> AsyncIterator[Harness]:
    env = base_env(
        tmp_path,
        VENDOR="aiearth",
        VENDOR_BASE_URL=vendor.base_url,
        VENDOR_API_KEY=vendor.key,
        DISCORD_ALERT_CHANNEL_ID=CHANNEL_ID,
        WELCOME_CREDITS=1000,
    )
    settings = load_settings(env, env_file=None)
    async with build_app(settings, sweep=False) as app, running(fake, app) as bot:
        yield Harness(app, fake, bot, lambda: running(fake, app))


async def test_real_vendor_streams_and_delivers(
    vendor_harness: Harness, vendor: FakeOpenAIVendor
) -> None:
    payload = await vendor_harness.slash("imagine", {"prompt": "a harbour at dawn"})
    result = await vendor_harness.result(payload)
    assert result.files and "a harbour at dawn" in result.payload["embeds"][0]["description"]
    assert vendor.billed


async def test_vendor_402_apologises_and_alerts_admins(
    vendor_harness: Harness, vendor: FakeOpenAIVendor
) -> None:
    fake = vendor_harness.fake
    vendor.inject(Fault("402"))
    payload = await vendor_harness.slash("imagine", {"prompt": "a harbour"})
    text = await vendor_harness.ephemeral(payload)
    assert "temporarily unavailable" in text and "not charged" in text
    assert "402" not in text and vendor.key not in text
    assert await vendor_harness.balance() == 1000
    dm = await fake.wait_for_call("/users/@me/channels", method="POST")
    assert dm.json["recipient_id"] in (ADMIN_ID, str(ADMIN_ID))
    alert = await fake.wait_for_call(
        lambda c: (
            c.method == "POST"
            and c.path.endswith("/messages")
            and "402" in str(c.payload.get("content"))
            and c.path == f"/channels/{CHANNEL_ID}/messages"
        )
    )
    assert "out of credits" in alert.payload["content"]
    # new jobs are refused quickly while paused, until an admin resumes
    payload = await vendor_harness.slash("imagine", {"prompt": "again"})
    assert "temporarily unavailable" in await vendor_harness.ephemeral(payload)
    admin = UserRef("discord", str(ADMIN_ID))
    assert await vendor_harness.app.admin_resume(admin) is True


async def test_a_flood_of_interactions_is_dropped_before_any_work(harness: Harness) -> None:
    payloads = [await harness.slash("balance") for _ in range(25)]
    texts = [await harness.ephemeral(p) for p in payloads[:11]]
    slow = [t for t in texts if "Slow down" in t]
    assert len(slow) == 1 and sum("100 credits" in t for t in texts) == 10
    other = await answer(harness, "balance", user_id=OTHER_ID)  # others go on as usual
    assert "100 credits" in other["content"]


async def test_stats_answers_admins_with_a_png(harness: Harness) -> None:
    payload = await harness.slash("stats", user_id=USER_ID)
    assert "Only the bot's admins" in await harness.ephemeral(payload)
    payload = await harness.slash("stats", user_id=ADMIN_ID)
    call = await harness.callback(payload)
    assert call.payload["data"]["flags"] == 64
    assert "Today (UTC): 0 jobs" in call.payload["data"]["content"]
    ((_, filename, data, _),) = call.files
    assert filename == "stats.png" and data.startswith(b"\x89PNG\r\n\x1a\n")
