"""``VENDORS``: one settings block per vendor, from variables or TOML tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import redaction
from core.errors import ConfigError
from core.settings import load_settings, vendor_env_prefix


def test_env_blocks_in_order(tmp_path: Path) -> None:
    s = load_settings(
        {
            "VENDORS": "compat-b64, aiearth",
            "VENDOR_COMPAT_B64_BASE_URL": "https://gw.example.com/",
            "VENDOR_COMPAT_B64_API_KEY": "sk-first-secret-1",
            "VENDOR_AIEARTH_API_KEY": "sk-second-secret-2",
            "VENDOR_AIEARTH_MODEL": "gpt-image-2-x",
        },
        env_file=None,
    )
    assert s.failover
    assert [v.name for v in s.vendors] == ["compat-b64", "aiearth"]
    assert s.vendors[0].preset.base_url == "https://gw.example.com"
    assert s.vendors[1].preset.model == "gpt-image-2-x"
    assert s.preset.name == "compat-b64" and s.vendor_api_key == "sk-first-secret-1"
    # Keys stay out of reprs and are scrubbed like VENDOR_API_KEY.
    assert "secret" not in repr(s) and "secret" not in repr(s.vendors)
    assert "sk-second-secret-2" in redaction.secrets_from(s)


def test_toml_tables_with_named_blocks(tmp_path: Path) -> None:
    toml = """
[vendors.cheap]
preset = "compat-sizes"
base_url = "https://cheap.example.com"
api_key = "sk-from-the-file"
n_max = 2
[vendors.cheap.price.per_image]
"1024x1024:medium" = 40
[vendors.mock]
"""
    s = load_settings(
        {"VENDORS": "cheap,mock", "VENDOR_CONFIG": str(_write(tmp_path, toml))}, env_file=None
    )
    cheap, mock = s.vendors
    assert cheap.preset.name == "compat-sizes" and cheap.preset.n_max == 2
    assert cheap.preset.price.per_image["1024x1024:medium"] == 40
    assert cheap.api_key == "sk-from-the-file"
    assert mock.preset.style == "mock"
    # A variable wins over the table.
    s = load_settings(
        {
            "VENDORS": "cheap,mock",
            "VENDOR_CONFIG": str(tmp_path / "vendors.toml"),
            "VENDOR_CHEAP_BASE_URL": "https://other.example.com",
        },
        env_file=None,
    )
    assert s.vendors[0].preset.base_url == "https://other.example.com"


def _write(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "vendors.toml"
    path.write_text(toml)
    return path


@pytest.mark.parametrize(
    ("env", "toml", "setting"),
    [
        ({"VENDORS": "aiearth", "VENDOR": "mock"}, None, "VENDOR"),
        ({"VENDORS": "aiearth", "VENDOR_API_KEY": "k"}, None, "VENDOR_API_KEY"),
        ({"VENDORS": "aiearth,mock"}, None, "VENDOR_AIEARTH_API_KEY"),
        ({"VENDORS": "compat-b64,mock", "VENDOR_COMPAT_B64_API_KEY": "k"}, None, None),
        ({"VENDORS": "mine,mock"}, None, "VENDOR_MINE_PRESET"),
        ({"VENDORS": "mock,mock"}, None, "VENDORS"),
        ({"VENDORS": "bad name"}, None, "VENDORS"),
        ({"VENDORS": "mock"}, "n_max = 2\n", "VENDOR_CONFIG"),
        ({"VENDORS": "mock"}, "[vendors.other]\n", "VENDOR_CONFIG"),
        ({"VENDORS": "mock"}, "[vendors.mock]\nunknown = 1\n", "VENDOR_CONFIG"),
    ],
    ids=[
        "with-VENDOR",
        "with-VENDOR_API_KEY",
        "missing-key",
        "missing-base-url",
        "unknown-preset",
        "twice",
        "bad-name",
        "top-level-keys",
        "unlisted-table",
        "unknown-field",
    ],
)
def test_mistakes_name_the_setting(
    tmp_path: Path, env: dict[str, str], toml: str | None, setting: str | None
) -> None:
    if toml is not None:
        env = {**env, "VENDOR_CONFIG": str(_write(tmp_path, toml))}
    with pytest.raises(ConfigError) as caught:
        load_settings(env, env_file=None)
    expected = setting or "VENDOR_COMPAT_B64_BASE_URL"
    assert caught.value.params.get("setting") == expected


def test_single_vendor_is_one_block() -> None:
    s = load_settings({"VENDOR": "mock"}, env_file=None)
    assert not s.failover
    assert [v.name for v in s.vendors] == ["mock"]


def test_env_prefix() -> None:
    assert vendor_env_prefix("compat-b64") == "VENDOR_COMPAT_B64_"
