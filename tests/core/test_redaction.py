"""Secrets never reach a log line: the configured values raw and URL-encoded, the
generic key and token shapes, tracebacks, and records of any logger's children,
through the real ``configure_logging`` setup."""

from __future__ import annotations

import io
import logging
import urllib.parse
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from core import redaction
from core.bootstrap import configure_logging

TG_TOKEN = "7362514098:AAFq3_zXc9-Yt5LmN2pQr8sTuVwXyZ01234"
VENDOR_KEY = "ak-live-9f8e7d6c5b4a3210fedcba98"  # no sk- prefix
DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
WEBHOOK_SECRET = "wh-S3cr3t-value-42xyz"
DB_PASSWORD = "pg-pass-Zq81!x"
SETTINGS = SimpleNamespace(
    vendor_api_key=VENDOR_KEY,
    telegram_token=TG_TOKEN,
    discord_token=DISCORD_TOKEN,
    telegram_webhook_secret=WEBHOOK_SECRET,
    database_url=f"postgresql://bot:{urllib.parse.quote(DB_PASSWORD, safe='')}@db/imagine",
)
SECRETS = (TG_TOKEN, VENDOR_KEY, DISCORD_TOKEN, WEBHOOK_SECRET, DB_PASSWORD)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The handler ``configure_logging`` installs, writing to a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    buffer = io.StringIO()
    try:
        configure_logging("DEBUG", secrets=redaction.secrets_from(SETTINGS))
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, lvl in quiet.items():
            logging.getLogger(name).setLevel(lvl)


def _assert_clean(out: str) -> None:
    for secret in SECRETS:
        for form in (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)):
            assert form not in out, form
    assert TG_TOKEN.split(":", 1)[1] not in out


def test_configured_secrets_in_every_form_and_logger(
    log_output: io.StringIO,
) -> None:
    child = logging.getLogger("telegram.ext.Updater.child")  # no filter of its own
    child.info("GET https://api.telegram.org/bot%s/getUpdates", TG_TOKEN)
    child.info("encoded %s", urllib.parse.quote(f"bot{TG_TOKEN}", safe=""))
    child.warning("bare token %s and its secret half %s", TG_TOKEN, TG_TOKEN.split(":")[1])
    logging.getLogger("core.vendors.http").info("vendor said: Incorrect API key %s", VENDOR_KEY)
    logging.getLogger("discord.gateway").error("login with %r failed", DISCORD_TOKEN)
    logging.getLogger("aiohttp.web").info("X-Telegram-Bot-Api-Secret-Token: " + WEBHOOK_SECRET)
    logging.getLogger("storage").info("connecting to %s", SETTINGS.database_url)
    logging.getLogger("x").info({"headers": {"Authorization": f"Bearer {VENDOR_KEY}"}})
    out = log_output.getvalue()
    assert out.count("[REDACTED]") >= 8
    _assert_clean(out)


def test_tracebacks_and_generic_shapes(
    log_output: io.StringIO,
) -> None:
    log = logging.getLogger("telegram.ext._application.deep")
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TG_TOKEN}/sendPhoto failed")
    except RuntimeError:
        log.exception("update failed")
    try:
        raise ValueError(f"key={VENDOR_KEY} discord={DISCORD_TOKEN}")
    except ValueError:
        log.error("with %s", "exc_info", exc_info=True, stack_info=True)
    # Never configured anywhere: the generic shapes still catch them.
    log.info("other bot /bot1234567:AAAbbbCCCdddEEEfffGGGhhh_-iii/getMe")
    log.info("leaked sk-proj-abcdefgh12345678 and 9876543210:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789")
    log.info("https://discord.com/api/webhooks/123/aaaaBBBBccccDDDD-token/messages/1")
    out = log_output.getvalue()
    assert "Traceback" in out and "RuntimeError" in out and "ValueError" in out
    _assert_clean(out)
    for leaked in (
        "AAAbbbCCCdddEEEfffGGGhhh",
        "abcdefgh12345678",
        "ABCdefGHIjklMNOpqrSTUvwxYZ",
        "aaaaBBBBccccDDDD",
    ):
        assert leaked not in out


def test_telegram_public_names_still_work() -> None:
    from bots.telegram._errors import RedactTokenFilter, install_log_filter, redact

    install_log_filter(TG_TOKEN)
    assert TG_TOKEN not in redact(f"token {TG_TOKEN} and %s" % urllib.parse.quote(TG_TOKEN))
    record = logging.LogRecord(
        "telegram.ext.x", logging.INFO, __file__, 1, "t=%s", (TG_TOKEN,), None
    )
    assert RedactTokenFilter(TG_TOKEN).filter(record)
    assert TG_TOKEN not in record.getMessage()


def test_a_failing_stream_does_not_print_the_secret(
    log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    log_output.close()  # the handler's stream breaks: logging reports the error itself
    try:
        raise ConnectionError(f"https://api.telegram.org/bot{TG_TOKEN}/getMe")
    except ConnectionError:
        logging.getLogger("telegram.ext").exception("poll failed")
    report = stderr.getvalue()
    assert "Logging error" in report and "ConnectionError" in report
    _assert_clean(report)
