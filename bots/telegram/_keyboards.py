"""Inline keyboards and their callback data.

Callback data is short text (Telegram allows 64 bytes) whose state lives in core:
``d:<draft>:<field>:<value>`` for the /imagine menu (the draft is stored by
``app.drafts`` so the buttons still work after a restart), ``s:<user>:<field>:<value>``
for /settings, ``r:``/``v:``/``e:<job>`` under a result and ``h:<job>`` (Show) under
/history; a job's buttons carry its full id, checked against the presser in core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from core.locales import LANGUAGES, NATIVE_NAMES

MAX_CALLBACK_BYTES = 64
# Fields a menu button can change; short names keep callback data small.
FIELDS = {"ar": "aspect", "res": "resolution", "q": "quality", "n": "n", "lang": "locale"}


@dataclass(frozen=True, slots=True)
class Press:
    """A decoded button press: ``kind`` is d (draft), s (settings), r/v/e (result),
    h (show a result from /history)."""

    kind: str
    target: str
    action: str = ""
    value: str = ""


def encode(*parts: str) -> str:
    data = ":".join(parts)
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def decode(data: str) -> Press | None:
    kind, _, rest = data.partition(":")
    if kind not in ("d", "s", "r", "v", "e", "h") or not rest:
        return None
    if kind in ("r", "v", "e", "h"):
        return Press(kind, rest)
    target, _, rest = rest.partition(":")
    action, _, value = rest.partition(":")  # values like 16:9 keep their colon
    return Press(kind, target, action, value)


@dataclass(frozen=True, slots=True)
class Choice:
    """What the option rows offer and what is currently chosen."""

    aspects: Sequence[str]
    tiers: Sequence[str]
    qualities: Sequence[str]
    n_max: int
    aspect: str
    resolution: str
    quality: str
    n: int


def _mark(label: str, selected: bool) -> str:
    return f"✅ {label}" if selected else label


def _rows(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def option_rows(prefix: tuple[str, str], choice: Choice) -> list[list[InlineKeyboardButton]]:
    kind, target = prefix

    def button(label: str, action: str, value: str, selected: bool) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            _mark(label, selected), callback_data=encode(kind, target, action, value)
        )

    rows: list[list[InlineKeyboardButton]] = []
    rows += _rows([button(a, "ar", a, a == choice.aspect) for a in choice.aspects], 4)
    if len(choice.tiers) > 1:
        rows += _rows([button(t, "res", t, t == choice.resolution) for t in choice.tiers], 4)
    if len(choice.qualities) > 1:
        rows += _rows([button(q, "q", q, q == choice.quality) for q in choice.qualities], 4)
    if choice.n_max > 1:
        rows += _rows(
            [button(f"×{k}", "n", str(k), k == choice.n) for k in range(1, choice.n_max + 1)], 5
        )
    return rows


def draft_keyboard(
    draft_id: str, choice: Choice, generate_label: str, cancel_label: str
) -> InlineKeyboardMarkup:
    rows = option_rows(("d", draft_id), choice)
    rows.append(
        [
            InlineKeyboardButton(generate_label, callback_data=encode("d", draft_id, "go")),
            InlineKeyboardButton(cancel_label, callback_data=encode("d", draft_id, "x")),
        ]
    )
    return InlineKeyboardMarkup(rows)


def settings_keyboard(
    user_id: str, choice: Choice, locale: str, done_label: str
) -> InlineKeyboardMarkup:
    rows = option_rows(("s", user_id), choice)
    languages = [
        InlineKeyboardButton(
            _mark(NATIVE_NAMES[code], code == locale),
            callback_data=encode("s", user_id, "lang", code),
        )
        for code in LANGUAGES
    ]
    rows += _rows(languages, 4)
    rows.append([InlineKeyboardButton(done_label, callback_data=encode("s", user_id, "ok"))])
    return InlineKeyboardMarkup(rows)


def result_keyboard(
    job_id: str, label: Callable[[str], str], *, can_edit: bool
) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(label("button.reroll"), callback_data=encode("r", job_id))]
    if can_edit:
        row.append(
            InlineKeyboardButton(label("button.variations"), callback_data=encode("v", job_id))
        )
        row.append(InlineKeyboardButton(label("button.edit"), callback_data=encode("e", job_id)))
    return InlineKeyboardMarkup([row])


def history_keyboard(
    job_ids: Sequence[str], label: Callable[[str], str]
) -> InlineKeyboardMarkup | None:
    """A Show button per image in /history (``label(job_id)``), three to a row."""
    buttons = [InlineKeyboardButton(label(j), callback_data=encode("h", j)) for j in job_ids]
    return InlineKeyboardMarkup(_rows(buttons, 3)) if buttons else None
