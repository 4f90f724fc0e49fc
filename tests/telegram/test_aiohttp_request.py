"""The bot's aiohttp transport for python-telegram-bot: forms and files arrive intact."""

from __future__ import annotations

from telegram import Bot, InputFile

from bots.telegram._aiohttp_request import AiohttpRequest
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram.conftest import TOKEN, USER_ID, png


async def test_uploads_keep_bytes_fields_and_odd_filenames(fake: FakeTelegramAPI) -> None:
    data = png(40, 30)
    bot = Bot(TOKEN, base_url=fake.base_url, request=AiohttpRequest())
    async with bot:
        await bot.send_document(
            USER_ID,
            InputFile(data, filename='we"ird\r\nname.png'),
            caption='a "quoted"\ncaption ✓',
        )
        await bot.send_message(USER_ID, "plain text & more")
    [call] = fake.calls_of("sendDocument")
    upload = call.files["document"]
    assert upload.data == data
    assert upload.filename is not None and "\n" not in upload.filename
    assert upload.filename.endswith("name.png")
    assert call.params["caption"] == 'a "quoted"\ncaption ✓'
    [text] = fake.calls_of("sendMessage")
    assert text.params["text"] == "plain text & more"
