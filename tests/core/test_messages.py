"""The message catalogue: every sentence exists in every language with the same
fields, and errors never leak what they carry for logs."""

from __future__ import annotations

import string

import pytest

from core import errors
from core.locales import en, zh
from core.messages import Messages, normalize_locale
from core.vendors.presets import PRESETS


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_has_every_key_with_the_same_fields() -> None:
    assert set(en.MESSAGES) == set(zh.MESSAGES)
    for key, template in en.MESSAGES.items():
        assert _fields(template) == _fields(zh.MESSAGES[key]), key


def _error_classes() -> list[type[errors.ImagineError]]:
    found = []
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.ImagineError):
            found.append(value)
    return found


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("locale", ["en", "zh"])
def test_every_error_has_a_sentence(cls: type[errors.ImagineError], locale: str) -> None:
    assert cls.code in en.MESSAGES, f"{cls.__name__}.code {cls.code!r} has no sentence"
    params = {"reason": "r", "price": 1, "balance": 0, "limit": 2, "option": "o", "value": "v"}
    text = Messages().t(cls.code, locale, supported="s", **params)
    assert "{" not in text


def test_error_text_never_shows_the_detail() -> None:
    secret = 'HTTP 500 {"error": "upstream sk-live-123 exploded"}'
    err = errors.VendorUnavailable(secret, maybe_billed=True)
    for locale in ("en", "zh"):
        text = Messages().error(err, locale)
        assert "sk-live" not in text and "upstream" not in text
    assert Messages().error(RuntimeError(secret), "en") == Messages().t("error", "en")


def test_locale_hints() -> None:
    assert normalize_locale("zh-hans") == normalize_locale("zh-CN") == "zh"
    assert normalize_locale("en-US") == "en"
    assert normalize_locale("de", "zh") == "zh"


def test_caption_fits_telegram_and_keeps_cost_and_balance() -> None:
    caption = Messages().caption("en", "p" * 5000, cost=12, balance=88)
    assert len(caption) <= 1024 and "12 credits" in caption and "88" in caption


def test_help_matches_the_platform() -> None:
    text = Messages()
    preset = PRESETS["mock"]
    assert "/credits" in text.help("en", preset, True, platform="discord")
    assert "/topup" in text.help("en", preset, True, platform="telegram")
    assert "/edit PATH" in text.help("en", preset, True, platform="console")
    assert "only edits" in text.help("en", PRESETS["gptimageapi"])
