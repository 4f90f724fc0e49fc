"""Editing: replies to photos, albums, captioned photos, bad documents and the
public-URL refusal."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.telegram_api import Call, FakeTelegramAPI
from tests.telegram.conftest import TOKEN, USER_ID, Harness, png, running_bot


def has_caption(call: Call) -> bool:
    return bool(call.params.get("caption"))


def no_token_anywhere(fake: FakeTelegramAPI) -> None:
    for call in fake.calls:
        assert TOKEN not in str(call.params)


async def test_reply_to_a_photo_edits_it(bot: Harness) -> None:
    small = bot.fake.add_file(png(32, 24), mime="image/png")
    big = bot.fake.add_file(png(320, 240), mime="image/png")
    photo = bot.send(photo=[small, big])
    bot.send("make it blue", reply_to=photo)
    [result] = await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    assert "make it blue" in result.params["caption"]
    [get_file] = bot.fake.calls_of("getFile")
    assert get_file.params["file_id"] == big["file_id"]  # the largest size
    assert await bot.balance() == 98
    no_token_anywhere(bot.fake)


async def test_reply_to_the_bots_own_result_edits_it(bot: Harness) -> None:
    bot.send("/imagine a house --n 1")
    [first] = await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    bot.send("/edit paint it green", reply_to=first.result, chat_type="private")
    [_, second] = await bot.fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
    assert "paint it green" in second.params["caption"]


async def test_album_reply_gathers_every_item(bot: Harness) -> None:
    group_chat = -100123
    items = []
    for color in ("red", "green", "blue"):
        ref = bot.fake.add_file(png(40, 40, color), mime="image/png")
        items.append(
            bot.send(photo=[ref], chat_id=group_chat, chat_type="supergroup", media_group_id="alb1")
        )
    await asyncio.sleep(0.3)  # the bot sees the album first, as in a real chat
    bot.send(
        "/edit put them side by side",
        chat_id=group_chat,
        chat_type="supergroup",
        reply_to=items[1],
    )
    await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    assert len(bot.fake.calls_of("getFile")) == 3


async def test_photo_with_edit_caption(bot: Harness) -> None:
    ref = bot.fake.add_file(png(50, 50), mime="image/png")
    bot.send(photo=[ref], caption="/edit add a hat")
    [result] = await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    assert "add a hat" in result.params["caption"]


async def test_image_document_is_accepted(bot: Harness) -> None:
    doc = bot.fake.add_document(png(60, 40), file_name="pic.png", mime="image/png")
    message = bot.send(document=doc)
    bot.send("make it night", reply_to=message)
    await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)


async def test_huge_document_is_refused_before_download(bot: Harness) -> None:
    doc = bot.fake.add_document(
        png(10, 10), file_name="huge.png", mime="image/png", file_size=25 * 1024 * 1024
    )
    message = bot.send(document=doc)
    bot.send("make it night", reply_to=message)
    await bot.said("too large")
    assert not bot.fake.calls_of("getFile")
    assert await bot.balance() == 100


async def test_getfile_refusal_is_a_friendly_sentence(bot: Harness) -> None:
    # Size unknown up front, Telegram refuses at getFile.
    doc = bot.fake.add_document(png(10, 10), file_name="x.png", mime="image/png")
    del doc["file_size"]
    bot.fake.files[doc["file_id"]].file_size = 30 * 1024 * 1024
    message = bot.send(document=doc)
    bot.send("make it night", reply_to=message)
    await bot.said("too large")
    assert await bot.balance() == 100


async def test_non_image_document_is_refused(bot: Harness) -> None:
    doc = bot.fake.add_document(b"%PDF-1.4 not an image", file_name="a.pdf", mime="application/pdf")
    message = bot.send(document=doc)
    bot.send("make it night", reply_to=message)
    await bot.said("not an image")
    assert await bot.balance() == 100


async def test_image_mime_that_is_not_an_image(bot: Harness) -> None:
    doc = bot.fake.add_document(b"garbage" * 10, file_name="a.png", mime="image/png")
    message = bot.send(document=doc)
    bot.send("make it night", reply_to=message)
    await bot.said("not an image")
    assert await bot.balance() == 100


async def test_plain_group_reply_to_someone_elses_photo_is_ignored(bot: Harness) -> None:
    ref = bot.fake.add_file(png(20, 20), mime="image/png")
    photo = bot.send(photo=[ref], chat_id=-500, chat_type="group", user_id=USER_ID + 1)
    bot.send("nice picture", reply_to=photo, chat_id=-500, chat_type="group")
    bot.send("/balance")
    await bot.said("100 credits")
    assert not bot.fake.calls_of("getFile")


async def test_edit_without_an_image(bot: Harness) -> None:
    bot.send("/edit make it pink")
    await bot.said("Reply to a message with an image")


async def test_url_vendor_without_public_base_url_refuses_edits(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(
        fake,
        tmp_path,
        VENDOR="aigptimage",
        VENDOR_BASE_URL="http://127.0.0.1:9",
        VENDOR_API_KEY="sk-test",
    ) as bot:
        ref = fake.add_file(png(20, 20), mime="image/png")
        photo = bot.send(photo=[ref])
        bot.send("make it blue", reply_to=photo)
        await bot.said("PUBLIC_BASE_URL")
        assert not fake.calls_of("getFile")


async def test_captioned_album_waits_for_its_items(bot: Harness) -> None:
    refs = [bot.fake.add_file(png(30, 30, c), mime="image/png") for c in ("red", "blue")]
    bot.send(photo=[refs[0]], caption="/edit blend these", media_group_id="alb2")
    bot.send(photo=[refs[1]], media_group_id="alb2")
    [result] = await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    assert "blend these" in result.params["caption"]
    assert len(bot.fake.calls_of("getFile")) == 2


async def test_album_larger_than_the_vendor_limit_keeps_the_replied_item() -> None:
    from bots.telegram._media import AlbumCache, FileRef, collect

    class Msg:  # the few Message attributes collect() reads
        def __init__(self, mid: int) -> None:
            self.message_id = mid
            self.chat_id = 1
            self.media_group_id = "g"
            self.photo = [
                type("P", (), {"file_id": f"f{mid}", "file_size": 1, "width": 10, "height": 10})()
            ]
            self.document = None

    albums = AlbumCache()
    messages = [Msg(i) for i in (5, 6, 7)]
    for m in messages:
        albums.remember(m)  # type: ignore[arg-type]
    picked = collect(messages[2], albums, 1)  # type: ignore[arg-type]
    assert picked == [FileRef("f7", 1, 7)]
    assert [r.message_id for r in collect(messages[0], albums, 2)] == [5, 6]  # type: ignore[arg-type]
