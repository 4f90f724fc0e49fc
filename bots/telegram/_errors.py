"""Keeping secrets out of logs: the bot token travels in every Bot API URL (httpx
logs request URLs at INFO), and file URLs carry it too."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from core import redaction

log = logging.getLogger(__name__)


def redact(text: str) -> str:
    """``text`` with the bot token (raw, URL-encoded or inside a URL) and every other
    configured secret scrubbed; delegates to ``core.redaction``."""
    return redaction.redact(text)


class RedactTokenFilter(redaction.SecretFilter):
    """The shared secret filter, registering ``token`` first (kept for callers that
    attach a filter themselves)."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token
        redaction.add_secrets(token)


def install_log_filter(token: str | None, *secrets: str | None) -> None:
    """Scrub ``token`` (and ``secrets``, e.g. the webhook secret) from every log line
    (idempotent).

    The filter goes on the root logger's handlers: a filter on a logger such as
    ``telegram.ext`` would not run for its children (``telegram.ext.Updater``)."""
    redaction.add_secrets(token, *secrets)
    redaction.install()


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
