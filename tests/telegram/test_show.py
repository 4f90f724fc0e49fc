"""``/show <id>`` and the Show buttons under /history, against the fake Bot API:
an earlier result posted again with working buttons, for its owner or an admin."""

from __future__ import annotations

from pathlib import Path

from core.job_ids import short_id
from tests.fakes.telegram_api import Call, FakeTelegramAPI
from tests.telegram.conftest import ADMIN_ID, OTHER_ID, USER_ID, Harness, running_bot
from tests.telegram.test_imagine import buttons, has_caption, one


async def made(bot: Harness, prompt: str = "a lighthouse") -> tuple[Call, str]:
    """A delivered result and its job id (from its Reroll button)."""
    before = len(bot.fake.calls_of("sendPhoto"))
    bot.send(f"/imagine {prompt} --n 1")
    calls = await bot.fake.wait_for("sendPhoto", has_caption, count=before + 1, timeout=10)
    photo = calls[-1]
    await bot.settled()
    return photo, one(buttons(photo), "r:")[2:]


async def test_own_result_is_posted_again_with_working_buttons(bot: Harness) -> None:
    photo, job_id = await made(bot)
    assert await bot.balance() == 98
    bot.send(f"/show {short_id(job_id)}")
    [_, shown] = await bot.fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
    assert shown.params["caption"] == photo.params["caption"]
    assert buttons(shown) == buttons(photo)
    assert await bot.balance() == 98  # free

    bot.press(one(buttons(shown), "r:"), shown.result)
    [*_, again] = await bot.fake.wait_for("sendPhoto", has_caption, count=3, timeout=10)
    assert "a lighthouse" in again.params["caption"]
    assert await bot.balance() == 96


async def test_admin_shows_anyones_and_others_are_refused(bot: Harness) -> None:
    _, job_id = await made(bot)
    bot.send(f"/show {short_id(job_id)}", user_id=OTHER_ID)
    await bot.said("found no image of yours", chat_id=OTHER_ID)
    results = [c for c in bot.fake.calls_of("sendPhoto") if has_caption(c)]
    assert [c.params["chat_id"] for c in results] == [USER_ID]

    bot.send(f"/show {short_id(job_id)}", user_id=ADMIN_ID)
    [_, shown] = await bot.fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
    assert shown.params["chat_id"] == ADMIN_ID and "a lighthouse" in shown.params["caption"]


async def test_removed_files_and_bad_ids_get_a_sentence(bot: Harness) -> None:
    _, job_id = await made(bot)
    bot.send("/show")
    await bot.said("Which image?")
    bot.send("/show not-an-id")
    await bot.said("not an image id")
    sweeper = bot.app.sweeper
    assert sweeper is not None
    later = sweeper.clock() + 31 * 86_400
    sweeper.clock = lambda: later
    sweeper._retained_at = None  # the hourly look is due
    await bot.app.sweep()
    bot.send(f"/show {short_id(job_id)}")
    await bot.said("were removed")
    assert len([c for c in bot.fake.calls_of("sendPhoto") if has_caption(c)]) == 1


async def test_history_show_button_works_after_a_restart(
    fake: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path) as bot:
        _, job_id = await made(bot, "a windmill")
        bot.send("/history")
        history = await bot.said(f"#{short_id(job_id)}")
        show = one(buttons(history), "h:")
        assert show == f"h:{job_id}"
    # A new process: the button carries the job, nothing lives in memory.
    async with running_bot(fake, tmp_path) as bot:
        bot.press(show, history.result, user_id=OTHER_ID)
        [refused] = await bot.fake.wait_for("answerCallbackQuery", timeout=10)
        assert "found no image of yours" in refused.params["text"]
        assert len([c for c in fake.calls_of("sendPhoto") if has_caption(c)]) == 1

        bot.press(show, history.result)
        [_, shown] = await fake.wait_for("sendPhoto", has_caption, count=2, timeout=10)
        assert "a windmill" in shown.params["caption"] and one(buttons(shown), "r:")
