"""Settings, read once at start from the environment and an optional ``.env`` file.

Every setting is documented in ``.env.example``. A missing or invalid one stops
start-up with one sentence naming it (``ConfigError``), never a traceback.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from core.errors import ConfigError
from core.locales import LANGUAGES, parse_locale
from core.packs import CreditPack, parse_sku_packs, parse_star_packs
from core.vendors.preset import Preset, PriceTable
from core.vendors.presets import PRESETS


@dataclass(frozen=True, slots=True)
class VendorConfig:
    """One vendor of ``VENDORS``: its block name, the preset it resolves to (with that
    block's overrides) and its own key."""

    name: str
    preset: Preset
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    preset: Preset
    vendor_api_key: str
    vendor_config: str | None
    database_url: str
    data_dir: Path
    output_dir: Path
    admin_ids: frozenset[str]
    welcome_credits: int
    vendor_concurrency_max: int
    worker_jobs: int
    job_lease: float
    queue_timeout: float
    file_retention_days: float
    fetch_allow_hosts: tuple[str, ...]
    user_max_active_jobs: int
    user_jobs_per_minute: int
    user_actions_per_minute: int
    user_actions_burst: int
    max_image_bytes: int
    max_image_pixels: int
    mock_latency: float
    sweep_interval: float
    delivery_grace: float
    log_level: str
    default_locale: str
    telegram_token: str | None
    telegram_base_url: str | None
    telegram_base_file_url: str | None
    telegram_webhook_url: str | None
    telegram_webhook_secret: str | None
    telegram_webhook_listen: str
    public_base_url: str | None
    public_listen: str
    discord_token: str | None
    discord_guild_ids: tuple[int, ...]
    discord_alert_channel_id: int | None
    discord_mention_replies: bool
    metrics_file: Path | None = None
    # VENDOR was given (even VENDOR=mock): no "VENDOR is unset" notice then.
    vendor_set: bool = False
    # The health endpoint's address (/livez, /healthz, /metrics); None: off.
    health_listen: str | None = None
    log_format: str = "text"
    # Packs users buy themselves: Telegram Stars, Discord consumable SKUs.
    credit_packs: tuple[CreditPack, ...] = ()
    discord_sku_packs: tuple[CreditPack, ...] = ()
    # The admin dashboard's address (DASHBOARD_LISTEN, or 127.0.0.1:DASHBOARD_PORT);
    # None: ``run`` serves none (``imagine-bot dashboard`` uses DEFAULT_DASHBOARD_LISTEN).
    dashboard_listen: str | None = None
    dashboard_token: str | None = None
    # Every configured vendor, in failover order; one entry for ``VENDOR=`` alone
    # (then ``preset`` and ``vendor_api_key`` are that entry's).
    vendors: tuple[VendorConfig, ...] = ()

    @property
    def failover(self) -> bool:
        """Several vendors (``VENDORS=a,b``): jobs go to the first healthy one."""
        return len(self.vendors) > 1

    @property
    def vendor_is_default_mock(self) -> bool:
        """The mock vendor because VENDOR is unset, not because it says ``mock``."""
        return self.preset.name == "mock" and not self.vendor_set

    def __repr__(self) -> str:  # never print secrets
        names = ",".join(v.name for v in self.vendors) or self.preset.name
        return f"Settings(vendor={names}, database={self.database_url})"


def _env(source: Mapping[str, str | None], name: str, default: str | None = None) -> str | None:
    value = source.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _int(source: Mapping[str, str | None], name: str, default: int, *, minimum: int = 0) -> int:
    raw = _env(source, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}.", setting=name) from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}.", setting=name)
    return value


def _float(source: Mapping[str, str | None], name: str, default: float) -> float:
    raw = _env(source, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be a number of seconds, not {raw!r}.", setting=name
        ) from None
    if value < 0:
        raise ConfigError(f"{name} cannot be negative.", setting=name)
    return value


