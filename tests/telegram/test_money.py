"""Money and abuse: partial deliveries are charged for what reached the chat, result
buttons belong to their owner, and refusals (balance, limits) come before any download.

Each test reproduces an attack or a money bug against the real Telegram frontend and
asserts on what the user sees and pays."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from tests.fakes.telegram_api import Call, FakeTelegramAPI, JSONDict
from tests.telegram.conftest import ADMIN_ID, OTHER_ID, USER_ID, Harness, png, running_bot

GROUP = -100_555_000  # a supergroup where A's results are visible to B
# The mock preset's 1K medium price per image (core/vendors/presets.py).
PER_IMAGE = 2


# --- helpers ----------------------------------------------------------------------------


def buttons(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def button(call: Call, prefix: str) -> str:
    found = [b for b in buttons(call) if b.startswith(prefix)]
    assert len(found) == 1, (prefix, buttons(call))
    return found[0]


def has_caption(call: Call) -> bool:
    return bool(call.params.get("caption"))


def has_buttons(params: JSONDict) -> bool:
    markup = params.get("reply_markup")
    return isinstance(markup, dict) and bool(markup.get("inline_keyboard"))


def results(fake: FakeTelegramAPI) -> list[Call]:
    """Successful captioned result photos."""
    return [c for c in fake.calls_of("sendPhoto") if has_caption(c) and c.status == 200]


def caption_cost(caption: str) -> int:
    found = re.search(r"💳 (\d+) credits", caption)
    assert found, f"no price in the caption {caption!r}"
    return int(found[1])


def ok(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.status == 200]


def stored_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "data" / "files"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def job_count(bot: Harness) -> int:
    async with bot.app.store.read() as tx:
        return len(await bot.app.store.jobs.recent(tx, limit=1000))


async def make_result(bot: Harness, prompt: str, **kwargs: Any) -> Call:
    """Send ``/imagine <prompt> --n 1`` and return the captioned result photo."""
    before = len(results(bot.fake))
    bot.send(f"/imagine {prompt} --n 1", **kwargs)
    calls = await bot.fake.wait_for(
        "sendPhoto", lambda c: has_caption(c) and c.status == 200, count=before + 1, timeout=10
    )
    return calls[before]


async def quiet(bot: Harness, seconds: float = 0.4) -> None:
    """Give a (buggy) handler time to start a job after answering, then let it settle."""
    await asyncio.sleep(seconds)
    await bot.settled()


# --- 1. partial delivery ----------------------------------------------------------------


async def test_album_delivered_but_buttons_refused_is_charged_in_full(bot: Harness) -> None:
    # The user blocks the bot right after the album arrives: they have all three images.
    bot.fake.fail_next("sendMessage", status=403, match=has_buttons)
    bot.send("/imagine a fox --n 3")
    [album] = await bot.fake.wait_for("sendMediaGroup", timeout=10)
    assert album.status == 200 and len(album.params["media"]) == 3
    price = caption_cost(album.params["media"][0]["caption"])
    assert price == 3 * PER_IMAGE
    await bot.fake.wait_for("sendMessage", lambda c: has_buttons(c.params) and c.status == 403)
    assert await bot.balance() == 100 - price, "the album reached the user: full price is due"
    # The price /price quotes is the price charged.
    bot.send("/price a fox --n 3")
    await bot.said(f"costs {price} credits")


async def test_album_refused_is_not_charged(bot: Harness) -> None:
    bot.fake.fail_next("sendMediaGroup", status=403)
    bot.send("/imagine a fox --n 3")
    [album] = await bot.fake.wait_for("sendMediaGroup", timeout=10)
    assert album.status == 403
    status = await bot.said("not charged", method="editMessageText", within=10)
    assert "couldn't post" in status.params["text"]
    assert await bot.balance() == 100
    assert not ok(bot.fake.calls_of("sendDocument")), "blocked: no file fallback either"
    assert not [c for c in bot.fake.calls_of("sendMessage") if has_buttons(c.params)]
    assert not ok(bot.fake.calls_of("sendMediaGroup"))


async def test_album_bad_request_falls_back_to_files_and_charges_once(bot: Harness) -> None:
    # A 400 on the album sends the images as files: delivered, so paid for once.
    bot.fake.fail_next("sendMediaGroup", status=400)
    bot.send("/imagine a fox --n 3")
    docs = await bot.fake.wait_for("sendDocument", lambda c: c.status == 200, count=3, timeout=10)
    assert has_buttons(docs[-1].params)
    price = caption_cost(docs[0].params["caption"])
    assert await bot.balance() == 100 - price == 100 - 3 * PER_IMAGE


async def test_second_album_refused_charges_pro_rata(fake: FakeTelegramAPI, tmp_path: Path) -> None:
    # Twelve images go out as two albums (10 + 2); the second is refused.
    config = tmp_path / "vendor.toml"
    config.write_text("n_max = 12\n")
    async with running_bot(fake, tmp_path, VENDOR_CONFIG=str(config)) as bot:
        fake.fail_next("sendMediaGroup", status=403, skip=1)
        bot.send("/imagine a fox --n 12")
        first, second = await fake.wait_for("sendMediaGroup", count=2, timeout=15)
        assert first.status == 200 and len(first.params["media"]) == 10
        assert second.status == 403 and len(second.params["media"]) == 2
        cost = caption_cost(first.params["media"][0]["caption"])
        assert cost == 12 * PER_IMAGE
        assert await bot.balance() == 100 - cost * 10 // 12, "charged for the 10 delivered only"
        async with bot.app.store.read() as tx:
            [job] = await bot.app.store.jobs.recent(tx, limit=5)
        assert job.state == "SUCCEEDED" and job.cost == cost * 10 // 12


# --- 2. result buttons belong to their owner ---------------------------------------------


async def test_someone_else_cannot_reroll_or_vary_my_result(bot: Harness) -> None:
    result = await make_result(bot, "a fox", chat_id=GROUP)
    await bot.settled()
    jobs = await job_count(bot)
    owner_balance = await bot.balance(USER_ID)
    assert owner_balance == 100 - PER_IMAGE
    other_balance = await bot.balance(OTHER_ID)
    sent_before = len(bot.fake.calls_of("sendMessage"))

    for prefix in ("r:", "v:"):
        answered = len(bot.fake.calls_of("answerCallbackQuery"))
        bot.press(button(result, prefix), result.result, user_id=OTHER_ID)
        answers = await bot.fake.wait_for("answerCallbackQuery", count=answered + 1)
        answer = answers[answered]
        assert answer.params.get("show_alert") is True, prefix
        assert "Only the person" in answer.params.get("text", ""), answer.params
        assert len(answer.params["text"]) <= 200

    await quiet(bot)
    assert len(bot.fake.calls_of("sendMessage")) == sent_before, "a status message was posted"
    assert await job_count(bot) == jobs, "a job was queued for someone else's button"
    assert len(results(bot.fake)) == 1
    assert await bot.balance(USER_ID) == owner_balance
    assert await bot.balance(OTHER_ID) == other_balance


async def test_buttons_of_an_unknown_job_run_nothing(bot: Harness) -> None:
    result = await make_result(bot, "a fox", chat_id=GROUP)
    await bot.settled()
    jobs = await job_count(bot)
    sent_before = len(bot.fake.calls_of("sendMessage"))
    for data in ("r:0123456789abcdef0123456789abcdef", "v:nosuchjob"):
        answered = len(bot.fake.calls_of("answerCallbackQuery"))
        bot.press(data, result.result, user_id=USER_ID)
        answers = await bot.fake.wait_for("answerCallbackQuery", count=answered + 1)
        assert "can't find" in answers[answered].params.get("text", ""), answers[answered].params
    await quiet(bot)
    assert len(bot.fake.calls_of("sendMessage")) == sent_before
    assert await job_count(bot) == jobs
    assert await bot.balance(USER_ID) == 100 - PER_IMAGE


async def test_admin_may_reroll_anyones_result_and_pays_for_it(bot: Harness) -> None:
    result = await make_result(bot, "a fox", chat_id=GROUP)
    assert await bot.balance(USER_ID) == 100 - PER_IMAGE
    jobs = await job_count(bot)
    bot.press(button(result, "r:"), result.result, user_id=ADMIN_ID)
    await bot.fake.wait_for(
        "sendPhoto", lambda c: has_caption(c) and c.status == 200, count=2, timeout=10
    )
    assert await job_count(bot) == jobs + 1
    assert await bot.balance(ADMIN_ID) == 100 - PER_IMAGE, "the admin pays for their reroll"
    assert await bot.balance(USER_ID) == 100 - PER_IMAGE, "the owner is not charged again"


# --- 3. a broke user's edits are refused before any download -----------------------------


async def test_broke_user_edit_is_refused_before_download(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, WELCOME_CREDITS="1") as bot:
        # A reply with an instruction to a photo.
        ref = fake.add_file(png(320, 240), mime="image/png")
        photo = bot.send(photo=[ref])
        bot.send("make it blue", reply_to=photo)
        refusal = await bot.said("balance is 1")
        assert f"costs {PER_IMAGE} credits" in refusal.params["text"], refusal.params["text"]
        # A photo captioned /edit.
        ref2 = fake.add_file(png(64, 64, "green"), mime="image/png")
        bot.send(photo=[ref2], caption="/edit add a hat")
        await fake.wait_for(
            "editMessageText",
            lambda c: "balance is 1" in str(c.params.get("text")),
            count=2,
            timeout=5,
        )
        await quiet(bot, 0.3)
        assert not fake.calls_of("getFile"), "a broke user's image was downloaded"
        assert not stored_files(tmp_path), stored_files(tmp_path)
        assert await job_count(bot) == 0
        assert await bot.balance() == 1


# --- 4. over the limits: refused before any download -------------------------------------


async def test_too_many_active_jobs_refused_before_download(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, USER_MAX_ACTIVE_JOBS="1", MOCK_LATENCY="1.5") as bot:
        ref = fake.add_file(png(320, 240), mime="image/png")
        photo = bot.send(photo=[ref])
        bot.send("/imagine a slow fox --n 1")
        deadline = asyncio.get_running_loop().time() + 5
        while await job_count(bot) == 0:
            assert asyncio.get_running_loop().time() < deadline, "the first job never queued"
            await asyncio.sleep(0.02)
        bot.send("make it blue", reply_to=photo)
        await bot.said("already have 1 image in progress")
        assert not fake.calls_of("getFile"), "the over-limit edit's image was downloaded"
        assert await bot.balance() == 100 - PER_IMAGE  # the first job only
        assert await job_count(bot) == 1
        assert not [p for p in stored_files(tmp_path) if "source" in p.name]


async def test_rate_limited_user_refused_before_download(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, USER_JOBS_PER_MINUTE="1") as bot:
        await make_result(bot, "a quick fox")
        await bot.settled()
        ref = fake.add_file(png(320, 240), mime="image/png")
        photo = bot.send(photo=[ref])
        bot.send("make it blue", reply_to=photo)
        await bot.said("going a bit fast")
        await quiet(bot, 0.2)
        assert not fake.calls_of("getFile"), "the rate-limited edit's image was downloaded"
        assert await job_count(bot) == 1
        assert await bot.balance() == 100 - PER_IMAGE


# --- 5. rerolls reuse the stored sources ------------------------------------------------


async def test_reroll_of_an_edit_reads_the_stored_sources(bot: Harness) -> None:
    ref = bot.fake.add_file(png(320, 240), mime="image/png")
    photo = bot.send(photo=[ref])
    bot.send("make it blue", reply_to=photo)
    [first] = await bot.fake.wait_for("sendPhoto", lambda c: has_caption(c), timeout=10)
    assert "make it blue" in first.params["caption"]
    assert len(bot.fake.calls_of("getFile")) == 1
    assert await bot.balance() == 100 - PER_IMAGE
    # Telegram forgetting the file must not matter: the job kept its copy.
    del bot.fake.files[ref["file_id"]]

    bot.press(button(first, "r:"), first.result)
    calls = await bot.fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
    assert calls[1].status == 200 and "make it blue" in calls[1].params["caption"]
    assert len(bot.fake.calls_of("getFile")) == 1, "the reroll downloaded the source again"
    assert await bot.balance() == 100 - 2 * PER_IMAGE

    bot.press(button(first, "v:"), first.result)
    await bot.fake.wait_for("sendPhoto", has_caption, count=3, timeout=10)
    assert len(bot.fake.calls_of("getFile")) == 1, "the variation downloaded a file"
    assert await bot.balance() == 100 - 3 * PER_IMAGE


async def test_partial_delivery_clears_the_status_and_preview(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    # The chat is still reachable (a 400 on the second album, not a block): once ten of
    # twelve images are posted, the job is over and must not look like it still runs.
    config = tmp_path / "vendor.toml"
    config.write_text("n_max = 12\n")
    async with running_bot(fake, tmp_path, VENDOR_CONFIG=str(config)) as bot:
        fake.fail_next("sendMediaGroup", status=400, skip=1)
        bot.send("/imagine a fox --n 12")
        await fake.wait_for("sendMediaGroup", count=2, timeout=15)
        assert await bot.balance() == 100 - 24 * 10 // 12
        [status] = [c for c in fake.calls_of("sendMessage") if "Working on it" in c.params["text"]]
        status_id = status.result["message_id"]
        previews = [c.result["message_id"] for c in fake.calls_of("sendPhoto") if c.status == 200]
        await asyncio.sleep(0.3)
        live = {m["message_id"]: m for m in fake.messages.get(USER_ID, [])}
        shown = live.get(status_id, {}).get("text", "")
        assert "Preview" not in shown and "Working on it" not in shown, (
            f"after a partial delivery the status message still reads {shown!r}"
        )
        assert not [p for p in previews if p in live], "the preview photo was left in the chat"
