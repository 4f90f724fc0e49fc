"""The deployment files (compose.yaml, Dockerfile, .env.example, constraints.txt)
agree with each other and with the settings the bot really reads."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_readme import settings_read

ROOT = Path(__file__).resolve().parents[1]
BOT_SERVICES = ("bot", "intake", "worker")
POSTGRES_URL = "postgresql://imagine:imagine@postgres:5432/imagine"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "NAME=value" list form
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # join continued lines
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().startswith("ENV "):
            env.update(re.findall(r"([A-Z][A-Z0-9_]*)=(\S+)", line))
    return env


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"bot", "postgres", "intake", "worker"}
    # The single-machine bot is what a bare `docker compose up -d` starts.
    assert "profiles" not in services["bot"]
    for name in ("postgres", "intake", "worker"):
        assert services[name]["profiles"] == ["scale"], name


def test_commands(services: dict[str, dict[str, Any]]) -> None:
    assert services["bot"]["command"] == ["imagine-bot", "run"]
    assert services["intake"]["command"] == ["imagine-bot", "run"]
    assert services["worker"]["command"] == ["imagine-bot", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in BOT_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == "imagine-bot"
        assert services[name]["env_file"] == ".env"


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name


def test_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    named = set(compose["volumes"])
    assert named == {"data", "pgdata"}
    # Every bot process sees the same job files (rerolls, variations, redeliveries).
    for name in BOT_SERVICES:
        assert services[name]["volumes"] == ["data:/data"], name
    assert services["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    for service in services.values():
        for mount in service["volumes"]:
            assert mount.split(":", 1)[0] in named, f"{mount} is not a named volume"


def test_postgres_and_its_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    assert pg["image"] == "postgres:15"
    test = " ".join(pg["healthcheck"]["test"])
    assert "pg_isready" in test
    env = _environment(pg)
    user, password, db = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    assert f"postgresql://{user}:{password}@postgres:5432/{db}" == POSTGRES_URL
    for name in ("intake", "worker"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert _environment(services[name])["DATABASE_URL"] == POSTGRES_URL


def test_single_machine_bot_keeps_the_image_paths(services: dict[str, dict[str, Any]]) -> None:
    bot = services["bot"]
    assert "DATABASE_URL" not in _environment(bot)
    # No port is published unless the operator switches a listener on.
    assert "ports" not in bot
    assert "ports" not in services["worker"]


def test_compose_names_only_real_settings(services: dict[str, dict[str, Any]]) -> None:
    known = settings_read()
    for name in BOT_SERVICES:
        unknown = set(_environment(services[name])) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which the bot never reads"
    # Including the ones mentioned in comments (ports, hints).
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b", text))
    postgres_image = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    assert mentioned - postgres_image <= known, sorted(mentioned - postgres_image - known)


def test_dockerfile_keeps_state_under_data() -> None:
    env = _dockerfile_env()
    assert env["DATABASE_URL"].startswith("sqlite:////data/")
    assert env["DATA_DIR"] == "/data" or env["DATA_DIR"].startswith("/data/")
    assert env["OUTPUT_DIR"].startswith("/data/")
    assert (
        set(env)
        - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
        - {n for n in env if n.startswith("PIP_")}
        <= settings_read()
    )
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert 'VOLUME ["/data"]' in text
    assert 'CMD ["imagine-bot", "run"]' in text


def _dockerfile_healthcheck() -> list[str]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK ")]
    command = json.loads(line.split(" CMD ", 1)[1])
    assert isinstance(command, list)
    return command


def test_healthchecks_ask_the_health_endpoint() -> None:
    """The image has no curl: Python asks /livez on the address the image listens on,
    and every compose bot service states the same check."""
    env = _dockerfile_env()
    assert env["HEALTH_LISTEN"] == "127.0.0.1:9090"  # loopback: nothing published
    command = _dockerfile_healthcheck()
    assert command[:2] == ["python", "-c"] and "/livez" in command[2]
    assert "curl" not in command[2] and "HEALTH_LISTEN" in command[2]


def test_compose_services_share_the_image_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    command = _dockerfile_healthcheck()
    for name in BOT_SERVICES:
        check = services[name]["healthcheck"]
        assert check["test"] == ["CMD", *command], name
        assert check["interval"] and check["retries"] >= 1


async def test_the_healthcheck_command_passes_against_a_running_bot(
    make_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> None:
    from bots.health import serve_health

    code = _dockerfile_healthcheck()[2]

    async def check(listen: str) -> int:
        env = {**os.environ, "HEALTH_LISTEN": listen}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await proc.wait()

    async with make_app() as app, serve_health(app, "127.0.0.1:0") as server:
        assert server is not None
        assert await check(f"127.0.0.1:{server.port}") == 0
        assert await check(f"0.0.0.0:{server.port}") == 0  # a wildcard is asked on loopback
    assert await check(f"127.0.0.1:{server.port}") == 1  # nobody answers any more


def test_dockerfile_installs_dependencies_before_the_source() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    first = lines[copies[0]]
    assert "pyproject.toml" in first and "constraints.txt" in first
    deps = next(i for i, line in enumerate(lines) if "-c constraints.txt" in line)
    source = next(i for i, line in enumerate(lines) if line.startswith("COPY core"))
    assert copies[0] < deps < source


def test_python_minor_matches_ci() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["requires-python"] == ">=3.11"
    assert pyproject["tool"]["ruff"]["target-version"] == "py311"


def test_env_example_does_not_override_the_image_paths() -> None:
    """`docker run --env-file .env` must keep the image's /data paths: the example
    leaves them commented out, and never names a relative path uncommented."""
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    active = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", example, re.M))
    for name in ("DATABASE_URL", "DATA_DIR", "OUTPUT_DIR", "HEALTH_LISTEN"):
        assert name not in active, f".env.example sets {name}: it would override the image's"
        assert re.search(rf"^#\s*{name}=", example, re.M), f"{name} is not shown commented out"
    assert "VENDOR_CONCURRENCY" not in active
    assert re.search(r"^#\s*DATABASE_URL=postgresql://", example, re.M)


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".git", ".venv", "data", "out", "tests", "bench"} <= ignored
    # Whatever the Dockerfile copies must stay in the context.
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "bots", "core", "storage"):
        assert needed not in ignored


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_constraints_pin_every_runtime_dependency() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    runtime = {_name(r) for r in pyproject["project"]["dependencies"]}
    dev = {_name(r) for r in pyproject["project"]["optional-dependencies"]["dev"]}
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            pins[_name(name)] = version
    assert runtime <= set(pins), f"unpinned: {sorted(runtime - set(pins))}"
    assert not dev & set(pins), f"dev tools pinned: {sorted(dev & set(pins))}"
    assert "imagine-bot" not in pins


def _image_env(tmp_path: Path) -> dict[str, str]:
    """The Dockerfile's ENV lines, with /data moved under ``tmp_path``."""
    env: dict[str, str] = {}
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^ENV (.+?)(?<!\\)$", text, re.M | re.S):
        for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', line.replace("\\\n", " ")):
            env[name] = value.strip('"').replace("/data", str(tmp_path / "data"))
    return env


def test_the_entrypoint_with_the_image_environment(tmp_path: Path) -> None:
    """``docker run --env-file .env`` (a copy of .env.example) without a token and
    without -it: the image's paths win, and the container stops with a sentence
    and a non-zero code instead of a silent exit 0 (a restart loop)."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text((ROOT / ".env.example").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_"))}
    env.update(_image_env(tmp_path))
    env["PYTHONPATH"] = str(ROOT)
    assert env["DATABASE_URL"].endswith("/data/imagine-bot.sqlite3")
    done = subprocess.run(
        [sys.executable, "-m", "bots.cli", "run"],
        cwd=tmp_path / "app",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "TELEGRAM_BOT_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2
    doctor = subprocess.run(
        [sys.executable, "-m", "bots.cli", "doctor"],
        cwd=tmp_path / "app",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert str(tmp_path / "data") in doctor.stdout  # the ledger lands in the volume
    assert not (tmp_path / "app" / "data").exists()
