"""The message catalogue: every sentence exists in every language with the same
fields and plural forms that follow each language's rules; no English leaks
into another language; errors never leak what they carry for logs."""

from __future__ import annotations

import re
import string
from typing import get_args

import pytest
from babel.messages.pofile import read_po

from core import errors
from core.locales import (
    ENGLISH,
    LANGUAGES,
    catalogue,
    directory,
    normalize_locale,
    parse_locale,
    take_language,
)
from core.messages import Messages
from core.results import PriceInfo
from core.stats import Today
from core.types import ImageRequest
from core.vendors.presets import PRESETS
from storage.interfaces import PaymentStatus

OTHERS = [lang for lang in LANGUAGES if lang != ENGLISH]


def _po(locale: str) -> dict[str, tuple[str, ...]]:
    """msgid -> its msgstr forms, straight from the .po file."""
    with (directory(locale) / "imagine.po").open("rb") as f:
        parsed = read_po(f)
    found: dict[str, tuple[str, ...]] = {}
    for m in parsed:
        if not m.id:
            continue
        key = m.id[0] if isinstance(m.id, tuple | list) else m.id
        found[key] = tuple(m.string) if isinstance(m.string, tuple | list) else (m.string,)
    return found


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_seven_languages_have_a_catalogue() -> None:
    assert set(LANGUAGES) == {"en", "zh-Hans", "zh-Hant", "ja", "ko", "ru", "es"}
    for locale in LANGUAGES:
        assert (directory(locale) / "imagine.po").is_file()


@pytest.mark.parametrize("locale", OTHERS)
def test_every_message_id_exists_in_every_language(locale: str) -> None:
    english, other = _po(ENGLISH), _po(locale)
    assert set(other) == set(english)
    assert all(all(form.strip() for form in forms) for forms in other.values()), locale


@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_placeholder_matches_english(locale: str) -> None:
    english, other = _po(ENGLISH), _po(locale)
    for key, en_forms in english.items():
        wanted = _fields(en_forms[0])
        assert all(_fields(f) == wanted for f in en_forms), f"en {key}"
        for form in other[key]:
            assert _fields(form) == wanted, f"{locale} {key}: {form!r}"


# The msgstr index each language's rule gives for 1, 2, 5, 21 and 0.
PLURAL_FORMS = {
    "en": [0, 1, 1, 1, 1],
    "es": [0, 1, 1, 1, 1],
    "ru": [0, 1, 2, 0, 2],
    "zh-Hans": [0, 0, 0, 0, 0],
    "zh-Hant": [0, 0, 0, 0, 0],
    "ja": [0, 0, 0, 0, 0],
    "ko": [0, 0, 0, 0, 0],
}


@pytest.mark.parametrize("locale", LANGUAGES)
def test_plural_forms_compile_and_follow_the_language(locale: str) -> None:
    compiled = catalogue(locale)
    assert [compiled.plural_form(n) for n in (1, 2, 5, 21, 0)] == PLURAL_FORMS[locale]
    forms = max(PLURAL_FORMS[locale]) + 1
    english = catalogue(ENGLISH)
    assert compiled.plurals == english.plurals  # the same count field everywhere
    po = _po(locale)
    for key, field in english.plurals.items():
        assert field in _fields(po[key][0]), key
        assert len(po[key]) == forms, f"{locale} {key} needs {forms} forms"


