"""Two real fake vendors behind the Telegram bot (``VENDORS``): the first answers
402, the job is delivered by the second and charged at its price."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.telegram_api import Call, FakeTelegramAPI
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor
from tests.fakes.vendor_pair import (
    FIRST_PRICE,
    NARROW_FIRST,
    PRICED,
    SECOND_PRICE,
    pair_settings,
    vendor_pair,
)
from tests.telegram.conftest import ADMIN_ID, USER_ID, Harness, running_bot


def has_caption(call: Call) -> bool:
    return bool(call.params.get("caption"))


@pytest.fixture
async def vendors() -> AsyncIterator[tuple[FakeOpenAIVendor, FakeOpenAIVendor]]:
    async with vendor_pair() as pair:
        yield pair


@pytest.fixture
async def vbot(
    fake: FakeTelegramAPI, tmp_path: Path, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> AsyncIterator[Harness]:
    settings = pair_settings(tmp_path, PRICED, *vendors)
    async with running_bot(fake, tmp_path, **settings) as harness:
        yield harness


async def test_402_at_the_first_vendor_is_delivered_by_the_second_at_its_price(
    vbot: Harness, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> None:
    first, second = vendors
    first.inject(Fault("402", times=5))

    vbot.send("/price a lighthouse --n 1")
    await vbot.said(f"{SECOND_PRICE}–{FIRST_PRICE}", chat_id=USER_ID)

    vbot.send("/imagine a lighthouse --n 1")
    [photo] = await vbot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    caption = str(photo.params["caption"])
    assert "a lighthouse" in caption and "second" in caption
    assert f"{SECOND_PRICE} credits" in caption
    assert await vbot.balance() == 100 - SECOND_PRICE
    assert len(second.billed) == 1 and first.billed == []
    alerts = [t for t in vbot.texts(chat_id=ADMIN_ID) if "402" in t]
    assert len(alerts) == 1 and "first" in alerts[0]

    # The next job skips the paused vendor; the admins hear nothing more.
    asked = len(first.requests)
    vbot.send("/imagine a second lighthouse --n 1")
    await vbot.fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
    assert await vbot.balance() == 100 - 2 * SECOND_PRICE
    assert len(first.requests) == asked
    assert len([t for t in vbot.texts(chat_id=ADMIN_ID) if "402" in t]) == 1
    assert not any("sk-first-key" in t for t in vbot.texts())


async def test_admin_jobs_shows_vendor_states_and_resume_clears_one(
    vbot: Harness, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> None:
    first, _ = vendors
    first.inject(Fault("402"))
    vbot.send("/imagine a boat --n 1")
    await vbot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    await vbot.settled()

    vbot.send("/jobs", user_id=ADMIN_ID)
    await vbot.said("first: paused", chat_id=ADMIN_ID)
    await vbot.said("second: healthy", chat_id=ADMIN_ID)

    vbot.send("/resume nobody", user_id=ADMIN_ID)
    await vbot.said("No vendor is called nobody", chat_id=ADMIN_ID)
    vbot.send("/resume first", user_id=ADMIN_ID)
    await vbot.said("first is back in the rotation", chat_id=ADMIN_ID)
    states = {s.name: s.state for s in await vbot.app.vendor_states()}
    assert states == {"first": "healthy", "second": "healthy"}


@pytest.fixture
async def wide(
    fake: FakeTelegramAPI, tmp_path: Path, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> AsyncIterator[Harness]:
    settings = pair_settings(tmp_path, NARROW_FIRST, *vendors)
    async with running_bot(fake, tmp_path, **settings) as harness:
        yield harness


async def test_menus_and_flags_offer_what_any_vendor_can_do(
    wide: Harness, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> None:
    first, second = vendors
    wide.send("/settings")
    [menu] = await wide.fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
    data = [
        b["callback_data"] for row in menu.params["reply_markup"]["inline_keyboard"] for b in row
    ]
    # The second vendor's tiers and counts, not only the first's.
    assert any(d.endswith(":res:4K") for d in data)
    assert any(d.endswith(":n:8") for d in data)

    # Only the second can do three images at 2K: accepted and delivered there.
    wide.send("/imagine a lighthouse --res 2K --ar 16:9 --q low --n 3")
    await wide.fake.wait_for("sendMediaGroup", timeout=10)
    assert len(second.billed) == 1 and first.requests == []

    # What neither can do is refused with the range they offer together.
    wide.send("/imagine a lighthouse --n 9")
    await wide.said("from 1 to 8")
