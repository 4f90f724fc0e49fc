"""A user's image options: remembered defaults, and inline flags typed after a prompt
(``--ar 16:9 --res 2K --q high --n 2``), shared by every frontend."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace

from core.errors import InvalidRequest
from core.types import Quality, Resolution
from core.vendors.preset import Preset

_FLAGS = {
    "--ar": "aspect",
    "--aspect": "aspect",
    "--res": "resolution",
    "--resolution": "resolution",
    "--size": "resolution",
    "--q": "quality",
    "--quality": "quality",
    "--n": "n",
    "--count": "n",
}


@dataclass(frozen=True, slots=True)
class Defaults:
    aspect: str = "1:1"
    resolution: str = "1K"
    quality: str = "medium"
    n: int = 1
    locale: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | None) -> Defaults:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def fitted(self, preset: Preset) -> Defaults:
        """The nearest options this preset offers, so saved defaults never break a vendor
        switch."""
        tiers = preset.tiers or ("1K",)
        resolution = self.resolution if self.resolution in tiers else tiers[0]
        aspects = preset.aspects(resolution) or ("1:1",)
        aspect = (
            self.aspect if self.aspect in aspects else ("1:1" if "1:1" in aspects else aspects[0])
        )
        quality = self.quality if self.quality in preset.qualities else preset.qualities[0]
        n = min(max(1, self.n), preset.n_max)
        return replace(self, aspect=aspect, resolution=resolution, quality=quality, n=n)


@dataclass(frozen=True, slots=True)
class ParsedPrompt:
    prompt: str
    defaults: Defaults
    explicit: frozenset[str]


# Without a preset (a caller that has none) the largest count any built-in preset takes.
_DEFAULT_N_MAX = 10
# Any whitespace-separated word that starts with "--" and a non-dash is a flag: an
# unknown one is refused, never sent (and billed) as prompt text.
_FLAG_TOKEN = re.compile(r"--[^-\s]\S*")
_WORD = re.compile(r"\S+")


_UNSHOWN = re.compile(r"[^\w:.-]")


def _refuse(kind: str, flag: str, n_max: int) -> InvalidRequest:
    # The flag is echoed into a chat that may render Markdown: only plain characters.
    shown = _UNSHOWN.sub("", flag)[:24]
    return InvalidRequest(f"{kind}: {flag[:100]!r}", kind=kind, option=shown, n_max=n_max)


def _check(field: str, flag: str, value: str, n_max: int) -> str | int:
    if field == "resolution":
        value = value.upper()
        if value not in {r.value for r in Resolution}:
            raise _refuse("option_resolution", flag, n_max)
        return value
    if field == "quality":
        value = value.lower()
        if value not in {q.value for q in Quality}:
            raise _refuse("option_quality", flag, n_max)
        return value
    if field == "n":
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= n_max:
            raise _refuse("option_count", flag, n_max)
        return int(value)
    parts = value.split(":")
    if value != "auto" and (
        len(parts) != 2 or not all(p.isascii() and p.isdigit() and p != "0" for p in parts)
    ):
        raise _refuse("option_aspect", flag, n_max)
    return value


def parse_prompt(text: str, defaults: Defaults, preset: Preset | None = None) -> ParsedPrompt:
    """Take inline flags out of the prompt; everything else, quotes included, stays.

    A word starting with ``--`` that is no known flag, or a flag without a value, is
    refused with the list of flags. ``preset`` bounds ``--n`` to what the vendor takes.
    """
    n_max = preset.n_max if preset is not None else _DEFAULT_N_MAX
    changes: dict[str, str | int] = {}
    cuts: list[tuple[int, int]] = []
    words = list(_WORD.finditer(text))
    i = 0
    while i < len(words):
        word = words[i]
        if not _FLAG_TOKEN.fullmatch(word.group()):
            i += 1
            continue
        flag, eq, value = word.group().partition("=")
        field = _FLAGS.get(flag.lower())
        if field is None:
            raise _refuse("unknown_option", flag, n_max)
        end = word.end()
        if not eq and i + 1 < len(words) and not words[i + 1].group().startswith("--"):
            i += 1
            value, end = words[i].group(), words[i].end()
        if not value:
            raise _refuse("option_missing", flag, n_max)
        changes[field] = _check(field, flag, value, n_max)
        cuts.append((word.start(), end))
        i += 1
    prompt = text
    for start, end in reversed(cuts):
        prompt = prompt[:start] + prompt[end:]
    prompt = re.sub(r"[ \t]{2,}", " ", prompt).strip()
    return ParsedPrompt(
        prompt,
        replace(defaults, **changes),  # type: ignore[arg-type]
        frozenset(changes),
    )