def test_counts_pick_the_plural_form() -> None:
    text = Messages()
    assert text.balance("en", 1) == "Your balance: 1 credit."
    assert text.balance("en", 2) == "Your balance: 2 credits."
    assert text.balance("ru", 1) == "Ваш баланс: 1 кредит."
    assert text.balance("ru", 3) == "Ваш баланс: 3 кредита."
    assert text.balance("ru", 5) == "Ваш баланс: 5 кредитов."
    assert text.balance("ru", 21) == "Ваш баланс: 21 кредит."
    assert text.balance("es", 0) == "Tu saldo: 0 créditos."
    assert "1 credit but" in text.error(errors.InsufficientCredits(1, 0), "en")
    assert "5 кредитов" in text.error(errors.InsufficientCredits(5, 0), "ru")
    partial = text.delivery_partial("en", 1, 2, 1)
    assert (
        partial == "Only 1 of 2 images could be posted here. You were charged 1 credit for those."
    )

    # /stats says three counts: three messages, each with its own form.
    assert text.stats("en", Today(1, 2, 1)).splitlines()[:3] == [
        "Today (UTC): 1 job.",
        "Charged: 2 credits.",
        "Vendor cost: 1 credit.",
    ]
    assert text.stats("ru", Today(5, 21, 3)).splitlines()[:3] == [
        "Сегодня (UTC): 5 задач.",
        "Списано: 21 кредит.",
        "Расходы на сервис: 3 кредита.",
    ]


def test_a_price_range_takes_the_form_of_its_upper_bound() -> None:
    text = Messages()
    ranged = text.price("ru", PriceInfo(5, 10, low=3), ImageRequest("a fox"))
    assert "3–5 кредитов" in ranged and "удерживается 5 кредитов" in ranged
    assert "2–4 кредита" in text.price("ru", PriceInfo(4, 10, low=2), ImageRequest("a fox"))
    single = text.price("en", PriceInfo(1, 10), ImageRequest("a fox"))
    assert "costs 1 credit " in single and "held" not in single


def _error_classes() -> list[type[errors.ImagineError]]:
    found = []
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.ImagineError):
            found.append(value)
    return found


SAMPLE = {
    "reason": "r",
    "price": 1,
    "balance": 0,
    "limit": 2,
    "option": "o",
    "value": "v",
    "supported": "s",
}


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_error_has_a_sentence(cls: type[errors.ImagineError], locale: str) -> None:
    assert cls.code in catalogue(ENGLISH).keys, f"{cls.__name__}.code {cls.code!r} has no sentence"
    text = Messages().t(cls.code, locale, **SAMPLE)
    assert "{" not in text and cls.code not in text


def test_error_text_never_shows_the_detail() -> None:
    secret = 'HTTP 500 {"error": "upstream sk-live-123 exploded"}'
    err = errors.VendorUnavailable(secret, maybe_billed=True)
    for locale in LANGUAGES:
        text = Messages().error(err, locale)
        assert "sk-live" not in text and "upstream" not in text
    assert Messages().error(RuntimeError(secret), "en") == Messages().t("error", "en")
    plain = errors.InvalidRequest("internal detail sk-live-9")
    assert "sk-live" not in Messages().error(plain, "ja")


# --- no English inside another language -------------------------------------------

# What stays as typed in every language: file formats, option values the user
# types, environment settings, units, and the platforms' own names.
_TECHNICAL = {"png", "jpeg", "webp", "low", "medium", "high", "discord", "telegram", "utc"}
_NOT_WORDS = [
    re.compile(r"\{[^}]*\}"),  # placeholders
    re.compile(r"/\w+(@\w+)?"),  # commands
    re.compile(r"--\w+"),  # option flags
    re.compile(r"\b\w+=\S*"),  # lang=ja
    re.compile(r"\b\w+:(…|<\w+>)"),  # Discord option syntax (prompt:…, job:<id>)
    re.compile(r"\b\w+(\|\w+)+"),  # subcommand lists (topup|set|...)
    re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9]*_[A-Z0-9_]+(?![A-Za-z0-9_])"),  # settings
    re.compile(r"\b[A-Z][A-Z0-9]*_<\w+>_[A-Z0-9_*]*"),  # a family of settings (VENDOR_<NAME>_*)
    re.compile(r"\[\w+\.[^\]\s]+\]"),  # a table of the config file ([vendors.cheap])
]
# English spellings that are also words of the language (Spanish "el bot", "un error").
_LOANWORDS = {"es": {"bot", "chat", "error"}}
_WORD = re.compile(r"[A-Za-z][A-Za-z']{2,}")


