"""``DiscordFrontend`` from ``ChatRef.data`` alone, as core calls it for a job resumed
after a restart: a fresh interaction token edits the deferred message, an expired
one falls back to a reply in the channel."""

from __future__ import annotations

import time
from dataclasses import replace

from bots.discord._render import caption_embed
from core.messages import Messages
from core.ports import ChatRef, Delivery, UserRef
from core.types import GeneratedImage, ImageRequest, Progress

from .conftest import CHANNEL_ID, GUILD_ID, USER_ID, Harness, png


def delivery(chat: ChatRef) -> Delivery:
    image = GeneratedImage(png(32, 32, "orange"), "png", 32, 32)
    return Delivery(
        job_id="f" * 32,
        chat=chat,
        user=UserRef("discord", str(USER_ID)),
        request=ImageRequest(prompt="a kite"),
        images=(image,),
        cost=2,
        balance_after=98,
        locale="en",
        caption="a kite\n💳 2 credits · balance 98",
    )


async def test_expired_token_falls_back_to_a_channel_reply(harness: Harness) -> None:
    fake = harness.fake
    start = len(fake.calls)
    anchor = fake.message("earlier", author_id=USER_ID)
    chat = ChatRef(
        "discord",
        {
            "kind": "interaction",
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "user_id": USER_ID,
            "application_id": 1,
            "token": "expired-token",
            "message_id": int(anchor["id"]),
            "created": time.time() - 3600,
            "upload_limit": 10 * 1024 * 1024,
        },
    )
    await harness.bot.frontend.deliver(delivery(chat))
    sent = [c for c in fake.calls[start:] if c.path == f"/channels/{CHANNEL_ID}/messages"]
    assert len(sent) == 1
    assert sent[0].payload["content"] == f"<@{USER_ID}>"
    assert sent[0].payload["embeds"][0]["description"].startswith("a kite")
    assert str(sent[0].payload["message_reference"]["message_id"]) == anchor["id"]
    assert not [c for c in fake.calls[start:] if "/webhooks/" in c.path]


async def test_fresh_token_after_restart_edits_the_deferred_message(harness: Harness) -> None:
    fake = harness.fake
    payload = fake.slash_interaction("balance", {}, user_id=USER_ID)
    # pretend a previous bot deferred this interaction before it crashed
    session = harness.bot.http._HTTPClient__session  # type: ignore[attr-defined]
    url = f"{fake.rest_base}/interactions/{payload['id']}/{payload['token']}/callback"
    async with session.post(url, params={"with_response": "true"}, json={"type": 5}) as resp:
        message_id = int((await resp.json())["interaction"]["response_message_id"])
    await harness.bot.close()
    async with harness.start_bot() as fresh:
        chat = ChatRef(
            "discord",
            {
                "kind": "interaction",
                "channel_id": CHANNEL_ID,
                "guild_id": GUILD_ID,
                "user_id": USER_ID,
                "application_id": payload["application_id"],
                "token": payload["token"],
                "message_id": message_id,
                "created": time.time() - 60,
                "upload_limit": 10 * 1024 * 1024,
            },
        )
        await fresh.frontend.deliver(delivery(chat))
    original = fake.original_response(payload["id"])
    assert original is not None and original["embeds"][0]["description"].startswith("a kite")
    assert original["attachments"][0]["filename"].endswith(".png")
    assert original["components"][0]["components"][0]["custom_id"] == "imagine:reroll:" + "f" * 32


EVIL_PROMPT = "a cat [click me](http://evil.example/login) **urgent** @everyone"
EVIL_REVISED = "# Verify your account\n[free credits](https://evil.example)"


def test_caption_embed_shows_prompt_markdown_literally() -> None:
    caption = Messages().caption("en", EVIL_PROMPT, 2, 98, revised=EVIL_REVISED)
    text = caption_embed(caption).description or ""
    assert "\\[click me](" in text and "\\[free credits](" in text  # no live masked link
    assert "\\*\\*urgent\\*\\*" in text
    assert "@everyone" not in text  # broken by a zero-width space
    assert "💳 2 credits · balance 98" in text


async def test_a_delivered_caption_reaches_discord_escaped(harness: Harness) -> None:
    fake = harness.fake
    start = len(fake.calls)
    anchor = fake.message("earlier", author_id=USER_ID)
    chat = ChatRef(
        "discord",
        {
            "kind": "message",
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "user_id": USER_ID,
            "reply_to": int(anchor["id"]),
        },
    )
    caption = Messages().caption("en", EVIL_PROMPT, 2, 98, revised=EVIL_REVISED)
    await harness.bot.frontend.deliver(replace(delivery(chat), caption=caption))
    sent = [c for c in fake.calls[start:] if c.payload.get("embeds")]
    assert len(sent) == 1
    description = sent[0].payload["embeds"][0]["description"]
    assert "\\[click me](" in description and "\\[free credits](" in description
    assert "\\*\\*urgent\\*\\*" in description


async def test_progress_with_an_expired_token_edits_the_status_message_by_id(
    harness: Harness,
) -> None:
    fake = harness.fake
    status = fake.message("thinking", author_id=harness.fake.bot_user_id)
    chat = ChatRef(
        "discord",
        {
            "kind": "interaction",
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "user_id": USER_ID,
            "application_id": 1,
            "token": "expired-token",
            "message_id": int(status["id"]),
            "created": time.time() - 3600,
        },
    )
    start = len(fake.calls)
    async with harness.bot.frontend.progress(chat, "en") as show:
        assert show is not None
        await show(Progress(stage="queued", queue_position=3))
    path = f"/channels/{CHANNEL_ID}/messages/{status['id']}"
    edits = [c for c in fake.calls[start:] if c.method == "PATCH"]
    assert [c.path for c in edits] == [path]
    assert "3" in edits[0].payload["content"]
    # closed once the context ends: a late report edits nothing
    await show(Progress(stage="polling"))
    assert len([c for c in fake.calls[start:] if c.method == "PATCH"]) == 1


async def test_no_status_message_means_no_progress(harness: Harness) -> None:
    chat = ChatRef("discord", {"kind": "message", "channel_id": CHANNEL_ID})
    async with harness.bot.frontend.progress(chat, "en") as show:
        assert show is None
