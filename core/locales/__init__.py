"""The message catalogues: one gettext file per language,
``core/locales/<dir>/LC_MESSAGES/imagine.po``.

The msgids are stable keys (``insufficient_credits``), not English text, so a
call site names what happened and every language, English included, says it in
its own words. A message with a count carries ``msgid_plural`` (the same key) and
one ``msgstr[i]`` per plural form of its language, and a ``#. plural: <field>``
comment naming the placeholder whose number picks the form.

The ``.po`` files are the only source: each is compiled in memory the first time
it is needed (Babel reads it and writes a ``.mo`` into a buffer, the standard
library's ``gettext.GNUTranslations`` reads that), so an installed package, an
editable install and a fresh clone all work without a build step. docs/translations.md
says how to add a message or a language.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from dataclasses import dataclass
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "imagine"
ENGLISH = "en"
# The languages a user can pick, by the tag the bot stores and shows.
LANGUAGES: tuple[str, ...] = ("en", "zh-Hans", "zh-Hant", "ja", "ko", "ru", "es")
# Each language's name in itself: what a language menu shows.
NATIVE_NAMES: dict[str, str] = {
    "en": "English",
    "zh-Hans": "简体中文",
    "zh-Hant": "繁體中文",
    "ja": "日本語",
    "ko": "한국어",
    "ru": "Русский",
    "es": "Español",
}
_ROOT = Path(__file__).resolve().parent
_PLURAL_NOTE = re.compile(r"plural:\s*(\w+)")
# Chinese regions that write Traditional characters; any other zh is Simplified
# (and so is the bare ``zh`` stored before there were two).
_TRADITIONAL = {"hant", "tw", "hk", "mo"}


def directory(locale: str) -> Path:
    """Where a language's ``imagine.po`` lives (gettext spells ``zh-Hans`` ``zh_Hans``)."""
    return _ROOT / locale.replace("-", "_") / "LC_MESSAGES"


def parse_locale(hint: str | None) -> str | None:
    """One of ``LANGUAGES`` for a Telegram ``language_code`` (``zh-hans``,
    ``es-419``), a Discord locale (``zh-TW``, ``en-US``), a stored choice (``zh``)
    or what a user typed; None for a language the bot does not speak."""
    if not hint:
        return None
    parts = hint.strip().replace("_", "-").lower().split("-")
    primary = parts[0]
    if primary == "zh":
        return "zh-Hant" if _TRADITIONAL.intersection(parts[1:]) else "zh-Hans"
    for locale in LANGUAGES:
        if primary == locale:
            return locale
    return None


def normalize_locale(hint: str | None, default: str = ENGLISH) -> str:
    """``parse_locale`` with a fallback: the default, itself normalized, else English."""
    return parse_locale(hint) or parse_locale(default) or ENGLISH


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One language, compiled: ``template`` picks the sentence (and its plural
    form) for a key and the fields it will be formatted with."""

    locale: str
    translations: gettext.GNUTranslations
    keys: frozenset[str]
    # key -> the placeholder whose number picks the plural form
    plurals: dict[str, str]

    def template(self, key: str, params: dict[str, object]) -> str | None:
        if key not in self.keys:
            return None
        field = self.plurals.get(key)
        if field is None:
            return self.translations.gettext(key)
        return self.translations.ngettext(key, key, _count(params.get(field)))

    def plural_form(self, n: int) -> int:
        """Which ``msgstr[i]`` a count takes in this language."""
        return int(self.translations.plural(n))  # type: ignore[attr-defined]


def _count(value: object) -> int:
    try:
        return abs(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 2  # not a number: the "many" wording reads right in every language


@functools.cache
def catalogue(locale: str) -> Catalogue:
    """The compiled catalogue of one of ``LANGUAGES`` (raises for any other)."""
    if locale not in LANGUAGES:
        raise KeyError(locale)
    path = directory(locale) / f"{DOMAIN}.po"
    with path.open("rb") as po:
        parsed = read_po(po, locale=locale.replace("-", "_"), domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, parsed)
    buffer.seek(0)
    translations = gettext.GNUTranslations(buffer)
    keys: set[str] = set()
    plurals: dict[str, str] = {}
    for message in parsed:
        if not message.id:
            continue  # the header
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        keys.add(key)
        if message.pluralizable:
            note = next((m for c in message.auto_comments if (m := _PLURAL_NOTE.search(c))), None)
            plurals[key] = note.group(1) if note else "count"
    return Catalogue(locale, translations, frozenset(keys), plurals)


def take_language(text: str) -> tuple[str, str | None]:
    """``/settings`` words: the value of ``lang=``/``language=`` (as typed, to be
    checked by ``Imagine.save_defaults``) and the rest of the text."""
    chosen = None
    rest = []
    for word in text.split():
        name, sep, value = word.partition("=")
        if sep and name.lower() in ("lang", "language"):
            chosen = value
        else:
            rest.append(word)
    return " ".join(rest), chosen
