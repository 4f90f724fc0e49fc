"""The fake Telegram Bot API against the real python-telegram-bot stack."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    Update,
)
from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

# Relative import: works whether pytest imports this as ``fakes.*`` (no tests/__init__.py)
# or as ``tests.fakes.*``.
from .telegram_api import FakeTelegramAPI

TOKEN = "123:ABC"
REPO_ROOT = Path(__file__).resolve().parents[2]


def png(width: int = 64, height: int = 48, color: str = "red", mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), color if mode == "RGB" else 1).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN, bot_username="imagine_test_bot", bot_id=123) as f:
        yield f


def build_app(fake: FakeTelegramAPI, token: str = TOKEN) -> Application:  # type: ignore[type-arg]
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .build()
    )


async def test_get_me_and_wrong_token(fake: FakeTelegramAPI) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/bot")
    app = build_app(fake)
    async with app:
        assert app.bot.username == "imagine_test_bot"
        assert app.bot.id == 123
        assert app.bot.can_join_groups is True
    assert [c.method for c in fake.calls][:1] == ["getMe"]
    with pytest.raises(InvalidToken):
        async with build_app(fake, token="999:WRONG"):
            pass


async def test_send_message_photo_document_media_group(fake: FakeTelegramAPI) -> None:
    async with build_app(fake) as app:
        bot = app.bot
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
        m1 = await bot.send_message(
            42, "hello <b>world</b>", parse_mode="HTML", reply_markup=markup
        )
        assert m1.text == "hello world" and m1.chat_id == 42 and m1.from_user
        assert m1.from_user.id == 123 and m1.reply_markup == markup
        [call] = fake.calls_of("sendMessage")
        assert call.params["chat_id"] == 42
        assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "again"

        data = png(640, 480)
        m2 = await bot.send_photo(
            42, photo=data, caption="a cat", reply_to_message_id=m1.message_id
        )
        assert m2.message_id == m1.message_id + 1
        assert m2.caption == "a cat" and m2.reply_to_message is not None
        assert (m2.photo[-1].width, m2.photo[-1].height) == (640, 480)
        upload = fake.calls_of("sendPhoto")[0].files["photo"]
        assert upload.data == data
        # The bot can download (and so edit) its own result.
        f = await bot.get_file(m2.photo[-1].file_id)
        assert bytes(await f.download_as_bytearray()) == data

        m3 = await bot.send_document(42, document=data, filename="result.png", caption="lossless")
        assert m3.document is not None and m3.document.file_name == "result.png"
        assert m3.document.mime_type == "image/png"
        assert fake.calls_of("sendDocument")[0].files["document"].filename == "result.png"

        group = await bot.send_media_group(
            42, [InputMediaPhoto(png(10, 10), caption="one"), InputMediaPhoto(png(20, 10))]
        )
        assert len(group) == 2 and group[0].media_group_id == group[1].media_group_id
        assert group[0].caption == "one" and group[1].photo[-1].width == 20
        media = fake.calls_of("sendMediaGroup")[0].params["media"]
        assert media[0]["type"] == "photo" and media[0]["media"].startswith("attach://")
        docs = await bot.send_media_group(
            42, [InputMediaDocument(data, filename=f"{i}.png") for i in range(3)]
        )
        assert [d.document.file_name for d in docs if d.document] == ["0.png", "1.png", "2.png"]

        assert await bot.send_chat_action(42, "upload_photo") is True
        edited = await bot.edit_message_text("bye", chat_id=42, message_id=m1.message_id)
        assert isinstance(edited, type(m1)) and edited.text == "bye"
        cap = await bot.edit_message_caption(42, m2.message_id, caption="a dog")
        assert not isinstance(cap, bool) and cap.caption == "a dog"
        new = await bot.edit_message_media(
            InputMediaPhoto(png(30, 30)), chat_id=42, message_id=m2.message_id
        )
        assert not isinstance(new, bool) and new.photo[-1].width == 30
        assert await bot.delete_message(42, m3.message_id) is True
        assert await bot.set_my_commands([("imagine", "Generate an image")]) is True
        assert [m["message_id"] for m in fake.messages[42]] == [1, 2, 4, 5, 6, 7, 8]
        assert fake.deleted_messages == [(42, 3)]


async def test_limits_are_enforced(fake: FakeTelegramAPI) -> None:
    async with build_app(fake) as app:
        bot = app.bot
        with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
            await bot.send_photo(1, photo=png(), caption="x" * 1025)
        with pytest.raises(BadRequest, match=r"[Mm]essage is too long"):
            await bot.send_message(1, "x" * 4097)
        with pytest.raises(BadRequest, match=r"(?i)photo_invalid_dimensions"):
            await bot.send_photo(1, photo=png(6000, 4500, mode="1"))
        with pytest.raises(BadRequest, match=r"(?i)photo_invalid_dimensions"):
            await bot.send_photo(1, photo=png(2100, 100, mode="1"))
        with pytest.raises(BadRequest, match=r"2-10"):
            await bot.send_media_group(1, [InputMediaPhoto(png())] * 11)
        with pytest.raises(BadRequest, match=r"(?i)can.t parse entities"):
            await bot.send_message(1, "1 < 2 <3", parse_mode="HTML")
        with pytest.raises(BadRequest, match=r"(?i)reserved"):
            await bot.send_message(1, "Done!", parse_mode="MarkdownV2")
        assert (await bot.send_message(1, "*Done*\\!", parse_mode="MarkdownV2")).text == "Done!"
        m = await bot.send_message(1, "same")
        with pytest.raises(BadRequest, match=r"(?i)not modified"):
            await bot.edit_message_text("same", chat_id=1, message_id=m.message_id)
        with pytest.raises(BadRequest, match=r"(?i)replied not found"):
            await bot.send_message(1, "hi", reply_to_message_id=999)
        big = fake.add_file(b"\xff" * 10, file_size=21 * 1024 * 1024)
        with pytest.raises(BadRequest, match=r"(?i)file is too big"):
            await bot.get_file(big["file_id"])
    assert all(c.status == 400 for c in fake.calls if c.method in ("sendPhoto", "getFile"))


async def test_get_file_download_of_added_file(fake: FakeTelegramAPI) -> None:
    data = png(300, 200, "blue")
    size = fake.add_file(data)
    assert (size["width"], size["height"], size["file_size"]) == (300, 200, len(data))
    async with build_app(fake) as app:
        f = await app.bot.get_file(size["file_id"])
        assert f.file_path is not None and f.file_path.startswith(fake.base_file_url + TOKEN)
        assert bytes(await f.download_as_bytearray()) == data
    [call] = fake.calls_of("getFile")
    assert call.response and not call.response["result"]["file_path"].startswith("http")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_fault_injection_retry_after(fake: FakeTelegramAPI) -> None:
    fake.fail_next("sendMessage", status=429, retry_after=3)
    fake.fail_next("sendPhoto", status=400, description="Bad Request: chat not found")
    async with build_app(fake) as app:
        with pytest.raises(RetryAfter) as info:
            await app.bot.send_message(1, "hi")
        assert "Retry in 3 seconds" in str(info.value)
        assert (await app.bot.send_message(1, "hi")).text == "hi"  # only once
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await app.bot.send_photo(1, png())
    first = fake.calls_of("sendMessage")[0]
    assert first.status == 429 and first.response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }


async def test_long_polling_commands_and_callbacks(fake: FakeTelegramAPI) -> None:
    seen: list[tuple[str, list[str], int]] = []
    pressed: list[str] = []

    async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.message.text and update.effective_chat
        seen.append(
            (update.message.text.split()[0], list(context.args or []), update.effective_chat.id)
        )
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
        await update.message.reply_text("ok", reply_markup=markup)

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query and update.callback_query.data
        pressed.append(update.callback_query.data)
        await update.callback_query.answer("working")

    app = build_app(fake)
    app.add_handler(CommandHandler(["start", "imagine"], on_command))
    app.add_handler(CallbackQueryHandler(on_button))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        fake.push_update(fake.message("/start", user_id=7, username="alice"))
        group_msg = fake.message(
            "/imagine@imagine_test_bot x", user_id=8, chat_id=-100, chat_type="supergroup"
        )
        assert group_msg["message"]["entities"][0] == {
            "type": "bot_command",
            "offset": 0,
            "length": len("/imagine@imagine_test_bot"),
        }
        fake.push_update(group_msg)
        replies = await fake.wait_for("sendMessage", count=2, timeout=5)
        fake.push_update(fake.callback_query("again", user_id=7, message=replies[0].result))
        [answer] = await fake.wait_for("answerCallbackQuery")
        assert answer.params["text"] == "working"
        await app.updater.stop()
        await app.stop()
    assert seen == [("/start", [], 7), ("/imagine@imagine_test_bot", ["x"], -100)]
    assert pressed == ["again"]
    assert replies[1].params["chat_id"] == -100
    assert replies[1].params["reply_parameters"]["message_id"] == group_msg["message"]["message_id"]
    assert fake.pending_updates == []  # the final getUpdates confirmed everything


async def test_get_updates_semantics_and_conflict(fake: FakeTelegramAPI) -> None:
    async with build_app(fake) as app:
        bot = app.bot
        waiter = asyncio.create_task(bot.get_updates(timeout=2))
        await asyncio.sleep(0.1)
        u = fake.push_update(fake.message("hi", user_id=1))
        got = await asyncio.wait_for(waiter, 1.5)
        assert [x.update_id for x in got] == [u["update_id"]]
        assert got[0].message and got[0].message.text == "hi"
        # not confirmed yet: delivered again; confirmed by offset
        assert len(await bot.get_updates()) == 1
        assert await bot.get_updates(offset=u["update_id"] + 1) == ()
        # a second long poll terminates the first with 409 Conflict
        # (PTB's getUpdates pool holds one connection, so the second poller is a raw client)
        first = asyncio.create_task(bot.get_updates(timeout=2))
        await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session:
            url = f"{fake.base_url}{TOKEN}/getUpdates"
            async with session.post(url, data={"timeout": "0.2"}) as resp:
                assert await resp.json() == {"ok": True, "result": []}
        with pytest.raises(Conflict):
            await first


async def test_standalone_process_and_control_endpoints() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.telegram_api",
        "--port",
        "0",
        "--token",
        "T:1",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base_url = line.split()[1]
        root = base_url.removesuffix("/bot")

        def post(path: str, body: bytes, ctype: str = "application/json") -> object:
            req = urllib.request.Request(root + path, body, {"Content-Type": ctype})
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.loads(resp.read())

        def get(path: str) -> object:
            with urllib.request.urlopen(root + path, timeout=5) as resp:
                return json.loads(resp.read())

        size = await asyncio.to_thread(post, "/_control/file", png(40, 30), "image/png")
        assert isinstance(size, dict) and size["width"] == 40
        update = {
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 5, "type": "private"},
                "text": "hey",
            }
        }
        queued = await asyncio.to_thread(post, "/_control/update", json.dumps([update]).encode())
        assert isinstance(queued, list) and queued[0]["update_id"] == 1
        got = await asyncio.to_thread(get, "/botT:1/getUpdates?offset=0")
        assert isinstance(got, dict) and got["result"][0]["message"]["text"] == "hey"
        await asyncio.to_thread(
            post, "/botT:1/sendMessage", json.dumps({"chat_id": 5, "text": "yo"}).encode()
        )
        calls = await asyncio.to_thread(get, "/_control/calls?since=1")
        assert isinstance(calls, list) and [c["method"] for c in calls] == ["sendMessage"]
        assert calls[0]["params"] == {"chat_id": 5, "text": "yo"} and calls[0]["time"] > 1e9
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 5)


async def test_many_concurrent_calls_are_fast(fake: FakeTelegramAPI) -> None:
    """500 concurrent raw calls (the benchmark load) plus a PTB burst."""
    loop = asyncio.get_running_loop()
    url = f"{fake.base_url}{TOKEN}/sendMessage"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            async with session.post(url, data={"chat_id": str(i), "text": f"m{i}"}) as resp:
                assert (await resp.json())["ok"] is True

        start = loop.time()
        await asyncio.gather(*(one(i) for i in range(1, 501)))
        elapsed = loop.time() - start
    assert len(fake.calls_of("sendMessage")) == 500
    assert elapsed < 3, elapsed
    async with build_app(fake) as app:
        sent = await asyncio.gather(*(app.bot.send_message(1000, f"p{i}") for i in range(50)))
    assert sorted(m.message_id for m in sent) == list(range(1, 51))


async def test_builders_are_accepted_by_update_de_json(fake: FakeTelegramAPI) -> None:
    photo = fake.add_file(png(100, 80))
    doc = fake.add_document(png(), file_name="in.png")
    async with build_app(fake) as app:
        bot_msg = await app.bot.send_photo(
            -5,
            png(),
            caption="result",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("v", callback_data="v")]]),
        )
        [call] = fake.calls_of("sendPhoto")
        assert call.params["reply_markup"] == {
            "inline_keyboard": [[{"text": "v", "callback_data": "v"}]]
        }  # JSON-string field in a multipart body, decoded
        assert call.params["caption"] == "result" and call.files["photo"].content_type

        reply = fake.message(
            "/edit make it blue",
            user_id=9,
            chat_id=-5,
            chat_type="group",
            reply_to=bot_msg.to_dict(),
        )
        album = fake.message(
            None,
            user_id=9,
            photo=[photo],
            caption="/imagine@imagine_test_bot cat",
            media_group_id="g1",
        )
        with_doc = fake.message(None, user_id=9, document=doc, reply_to=album)
        cb = fake.callback_query("v", user_id=9, message=bot_msg.to_dict())
        updates = [Update.de_json(u, app.bot) for u in (reply, album, with_doc, cb)]
        assert len({u.update_id for u in updates}) == 4
        m0 = updates[0].message
        assert m0 and m0.reply_to_message and m0.reply_to_message.photo
        assert m0.reply_to_message.from_user and m0.reply_to_message.from_user.is_bot
        assert m0.chat.type == "group" and m0.parse_entities(["bot_command"])
        m1 = updates[1].message
        assert m1 and m1.photo[0].width == 100 and m1.media_group_id == "g1"
        assert list(m1.parse_caption_entities(["bot_command"]).values()) == [
            "/imagine@imagine_test_bot"
        ]
        m2 = updates[2].message
        assert m2 and m2.document and m2.document.file_name == "in.png"
        assert m2.reply_to_message and m2.reply_to_message.message_id == m1.message_id
        q = updates[3].callback_query
        assert q and q.data == "v" and q.message and q.message.message_id == bot_msg.message_id

        chat = await app.bot.get_chat(-5)
        assert chat.type == "group"
        f = await app.bot.get_file(doc["file_id"])
        assert bytes(await f.download_as_bytearray()) == png()

    with pytest.raises(TimeoutError, match="sendMessage"):
        await fake.wait_for("sendMessage", timeout=0.05)


def test_form_data_parser_reads_what_http_clients_send() -> None:
    import httpx

    from tests.fakes.telegram_api import parse_form_data

    request = httpx.Request(
        "POST",
        "http://x/",
        data={"chat_id": "7", "caption": 'a "quoted" caption\r\nwith lines', "empty": ""},
        files={"photo": ('we"ird name.png', b"\x89PNG\r\n\r\n--not a boundary", "image/png")},
    )
    body = request.read()
    parts = {
        name: (filename, ctype, data)
        for name, filename, ctype, data in parse_form_data(body, request.headers["Content-Type"])
    }
    assert parts["chat_id"] == (None, None, b"7")
    assert parts["caption"][2] == b'a "quoted" caption\r\nwith lines'
    assert parts["empty"][2] == b""
    filename, ctype, data = parts["photo"]
    assert data == b"\x89PNG\r\n\r\n--not a boundary"
    assert ctype == "image/png"
    assert filename is not None and "name.png" in filename


def test_form_data_parser_refuses_a_cut_body() -> None:
    import pytest

    from tests.fakes.telegram_api import parse_form_data

    body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
    with pytest.raises(ValueError, match="terminated"):
        parse_form_data(body, "multipart/form-data; boundary=b")
    with pytest.raises(ValueError, match="boundary"):
        parse_form_data(body, "multipart/form-data")
