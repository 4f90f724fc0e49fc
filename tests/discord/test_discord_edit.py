"""Editing an image already in the channel: the "Edit image" context menu + modal,
and ``@bot <instruction>`` as a reply (mention-replies)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bots.discord._sources import is_discord_media
from core.bootstrap import build_app
from core.ports import UserRef
from core.settings import load_settings
from tests.fakes.discord_api import FakeDiscord

from .conftest import ADMIN_ID, CHANNEL_ID, OTHER_ID, USER_ID, Harness, base_env, png, running


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


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[str]]]:
    """A web server that is not Discord (think: an internal address), recording hits."""
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=png(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


def foreign_embeds(*urls: str) -> list[dict[str, object]]:
    return [{"type": "image", "url": u, "thumbnail": {"url": u}} for u in urls]


async def test_embed_outside_discord_is_never_fetched(
    harness: Harness, elsewhere: tuple[str, list[str]]
) -> None:
    fake = harness.fake
    base, hits = elsewhere
    embeds = foreign_embeds(f"{base}/secret.png", "http://127.0.0.1:9/x.png")
    target = fake.message("look", author_id=OTHER_ID, embeds=embeds)
    menu = fake.context_menu_interaction("Edit image", target, user_id=USER_ID)
    await fake.send_interaction(menu)
    text = await harness.ephemeral(menu)
    assert "Reply to a message with an image" in text
    await asyncio.sleep(0.2)
    assert hits == []
    assert not fake.cdn_requests


async def test_foreign_embed_beside_an_attachment_is_dropped(
    harness: Harness, elsewhere: tuple[str, list[str]]
) -> None:
    fake = harness.fake
    base, hits = elsewhere
    source = fake.attachment(png(40, 40, "white"), "mine.png", "image/png")
    target = fake.message(
        "look", author_id=OTHER_ID, attachments=[source], embeds=foreign_embeds(f"{base}/x.png")
    )
    custom_id, _ = await open_modal(harness, target)
    submit = await harness.submit(custom_id, {"instruction": "add a moon"})
    result = await harness.result(submit)
    assert "add a moon" in result.payload["embeds"][0]["description"]
    jobs = await harness.app.admin_jobs(UserRef("discord", str(ADMIN_ID)))
    request = await harness.app.job_request(jobs[0].job_id)
    assert [r.ref for r in request.refs] == [source["url"]]
    assert hits == []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1", True),
        ("https://media.discordapp.net/attachments/1/2/a.png", True),
        ("http://cdn.discordapp.com/attachments/1/2/a.png", False),
        ("https://cdn.discordapp.com:8443/attachments/1/2/a.png", False),
        ("https://cdn.discordapp.com.evil.example/a.png", False),
        ("https://user:pw@cdn.discordapp.com/a.png", False),
        ("https://evil.example/?u=https://cdn.discordapp.com/a.png", False),
        ("http://127.0.0.1:9/x.png", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("file:///etc/passwd", False),
        ("not a url", False),
    ],
)
def test_only_discord_media_hosts_count(url: str, ok: bool) -> None:
    assert is_discord_media(url) is ok


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
