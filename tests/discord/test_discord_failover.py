"""Two real fake vendors behind the Discord bot (``VENDORS``): the first answers 402,
the job is delivered by the second and charged at its price; admins see each
vendor's state and resume one by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.bootstrap import build_app
from core.settings import load_settings
from tests.fakes.discord_api import Call, FakeDiscord
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor
from tests.fakes.vendor_pair import FIRST_PRICE, PRICED, SECOND_PRICE, pair_settings, vendor_pair

from .conftest import ADMIN_ID, CHANNEL_ID, Harness, base_env, running


@pytest.fixture
async def vendors() -> AsyncIterator[tuple[FakeOpenAIVendor, FakeOpenAIVendor]]:
    async with vendor_pair() as pair:
        yield pair


@pytest.fixture
async def vharness(
    fake: FakeDiscord, tmp_path: Path, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> AsyncIterator[Harness]:
    env = base_env(
        tmp_path, DISCORD_ALERT_CHANNEL_ID=CHANNEL_ID, **pair_settings(tmp_path, PRICED, *vendors)
    )
    settings = load_settings(env, env_file=None)
    async with build_app(settings, sweep=False) as app, running(fake, app) as bot:
        yield Harness(app, fake, bot, lambda: running(fake, app))


def alert_402(call: Call) -> bool:
    return (
        call.method == "POST"
        and call.path == f"/channels/{CHANNEL_ID}/messages"
        and "402" in str(call.payload.get("content"))
    )


async def answer(harness: Harness, name: str, options: object = (), **kwargs: object) -> str:
    payload = await harness.slash(name, options, **kwargs)
    cb = await harness.callback(payload)
    return str(cb.json["data"]["content"])


async def test_402_at_the_first_vendor_is_delivered_by_the_second_at_its_price(
    vharness: Harness, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> None:
    first, second = vendors
    first.inject(Fault("402", times=5))

    price = await answer(vharness, "price", {"prompt": "a lighthouse", "count": 1})
    assert f"{SECOND_PRICE}–{FIRST_PRICE}" in price

    payload = await vharness.slash("imagine", {"prompt": "a lighthouse", "count": 1})
    result = await vharness.result(payload)
    embed = result.payload["embeds"][0]
    shown = f"{embed.get('description')} {embed.get('footer')}"
    assert "a lighthouse" in shown and "second" in shown and str(SECOND_PRICE) in shown
    await vharness.settled()
    assert await vharness.balance() == 100 - SECOND_PRICE
    assert len(second.billed) == 1 and first.billed == []
    await vharness.fake.wait_for_call(alert_402)

    # The next job skips the paused vendor, and the admins hear nothing more.
    asked = len(first.requests)
    payload = await vharness.slash("imagine", {"prompt": "a second lighthouse", "count": 1})
    await vharness.result(payload)
    await vharness.settled()
    assert len(first.requests) == asked
    assert await vharness.balance() == 100 - 2 * SECOND_PRICE
    alerts = vharness.fake.calls_to(f"/channels/{CHANNEL_ID}/messages", "POST")
    assert len([c for c in alerts if alert_402(c)]) == 1
    everything = " ".join(str(c.payload) for c in vharness.fake.calls_to("/", "POST"))
    assert first.key not in everything and second.key not in everything


async def test_admin_jobs_shows_vendor_states_and_resume_clears_one(
    vharness: Harness, vendors: tuple[FakeOpenAIVendor, FakeOpenAIVendor]
) -> None:
    first, _ = vendors
    first.inject(Fault("402"))
    payload = await vharness.slash("imagine", {"prompt": "a boat", "count": 1})
    await vharness.result(payload)

    jobs = await answer(vharness, "credits", {}, subcommand="jobs", user_id=ADMIN_ID)
    assert "first: paused" in jobs and "second: healthy" in jobs

    said = await answer(
        vharness, "credits", {"vendor": "nobody"}, subcommand="resume", user_id=ADMIN_ID
    )
    assert "nobody" in said
    said = await answer(
        vharness, "credits", {"vendor": "first"}, subcommand="resume", user_id=ADMIN_ID
    )
    assert "first is back in the rotation" in said
    states = {s.name: s.state for s in await vharness.app.vendor_states()}
    assert states == {"first": "healthy", "second": "healthy"}
