"""Editing an image already in the channel: the "Edit image" context menu + modal,
and ``@bot <instruction>`` as a reply (mention-replies)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.bootstrap import build_app
from core.settings import load_settings
from tests.fakes.discord_api import FakeDiscord

from .conftest import CHANNEL_ID, OTHER_ID, USER_ID, Harness, base_env, png, running


async def open_modal(harness: Harness, target: dict[str, object]) -> tuple[str, dict[str, object]]:
    menu = harness.fake.context_menu_interaction("Edit image", target, user_id=USER_ID)
    await harness.fake.send_interaction(menu)
    cb = await harness.callback(menu)
    assert cb.json["type"] == 9, cb.json  # a modal, not a defer
    return str(cb.json["data"]["custom_id"]), cb.json["data"]


async def test_context_menu_modal_then_deferred_edit(harness: Harness) -> None:
    fake = harness.fake
    source = fake.attachment(png(120, 90, "blue"), "photo.png", "image/png")
    target = fake.message("look", author_id=OTHER_ID, attachments=[source])
    custom_id, modal = await open_modal(harness, target)
    assert modal["title"] == "Edit image"
    submit = await harness.submit(custom_id, {"instruction": "make it night"})
    result = await harness.result(submit)
    kinds = [c.json.get("type") for c in fake.interaction_responses(submit["id"])[:1]]
    assert kinds == [5]  # deferred inside on_submit
    assert "make it night" in result.payload["embeds"][0]["description"]
    assert any("photo.png" in url for url in fake.cdn_requests)


async def test_context_menu_on_image_embed(harness: Harness) -> None:
    fake = harness.fake
    hosted = fake.attachment(png(50, 50, "yellow"), "hosted.png", "image/png")
    embed = {"type": "image", "url": hosted["url"], "thumbnail": {"url": hosted["url"]}}
    target = fake.message(hosted["url"], author_id=OTHER_ID, embeds=[embed])
    custom_id, _ = await open_modal(harness, target)
    submit = await harness.submit(custom_id, {"instruction": "add a hat"})
    result = await harness.result(submit)
    assert "add a hat" in result.payload["embeds"][0]["description"]


async def test_context_menu_without_image_answers_ephemerally(harness: Harness) -> None:
    fake = harness.fake
    doc = fake.attachment(b"%PDF-1.4", "report.pdf", "application/pdf")
    target = fake.message("a document", author_id=OTHER_ID, attachments=[doc])
    menu = fake.context_menu_interaction("Edit image", target, user_id=USER_ID)
    await fake.send_interaction(menu)
    text = await harness.ephemeral(menu)
    assert "Reply to a message with an image" in text


async def test_corrupt_image_is_refused_after_download(harness: Harness) -> None:
    fake = harness.fake
    fake_png = fake.attachment(b"not really a png", "fake.png", "image/png")
    target = fake.message("", author_id=OTHER_ID, attachments=[fake_png])
    custom_id, _ = await open_modal(harness, target)
    submit = await harness.submit(custom_id, {"instruction": "fix it"})
    text = await harness.ephemeral(submit)
    assert "not an image" in text
    assert await harness.balance() == 100


@pytest.fixture
async def mention_harness(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = load_settings(base_env(tmp_path, DISCORD_MENTION_REPLIES="true"), env_file=None)
    async with build_app(settings, sweep=False) as app, running(fake, app) as bot:
        yield Harness(app, fake, bot, lambda: running(fake, app))


async def test_mention_reply_edits_the_replied_image(mention_harness: Harness) -> None:
    fake, bot = mention_harness.fake, mention_harness.bot
    assert fake.identify is not None
    intents = fake.identify["intents"]
    assert intents & (1 << 15) and intents & (1 << 9)  # message content + guild messages
    source = fake.attachment(png(64, 64, "purple"), "sky.png", "image/png")
    original = fake.message("my photo", author_id=OTHER_ID, attachments=[source])
    assert bot.user is not None
    reply = fake.message(
        f"<@{bot.user.id}> make it night",
        author_id=USER_ID,
        mentions=[bot.user.id],
        referenced_message=original,
    )
    start = len(fake.calls)
    await fake.send_message(reply)
    status = await fake.wait_for_call(
        f"/channels/{CHANNEL_ID}/messages", method="POST", start=start
    )
    assert str(status.json["message_reference"]["message_id"]) == reply["id"]
    status_id = status.response["id"]

    def delivered(c: object) -> bool:
        return getattr(c, "path", "") == f"/channels/{CHANNEL_ID}/messages/{status_id}" and bool(
            getattr(c, "payload", {}).get("embeds")
        )

    result = await fake.wait_for_call(delivered, 10)
    assert "make it night" in result.payload["embeds"][0]["description"]
    assert result.files and result.payload["components"]
    assert any("sky.png" in url for url in fake.cdn_requests)


async def test_mentions_are_ignored_when_disabled(harness: Harness) -> None:
    fake, bot = harness.fake, harness.bot
    assert bot.user is not None
    start = len(fake.calls)
    msg = fake.message(f"<@{bot.user.id}> a cat", author_id=USER_ID, mentions=[bot.user.id])
    await fake.send_message(msg)
    await asyncio.sleep(0.3)
    assert not [c for c in fake.calls[start:] if "/messages" in c.path]
