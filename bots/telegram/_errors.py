"""Keeping secrets out of logs: the bot token travels in every Bot API URL (httpx
logs request URLs at INFO), and file URLs carry it too."""

from __future__ import annotations

import logging
import re

from telegram import Update
from telegram.ext import ContextTypes

log = logging.getLogger(__name__)

# "bot<id>:<secret>" as it appears in Bot API and file URLs.
_TOKEN_RE = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")
_URL_TOKEN_RE = re.compile(r"(/(?:file/)?bot)[^/\s]+")


def redact(text: str) -> str:
    text = _URL_TOKEN_RE.sub(r"\1<token>", text)
    return _TOKEN_RE.sub("<token>", text)


class RedactTokenFilter(logging.Filter):
    """Rewrites log records so a bot token never reaches a log line."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business
            return True
        clean = redact(message)
        if self.token:
            clean = clean.replace(self.token, "<token>")
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTERED: set[str] = set()


def install_log_filter(token: str | None) -> None:
    """Attach the filter to the loggers that may print URLs (idempotent)."""
    for name in ("httpx", "httpcore", "telegram", "telegram.ext", "bots.telegram"):
        if name in _FILTERED:
            continue
        logging.getLogger(name).addFilter(RedactTokenFilter(token))
        _FILTERED.add(name)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Errors outside a handler's own reporting (polling, network): log, redacted.

    Handlers report their own errors to the user (``Handlers.report``); this only
    keeps the traceback-free record of what else went wrong.
    """
    err = context.error
    if err is None:
        return
    where = "update" if isinstance(update, Update) else "background"
    log.warning("telegram %s error %s: %s", where, type(err).__name__, redact(str(err)))
