"""The console chat: driven line by line through ``ConsoleChat`` on a real core and
SQLite file, and as the real ``imagine-bot run`` process on a pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from bots.console import ConsoleChat
from core.bootstrap import build_app
from core.locales import ENGLISH, LANGUAGES
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DATA_DIR": str(tmp_path / "data"),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MOCK_LATENCY": "0",
        "WELCOME_CREDITS": "100",
    }


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[tuple[ConsoleChat, list[str]]]:
    settings = load_settings(_env(tmp_path), env_file=None)
    lines: list[str] = []
    async with build_app(settings, sweep=False) as app:
        yield ConsoleChat(app, emit=lines.append), lines


def _png(path: Path) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


async def test_edit_takes_a_quoted_path_with_spaces_and_shows_cost_and_balance(
    chat: tuple[ConsoleChat, list[str]], tmp_path: Path
) -> None:
    console, lines = chat
    photo = _png(tmp_path / "my photo.png")
    await console.handle(f'/edit "{photo}" make it blue')
    saved = [Path(line) for line in lines if line.endswith(".png") and Path(line).is_file()]
    assert saved, lines
    caption = lines[lines.index(str(saved[-1])) + 1]
    assert "make it blue" in caption and "credits" in caption and "balance" in caption
    balance = await console.app.balance(console.user)
    assert f"balance {balance}" in caption


async def test_imagine_shows_cost_and_balance_after_the_files(
    chat: tuple[ConsoleChat, list[str]],
) -> None:
    console, lines = chat
    await console.handle("/imagine a red fox")
    paths = [i for i, line in enumerate(lines) if line.endswith(".png")]
    assert paths
    assert "balance" in lines[paths[-1] + 1]


async def test_show_saves_an_earlier_result_again_from_history(
    chat: tuple[ConsoleChat, list[str]],
) -> None:
    console, lines = chat
    await console.handle("/imagine a red fox")
    caption = lines[-1]
    await console.handle("/history")
    (short,) = re.findall(r"#([0-9a-f]{8})", lines[-1])
    assert "/show" in lines[-1]
    lines.clear()
    await console.handle(f"/show {short}")
    assert any(line.endswith(".png") and Path(line).is_file() for line in lines), lines
    assert lines[-1] == caption
    balance = await console.app.balance(console.user)
    await console.handle("/show ffffff")
    assert "found no image of yours" in lines[-1]
    await console.handle("/show")
    assert "/show 1a2b3c4d" in lines[-1]
    assert await console.app.balance(console.user) == balance  # free


@pytest.mark.parametrize("word", ["missing.png", "pics/holiday", "~/nope.jpg"])
async def test_a_missing_file_is_named(chat: tuple[ConsoleChat, list[str]], word: str) -> None:
    console, lines = chat
    await console.handle(f"/edit {word} make it blue")
    assert lines == [f"No such file: {word}"]
    assert await console.app.balance(console.user) == 100  # nothing was held


async def test_edit_without_a_file_says_how(chat: tuple[ConsoleChat, list[str]]) -> None:
    console, lines = chat
    await console.handle("/edit make it blue, it's night")
    assert len(lines) == 1 and "/edit PATH" in lines[0] and "Reply to" not in lines[0]


async def test_help_names_the_console_user(chat: tuple[ConsoleChat, list[str]]) -> None:
    console, lines = chat
    await console.handle("/help")
    assert "imagine-bot credits topup console:local" in "\n".join(lines)


OTHER_LANGUAGES = [lang for lang in LANGUAGES if lang != ENGLISH]
_ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


def _english_words(text: str) -> set[str]:
    """The words of an English sentence, without what every language keeps as typed."""
    text = re.sub(r"imagine-bot credits topup \S+ \d+|console:local|/\w+|\.png", " ", text)
    return {w.lower() for w in _ENGLISH_WORD.findall(text)}


@pytest.mark.parametrize("lang", OTHER_LANGUAGES)
async def test_the_console_speaks_the_chosen_language(
    chat: tuple[ConsoleChat, list[str]], lang: str
) -> None:
    console, lines = chat
    text = console.app.text
    await console.handle(f"/settings lang={lang}")
    lines.clear()
    await console.handle("/edit x1.png make it blue")
    await console.handle("/edit make it blue")
    await console.handle("/help")
    who = {"user": "console:local", "command": "imagine-bot credits topup console:local 100"}
    wanted = [
        text.t("console.no_such_file", lang, path="x1.png"),
        text.t("console.edit_usage", lang),
        text.help(lang, console.app.preset, True, platform="console"),
        text.t("console.who", lang, **who),
    ]
    assert lines == wanted
    english = (
        _english_words(text.t("console.no_such_file", ENGLISH, path="x1.png"))
        | _english_words(text.t("console.edit_usage", ENGLISH))
        | _english_words(text.t("console.who", ENGLISH, **who))
    )
    assert {"such", "file", "image", "path", "shell"} <= english  # the check is real
    for line in lines:
        assert not _english_words(line) & english, (lang, line)
    assert "imagine-bot credits topup console:local 100" in lines[-1]


async def test_history_in_another_language_has_no_english_ledger_notes(
    chat: tuple[ConsoleChat, list[str]],
) -> None:
    console, lines = chat
    await console.handle("/settings lang=ja")
    lines.clear()
    await console.handle("/history")
    [history] = lines
    assert console.app.text.t("history.kind.grant", "ja") in history
    assert not re.search(r"[A-Za-z]{3,}", history.replace("/show", "")), history


def _start_on_a_terminal(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    controller, terminal = pty.openpty()
    env = {**os.environ, **_env(tmp_path), "PYTHONPATH": str(ROOT)}
    for name in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "VENDOR", "VENDOR_CONFIG"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "run"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    os.close(terminal)
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 30
    while b"> " not in seen:  # the prompt: the chat waits for a line
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, proc.stderr.read() if proc.stderr else b""
            seen += chunk
    return proc, controller


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_console_quits_at_once_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    proc, controller = _start_on_a_terminal(tmp_path)
    try:
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 5
        assert proc.returncode == 0, err
        assert b"Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)


def test_run_without_tokens_or_terminal_refuses(tmp_path: Path) -> None:
    env = {**os.environ, **_env(tmp_path), "PYTHONPATH": str(ROOT)}
    for name in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "VENDOR", "VENDOR_CONFIG"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "bots.cli", "run"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "no TELEGRAM_BOT_TOKEN or DISCORD_BOT_TOKEN set, and no terminal" in err
    assert "Traceback" not in err and proc.stdout == b""
