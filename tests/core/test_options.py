"""Inline flags: a word starting with ``--`` is a flag; one the parser does not know,
or one without a value, is refused with the list of flags instead of being sent
(and billed) as prompt text."""

from __future__ import annotations

import pytest

from core.errors import InvalidRequest
from core.messages import Messages
from core.options import Defaults, parse_prompt
from core.vendors.presets import PRESETS


def _refusal(text: str, preset_name: str | None = None) -> InvalidRequest:
    preset = PRESETS[preset_name] if preset_name else None
    with pytest.raises(InvalidRequest) as caught:
        parse_prompt(text, Defaults(), preset)
    return caught.value


@pytest.mark.parametrize(
    "text",
    ["a cat --q", "a cat --q --n 2", "a cat --ar=", "--n", "a cat --res   "],
)
def test_a_flag_without_a_value_is_refused_with_the_flags(text: str) -> None:
    err = _refusal(text)
    assert err.params["kind"] == "option_missing"
    for locale in ("en", "zh"):
        sentence = Messages().error(err, locale)
        assert all(flag in sentence for flag in ("--ar", "--res", "--q", "--n")), sentence
        assert "{" not in sentence


@pytest.mark.parametrize("text", ["a cat --foo bar", "--style=anime a dog", "x --Q2 high"])
def test_an_unknown_flag_is_refused_not_charged_as_prompt(text: str) -> None:
    err = _refusal(text)
    assert err.params["kind"] == "unknown_option"
    sentence = Messages().error(err, "en")
    assert "--ar" in sentence and "--q" in sentence and "{" not in sentence


def test_count_out_of_range_names_the_presets_real_range() -> None:
    preset = PRESETS["gptimageapi"]
    err = _refusal("a cat --n 5", preset.name)
    assert err.params["kind"] == "option_count"
    for locale in ("en", "zh"):
        sentence = Messages().error(err, locale)
        assert f"1 to {preset.n_max}" in sentence or f"1 到 {preset.n_max}" in sentence
        assert "10" not in sentence
    parsed = parse_prompt("a cat --n 4", Defaults(), preset)
    assert parsed.defaults.n == 4 and parsed.prompt == "a cat"


def test_known_flags_and_ordinary_dashes_still_work() -> None:
    parsed = parse_prompt(
        'a sign -- "open" --ar 16:9 --Q high --n=2 --res\n2k ---> done', Defaults()
    )
    assert parsed.prompt == 'a sign -- "open" ---> done'
    d = parsed.defaults
    assert (d.aspect, d.quality, d.n, d.resolution) == ("16:9", "high", 2, "2K")
    assert parsed.explicit == {"aspect", "quality", "n", "resolution"}


def test_the_echoed_flag_carries_no_markup() -> None:
    err = _refusal("--[x](http://evil.example) hi")
    assert "(" not in str(err.params["option"]) and "[" not in str(err.params["option"])
