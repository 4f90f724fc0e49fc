"""The status message: stages worth an API call, and none after the result is out."""

from __future__ import annotations

import asyncio
from typing import cast

from telegram import Bot

from bots.telegram._progress import StatusBoard
from core.messages import Messages
from core.types import Progress
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram.conftest import TOKEN, USER_ID


async def test_a_quick_download_is_not_announced_a_slow_one_is(fake: FakeTelegramAPI) -> None:
    async with Bot(TOKEN, base_url=fake.base_url) as bot:
        board = StatusBoard(bot, Messages(), interval=0.0, linger=0.3)

        quick = await bot.send_message(USER_ID, "working")
        tracker = board.tracker(USER_ID, quick.message_id, "en")
        await tracker(Progress(stage="downloading"))
        # The result arrives within the linger time: core closes the progress (the
        # tracker) before it hands the result over, and the status simply goes.
        await tracker.close()
        await board.clear(USER_ID, quick.message_id)
        await asyncio.sleep(0.6)
        assert not fake.calls_of("editMessageText")
        assert len(fake.calls_of("deleteMessage")) == 1

        slow = await bot.send_message(USER_ID, "working")
        tracker = board.tracker(USER_ID, slow.message_id, "en")
        await tracker(Progress(stage="downloading"))
        [edit] = await fake.wait_for("editMessageText", timeout=5)
        assert "Fetching" in edit.params["text"]
        await tracker.close()


async def test_a_closed_tracker_edits_nothing(fake: FakeTelegramAPI) -> None:
    async with Bot(TOKEN, base_url=fake.base_url) as bot:
        board = StatusBoard(bot, Messages(), interval=0.0, linger=0.1)
        status = await bot.send_message(USER_ID, "working")
        tracker = board.tracker(USER_ID, status.message_id, "en")
        await tracker(Progress(stage="queued", queue_position=3))
        [edit] = await fake.wait_for("editMessageText", timeout=5)
        assert "3" in edit.params["text"]
        await tracker.close()
        await tracker(Progress(stage="queued", queue_position=1))
        await tracker(Progress(stage="downloading"))
        await asyncio.sleep(0.3)
        assert len(fake.calls_of("editMessageText")) == 1


class _SlowBot:
    """Edits that take a while to reach Telegram."""

    def __init__(self) -> None:
        self.edits: list[str] = []
        self.deleted: list[int] = []

    async def edit_message_text(self, text: str, *, chat_id: int, message_id: int) -> None:
        await asyncio.sleep(0.2)
        self.edits.append(text)

    async def delete_message(self, chat_id: int, message_id: int) -> None:
        self.deleted.append(message_id)


async def test_an_edit_under_way_lands_before_the_tracker_is_closed() -> None:
    bot = _SlowBot()
    board = StatusBoard(cast(Bot, bot), Messages(), interval=0.0, linger=0.05)
    tracker = board.tracker(USER_ID, 10, "en")
    await tracker(Progress(stage="downloading"))
    await asyncio.sleep(0.1)  # the linger is over: the edit is on its way
    await tracker.close()
    assert len(bot.edits) == 1
    await board.clear(USER_ID, 10)
    await asyncio.sleep(0.3)
    assert len(bot.edits) == 1 and bot.deleted == [10]
