"""The health endpoint (HEALTH_LISTEN) over real sockets on the real app: readiness
and liveness, Prometheus metrics after real jobs on the mock vendor, and JSON log
lines that keep secrets out."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bots.health import HealthServer, frontend_problem, serve_health
from core.app import Imagine
from core.bootstrap import build_app, configure_logging
from core.errors import ConfigError, DeliveryFailed, VendorOutOfCredits, VendorUnavailable
from core.ports import ChatRef, UserRef
from core.settings import Settings, load_settings
from core.vendor_health import FAILURE_LIMIT
from storage.interfaces import VENDOR_LIMIT
from tests.conftest import RecordingFrontend, base_env
from tests.core.helpers import fund, request
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor

ALICE = UserRef("test", "alice", "alice")
CHAT = ChatRef("test", {"chat_id": 1})
# Not shaped like any key the generic patterns know: only its registration hides it.
SECRET = "hunter2-correct-horse-battery"
TELEGRAM_TOKEN = "123456789:AAHfakefakefakefakefakefakefakefake12"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _vendor_states(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, str]:
    """``imagine_vendor_state`` read back: each vendor's one state at 1 (and every
    other state present at 0)."""
    found: dict[str, list[str]] = {}
    for (name, labels), value in samples.items():
        if name != "imagine_vendor_state":
            continue
        label = dict(labels)
        states = found.setdefault(label["vendor"], [])
        if value == 1:
            states.append(label["state"])
        else:
            assert value == 0
    assert all(len(states) == 1 for states in found.values()), found
    return {vendor: states[0] for vendor, states in found.items()}


@pytest.fixture
async def served(
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> AsyncIterator[tuple[Imagine, RecordingFrontend, str]]:
    """The app as ``imagine-bot run`` wires it, with HEALTH_LISTEN on a free port."""
    port = _free_port()
    async with (
        make_app(HEALTH_LISTEN=f"127.0.0.1:{port}", VENDOR_API_KEY=SECRET) as app,
        serve_health(app) as server,
    ):
        assert server is not None and server.address == ("127.0.0.1", port)
        frontend = RecordingFrontend()
        app.add_frontend(frontend)
        yield app, frontend, f"http://127.0.0.1:{port}"


async def test_healthz_and_metrics_after_a_job(
    served: tuple[Imagine, RecordingFrontend, str],
) -> None:
    app, frontend, base = served
    await fund(app, ALICE, 10)
    receipt = await app.run_job(ALICE, request(app), CHAT)
    assert receipt.cost > 0 and len(frontend.deliveries) == 1

    status, body = await _get(f"{base}/healthz")
    assert status == 200, body
    health = json.loads(body)
    assert health["live"] is True and health["ready"] is True
    assert health["checks"]["database"] == "ok" and health["failing"] == []
    status, body = await _get(f"{base}/livez")
    assert status == 200 and json.loads(body) == {"live": True}

    status, text = await _get(f"{base}/metrics")
    assert status == 200
    samples = _samples(text)
    jobs = "imagine_jobs_total"
    assert samples[(jobs, (("error", ""), ("outcome", "succeeded")))] == 1
    assert samples[(jobs, (("error", ""), ("outcome", "partial")))] == 0
    assert not any(name == jobs and ("outcome", "failed") in labels for name, labels in samples)
    assert samples[("imagine_vendor_call_seconds_count", ())] == 1
    assert samples[("imagine_credits_charged_total", ())] == receipt.cost
    assert samples[("imagine_credits_vendor_loss_total", ())] == 0
    assert samples[("imagine_credits_held", ())] == 0
    assert samples[("imagine_queue_depth", ())] == 0
    assert samples[("imagine_jobs_in_flight", ())] == 0
    assert samples[("imagine_vendor_paused", ())] == 0
    assert _vendor_states(samples) == {"mock": "healthy"}
    assert [(v["name"], v["state"]) for v in health["vendors"]] == [("mock", "healthy")]
    assert samples[("imagine_database_up", ())] == 1
    async with app.store.read() as tx:
        limit = await app.store.limits.get(tx, VENDOR_LIMIT)
    assert limit is not None
    assert samples[("imagine_vendor_limit", ())] == limit.value
    assert samples[("imagine_vendor_limit_ceiling", ())] == app.settings.vendor_concurrency_max
    assert SECRET not in text


async def test_failed_jobs_are_counted_by_error_code(
    served: tuple[Imagine, RecordingFrontend, str],
) -> None:
    app, frontend, base = served
    await fund(app, ALICE, 10)
    frontend.fail = True
    with pytest.raises(DeliveryFailed):
        await app.run_job(ALICE, request(app), CHAT)
    _, text = await _get(f"{base}/metrics")
    samples = _samples(text)
    assert samples[("imagine_jobs_total", (("error", "delivery_failed"), ("outcome", "failed")))]
    assert samples[("imagine_jobs_total", (("error", ""), ("outcome", "succeeded")))] == 0
    assert samples[("imagine_credits_charged_total", ())] == 0
    # The vendor billed the undelivered images: booked as the operator's loss.
    assert samples[("imagine_credits_vendor_loss_total", ())] > 0


async def test_readiness_fails_once_the_database_is_gone(
    make_settings: Callable[..., Settings],
) -> None:
    async with (
        build_app(make_settings(), sweep=False, work=False) as app,
        serve_health(app, "127.0.0.1:0") as server,
    ):
        assert server is not None
        base = f"http://{server.host}:{server.port}"
        assert (await _get(f"{base}/healthz"))[0] == 200
        await app.store.close()
        status, body = await _get(f"{base}/healthz")
        assert status == 503, body
        health = json.loads(body)
        assert health["ready"] is False and health["failing"] == ["database"]
        assert health["checks"]["database"] != "ok"
        # Alive all the same, and the scrape still answers (without the database's figures).
        assert (await _get(f"{base}/livez"))[0] == 200
        status, text = await _get(f"{base}/metrics")
        samples = _samples(text)
        assert status == 200 and samples[("imagine_database_up", ())] == 0
        assert ("imagine_queue_depth", ()) not in samples


async def test_a_platform_not_connected_is_not_ready(
    make_settings: Callable[..., Settings],
) -> None:
    from telegram import Bot

    settings = make_settings(TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN)
    async with build_app(settings, sweep=False, work=False) as app:
        server = HealthServer(app, "127.0.0.1:0")
        await server.start()
        try:
            base = f"http://{server.host}:{server.port}"
            status, body = await _get(f"{base}/healthz")
            assert status == 503
            assert json.loads(body)["checks"]["telegram"] == "not started"
            assert TELEGRAM_TOKEN not in body and TELEGRAM_TOKEN.split(":")[1] not in body
        finally:
            await server.stop()

    class Frontend:
        platform = "telegram"

        def __init__(self) -> None:
            self.bot = Bot(TELEGRAM_TOKEN)  # never initialized: no getMe ran

    assert frontend_problem(Frontend()) == "not connected"
    assert frontend_problem(RecordingFrontend()) is None


async def test_a_taken_address_is_a_config_error(
    make_settings: Callable[..., Settings],
) -> None:
    async with build_app(make_settings(), sweep=False, work=False) as app:
        async with serve_health(app, "127.0.0.1:0") as first:
            assert first is not None
            with pytest.raises(ConfigError) as err:
                async with serve_health(app, f"127.0.0.1:{first.address[1]}"):
                    pass
        assert "HEALTH_LISTEN" in err.value.detail
        async with serve_health(app) as off:  # HEALTH_LISTEN unset: no endpoint
            assert off is None


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return load_settings(base_env(tmp_path, **extra), env_file=None)


def test_log_settings_are_checked(tmp_path: Path) -> None:
    def make_settings(**extra: Any) -> Settings:
        return _settings(tmp_path, **extra)

    with pytest.raises(ConfigError) as err:
        make_settings(LOG_LEVEL="verbose")
    assert "LOG_LEVEL" in err.value.detail
    for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        assert name in err.value.detail
    with pytest.raises(ConfigError) as err:
        make_settings(LOG_FORMAT="xml")
    assert "text" in err.value.detail and "json" in err.value.detail
    assert make_settings(LOG_LEVEL="debug").log_level == "DEBUG"
    assert make_settings(LOG_FORMAT="JSON").log_format == "json"
    assert make_settings().log_format == "text"
    assert make_settings().health_listen is None


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_json_log_lines_are_redacted(
    root_logging: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, VENDOR_API_KEY=SECRET, LOG_FORMAT="json")
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", secrets=[settings.vendor_api_key], fmt=settings.log_format)
    log = logging.getLogger("imagine-bot.test")
    log.info("calling the vendor with key %s", SECRET)
    try:
        raise RuntimeError(f"the vendor said: bad key {SECRET}")
    except RuntimeError:
        log.exception("a call failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "imagine-bot.test"
    assert first["message"] == "calling the vendor with key [REDACTED]"
    assert second["level"] == "ERROR" and "RuntimeError" in second["exception"]
    assert "[REDACTED]" in second["exception"]
    assert SECRET not in stream.getvalue()


async def test_one_vendor_paused_shows_in_metrics_and_healthz(
    served: tuple[Imagine, RecordingFrontend, str],
) -> None:
    app, _, base = served
    await app.jobs.health.after_error(VendorOutOfCredits("402"))
    _, text = await _get(f"{base}/metrics")
    samples = _samples(text)
    assert samples[("imagine_vendor_paused", ())] == 1
    assert _vendor_states(samples) == {"mock": "paused"}
    status, body = await _get(f"{base}/healthz")
    # The vendor's pause is not this process's fault: still ready.
    assert status == 200
    assert [(v["name"], v["state"]) for v in json.loads(body)["vendors"]] == [("mock", "paused")]


FAILOVER_CONFIG = """
[vendors.primary]
preset = "compat-sizes"
max_retries = 0
[vendors.backup]
preset = "compat-sizes"
max_retries = 0
"""


async def test_each_vendor_state_is_exposed_with_several_vendors(
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]], tmp_path: Path
) -> None:
    config = tmp_path / "vendors.toml"
    config.write_text(FAILOVER_CONFIG)
    port = _free_port()
    async with (
        FakeOpenAIVendor("compat-sizes", key="sk-p") as primary,
        FakeOpenAIVendor("compat-sizes", key="sk-b") as backup,
        make_app(
            HEALTH_LISTEN=f"127.0.0.1:{port}",
            VENDORS="primary,backup",
            VENDOR_CONFIG=str(config),
            VENDOR_PRIMARY_BASE_URL=primary.base_url,
            VENDOR_PRIMARY_API_KEY="sk-p",
            VENDOR_BACKUP_BASE_URL=backup.base_url,
            VENDOR_BACKUP_API_KEY="sk-b",
        ) as app,
        serve_health(app),
    ):
        app.add_frontend(RecordingFrontend())
        base = f"http://127.0.0.1:{port}"
        await fund(app, ALICE, 1000)
        primary.inject(Fault("402"))  # the primary pauses; the backup serves
        await app.run_job(ALICE, request(app), CHAT)
        samples = _samples((await _get(f"{base}/metrics"))[1])
        assert _vendor_states(samples) == {"primary": "paused", "backup": "healthy"}
        assert samples[("imagine_vendor_paused", ())] == 0  # the backup still serves
        status, body = await _get(f"{base}/healthz")
        assert status == 200
        assert json.loads(body)["vendors"] == [
            {"name": "primary", "state": "paused", "since": ANY, "why": "vendor_out_of_credits"},
            {"name": "backup", "state": "healthy", "since": None, "why": None},
        ]
        for _ in range(FAILURE_LIMIT):  # the backup fails its health window
            backup.inject(Fault("500"))
            with pytest.raises(VendorUnavailable):
                await app.run_job(ALICE, request(app), CHAT)
        samples = _samples((await _get(f"{base}/metrics"))[1])
        assert _vendor_states(samples) == {"primary": "paused", "backup": "failing"}
        # Neither is in the rotation: new jobs are refused.
        assert samples[("imagine_vendor_paused", ())] == 1
        _, body = await _get(f"{base}/healthz")
        assert [(v["name"], v["state"]) for v in json.loads(body)["vendors"]] == [
            ("primary", "paused"),
            ("backup", "failing"),
        ]
