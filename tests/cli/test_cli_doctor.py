"""``imagine-bot --version``, ``doctor`` and the top-level handler: every expected
failure is one sentence and an exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.cli import main
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.threaded import threaded

TOKEN = "123:ABC"


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in (
        "VENDOR",
        "VENDOR_BASE_URL",
        "VENDOR_API_KEY",
        "VENDOR_CONFIG",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_BASE_URL",
        "DISCORD_BOT_TOKEN",
        "PUBLIC_LISTEN",
        "TELEGRAM_WEBHOOK_LISTEN",
        "LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite3")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MOCK_LATENCY", "0")
    monkeypatch.setenv("ADMIN_USER_IDS", "telegram:1")
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"imagine-bot {version('imagine-bot')}"


def test_doctor_checks_folder_and_database(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    code, out, err = _run(capsys, "doctor")
    assert code == 0, out
    assert "data folder:" in out and "database: opened and written." in out
    assert "configuration OK" in out
    assert "the built-in mock" in out  # the service the preset is meant for
    assert "seed" not in out.lower()
    assert "VENDOR is unset" in err  # really unset: say so
    assert (workdir / "db.sqlite3").is_file()


def test_doctor_names_the_service_of_a_preset(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENDOR", "aigptimage")
    monkeypatch.setenv("VENDOR_API_KEY", "sk-test-key-123456")
    code, out, _ = _run(capsys, "doctor")
    assert code == 0
    assert "aigptimage.com" in out and "seed" not in out.lower()


def test_vendor_mock_given_explicitly_is_not_unset(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENDOR", "mock")
    code, _, err = _run(capsys, "doctor")
    assert code == 0 and "VENDOR is unset" not in err


def test_doctor_fails_on_an_unwritable_data_dir_and_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    blocker = workdir / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("DATA_DIR", str(blocker / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{blocker}/db.sqlite3")
    code, out, err = _run(capsys, "doctor")
    assert code == 1
    assert f"error: DATA_DIR {blocker / 'data'} is not writable" in out
    assert "error: the database" in out and "cannot be opened and written" in out
    assert "configuration OK" not in out and "Traceback" not in out + err


def test_warnings_alone_do_not_fail(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADMIN_USER_IDS")
    code, out, _ = _run(capsys, "doctor")
    assert code == 0 and "warning: ADMIN_USER_IDS is empty" in out


def test_doctor_asks_telegram_whether_it_takes_the_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with threaded(FakeTelegramAPI(token=TOKEN, bot_username="doctor_bot")) as fake:
        monkeypatch.setenv("TELEGRAM_BASE_URL", fake.base_url)
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        code, out, _ = _run(capsys, "doctor")
        assert code == 0 and "telegram: token accepted (@doctor_bot)." in out
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:WRONG")
        code, out, _ = _run(capsys, "doctor")
    assert code == 1
    assert "rejected TELEGRAM_BOT_TOKEN" in out and "999:WRONG" not in out


def test_doctor_skips_the_token_check_without_network(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    code, out, _ = _run(capsys, "doctor")
    assert code == 0
    assert "telegram: token not checked: cannot reach 127.0.0.1:9" in out


def test_doctor_asks_discord_whether_it_takes_the_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "fake-discord-token")
    with threaded(FakeDiscord(bot_name="doctor-bot")) as fake:
        undo = fake.install()
        try:
            code, out, _ = _run(capsys, "doctor")
            assert code == 0 and "discord: token accepted (doctor-bot)." in out
            fake.inject_error("/users/@me", status=401, method="GET")
            code, out, _ = _run(capsys, "doctor")
        finally:
            undo()
    assert code == 1 and "Discord rejected DISCORD_BOT_TOKEN" in out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBLIC_LISTEN", "0.0.0.0:http"),
        ("PUBLIC_LISTEN", "0.0.0.0:70000"),
        ("TELEGRAM_WEBHOOK_LISTEN", "localhost:"),
        ("TELEGRAM_WEBHOOK_LISTEN", "::1:8443"),
    ],
)
def test_listen_addresses_that_do_not_parse_stop_at_load(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    code, out, err = _run(capsys, "doctor")
    assert code == 2 and out == ""
    assert err.startswith(f"imagine-bot: {name}") and err.count("\n") == 1


def test_good_listen_addresses_load(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLIC_LISTEN", "[::]:8080")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_LISTEN", ":8443")
    code, _, _ = _run(capsys, "doctor")
    assert code == 0


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("n_max = -3", "'n_max' must be above 0"),
        ("n_max = 0", "'n_max' must be above 0"),
        ("request_timeout = -1.0", "'request_timeout' must be above 0"),
        ("max_retries = -1", "'max_retries' cannot be negative"),
        ("retry_after_cap = nan", "'retry_after_cap' must be a number"),
        ("[price]\nmarkup_percent = -5", "'price.markup_percent' cannot be negative"),
    ],
)
def test_vendor_config_values_that_make_no_sense(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    workdir: Path,
    toml: str,
    words: str,
) -> None:
    config = workdir / "vendor.toml"
    config.write_text(toml + "\n")
    monkeypatch.setenv("VENDOR_CONFIG", str(config))
    code, _, err = _run(capsys, "doctor")
    assert code == 2 and words in err and "Traceback" not in err


def test_run_against_an_unreachable_telegram_is_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENDOR", "mock")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:9")  # refused
    code, out, err = _run(capsys, "run")
    assert code == 1
    assert "Traceback" not in out + err
    assert err.splitlines() == [
        "imagine-bot: cannot reach 127.0.0.1:9 (TELEGRAM_BASE_URL): check the network "
        "and the address."
    ]


def test_a_database_that_cannot_be_opened_is_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    blocker = workdir / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("VENDOR", "mock")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{blocker}/db.sqlite3")
    code, _, err = _run(capsys, "credits", "show", "cli:operator")
    assert code == 1 and "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith("imagine-bot: cannot use the database sqlite:///")


def test_an_unwritable_data_folder_is_one_sentence_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    blocker = workdir / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("VENDOR", "mock")
    monkeypatch.setenv("DATA_DIR", str(blocker / "data"))
    code, _, err = _run(capsys, "imagine", "a fox")
    assert code == 2 and "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith(f"imagine-bot: DATA_DIR {blocker / 'data'} is not writable")
    code, out, _ = _run(capsys, "credits", "history", "cli:operator")
    assert "charge" not in out.lower()  # refused before anything was held


def test_an_empty_prompt_gets_command_line_wording(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENDOR", "mock")
    code, _, err = _run(capsys, "imagine", "")
    assert code == 1
    assert (
        err.strip()
        == 'imagine-bot: give a prompt, e.g. imagine-bot imagine "a red fox in the snow".'
    )


def test_run_against_an_unreachable_discord_is_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import discord.http

    monkeypatch.setattr(discord.http.Route, "BASE", "http://127.0.0.1:9/api/v10")  # refused
    monkeypatch.setenv("VENDOR", "mock")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "fake-discord-token")
    code, out, err = _run(capsys, "run")
    assert code == 1 and "Traceback" not in out + err
    assert err.splitlines() == ["imagine-bot: cannot reach 127.0.0.1:9: check the network."]


def _png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(path)
    return path


def test_chat_wording_becomes_command_line_wording(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    photo = _png(workdir / "a.png")
    monkeypatch.setenv("VENDOR", "aigptimage")  # fetches its inputs by URL
    monkeypatch.setenv("VENDOR_API_KEY", "sk-test-key-123456")
    code, _, err = _run(capsys, "edit", "make it blue", "--image", str(photo))
    assert code == 1
    assert "top up with imagine-bot credits topup cli:operator 6." in err
    assert "Ask an admin" not in err
    assert _run(capsys, "credits", "topup", "cli:operator", "100")[0] == 0
    code, _, err = _run(capsys, "edit", "make it blue", "--image", str(photo))
    assert code == 1
    assert "give --image an http(s) URL" in err and "tell the bot's operator" not in err


def test_doctor_shows_each_vendor_and_its_state(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    import asyncio
    import json

    from storage import open_store

    monkeypatch.setenv("VENDORS", "compat-b64,mock")
    monkeypatch.setenv("VENDOR_COMPAT_B64_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("VENDOR_COMPAT_B64_API_KEY", "sk-doctor-secret-key")

    async def pause() -> None:
        # What a worker writes when the vendor answers 402.
        store = await open_store(f"sqlite:///{workdir}/db.sqlite3")
        try:
            async with store.transaction() as tx:
                await store.flags.set(
                    tx,
                    "vendor_paused:compat-b64",
                    json.dumps({"since": 0, "probe_at": 300, "state": "paused", "why": "x402"}),
                )
        finally:
            await store.close()

    asyncio.run(pause())
    code, out, _ = _run(capsys, "doctor")
    assert code == 0, out
    assert "vendors, in failover order: compat-b64, mock" in out
    assert "vendor compat-b64: paused since 1970-01-01 00:00 UTC (x402)" in out
    assert "vendor mock: healthy" in out
    assert "sk-doctor-secret-key" not in out