def _bool(source: Mapping[str, str | None], name: str, default: bool) -> bool:
    raw = _env(source, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}.", setting=name)


def _url(source: Mapping[str, str | None], name: str) -> str | None:
    raw = _env(source, name)
    if raw is not None and not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must start with http:// or https://.", setting=name)
    return raw.rstrip("/") if raw else None


# Every form a user key takes (core.ports.UserRef.key); anything else never matches.
_ADMIN_FORMS = {
    "telegram": re.compile(r"\d{1,20}"),
    "discord": re.compile(r"\d{1,20}"),
    "console": re.compile(r"local"),
    "cli": re.compile(r"[A-Za-z0-9_.-]{1,64}"),
}
_ADMIN_EXPECTED = "telegram:<numeric id>, discord:<numeric id>, console:local or cli:<name>"


def _admin_ids(raw: str | None) -> frozenset[str]:
    ids: set[str] = set()
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        platform, sep, uid = item.partition(":")
        platform, uid = platform.strip().lower(), uid.strip()
        form = _ADMIN_FORMS.get(platform)
        if not sep or form is None or not form.fullmatch(uid):
            raise ConfigError(
                f"ADMIN_USER_IDS entry {item!r} can never match a user; entries look like "
                f"{_ADMIN_EXPECTED} (a Telegram @username is not an id: ask @userinfobot).",
                setting="ADMIN_USER_IDS",
            )
        ids.add(f"{platform}:{uid}")
    return frozenset(ids)


def _listen(source: Mapping[str, str | None], name: str, default: str) -> str:
    """``host:port``, ``:port`` or ``host`` (the default port), as the listeners split it."""
    raw = _env(source, name, default) or default
    host, sep, port = raw.rpartition(":")
    if sep and not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(
            f"{name} must look like host:port with a port from 1 to 65535 "
            f"(e.g. 0.0.0.0:8080), not {raw!r}.",
            setting=name,
        )
    if sep and ":" in host and not host.startswith("["):
        raise ConfigError(
            f"{name}: write an IPv6 address in brackets, e.g. [::]:8080, not {raw!r}.",
            setting=name,
        )
    return raw


DEFAULT_DASHBOARD_LISTEN = "127.0.0.1:8090"
# Shorter tokens could be guessed over the network.
MIN_DASHBOARD_TOKEN = 16


def _dashboard(env: Mapping[str, str | None]) -> tuple[str | None, str | None]:
    """(listen, token). Localhost unless DASHBOARD_LISTEN names another address: the
    page is reached from elsewhere through a reverse proxy with TLS."""
    listen = _listen(env, "DASHBOARD_LISTEN", "") or None
    port = _int(env, "DASHBOARD_PORT", 0)
    if port > 65535:
        raise ConfigError(
            "DASHBOARD_PORT must be a port from 1 to 65535.", setting="DASHBOARD_PORT"
        )
    if listen is None and port:
        listen = f"127.0.0.1:{port}"
    token = _env(env, "DASHBOARD_TOKEN")
    if token is not None and len(token) < MIN_DASHBOARD_TOKEN:
        raise ConfigError(
            f"DASHBOARD_TOKEN must be at least {MIN_DASHBOARD_TOKEN} characters "
            "(e.g. the output of: openssl rand -hex 24).",
            setting="DASHBOARD_TOKEN",
        )
    return listen, token


def _id_list(source: Mapping[str, str | None], name: str) -> tuple[int, ...]:
    raw = _env(source, name) or ""
    try:
        return tuple(int(x) for x in raw.replace(" ", "").split(",") if x)
    except ValueError:
        raise ConfigError(
            f"{name} must be a comma-separated list of numeric ids.", setting=name
        ) from None


_PRESET_FIELDS = {f.name: f for f in fields(Preset)}
_PRICE_FIELDS = {f.name: f for f in fields(PriceTable)}


