"""A real OpenAI-style fake vendor behind the bot: success, 402 and failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.telegram_api import Call, FakeTelegramAPI
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor
from tests.telegram.conftest import ADMIN_ID, USER_ID, Harness, running_bot

SECRET_BODY = "upstream-secret-detail-xyz"


def has_caption(call: Call) -> bool:
    return bool(call.params.get("caption"))


@pytest.fixture
async def vendor() -> AsyncIterator[FakeOpenAIVendor]:
    async with FakeOpenAIVendor(flavor="compat-sizes") as v:
        yield v


@pytest.fixture
async def vbot(
    fake: FakeTelegramAPI, tmp_path: Path, vendor: FakeOpenAIVendor
) -> AsyncIterator[Harness]:
    async with running_bot(
        fake,
        tmp_path,
        VENDOR="compat-sizes",
        VENDOR_BASE_URL=vendor.base_url,
        VENDOR_API_KEY="sk-test",
    ) as harness:
        yield harness


def leaked(bot: Harness) -> bool:
    return any(SECRET_BODY in t for t in bot.texts())


async def test_generate_through_the_vendor(vbot: Harness) -> None:
    vbot.send("/imagine a snowy owl --ar 16:9 --n 1")
    [photo] = await vbot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    assert "a snowy owl" in photo.params["caption"]
    assert await vbot.balance() < 100


async def test_vendor_402_pauses_without_charging_and_alerts_admins_once(
    vbot: Harness, vendor: FakeOpenAIVendor
) -> None:
    vendor.inject(Fault("402", message=SECRET_BODY))
    vbot.send("/imagine a whale --n 1")
    await vbot.said("temporarily unavailable", chat_id=USER_ID)
    alert = await vbot.said("402", chat_id=ADMIN_ID)
    assert alert.method == "sendMessage"
    assert await vbot.balance() == 100

    vbot.send("/imagine another whale --n 1")
    await vbot.fake.wait_for(
        "editMessageText",
        lambda c: "temporarily unavailable" in str(c.params.get("text")),
        count=2,
    )
    admin_texts = [t for t in vbot.texts(chat_id=ADMIN_ID) if "402" in t]
    assert len(admin_texts) == 1
    assert await vbot.balance() == 100
    assert not leaked(vbot)


async def test_vendor_failure_is_one_sentence_and_free(
    vbot: Harness, vendor: FakeOpenAIVendor
) -> None:
    vendor.inject(Fault("500", times=10, message=SECRET_BODY))
    vbot.send("/imagine a comet --n 1")
    await vbot.said("failed", chat_id=USER_ID, within=15)
    assert await vbot.balance() == 100
    assert not leaked(vbot)


async def test_vendor_rejection(vbot: Harness, vendor: FakeOpenAIVendor) -> None:
    vendor.inject(Fault("moderation", message=SECRET_BODY))
    vbot.send("/imagine something forbidden --n 1")
    await vbot.said("refused", chat_id=USER_ID)
    assert await vbot.balance() == 100
    assert not leaked(vbot)
