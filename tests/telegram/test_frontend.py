"""Delivery rules, /settings, languages, callback data, public links, webhook mode."""

from __future__ import annotations

import asyncio
import io
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bots.telegram import build_application, run_telegram
from bots.telegram._frontend import fit_caption, photo_fits
from bots.telegram._keyboards import decode, encode
from bots.telegram._public_files import PublicFiles, link_key
from core.bootstrap import build_app
from core.ports import ChatRef, Delivery, UserRef
from core.settings import load_settings
from core.types import GeneratedImage, ImageRequest
from storage.files import FileStore
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram.conftest import TOKEN, USER_ID, Harness, env_for


def image(width: int, height: int, noise: bool = False) -> GeneratedImage:
    img = Image.new("RGB", (width, height), "purple")
    if noise:
        img = Image.frombytes("RGB", (width, height), __import__("os").urandom(width * height * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=0 if noise else 6)
    return GeneratedImage(buf.getvalue(), "png", width, height)


def delivery(chat_id: int, *images: GeneratedImage, caption: str = "a cat\n💳 2") -> Delivery:
    return Delivery(
        job_id="0123456789abcdef0123456789abcdef",
        chat=ChatRef("telegram", {"chat_id": chat_id, "reply_to": None}),
        user=UserRef("telegram", str(chat_id)),
        request=ImageRequest(prompt="a cat"),
        images=images,
        cost=2,
        balance_after=98,
        locale="en",
        caption=caption,
    )


def test_photo_limits_and_caption_fitting() -> None:
    assert photo_fits(image(100, 100))
    assert not photo_fits(image(100, 2100))  # ratio over 20
    assert not photo_fits(GeneratedImage(b"x", "png", 6000, 5000))  # w + h > 10000
    prompt = "p" * 2000
    fitted = fit_caption(f"{prompt}\n💳 2 credits", prompt)
    assert len(fitted) <= 1024 and fitted.endswith("💳 2 credits")


def test_callback_data_round_trip() -> None:
    press = decode(encode("d", "abcdefgh", "ar", "16:9"))
    assert press is not None and (press.kind, press.target, press.action, press.value) == (
        "d",
        "abcdefgh",
        "ar",
        "16:9",
    )
    job = decode(encode("r", "0123456789abcdef0123456789abcdef"))
    assert job is not None and job.target == "0123456789abcdef0123456789abcdef"
    assert decode("zz:1") is None


async def test_oversized_results_go_as_documents(fake: FakeTelegramAPI, tmp_path: Path) -> None:
    settings = load_settings(environ=env_for(fake, tmp_path), env_file=None)
    async with build_app(settings, sweep=False) as app:
        application = build_application(app)
        async with application:
            frontend = app.frontends.get("telegram")
            assert frontend is not None
            # A ratio over 20 cannot be a photo at all: only a document.
            await frontend.deliver(delivery(USER_ID, image(60, 1500)))
            [doc] = fake.calls_of("sendDocument")
            assert "a cat" in doc.params["caption"]
            assert doc.params["reply_markup"]["inline_keyboard"]
            assert not fake.calls_of("sendPhoto")
            # Over 10 MB but photo-shaped: a lighter photo to look at plus the original.
            heavy = image(2000, 1800, noise=True)
            assert len(heavy.data) > 10 * 1024 * 1024
            await frontend.deliver(delivery(USER_ID, heavy))
            [photo] = fake.calls_of("sendPhoto")
            assert photo.files["photo"].size <= 10 * 1024 * 1024
            [_, original] = fake.calls_of("sendDocument")
            assert original.files["document"].size == len(heavy.data)
            # Two normal images and one odd one: an album plus a document.
            await frontend.deliver(delivery(USER_ID, image(64, 64), image(64, 64), image(30, 900)))
            [album] = fake.calls_of("sendMediaGroup")
            assert len(album.params["media"]) == 2
            assert len(fake.calls_of("sendDocument")) == 3


async def test_settings_saves_defaults_and_language(bot: Harness) -> None:
    bot.send("/settings")
    [menu] = await bot.fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
    data = [
        b["callback_data"] for row in menu.params["reply_markup"]["inline_keyboard"] for b in row
    ]
    assert all(d.startswith(f"s:{USER_ID}:") for d in data)
    quality = next(d for d in data if d.endswith(":q:high"))
    bot.press(quality, menu.result)
    await bot.fake.wait_for("editMessageText")
    # Someone else cannot change my settings.
    bot.press(quality, menu.result, user_id=USER_ID + 1)
    await bot.fake.wait_for("answerCallbackQuery", lambda c: c.params.get("show_alert") is True)
    bot.press(next(d for d in data if d.endswith(":lang:zh-Hans")), menu.result)
    await bot.fake.wait_for("editMessageText", count=2)
    bot.send("/balance")
    await bot.said("余额")
    profile = await bot.app.profile(UserRef("telegram", str(USER_ID)))
    assert profile.defaults.quality == "high" and profile.locale == "zh-Hans"
    bot.send("/imagine a pond")
    await bot.said("high")


async def test_chinese_telegram_users_get_chinese(bot: Harness) -> None:
    bot.send("/balance", user_id=555, language_code="zh-hans")
    await bot.said("余额", chat_id=555)


async def test_public_files_serve_only_signed_unexpired_job_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    await store.put_many([("jobs/j1/source-0", b"PNGDATA"), ("secret.txt", b"no")])
    files = PublicFiles("https://img.example.com", "127.0.0.1:0", store, link_key("1:T"), ttl=2)
    await files.start()
    try:
        url = files.link("jobs/j1/source-0", "image/png")
        assert url.startswith("https://img.example.com/i/") and url.endswith(".png")
        path = url.removeprefix("https://img.example.com")
        with pytest.raises(ValueError):
            files.link("secret.txt", "image/png")  # only job files can be published
        forged = path.split("/")
        forged[3] = forged[3][:-2] + ("AA" if not forged[3].endswith("AA") else "BB")
        other_key = PublicFiles("https://img.example.com", ":0", store, link_key("2:U"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{files.port}") as client:
            ok = await client.get(path)
            assert ok.status_code == 200 and ok.content == b"PNGDATA"
            assert (await client.get("/".join(forged))).status_code == 404
            foreign = other_key.link("jobs/j1/source-0", "image/png")
            assert (
                await client.get(foreign.removeprefix("https://img.example.com"))
            ).status_code == 404
            assert (await client.post(path)).status_code == 405
            await asyncio.sleep(3.1)
            assert (await client.get(path)).status_code == 404
    finally:
        await files.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_mode_checks_the_secret(fake: FakeTelegramAPI, tmp_path: Path) -> None:
    port = _free_port()
    env = env_for(
        fake,
        tmp_path,
        TELEGRAM_WEBHOOK_URL="https://bot.example.com/tg-hook",
        TELEGRAM_WEBHOOK_SECRET="s3cret-value",
        TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
    )
    settings = load_settings(environ=env, env_file=None)
    async with build_app(settings, sweep=False) as app:
        stop = asyncio.Event()
        task = asyncio.create_task(run_telegram(app, stop))
        try:
            [hook] = await fake.wait_for("setWebhook", timeout=10)
            assert hook.params["url"] == "https://bot.example.com/tg-hook"
            assert hook.params["secret_token"] == "s3cret-value"
            update: dict[str, Any] = fake.message("/balance", user_id=USER_ID)
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{port}/tg-hook"
                refused = await client.post(url, json=update)
                assert refused.status_code == 403
                accepted = await client.post(
                    url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-value"}
                )
                assert accepted.status_code == 200
            await fake.wait_for("sendMessage", lambda c: "100" in str(c.params.get("text")))
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert TOKEN not in str([c.params for c in fake.calls])


async def test_a_rejected_token_is_a_config_error(fake: FakeTelegramAPI, tmp_path: Path) -> None:
    import pytest

    from core.errors import ConfigError

    env = env_for(fake, tmp_path, TELEGRAM_BOT_TOKEN="999:WRONG-token-abcdefghijklmnopqrst")
    settings = load_settings(environ=env, env_file=None)
    async with build_app(settings, sweep=False) as app:
        with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
            await run_telegram(app, asyncio.Event())


async def test_a_flood_of_events_from_one_user_is_dropped_early(bot: Harness) -> None:
    for _ in range(25):
        bot.send("/balance")
    bot.send("/balance", user_id=777)  # someone else is not slowed down
    await bot.said("Slow down", chat_id=USER_ID)
    await bot.said("100", chat_id=777)
    await asyncio.sleep(0.5)
    answers = [t for t in bot.texts(chat_id=USER_ID) if "100" in t]
    assert 1 <= len(answers) <= 10  # the burst, not the flood
    assert len([t for t in bot.texts(chat_id=USER_ID) if "Slow down" in t]) == 1
