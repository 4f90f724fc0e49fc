"""Settings: presets by name, TOML overrides of any preset field, and one clear
sentence naming the setting when something is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_defaults_run_on_the_mock_with_nothing_set() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.preset.name == "mock"
    assert settings.database_url == "sqlite:///data/imagine-bot.sqlite3"
    assert settings.welcome_credits == 100  # a newcomer can try the mock right away
    assert "sk-" not in repr(settings)


def test_env_file_and_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("VENDOR=aiearth\nVENDOR_API_KEY=sk-from-file\nWELCOME_CREDITS=5\n")
    settings = load_settings({"WELCOME_CREDITS": "9"}, env_file=env_file)
    assert settings.preset.name == "aiearth" and settings.vendor_api_key == "sk-from-file"
    assert settings.welcome_credits == 9
    assert settings.preset.base_url == "https://api.aiearth.dev/v1"


def test_vendor_config_overrides_any_field(tmp_path: Path) -> None:
    config = tmp_path / "vendor.toml"
    config.write_text(
        'model = "gpt-image-2-pro"\nn_max = 2\nrequest_timeout = 90\n'
        'qualities = ["low", "high"]\n'
        '[price]\nmarkup_percent = 20\nper_image = { "1024x1024:high" = 300 }\n'
    )
    settings = load_settings(
        {
            "VENDOR": "compat-b64",
            "VENDOR_API_KEY": "k",
            "VENDOR_BASE_URL": "https://x.test/",
            "VENDOR_CONFIG": str(config),
        },
        env_file=None,
    )
    preset = settings.preset
    assert preset.model == "gpt-image-2-pro" and preset.n_max == 2
    assert preset.request_timeout == 90.0 and preset.qualities == ("low", "high")
    assert preset.price.per_image["1024x1024:high"] == 300
    assert preset.price.per_image["1024x1024:low"] == 6  # others kept
    assert preset.price.markup_percent == 20
    assert preset.base_url == "https://x.test"


@pytest.mark.parametrize(
    ("env", "toml", "needle"),
    [
        ({"VENDOR": "dall-e"}, None, "VENDOR="),
        ({"VENDOR": "openai"}, None, "VENDOR_API_KEY"),
        ({"VENDOR": "compat-b64", "VENDOR_API_KEY": "k"}, None, "VENDOR_BASE_URL"),
        ({"VENDOR_BASE_URL": "ftp://x"}, None, "VENDOR_BASE_URL"),
        ({"WELCOME_CREDITS": "-1"}, None, "WELCOME_CREDITS"),
        ({"MOCK_LATENCY": "slow"}, None, "MOCK_LATENCY"),
        ({"DISCORD_MENTION_REPLIES": "maybe"}, None, "DISCORD_MENTION_REPLIES"),
        ({"DISCORD_GUILD_IDS": "abc"}, None, "DISCORD_GUILD_IDS"),
        ({"DEFAULT_LOCALE": "fr"}, None, "DEFAULT_LOCALE"),
        ({}, "n_max = 'many'", "n_max"),
        ({}, "colour = 'red'", "colour"),
        ({}, "[price]\nper_image = { low = 1.5 }", "per_image"),
        ({}, "not toml at all [", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_setting(
    tmp_path: Path, env: dict[str, str], toml: str | None, needle: str
) -> None:
    if toml is not None:
        path = tmp_path / "v.toml"
        path.write_text(toml)
        env = {**env, "VENDOR_CONFIG": str(path)}
    with pytest.raises(ConfigError) as caught:
        load_settings(env, env_file=None)
    assert needle in caught.value.detail


@pytest.mark.parametrize(
    "entry", ["telegram:@alice", "tg:5", "discord:abc", "telegram:", "console:bob", "cli:a b", "5"]
)
def test_admin_ids_that_can_never_match_are_refused(entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ADMIN_USER_IDS": f"telegram:1, {entry}"}, env_file=None)
    message = str(caught.value)
    assert caught.value.params["setting"] == "ADMIN_USER_IDS"
    assert repr(entry.strip()) in message
    assert "telegram:<numeric id>" in message and "cli:<name>" in message


def test_admin_id_forms_that_match_a_user_key() -> None:
    settings = load_settings(
        {"ADMIN_USER_IDS": "Telegram:123, discord:456789012345678901,console:local,cli:operator"},
        env_file=None,
    )
    assert settings.admin_ids == {
        "telegram:123",
        "discord:456789012345678901",
        "console:local",
        "cli:operator",
    }
