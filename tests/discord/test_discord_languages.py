"""Languages end to end through the fake Discord: the synced commands carry
their localizations from the catalogue, a change of translation syncs again, and
users get their client's language (or the one they picked)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bots.discord._translator import CatalogueTranslator
from core.bootstrap import build_app
from core.messages import Messages
from core.ports import UserRef
from core.settings import load_settings
from tests.fakes.discord_api import FakeDiscord

from .conftest import ADMIN_ID, APP_ID, OTHER_ID, USER_ID, Harness, base_env, running

ASCII_WORD = re.compile(r"[A-Za-z]{3,}")
GLOBAL = f"/applications/{APP_ID}/commands"


def _synced(fake: FakeDiscord) -> dict[str, Any]:
    [*_, last] = fake.calls_to(GLOBAL, "PUT")
    return {c["name"]: c for c in last.json}


async def test_synced_commands_carry_every_language(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = load_settings(base_env(tmp_path), env_file=None)
    async with build_app(settings, sweep=False) as app, running(fake, app):
        pass
    commands = _synced(fake)
    balance = commands["balance"]
    assert balance["description"] == "Your credit balance"
    local = balance["description_localizations"]
    assert local["zh-CN"] == "你的积分余额"
    assert local["zh-TW"] == "你的點數餘額"
    assert local["ja"] == "クレジット残高"
    assert local["ko"] == "크레딧 잔액"
    assert local["ru"] == "Ваш баланс кредитов"
    assert local["es-ES"] == local["es-419"] == "Tu saldo de créditos"
    assert "en-US" not in local and "de" not in local
    prompt = next(o for o in commands["imagine"]["options"] if o["name"] == "prompt")
    assert prompt["description_localizations"]["ja"] == "描きたいもの、または添付画像の変え方"
    menu = commands["Edit image"]
    assert menu["name_localizations"]["zh-TW"] == "編輯圖片"
    assert menu["name_localizations"]["ru"] == "Изменить изображение"
    topup = next(o for o in commands["credits"]["options"] if o["name"] == "topup")
    assert topup["description_localizations"]["ko"] == "사용자에게 크레딧 충전"
    show = commands["show"]
    assert show["description"] == "Post one of your earlier images again"
    assert show["description_localizations"]["zh-TW"] == "重新傳送你先前產生的圖片"
    job = next(o for o in show["options"] if o["name"] == "job")
    assert (
        job["description_localizations"]["ru"] == "ID изображения из /history (например, 1a2b3c4d)"
    )
    assert commands["buy"]["description_localizations"]["es-ES"] == "Comprar créditos"
    settings_cmd = commands["settings"]
    language = next(o for o in settings_cmd["options"] if o["name"] == "language")
    assert [c["value"] for c in language["choices"]] == [
        "en", "zh-Hans", "zh-Hant", "ja", "ko", "ru", "es"
    ]  # fmt: skip
    for name, command in commands.items():
        for code in ("zh-CN", "zh-TW", "ja", "ko", "ru"):
            text = command.get("description_localizations", {}).get(code, "")
            assert not ASCII_WORD.search(text), (name, code, text)


class _Edited(Messages):
    """The catalogue after someone improved the Japanese wording."""

    def t(self, key: str, locale: str | None = None, **params: Any) -> str:
        text = super().t(key, locale, **params)
        return text + "です" if self.locale(locale) == "ja" else text


async def test_a_changed_translation_syncs_again(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = load_settings(base_env(tmp_path), env_file=None)
    async with build_app(settings, sweep=False) as app:
        async with running(fake, app):
            pass
        async with running(fake, app) as bot:
            assert "unchanged" in bot.sync_summary
            assert len(fake.calls_to(GLOBAL, "PUT")) == 1
            await bot.tree.set_translator(CatalogueTranslator(_Edited()))
            summary = await bot.sync_app_commands(force=False)
    assert summary.startswith("Synced")
    assert len(fake.calls_to(GLOBAL, "PUT")) == 2
    local = _synced(fake)["balance"]["description_localizations"]
    assert local["ja"] == "クレジット残高です" and local["ko"] == "크레딧 잔액"


async def test_a_traditional_chinese_client_is_refused_in_traditional_chinese(
    harness: Harness,
) -> None:
    admin = UserRef("discord", str(ADMIN_ID))
    await harness.app.admin_set(admin, UserRef("discord", str(USER_ID)), 1)
    payload = await harness.slash(
        "imagine", {"prompt": "a castle", "quality": "high"}, locale="zh-TW"
    )
    text = await harness.ephemeral(payload)
    assert "這次需要 4 點" in text and "餘額是 1" in text and not ASCII_WORD.search(text)
    assert await harness.balance() == 1


async def test_japanese_and_russian_clients_get_their_language(harness: Harness) -> None:
    payload = await harness.slash("balance", locale="ja")
    assert await harness.ephemeral(payload) == "残高：100 クレジット"
    payload = await harness.slash("balance", locale="ru", user_id=OTHER_ID)
    assert await harness.ephemeral(payload) == "Ваш баланс: 100 кредитов."
    other = harness.fake.user(ADMIN_ID, "admin")
    payload = await harness.slash(
        "credits", {"user": other, "amount": 5}, subcommand="topup", locale="ru"
    )
    assert await harness.ephemeral(payload) == "Это могут делать только администраторы бота."


async def test_a_picked_language_beats_the_client(harness: Harness) -> None:
    payload = await harness.slash("settings", {"language": "es"}, locale="ja")
    assert (await harness.ephemeral(payload)).startswith("He guardado tus valores")
    payload = await harness.slash("balance", locale="ja")
    assert await harness.ephemeral(payload) == "Tu saldo: 100 créditos."
    payload = await harness.slash("settings", {"language": "zh-Hant"}, locale="ja")
    assert (await harness.ephemeral(payload)).startswith("已儲存預設設定")