def _words(text: str) -> set[str]:
    for pattern in _NOT_WORDS:
        text = pattern.sub(" ", text)
    return {w.lower() for w in _WORD.findall(text)} - _TECHNICAL


def _params(template: str) -> dict[str, object]:
    return {name: 7 for name in _fields(template)}


def _english_words() -> set[str]:
    words: set[str] = set()
    for forms in _po(ENGLISH).values():
        for form in forms:
            words |= _words(form)
    return words


def _rendered(locale: str) -> dict[str, str]:
    text = Messages()
    shown = {}
    for key, forms in _po(ENGLISH).items():
        shown[key] = text.t(key, locale, **_params(forms[0]))
    # Sentences assembled from several messages and error parameters.
    shown["settings error"] = text.error(
        errors.InvalidRequest("unknown language 'fr'", kind="language", value="fr"), locale
    )
    for reason in ("gone", "missing", "unsupported_link", "unavailable", "no_answer"):
        err = errors.InvalidRequest(f"download failed: {reason}", kind="download", reason=reason)
        shown[f"download {reason}"] = text.error(err, locale)
    shown["amount"] = text.error(
        errors.InvalidRequest("bad amount", kind="amount", low=1, high=10**9), locale
    )
    shown["help"] = text.help(locale, PRESETS["mock"], is_admin=True)
    shown["help.discord"] = text.help(locale, PRESETS["mock"], True, platform="discord")
    shown["delivery_partial"] = text.delivery_partial(locale, 1, 3, 2)
    return shown


@pytest.mark.parametrize("locale", OTHERS)
def test_no_english_leaks_into_another_language(locale: str) -> None:
    english = _english_words()
    assert {"credits", "balance", "image", "the"} <= english  # the list is real
    english -= _LOANWORDS.get(locale, set())
    leaks = {
        key: sorted(_words(sentence) & english)
        for key, sentence in _rendered(locale).items()
        if _words(sentence) & english
    }
    assert leaks == {}


def test_the_settings_language_error_of_the_report_is_fixed() -> None:
    err = errors.InvalidRequest("unknown language", kind="language", value="fr")
    text = Messages().error(err, "zh-Hans")
    assert "fr" in text and "zh-Hant" in text and "locale" not in text and " or " not in text


# --- which language a user gets ---------------------------------------------------


def test_locale_hints() -> None:
    assert normalize_locale("zh-hans") == normalize_locale("zh-CN") == "zh-Hans"
    assert normalize_locale("zh") == "zh-Hans"  # stored before there were two
    for hint in ("zh-hant", "zh-TW", "zh-tw", "zh-HK", "zh-Hant-TW", "zh_TW"):
        assert normalize_locale(hint) == "zh-Hant", hint
    assert normalize_locale("en-US") == normalize_locale("en-GB") == "en"
    assert normalize_locale("es-419") == normalize_locale("es-ES") == "es"
    assert normalize_locale("ja") == "ja" and normalize_locale("ko") == "ko"
    assert normalize_locale("ru") == "ru"
    assert normalize_locale("de", "zh") == "zh-Hans"
    assert normalize_locale("de", "ja") == "ja"
    assert normalize_locale("de", "xx") == "en"
    assert normalize_locale(None) == "en"
    assert parse_locale("fr") is None and parse_locale("") is None


def test_settings_words() -> None:
    assert take_language("--ar 16:9 lang=ja") == ("--ar 16:9", "ja")
    assert take_language("language=zh-TW") == ("", "zh-TW")
    assert take_language("--q high") == ("--q high", None)


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


def test_every_payment_status_has_a_word() -> None:
    """``/payments`` shows a stored status in the admin's language."""
    statuses = get_args(PaymentStatus)
    assert statuses
    for status in statuses:
        assert f"payments.status.{status}" in catalogue(ENGLISH).keys, status
    assert Messages().t("payments.status.refunded", "ru") == "возвращён"
