"""Languages end to end through the fake Bot API: a command menu per language
code, and users who get their own language from ``language_code`` or
``/settings lang=``."""

from __future__ import annotations

import re
from pathlib import Path

from core.ports import UserRef
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram.conftest import USER_ID, Harness, running_bot

ASCII_WORD = re.compile(r"[A-Za-z]{3,}")


async def test_every_language_gets_its_command_menu(bot: Harness) -> None:
    menus = bot.fake.menus
    assert set(menus) == {"", "en", "zh", "ja", "ko", "ru", "es"}
    names = {c["command"] for c in menus["en"]}
    assert {"imagine", "balance", "settings"} <= names
    for code, menu in menus.items():
        assert {c["command"] for c in menu} == names, code
    described = {code: {c["command"]: c["description"] for c in m} for code, m in menus.items()}
    assert described["en"]["balance"] == "Your credit balance"
    assert described[""] == described["en"]  # DEFAULT_LOCALE for everyone else
    assert described["zh"]["balance"] == "你的积分余额"
    assert described["ja"]["balance"] == "クレジット残高"
    assert described["ko"]["balance"] == "크레딧 잔액"
    assert described["ru"]["balance"] == "Ваш баланс кредитов"
    assert described["es"]["balance"] == "Tu saldo de créditos"
    for code in ("zh", "ja", "ko", "ru"):
        for description in described[code].values():
            assert not ASCII_WORD.search(description), (code, description)


async def test_the_default_menu_follows_default_locale(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, DEFAULT_LOCALE="ru") as bot:
        default = {c["command"]: c["description"] for c in bot.fake.menus[""]}
        assert default["help"] == "Как пользоваться ботом"
        # A user whose client language the bot lacks gets DEFAULT_LOCALE too.
        bot.send("/balance", user_id=USER_ID, language_code="de")
        await bot.said("Ваш баланс: 100 кредитов.")


async def test_a_traditional_chinese_user_is_refused_in_traditional_chinese(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, WELCOME_CREDITS="3") as bot:
        bot.send("/imagine a palace --q high", language_code="zh-hant")
        call = await bot.said("這次需要 4 點")
        assert "餘額是 3" in call.params["text"] and not ASCII_WORD.search(call.params["text"])
        assert await bot.balance() == 3


async def test_russian_counts_take_russian_plurals(fake: FakeTelegramAPI, tmp_path: Path) -> None:
    async with running_bot(fake, tmp_path, WELCOME_CREDITS="3") as bot:
        bot.send("/balance", language_code="ru")
        await bot.said("Ваш баланс: 3 кредита.")
        bot.send("/imagine a palace --q high", language_code="ru")
        await bot.said("Это стоит 4 кредита, а на балансе 3.")


async def test_settings_lang_overrides_and_its_errors_stay_in_the_language(bot: Harness) -> None:
    bot.send("/settings lang=fr", language_code="ja")
    call = await bot.said("「fr」という言語には対応していません")
    text = call.params["text"]
    assert "zh-Hant" in text and "locale" not in text and " or " not in text
    bot.send("/settings lang=zh-tw", language_code="ja")
    await bot.said("已儲存預設設定")
    profile = await bot.app.profile(UserRef("telegram", str(USER_ID), locale="ja"))
    assert profile.locale == "zh-Hant"
    bot.send("/balance", language_code="ja")  # the stored choice beats the client's
    await bot.said("你的餘額：100 點。")
    bot.send("/settings lang=ru")
    await bot.said("Настройки по умолчанию сохранены")


async def test_the_settings_menu_offers_all_seven_languages(bot: Harness) -> None:
    bot.send("/settings", language_code="ko")
    [menu] = await bot.fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
    buttons = [b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row]
    codes = [
        b["callback_data"].rsplit(":", 1)[1] for b in buttons if ":lang:" in b["callback_data"]
    ]
    assert codes == ["en", "zh-Hans", "zh-Hant", "ja", "ko", "ru", "es"]
    assert any(b["text"] == "✅ 한국어" for b in buttons)
    assert any(b["text"] == "✅ 완료" for b in buttons)
    bot.press(
        next(b["callback_data"] for b in buttons if b["callback_data"].endswith(":es")), menu.result
    )
    await bot.fake.wait_for("editMessageText")
    bot.send("/balance", language_code="ko")
    await bot.said("Tu saldo: 100 créditos.")
