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


def _check(field: str, value: str) -> str | int:
    if field == "resolution":
        value = value.upper()
        if value not in {r.value for r in Resolution}:
            raise InvalidRequest(
                "bad option", kind="option", option="--res", why="use 1K, 2K or 4K"
            )
        return value
    if field == "quality":
        value = value.lower()
        if value not in {q.value for q in Quality}:
            raise InvalidRequest(
                "bad option", kind="option", option="--q", why="use low, medium or high"
            )
        return value
    if field == "n":
        if not value.isdigit() or not 1 <= int(value) <= 10:
            raise InvalidRequest(
                "bad option", kind="option", option="--n", why="use a number from 1 to 10"
            )
        return int(value)
    parts = value.split(":")
    if value != "auto" and (len(parts) != 2 or not all(p.isdigit() and p != "0" for p in parts)):
        raise InvalidRequest(
            "bad option", kind="option", option="--ar", why="use a ratio like 16:9"
        )
    return value


_FLAG_RE = re.compile(
    r"(?<!\S)(" + "|".join(re.escape(f) for f in _FLAGS) + r")(?:=|\s+)(\S+)?", re.IGNORECASE
)


def parse_prompt(text: str, defaults: Defaults) -> ParsedPrompt:
    """Take inline flags out of the prompt; everything else, quotes included, stays."""
    changes: dict[str, str | int] = {}

    def take(match: re.Match[str]) -> str:
        flag, value = match.group(1), match.group(2)
        if value is None or value.startswith("--"):
            raise InvalidRequest("bad option", kind="option", option=flag, why="it needs a value")
        field = _FLAGS[flag.lower()]
        changes[field] = _check(field, value)
        return ""

    prompt = _FLAG_RE.sub(take, text)
    prompt = re.sub(r"[ \t]{2,}", " ", prompt).strip()
    return ParsedPrompt(
        prompt,
        replace(defaults, **changes),  # type: ignore[arg-type]
        frozenset(changes),
    )
