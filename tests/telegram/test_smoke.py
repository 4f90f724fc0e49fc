"""/start, /help, /balance against the running bot."""

from __future__ import annotations

from tests.telegram.conftest import USER_ID, Harness


async def test_start_shows_welcome_and_balance(bot: Harness) -> None:
    bot.send("/start")
    call = await bot.said("100")
    assert call.params["chat_id"] == USER_ID


async def test_help_mentions_privacy_mode(bot: Harness) -> None:
    bot.send("/help")
    await bot.said("/edit")
