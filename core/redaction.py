"""Keeping secrets out of every log line, in one place.

The secrets themselves (vendor API key, Telegram and Discord tokens, webhook secret,
database password) are registered from the settings; each is scrubbed as written and
URL-encoded, because Bot API URLs, httpx and aiohttp messages carry them either way.
Generic patterns catch what was never configured (a vendor echoing some other key).

One :class:`SecretFilter` on the root handler covers every logger, children
included: a filter on a logger does not run for records of its child loggers,
a filter on the handler runs for every record that is written.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Iterable

__all__ = [
    "REDACTED",
    "RedactingFormatter",
    "RedactingStreamHandler",
    "SecretFilter",
    "add_secrets",
    "install",
    "redact",
    "secrets_from",
]

REDACTED = "[REDACTED]"
# Shorter values are not secrets worth the name (tests use "k"); scrubbing them would
# mangle every log line that happens to contain the same letters.
_MIN_SECRET_CHARS = 8

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=\-]+"), f"Bearer {REDACTED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"), f"sk-{REDACTED}"),
    # Bot API and file URLs: /bot<id>:<secret>/ and /file/bot<id>:<secret>/, raw or encoded.
    (re.compile(r"(?i)/bot\d+(?::|%3A)[A-Za-z0-9_\-]+"), f"/bot{REDACTED}"),
    (re.compile(r"(?i)\bbot\d+(?::|%3A)[A-Za-z0-9_\-]{20,}"), f"bot{REDACTED}"),
    # A bare Telegram token: "<numeric id>:<35 characters>".
    (re.compile(r"(?i)\b\d{5,}(?::|%3A)[A-Za-z0-9_\-]{30,}"), REDACTED),
    # Discord bot tokens (and JWT-like tokens): three base64url parts joined by dots.
    (re.compile(r"\b[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{25,}"), REDACTED),
    # Discord interaction and webhook tokens in URLs (credentials for 15 minutes).
    (
        re.compile(r"/(interactions|webhooks)/(\d+)/[A-Za-z0-9._\-]+"),
        rf"/\1/\2/{REDACTED}",
    ),
)

_lock = threading.Lock()
# Longest first, so a secret is replaced before any secret it contains.
_forms: tuple[str, ...] = ()


def _variants(secret: str) -> set[str]:
    forms = {
        secret,
        urllib.parse.quote(secret),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    }
    # A Telegram token's secret half also appears alone (after "bot<id>:").
    _, colon, tail = secret.partition(":")
    if colon and len(tail) >= _MIN_SECRET_CHARS:
        forms.add(tail)
    return {f for f in forms if len(f) >= _MIN_SECRET_CHARS}


def add_secrets(*secrets: str | None) -> None:
    """Scrub these values (and their URL-encoded forms) from now on; idempotent."""
    global _forms
    new: set[str] = set()
    for secret in secrets:
        if secret and len(secret.strip()) >= _MIN_SECRET_CHARS:
            new |= _variants(secret.strip())
    if not new:
        return
    with _lock:
        _forms = tuple(sorted(set(_forms) | new, key=len, reverse=True))


def secrets_from(settings: object) -> tuple[str, ...]:
    """The secret values of a ``Settings`` (duck-typed: this module imports nothing)."""
    found: list[str] = []
    for name in (
        "vendor_api_key",
        "telegram_token",
        "discord_token",
        "telegram_webhook_secret",
        "dashboard_token",
    ):
        value = getattr(settings, name, None)
        if isinstance(value, str) and value:
            found.append(value)
    for vendor in getattr(settings, "vendors", ()) or ():
        key = getattr(vendor, "api_key", None)
        if isinstance(key, str) and key and key not in found:
            found.append(key)
    database_url = getattr(settings, "database_url", None)
    if isinstance(database_url, str):
        try:
            password = urllib.parse.urlsplit(database_url).password
        except ValueError:
            password = None
        if password:
            found.append(urllib.parse.unquote(password))
    return tuple(found)


def redact(text: str) -> str:
    """``text`` with every registered secret and every generic secret pattern scrubbed."""
    for form in _forms:
        if form in text:
            text = text.replace(form, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretFilter(logging.Filter):
    """Freezes each record into scrubbed text: the message with its args applied,
    the rendered traceback and stack; later handlers and formatters see only that."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record still must not leak its parts
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """Scrubs the finished line too: a record built or changed after the filter ran
    (another handler's formatter, a traceback rendered late) is still covered."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingStreamHandler(logging.StreamHandler):
    """``logging.Handler.handleError`` prints the pending exception chain (a failed
    request's URL included) straight to stderr; this prints it scrubbed."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not logging.raiseExceptions:
            return
        exc = sys.exc_info()[1]
        try:
            text = "".join(traceback.format_exception(exc)) if exc else ""
            sys.stderr.write(f"--- Logging error ---\n{redact(text)}")
        except Exception:  # nothing left to report to
            pass


def install(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Attach the filter to ``handlers`` (default: the root logger's), once each."""
    targets = logging.getLogger().handlers if handlers is None else handlers
    for handler in targets:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())
