"""/imagine with the options keyboard, with inline flags, rerolls, refusals and
flood control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.telegram_api import Call, FakeTelegramAPI
from tests.telegram.conftest import BOT_USERNAME, OTHER_ID, USER_ID, Harness, running_bot


def buttons(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def button_labels(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def one(items: list[str], prefix: str, suffix: str = "") -> str:
    found = [i for i in items if i.startswith(prefix) and i.endswith(suffix)]
    assert len(found) == 1, (prefix, suffix, items)
    return found[0]


def has_caption(call: Call) -> bool:
    return bool(call.params.get("caption"))


async def menu(bot: Harness, text: str, **kwargs: Any) -> Call:
    bot.send(text, **kwargs)
    [call] = await bot.fake.wait_for(
        "sendMessage", lambda c: any(b.startswith("d:") for b in buttons(c))
    )
    return call


async def test_keyboard_flow_choose_options_then_generate(bot: Harness) -> None:
    call = await menu(bot, "/imagine a red fox in the snow")
    text = call.params["text"]
    assert "a red fox in the snow" in text
    assert "2" in text and "100" in text  # price (1K medium ×1 = 2) and balance
    data = buttons(call)
    assert any(d.endswith(":ar:16:9") for d in data)
    assert all(len(d.encode()) <= 64 for d in data)
    message = call.result

    bot.press(one(data, "d:", ":ar:16:9"), message)
    [edit] = await bot.fake.wait_for("editMessageText")
    assert "✅ 16:9" in button_labels(edit)
    bot.press(one(data, "d:", ":n:2"), message)
    await bot.fake.wait_for("editMessageText", count=2)
    bot.press(one(data, "d:", ":q:high"), message)
    [*_, last] = await bot.fake.wait_for("editMessageText", count=3)
    assert "16:9" in last.params["text"] and "high" in last.params["text"]
    assert any("8" in label for label in button_labels(last))  # 4 credits × 2

    bot.press(one(data, "d:", ":go"), message)
    [album] = await bot.fake.wait_for("sendMediaGroup", timeout=10)
    media = album.params["media"]
    assert len(media) == 2
    assert "a red fox in the snow" in media[0]["caption"]
    assert "92" in media[0]["caption"]  # new balance
    # The result buttons sit on a message under the album.
    [under] = await bot.fake.wait_for(
        "sendMessage", lambda c: any(b.startswith("r:") for b in buttons(c))
    )
    assert any(b.startswith("e:") for b in buttons(under))
    # The status message (the menu itself) is replaced by the result.
    await bot.fake.wait_for("deleteMessage")
    assert (USER_ID, message["message_id"]) in bot.fake.deleted_messages
    assert await bot.balance() == 92


async def test_only_the_owner_may_press_the_menu(bot: Harness) -> None:
    call = await menu(bot, "/imagine a lighthouse")
    go = one(buttons(call), "d:", ":go")
    bot.press(go, call.result, user_id=OTHER_ID)
    [answer] = await bot.fake.wait_for("answerCallbackQuery")
    assert answer.params.get("show_alert") is True
    assert "Only the person who asked" in answer.params["text"]
    assert not [c for c in bot.fake.calls_of("sendPhoto") if has_caption(c)]
    assert await bot.balance() == 100


async def test_cancel_removes_the_menu(bot: Harness) -> None:
    call = await menu(bot, "/imagine a boat")
    bot.press(one(buttons(call), "d:", ":x"), call.result)
    await bot.said("Cancelled", method="editMessageText")
    assert await bot.balance() == 100


async def test_inline_options_skip_the_menu_and_reroll(bot: Harness) -> None:
    bot.send("/imagine a tiny robot --ar 16:9 --q high")
    [photo] = await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    assert "a tiny robot" in photo.params["caption"]
    assert "96" in photo.params["caption"]
    assert not any(b.startswith("d:") for c in bot.fake.calls_of("sendMessage") for b in buttons(c))
    reroll = one(buttons(photo), "r:")
    assert await bot.balance() == 96

    bot.press(reroll, photo.result)
    [_, again] = await bot.fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
    assert "92" in again.params["caption"]  # priced again
    assert await bot.balance() == 92


async def test_edit_hint_button_answers_with_how_to_edit(bot: Harness) -> None:
    bot.send("/imagine a kite --n 1")
    [photo] = await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    bot.press(one(buttons(photo), "e:"), photo.result)
    [answer] = await bot.fake.wait_for("answerCallbackQuery")
    assert "Reply to the image" in answer.params["text"]


async def test_imagine_with_bot_name_in_a_group(bot: Harness) -> None:
    call = await menu(bot, f"/imagine@{BOT_USERNAME} a castle", chat_type="group")
    assert call.params["chat_id"] < 0


async def test_empty_prompt_and_bad_flag(bot: Harness) -> None:
    bot.send("/imagine")
    await bot.said("Please add a prompt")
    bot.send("/imagine a cat --q ultra")
    await bot.said("--q")
    assert await bot.balance() == 100


async def test_insufficient_credits_shows_price_and_balance(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, WELCOME_CREDITS="3") as bot:
        bot.send("/imagine a palace --q high")
        call = await bot.said("costs 4 credits")
        assert "balance is 3" in call.params["text"]
        assert await bot.balance() == 3
        report = await bot.app.admin_show(_ref(1), _ref(USER_ID))
        assert report.pending == 0  # nothing reserved
        assert not [c for c in fake.calls_of("sendPhoto") if has_caption(c)]


async def test_prompt_over_the_limit_is_refused(fake: FakeTelegramAPI, tmp_path: Path) -> None:
    config = tmp_path / "vendor.toml"
    config.write_text("max_prompt_chars = 20000\n")
    async with running_bot(fake, tmp_path, VENDOR_CONFIG=str(config)) as bot:
        bot.send("/imagine " + "x" * 20_001 + " --n 1")
        call = await bot.said("20000")
        assert "20001" in call.params["text"]
        assert await bot.balance() == 100
        assert not [c for c in fake.calls_of("sendPhoto") if has_caption(c)]


async def test_flood_control_is_honoured(bot: Harness) -> None:
    bot.fake.fail_next("sendPhoto", status=429, retry_after=1)
    bot.send("/imagine a windmill --n 1")
    await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    calls = bot.fake.calls_of("sendPhoto")
    [refused] = [c for c in calls if c.status == 429]
    later = [c for c in calls if c.status == 200 and c.time - refused.time >= 1.0]
    assert later, "nothing was retried after the flood wait"
    assert await bot.balance() == 98


async def test_price_and_history(bot: Harness) -> None:
    bot.send("/price a dragon --q high --n 2")
    await bot.said("costs 8 credits")
    bot.send("/imagine a dragon --n 1")
    await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    bot.send("/history")
    await bot.said("recent activity")
    bot.send("/balance")
    await bot.said("98 credits")


def _ref(user_id: int) -> Any:
    from core.ports import UserRef

    return UserRef("telegram", str(user_id))


async def test_many_users_at_once(bot: Harness) -> None:
    users = range(1000, 1012)
    for uid in users:
        bot.send(f"/imagine picture {uid} --n 1", user_id=uid)
    calls = await bot.fake.wait_for("sendPhoto", has_caption, count=len(users), timeout=20)
    assert {c.params["chat_id"] for c in calls} == set(users)


async def test_variations_button_edits_the_result(bot: Harness) -> None:
    bot.send("/imagine a vase --n 1")
    [photo] = await bot.fake.wait_for("sendPhoto", has_caption, timeout=10)
    bot.press(one(buttons(photo), "v:"), photo.result)
    [_, variation] = await bot.fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
    assert "a vase" in variation.params["caption"]
    assert await bot.balance() == 96
