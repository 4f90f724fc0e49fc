"""Admin commands: naming a user by id, @username or reply; refusals for others."""

from __future__ import annotations

from tests.telegram.conftest import ADMIN_ID, OTHER_ID, USER_ID, Harness

GROUP = -1001


async def test_topup_by_numeric_id(bot: Harness) -> None:
    bot.send("/start")
    await bot.said("100")
    bot.send(f"/topup {USER_ID} 50 birthday", user_id=ADMIN_ID)
    call = await bot.said("Added 50 credits", chat_id=ADMIN_ID)
    assert "150" in call.params["text"]
    assert await bot.balance() == 150


async def test_topup_by_reply_in_a_group(bot: Harness) -> None:
    message = bot.send("/balance", chat_id=GROUP, chat_type="supergroup")
    await bot.said("100 credits", chat_id=GROUP)
    bot.send(
        "/topup 25 thanks",
        user_id=ADMIN_ID,
        chat_id=GROUP,
        chat_type="supergroup",
        reply_to=message,
    )
    await bot.said("Added 25 credits", chat_id=GROUP)
    assert await bot.balance() == 125


async def test_topup_and_credits_by_username(bot: Harness) -> None:
    bot.send("/balance", username="alice")
    await bot.said("100 credits")
    bot.send("/topup @alice 5", user_id=ADMIN_ID)
    await bot.said("Added 5 credits to @alice", chat_id=ADMIN_ID)
    bot.send("/credits @alice", user_id=ADMIN_ID)
    call = await bot.said("balance 105", chat_id=ADMIN_ID)
    assert "top-up" in call.params["text"]
    bot.send("/topup @nobody_seen 5", user_id=ADMIN_ID)
    await bot.said("don't know that user", chat_id=ADMIN_ID)


async def test_setcredits_jobs_and_resume(bot: Harness) -> None:
    bot.send("/imagine a tree --n 1")
    await bot.fake.wait_for("sendPhoto", lambda c: bool(c.params.get("caption")), timeout=10)
    await bot.settled()
    bot.send(f"/setcredits {USER_ID} 7 reset", user_id=ADMIN_ID)
    await bot.said("balance to 7", chat_id=ADMIN_ID)
    assert await bot.balance() == 7
    bot.send("/jobs", user_id=ADMIN_ID)
    await bot.said("Recent jobs", chat_id=ADMIN_ID)
    bot.send("/resume", user_id=ADMIN_ID)
    await bot.said("Nothing was paused", chat_id=ADMIN_ID)
    bot.send("/topup 42 lots", user_id=ADMIN_ID)
    await bot.said("whole number", chat_id=ADMIN_ID)
    bot.send("/topup", user_id=ADMIN_ID)
    await bot.said("Usage", chat_id=ADMIN_ID)


async def test_non_admins_are_refused_every_admin_command(bot: Harness) -> None:
    commands = [
        f"/topup {OTHER_ID} 1000",
        "/topup @someone 5",
        "/topup",
        f"/setcredits {USER_ID} 9999",
        f"/credits {OTHER_ID}",
        "/jobs",
        "/resume",
    ]
    for command in commands:
        bot.send(command)
    await bot.fake.wait_for(
        "sendMessage",
        lambda c: "Only the bot's admins" in str(c.params.get("text")),
        count=len(commands),
    )
    assert await bot.balance() == 100


async def test_stats_sends_the_chart_as_a_png_to_admins_only(bot: Harness) -> None:
    bot.send("/imagine a tree --n 1")
    await bot.fake.wait_for("sendPhoto", lambda c: bool(c.params.get("caption")), timeout=10)
    await bot.settled()
    bot.send("/stats")
    await bot.said("Only the bot's admins")
    bot.send("/stats", user_id=ADMIN_ID)
    (call,) = await bot.fake.wait_for(
        "sendPhoto", lambda c: "Today (UTC): 1 job." in str(c.params.get("caption")), timeout=10
    )
    assert call.params["chat_id"] in (ADMIN_ID, str(ADMIN_ID))
    (photo,) = call.files.values()
    assert photo.data.startswith(b"\x89PNG\r\n\x1a\n") and photo.size > 5000
