"""Slash-command options built from the configured vendor preset.

Choices (aspect, resolution tier, quality, count) exist only at run time, so the
commands are assembled from plain callbacks: ``with_choices`` attaches the choices
and drops the options the vendor does not offer (an empty choice list, or image
options beyond ``max_input_images``) from the callback's signature, which is what
discord.py reads to build the command.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

from discord import app_commands

from core.vendors.preset import Preset

F = TypeVar("F", bound=Callable[..., Any])
Choice = app_commands.Choice

MAX_CHOICES = 25  # Discord's limit per option
IMAGE_OPTIONS = ("image", "image2", "image3", "image4")


def _str_choices(values: Iterable[str]) -> list[Choice[str]]:
    return [Choice(name=v, value=v) for v in list(values)[:MAX_CHOICES]]


def preset_choices(preset: Preset) -> dict[str, list[Choice[str]] | list[Choice[int]]]:
    return {
        "aspect": _str_choices(preset.aspects()),
        "resolution": _str_choices(preset.tiers),
        "quality": _str_choices(preset.qualities),
        "count": [Choice(name=str(n), value=n) for n in range(1, min(preset.n_max, 25) + 1)],
    }


def image_option_count(preset: Preset) -> int:
    return min(len(IMAGE_OPTIONS), preset.max_input_images) if preset.can_edit else 0


def with_choices(
    func: F,
    choices: dict[str, list[Choice[str]] | list[Choice[int]]],
    *,
    drop: Sequence[str] = (),
) -> F:
    """Attach ``choices`` to ``func``'s options; remove options with fewer than two
    choices (nothing to pick) and the ``drop`` ones from its signature.

    Works on a copy: discord.py stores choices and descriptions as attributes of the
    function, and each bot (each preset) needs its own."""
    func = _copy(func)
    signature = inspect.signature(func)
    kept = {name: c for name, c in choices.items() if len(c) > 1 and name in signature.parameters}
    gone = {*drop, *(name for name in choices if name not in kept)}
    params = [p for p in signature.parameters.values() if p.name not in gone]
    func.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    if kept:
        func = app_commands.choices(**cast(dict[str, list[Choice[Any]]], kept))(func)
    return func


def _copy(func: F) -> F:
    clone = types.FunctionType(
        func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__kwdefaults__ = func.__kwdefaults__
    clone.__annotations__ = dict(func.__annotations__)
    clone.__qualname__ = func.__qualname__
    clone.__doc__ = func.__doc__
    clone.__module__ = func.__module__
    return cast(F, clone)


def describe(func: F, descriptions: Mapping[str, str | app_commands.locale_str]) -> F:
    """``app_commands.describe`` for the options that survived ``with_choices``."""
    params = inspect.signature(func).parameters
    kept = {name: text for name, text in descriptions.items() if name in params}
    return app_commands.describe(**kept)(func) if kept else func
