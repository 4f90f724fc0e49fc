"""The Telegram frontend: a python-telegram-bot ``Application`` over the core facade.

Public face: ``build_application(app)`` wires handlers and registers the frontend
with core; ``run_telegram(app, stop)`` runs it (long polling, or a webhook when
``TELEGRAM_WEBHOOK_URL`` is set) until ``stop`` is set; ``telegram_delivery(app)``
registers the frontend alone, over a ``telegram.Bot`` without a poller, for a
process that only runs workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from telegram import Bot, BotCommand
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder

from bots.telegram._aiohttp_request import AiohttpRequest
from bots.telegram._errors import install_log_filter, on_error
from bots.telegram._frontend import TelegramFrontend
from bots.telegram._handlers import Handlers
from bots.telegram._media import AlbumCache
from bots.telegram._progress import StatusBoard
from bots.telegram._public_files import PublicFiles, link_key, split_listen
from bots.telegram._ratelimit import RetryAfterLimiter
from bots.telegram._users import PLATFORM
from core.app import Imagine
from core.errors import ConfigError

__all__ = ["build_application", "run_telegram", "telegram_delivery"]

log = logging.getLogger(__name__)

# A handler lives as long as its job (seconds to minutes) and hundreds of users
# wait at once, so this bounds jobs in flight, not CPU work; bench/pipeline.py
# drives 500 at a time.
CONCURRENT_UPDATES = 1024
# Connections to the Bot API (aiohttp; see _aiohttp_request for why not httpx).
CONNECTION_POOL = 512
# Uploads of big images over slow links.
WRITE_TIMEOUT = 120.0
READ_TIMEOUT = 60.0

_PUBLIC_FILES_KEY = "imagine.public_files"
_COMMANDS = ("imagine", "edit", "price", "balance", "history", "show", "settings", "help")
# pre_checkout_query: a Stars payment waits for the bot's answer to it.
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]

TelegramApp = Application[Any, Any, Any, Any, Any, Any]


def build_application(app: Imagine) -> TelegramApp:
    """The configured ``Application``; also registers the Telegram frontend with core."""
    settings = app.settings
    if not settings.telegram_token:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set.", setting="TELEGRAM_BOT_TOKEN")
    install_log_filter(settings.telegram_token, settings.telegram_webhook_secret)
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .concurrent_updates(CONCURRENT_UPDATES)
        .request(_request())
        .get_updates_request(AiohttpRequest(connection_pool_size=2, read_timeout=READ_TIMEOUT))
        .rate_limiter(RetryAfterLimiter())
    )
    if settings.telegram_base_url:
        builder = builder.base_url(_api_base(settings.telegram_base_url, "bot"))
    if settings.telegram_base_file_url:
        builder = builder.base_file_url(_api_base(settings.telegram_base_file_url, "file/bot"))
    elif settings.telegram_base_url:
        builder = builder.base_file_url(_api_base(settings.telegram_base_url, "file/bot"))
    application: TelegramApp = builder.build()

    public_files = _public_files(app)
    application.bot_data[_PUBLIC_FILES_KEY] = public_files

    albums = AlbumCache()
    status = StatusBoard(application.bot, app.text)
    Handlers(app, albums, status, public_files).register(application)
    application.add_error_handler(on_error)
    app.add_frontend(
        TelegramFrontend(
            application.bot,
            app.text,
            settings.admin_ids,
            albums,
            status,
            can_edit=app.preset.can_edit,
            public_files=public_files,
        )
    )
    return application


def _public_files(app: Imagine) -> PublicFiles | None:
    settings = app.settings
    if not (app.preset.needs_public_urls and settings.public_base_url):
        return None
    assert settings.telegram_token is not None
    return PublicFiles(
        settings.public_base_url,
        settings.public_listen,
        app.files,
        link_key(settings.telegram_token),
    )


def _request() -> AiohttpRequest:
    return AiohttpRequest(
        connection_pool_size=CONNECTION_POOL,
        read_timeout=READ_TIMEOUT,
        write_timeout=WRITE_TIMEOUT,
        connect_timeout=15.0,
        pool_timeout=30.0,
        media_write_timeout=WRITE_TIMEOUT,
    )


@contextlib.asynccontextmanager
async def telegram_delivery(app: Imagine) -> AsyncIterator[TelegramFrontend]:
    """The Telegram frontend over a plain ``Bot`` (no updates are fetched): what a
    worker process needs to fetch sources, show progress and post results. Links
    for URL-fetching vendors are signed here and served by the process that runs
    ``imagine-bot run`` on the same data folder."""
    settings = app.settings
    if not settings.telegram_token:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set.", setting="TELEGRAM_BOT_TOKEN")
    install_log_filter(settings.telegram_token)
    base = _api_base(settings.telegram_base_url, "bot") if settings.telegram_base_url else None
    file_base = settings.telegram_base_file_url or settings.telegram_base_url
    bot = Bot(
        settings.telegram_token,
        base_url=base or "https://api.telegram.org/bot",
        base_file_url=(
            _api_base(file_base, "file/bot") if file_base else "https://api.telegram.org/file/bot"
        ),
        request=_request(),
    )
    try:
        await bot.initialize()  # getMe: checks the token
    except InvalidToken:
        await bot.shutdown()
        raise ConfigError(
            "Telegram rejected TELEGRAM_BOT_TOKEN; copy it again from @BotFather.",
            setting="TELEGRAM_BOT_TOKEN",
        ) from None
    frontend = TelegramFrontend(
        bot,
        app.text,
        settings.admin_ids,
        AlbumCache(),
        StatusBoard(bot, app.text),
        can_edit=app.preset.can_edit,
        public_files=_public_files(app),
    )
    app.add_frontend(frontend)
    try:
        yield frontend
    finally:
        await bot.shutdown()


def _api_base(url: str, suffix: str) -> str:
    """``TELEGRAM_BASE_URL`` may be given as the server root (``http://host:8081``)
    or already end in ``/bot`` as python-telegram-bot expects."""
    url = url.rstrip("/")
    return url if url.endswith("/" + suffix.rsplit("/", 1)[-1]) else f"{url}/{suffix}"


# Telegram keys command menus by a two-letter ISO 639-1 code, so both Chinese
# scripts share ``zh``: it gets Simplified, the script most of its users read.
MENU_LANGUAGES: dict[str, str] = {
    "en": "en",
    "zh": "zh-Hans",
    "ja": "ja",
    "ko": "ko",
    "ru": "ru",
    "es": "es",
}


def command_menus(app: Imagine) -> dict[str | None, list[BotCommand]]:
    """Each menu by its ``language_code``; None is the menu for every other
    language, in DEFAULT_LOCALE."""
    wanted: dict[str | None, str] = {None: app.settings.default_locale}
    wanted.update(MENU_LANGUAGES)
    names = _COMMANDS + (("buy",) if app.payments.packs(PLATFORM) else ())
    return {
        code: [BotCommand(name, app.text.t(f"command.{name}", locale)[:256]) for name in names]
        for code, locale in wanted.items()
    }


async def _set_commands(application: TelegramApp, app: Imagine) -> None:
    for code, commands in command_menus(app).items():
        with contextlib.suppress(TelegramError):
            await application.bot.set_my_commands(commands, language_code=code)


async def run_telegram(app: Imagine, stop: asyncio.Event) -> None:
    """Run the bot until ``stop`` is set, then shut down cleanly."""
    settings = app.settings
    application = build_application(app)
    public_files: PublicFiles | None = application.bot_data.get(_PUBLIC_FILES_KEY)
    try:
        await application.initialize()  # getMe: checks the token
    except InvalidToken:
        await application.shutdown()  # closes the HTTP sessions initialize() opened
        raise ConfigError(
            "Telegram rejected TELEGRAM_BOT_TOKEN; copy it again from @BotFather.",
            setting="TELEGRAM_BOT_TOKEN",
        ) from None
    async with application:  # already initialized; shutdown() on the way out
        if public_files is not None:
            await public_files.start()
        try:
            await _set_commands(application, app)
            await application.start()
            assert application.updater is not None
            if settings.telegram_webhook_url:
                host, port = split_listen(settings.telegram_webhook_listen, 8443)
                path = urlsplit(settings.telegram_webhook_url).path.strip("/")
                # Telegram sends this secret in a header; PTB rejects requests without it.
                secret = settings.telegram_webhook_secret or secrets.token_urlsafe(32)
                await application.updater.start_webhook(
                    listen=host,
                    port=port,
                    url_path=path,
                    webhook_url=settings.telegram_webhook_url,
                    secret_token=secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
                log.info("telegram webhook listening on %s:%s/%s", host, port, path)
            else:
                await application.updater.start_polling(
                    allowed_updates=ALLOWED_UPDATES,
                    timeout=30,
                )
                log.info("telegram long polling as @%s", application.bot.username)
            # Now results can be posted: finish what a previous run left for Telegram.
            await app.sweep(PLATFORM)
            await stop.wait()
        finally:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()
            if public_files is not None:
                await public_files.stop()