# Numbers that only make sense above zero (a count of images, a timeout, a poll
# interval); every other number may be zero but never negative.
_ABOVE_ZERO = frozenset(
    {
        "n_max",
        "max_input_images",
        "max_prompt_chars",
        "connect_timeout",
        "request_timeout",
        "task_deadline",
        "poll_initial",
        "poll_max",
    }
)


def _in_range(where: str, name: str, value: float) -> float:
    if name in _ABOVE_ZERO and value <= 0:
        raise ConfigError(f"{where} must be above 0, not {value}.", setting="VENDOR_CONFIG")
    if value < 0:
        raise ConfigError(f"{where} cannot be negative ({value}).", setting="VENDOR_CONFIG")
    return value


def _coerce(name: str, current: Any, value: Any) -> Any:
    """Type-check one override against the preset's current value."""
    where = f"VENDOR_CONFIG key {name!r}"
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false.", setting="VENDOR_CONFIG")
        return value
    if isinstance(current, float):
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise ConfigError(f"{where} must be a number.", setting="VENDOR_CONFIG")
        return float(_in_range(where, name, value))
    if isinstance(current, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a whole number.", setting="VENDOR_CONFIG")
        return _in_range(where, name, value)
    if isinstance(current, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings.", setting="VENDOR_CONFIG")
        return tuple(value)
    if isinstance(current, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table.", setting="VENDOR_CONFIG")
        return value
    if current is None or isinstance(current, str):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where} must be a string.", setting="VENDOR_CONFIG")
        return value
    return value


def apply_overrides(preset: Preset, data: Mapping[str, Any]) -> Preset:
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "price":
            if not isinstance(value, dict):
                raise ConfigError("VENDOR_CONFIG [price] must be a table.", setting="VENDOR_CONFIG")
            price_changes: dict[str, Any] = {}
            for pkey, pvalue in value.items():
                if pkey not in _PRICE_FIELDS:
                    raise ConfigError(
                        f"VENDOR_CONFIG has an unknown price key {pkey!r}.", setting="VENDOR_CONFIG"
                    )
                if pkey == "per_image":
                    if not isinstance(pvalue, dict) or not all(
                        isinstance(v, int) and not isinstance(v, bool) and v >= 0
                        for v in pvalue.values()
                    ):
                        raise ConfigError(
                            "VENDOR_CONFIG price.per_image values must be whole "
                            "numbers of credits.",
                            setting="VENDOR_CONFIG",
                        )
                    # Merged, so an operator can change one price without restating all.
                    price_changes[pkey] = {**preset.price.per_image, **pvalue}
                else:
                    price_changes[pkey] = _coerce(
                        f"price.{pkey}", getattr(preset.price, pkey), pvalue
                    )
            changes["price"] = replace(preset.price, **price_changes)
        elif key in _PRESET_FIELDS and key != "name":
            changes[key] = _coerce(key, getattr(preset, key), value)
        else:
            raise ConfigError(f"VENDOR_CONFIG has an unknown key {key!r}.", setting="VENDOR_CONFIG")
    return replace(preset, **changes)


def _read_config(env: Mapping[str, str | None]) -> dict[str, Any]:
    config_path = _env(env, "VENDOR_CONFIG")
    if not config_path:
        return {}
    path = Path(config_path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"VENDOR_CONFIG file {path} does not exist.", setting="VENDOR_CONFIG"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"VENDOR_CONFIG file {path} is not valid TOML: {exc}.", setting="VENDOR_CONFIG"
        ) from None


def _known_preset(name: str, setting: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(
            f"{setting}={name!r} is not a known preset; choose one of {', '.join(PRESETS)}.",
            setting=setting,
        )
    return PRESETS[name]


def _finish(
    preset: Preset,
    *,
    base_url: str | None,
    model: str | None,
    markup: int | None,
    url_setting: str,
    label: str,
) -> Preset:
    if base_url:
        preset = replace(preset, base_url=base_url)
    if model:
        preset = replace(
            preset,
            model=model,
            generate_model=model if preset.generate_model is not None else None,
        )
    if markup is not None:
        preset = replace(preset, price=replace(preset.price, markup_percent=markup))
    if preset.style != "mock" and not preset.base_url:
        raise ConfigError(
            f"{url_setting} is required for {label} (its document names no address).",
            setting=url_setting,
        )
    return preset


def _load_preset(env: Mapping[str, str | None]) -> Preset:
    name = (_env(env, "VENDOR") or "mock").lower()
    preset = _known_preset(name, "VENDOR")
    data = _read_config(env)
    if data:
        preset = apply_overrides(preset, data)
    markup = _int(env, "PRICE_MARKUP_PERCENT", preset.price.markup_percent)
    return _finish(
        preset,
        base_url=_url(env, "VENDOR_BASE_URL"),
        model=_env(env, "VENDOR_MODEL"),
        markup=markup,
        url_setting="VENDOR_BASE_URL",
        label=f"VENDOR={name}",
    )


_VENDOR_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# Keys of a ``[vendors.<name>]`` table that are not preset fields.
_BLOCK_ONLY = ("preset", "api_key", "base_url", "model")
# Single-vendor settings that would be ambiguous next to VENDORS.
_SINGLE_ONLY = ("VENDOR", "VENDOR_API_KEY", "VENDOR_BASE_URL", "VENDOR_MODEL")


def vendor_env_prefix(name: str) -> str:
    """``aiearth`` -> ``VENDOR_AIEARTH_``; ``compat-b64`` -> ``VENDOR_COMPAT_B64_``."""
    return "VENDOR_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_"


def _block_str(block: dict[str, Any], key: str, name: str) -> str | None:
    value = block.pop(key, None)
    if value is not None and not isinstance(value, str):
        raise ConfigError(
            f"VENDOR_CONFIG [vendors.{name}] {key} must be a string.", setting="VENDOR_CONFIG"
        )
    return value.strip() if value and value.strip() else None


def _load_vendors(env: Mapping[str, str | None], raw: str) -> tuple[VendorConfig, ...]:
    """``VENDORS=a,b``: one settings block per name, from ``VENDOR_<NAME>_*`` variables
    or a ``[vendors.<name>]`` table of the VENDOR_CONFIG file (variables win)."""
    for single in _SINGLE_ONLY:
        if _env(env, single) is not None:
            raise ConfigError(
                f"{single} cannot be combined with VENDORS; give each vendor its own "
                f"VENDOR_<NAME>_* settings or [vendors.<name>] table.",
                setting=single,
            )
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    for name in names:
        if not _VENDOR_NAME.fullmatch(name):
            raise ConfigError(
                f"VENDORS entry {name!r} must be a short name of letters, digits, - or _.",
                setting="VENDORS",
            )
    if len(set(names)) != len(names):
        raise ConfigError("VENDORS names a vendor twice.", setting="VENDORS")
    data = _read_config(env)
    tables = data.pop("vendors", {})
    if data:
        raise ConfigError(
            f"With VENDORS, VENDOR_CONFIG keys go under [vendors.<name>] tables, not at the "
            f"top ({', '.join(sorted(data))}).",
            setting="VENDOR_CONFIG",
        )
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError("VENDOR_CONFIG [vendors.<name>] must be tables.", setting="VENDOR_CONFIG")
    unknown = sorted(set(tables) - set(names))
    if unknown:
        raise ConfigError(
            f"VENDOR_CONFIG has [vendors.{unknown[0]}] but VENDORS does not name it.",
            setting="VENDOR_CONFIG",
        )
    configs: list[VendorConfig] = []
    for name in names:
        block = dict(tables.get(name, {}))
        prefix = vendor_env_prefix(name)
        preset_name = (
            _env(env, prefix + "PRESET") or _block_str(block, "preset", name) or name
        ).lower()
        preset = _known_preset(preset_name, prefix + "PRESET")
        block_key = _block_str(block, "api_key", name)
        block_url = _block_str(block, "base_url", name)
        block_model = _block_str(block, "model", name)
        if block_url and not block_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"VENDOR_CONFIG [vendors.{name}] base_url must start with http:// or https://.",
                setting="VENDOR_CONFIG",
            )
        preset = apply_overrides(preset, block)
        preset = _finish(
            preset,
            base_url=_url(env, prefix + "BASE_URL") or (block_url or "").rstrip("/") or None,
            model=_env(env, prefix + "MODEL") or block_model,
            markup=_int(env, "PRICE_MARKUP_PERCENT", preset.price.markup_percent),
            url_setting=prefix + "BASE_URL",
            label=f"the vendor {name}",
        )
        api_key = _env(env, prefix + "API_KEY") or block_key or ""
        if preset.style != "mock" and not api_key:
            raise ConfigError(
                f"{prefix}API_KEY is required for the vendor {name}.", setting=prefix + "API_KEY"
            )
        configs.append(VendorConfig(name, preset, api_key))
    if not configs:
        raise ConfigError("VENDORS names no vendor.", setting="VENDORS")
    return tuple(configs)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def _choice(
    source: Mapping[str, str | None],
    name: str,
    default: str,
    choices: tuple[str, ...],
    aliases: Mapping[str, str] | None = None,
) -> str:
    """One of ``choices`` (any case; ``aliases`` map other spellings onto one)."""
    raw = _env(source, name, default) or default
    key = raw.lower()
    found = next((c for c in choices if c.lower() == key), None) or (aliases or {}).get(key)
    if found is None:
        raise ConfigError(
            f"{name} must be one of {', '.join(choices[:-1])} or {choices[-1]}, not {raw!r}.",
            setting=name,
        )
    return found


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> Settings:
    """Environment wins over ``.env`` so a container's settings override a stale file."""
    merged: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        merged.update(dotenv_values(env_file))
    merged.update(os.environ if environ is None else environ)

    several = _env(merged, "VENDORS")
    if several is not None:
        vendors = _load_vendors(merged, several)
        preset, api_key = vendors[0].preset, vendors[0].api_key
    else:
        preset = _load_preset(merged)
        api_key = _env(merged, "VENDOR_API_KEY") or ""
        if preset.style != "mock" and not api_key:
            raise ConfigError(
                f"VENDOR_API_KEY is required for VENDOR={preset.name}.", setting="VENDOR_API_KEY"
            )
        vendors = (VendorConfig(preset.name, preset, api_key),)
    database_url = _env(merged, "DATABASE_URL", "sqlite:///data/imagine-bot.sqlite3") or ""
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            "DATABASE_URL must look like sqlite:///data/imagine-bot.sqlite3 or "
            "postgresql://user:password@host:5432/dbname.",
            setting="DATABASE_URL",
        )
    max_mb = _int(merged, "MAX_IMAGE_MB", 20, minimum=1)
    webhook = _url(merged, "TELEGRAM_WEBHOOK_URL")
    channel = _env(merged, "DISCORD_ALERT_CHANNEL_ID")
    if channel is not None and not channel.isdigit():
        raise ConfigError(
            "DISCORD_ALERT_CHANNEL_ID must be a numeric channel id.",
            setting="DISCORD_ALERT_CHANNEL_ID",
        )
    raw_locale = _env(merged, "DEFAULT_LOCALE", "en") or "en"
    locale = parse_locale(raw_locale)
    if locale is None:
        raise ConfigError(
            f"DEFAULT_LOCALE must be one of {', '.join(LANGUAGES)} (got {raw_locale[:32]!r}).",
            setting="DEFAULT_LOCALE",
        )
    dashboard_listen, dashboard_token = _dashboard(merged)
    return Settings(
        preset=preset,
        vendor_api_key=api_key,
        vendor_config=_env(merged, "VENDOR_CONFIG"),
        database_url=database_url,
        data_dir=Path(_env(merged, "DATA_DIR", "data") or "data"),
        output_dir=Path(_env(merged, "OUTPUT_DIR", "out") or "out"),
        admin_ids=_admin_ids(_env(merged, "ADMIN_USER_IDS")),
        # With the mock vendor credits cost nothing real: give a newcomer some to try.
        welcome_credits=_int(merged, "WELCOME_CREDITS", 100 if preset.style == "mock" else 0),
        # The adaptive limit on vendor calls starts here and only comes down when the
        # vendor pushes back: high enough that a burst of a few hundred users is
        # not queued behind a healthy vendor.
        vendor_concurrency_max=_int(merged, "VENDOR_CONCURRENCY_MAX", 512, minimum=1),
        worker_jobs=_int(merged, "WORKER_JOBS", 512, minimum=1),
        job_lease=_float(merged, "JOB_LEASE_SECONDS", 30.0),
        queue_timeout=_float(merged, "QUEUE_TIMEOUT", 900.0),
        file_retention_days=_float(merged, "FILE_RETENTION_DAYS", 30.0),
        fetch_allow_hosts=tuple(
            h.strip().lower()
            for h in (_env(merged, "FETCH_ALLOW_HOSTS") or "").split(",")
            if h.strip()
        ),
        user_max_active_jobs=_int(merged, "USER_MAX_ACTIVE_JOBS", 2, minimum=1),
        user_jobs_per_minute=_int(merged, "USER_JOBS_PER_MINUTE", 10, minimum=1),
        user_actions_per_minute=_int(merged, "USER_ACTIONS_PER_MINUTE", 30, minimum=1),
        user_actions_burst=_int(merged, "USER_ACTIONS_BURST", 10, minimum=1),
        max_image_bytes=max_mb * 1024 * 1024,
        max_image_pixels=_int(merged, "MAX_IMAGE_MEGAPIXELS", 40, minimum=1) * 1_000_000,
        mock_latency=_float(merged, "MOCK_LATENCY", 1.0),
        sweep_interval=_float(merged, "SWEEP_INTERVAL", 60.0),
        delivery_grace=_float(merged, "DELIVERY_GRACE", 600.0),
        log_level=_choice(merged, "LOG_LEVEL", "INFO", LOG_LEVELS, {"warn": "WARNING"}),
        default_locale=locale,
        telegram_token=_env(merged, "TELEGRAM_BOT_TOKEN"),
        telegram_base_url=_url(merged, "TELEGRAM_BASE_URL"),
        telegram_base_file_url=_url(merged, "TELEGRAM_BASE_FILE_URL"),
        telegram_webhook_url=webhook,
        telegram_webhook_secret=_env(merged, "TELEGRAM_WEBHOOK_SECRET"),
        telegram_webhook_listen=_listen(merged, "TELEGRAM_WEBHOOK_LISTEN", "0.0.0.0:8443"),
        public_base_url=_url(merged, "PUBLIC_BASE_URL"),
        public_listen=_listen(merged, "PUBLIC_LISTEN", "0.0.0.0:8080"),
        discord_token=_env(merged, "DISCORD_BOT_TOKEN"),
        discord_guild_ids=_id_list(merged, "DISCORD_GUILD_IDS"),
        discord_alert_channel_id=int(channel) if channel else None,
        discord_mention_replies=_bool(merged, "DISCORD_MENTION_REPLIES", False),
        metrics_file=Path(metrics) if (metrics := _env(merged, "METRICS_FILE")) else None,
        vendor_set=_env(merged, "VENDOR") is not None or several is not None,
        health_listen=_listen(merged, "HEALTH_LISTEN", "") or None,
        log_format=_choice(merged, "LOG_FORMAT", "text", LOG_FORMATS),
        credit_packs=parse_star_packs(_env(merged, "CREDIT_PACKS")),
        discord_sku_packs=parse_sku_packs(_env(merged, "DISCORD_SKU_PACKS")),
        dashboard_listen=dashboard_listen,
        dashboard_token=dashboard_token,
        vendors=vendors,
    )
