"""Process orchestration shared by the bench scripts: the fake vendor, the fake
Telegram Bot API and the real bot, each a separate OS process on 127.0.0.1.

Every process writes stdout+stderr to a log file in the run's work folder (a pipe
nobody drains would block it); readiness is read back from that file.

The bench imports nothing from ``tests``. The two fake servers still live in
``tests/fakes`` (the suite's own fakes, ~3,800 lines that the tests import and
extend); the bench starts them as separate processes by module name
(``FAKE_VENDOR_MODULE``, ``FAKE_TELEGRAM_MODULE``), so a move of the fakes changes
these two names only.

``imagine-bot run --workers K`` starts K worker processes as children of the bot
(the intake): ``tree_pids`` / ``tree_cpu_seconds`` cover the whole process tree,
``children`` finds the workers by parent pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
FAKE_VENDOR_MODULE = "tests.fakes.vendor_server"
FAKE_TELEGRAM_MODULE = "tests.fakes.telegram_api"
TOKEN = "123456:bench-token-abcdefghijklmnopqrstuvwxyz"
BOT_ID = 123456


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class Proc:
    """One child process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    async def wait_line(self, prefix: str, timeout: float = 30.0) -> str:
        """The rest of the first log line starting with ``prefix``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.text().splitlines():
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {prefix!r} line in {timeout}s:\n{self.text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        self.kill(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.alive():
            self.kill(signal.SIGKILL)
        return await asyncio.to_thread(self.popen.wait)

    def cpu_seconds(self) -> float:
        """utime + stime of the process from /proc/<pid>/stat (0 once it is gone)."""
        return cpu_seconds(self.pid)

    def tree_cpu_seconds(self) -> float:
        """CPU seconds of this process and every live descendant (its workers)."""
        return sum(cpu_seconds(pid) for pid in tree_pids(self.pid))

    def children(self) -> list[int]:
        return children(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def tree_peak_rss_mb(self) -> float:
        """The largest peak RSS of one process in the tree (each has its own heap)."""
        return max((peak_rss_mb(pid) for pid in tree_pids(self.pid)), default=0.0)

    def kill_tree(self) -> list[int]:
        """SIGKILL this process and its descendants, as a crashed machine or container
        would lose them (a SIGKILLed parent alone leaves its children running). The
        parent is frozen first so it cannot start another child meanwhile. Returns the
        descendants' pids."""
        if not self.alive():
            return []
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGSTOP)
        below = tree_pids(self.pid)[1:]
        self.kill()
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return below


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 on), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), 0 once it is gone."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (by parent pid, walking /proc)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its live descendants, parents first (empty once it is gone)."""
    if _stat(pid) is None:
        return []
    out, todo = [pid], [pid]
    while todo:
        below = children(todo.pop())
        out += below
        todo += below
    return out


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def spawn(
    name: str,
    argv: list[str],
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Proc:
    log = workdir / f"{name}.log"
    # Appending: a restarted bot keeps the earlier lives' lines.
    handle = log.open("ab")
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env=full_env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    handle.close()
    return Proc(name, popen, log)


@dataclass
class VendorFake:
    proc: Proc
    root_url: str
    base_url: str

    async def get(self, client: httpx.AsyncClient, what: str) -> Any:
        response = await client.get(f"{self.root_url}/_control/{what}", timeout=60)
        response.raise_for_status()
        return response.json()

    async def post(self, client: httpx.AsyncClient, what: str, body: Any) -> Any:
        response = await client.post(f"{self.root_url}/_control/{what}", json=body, timeout=60)
        response.raise_for_status()
        return response.json()


async def start_vendor(
    workdir: Path,
    *,
    style: str = "openai",
    flavor: str | None = "aiearth",
    latency: float = 2.0,
    stream: bool = False,
    fault_rate: float = 0.0,
    seed: int | None = None,
    fault_kinds: str | None = None,
    name: str = "vendor",
) -> VendorFake:
    argv = [
        sys.executable,
        "-m",
        FAKE_VENDOR_MODULE,
        "--style",
        style,
        "--port",
        "0",
        "--latency",
        str(latency),
    ]
    if flavor and style == "openai":
        argv += ["--flavor", flavor]
    if stream:
        argv.append("--stream")
    if fault_rate:
        argv += ["--fault-rate", str(fault_rate)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if fault_kinds:
        argv += ["--fault-kinds", fault_kinds]
    proc = spawn(name, argv, workdir)
    root = await proc.wait_line("READY ")
    base = await proc.wait_line("BASE_URL ")
    return VendorFake(proc, root, base)


@dataclass
class TelegramFake:
    proc: Proc
    base_url: str  # http://127.0.0.1:PORT/bot
    calls_seen: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    _taken: set[int] = field(default_factory=set)

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/bot")

    async def push(self, client: httpx.AsyncClient, updates: list[dict[str, Any]]) -> Any:
        response = await client.post(f"{self.root_url}/_control/update", json=updates, timeout=60)
        response.raise_for_status()
        return response.json()

    async def control(self, client: httpx.AsyncClient, what: str, body: Any) -> Any:
        response = await client.post(f"{self.root_url}/_control/{what}", json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    async def upload(self, client: httpx.AsyncClient, data: bytes, mime: str) -> Any:
        response = await client.post(
            f"{self.root_url}/_control/file", content=data, params={"mime": mime}, timeout=60
        )
        response.raise_for_status()
        return response.json()

    async def poll(self, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        """New answered calls since the last poll (also appended to ``calls``).

        A call still being answered (a waiting long poll, ``status`` 0) is picked up
        by a later poll; the calls after it are not held back meanwhile."""
        response = await client.get(
            f"{self.root_url}/_control/calls", params={"since": self.calls_seen}, timeout=60
        )
        response.raise_for_status()
        new: list[dict[str, Any]] = []
        first_pending: int | None = None
        last = self.calls_seen - 1
        for call in response.json():
            index = last = call["index"]
            if call["status"] == 0:
                if first_pending is None:
                    first_pending = index
                continue
            if index in self._taken:
                continue
            self._taken.add(index)
            new.append(call)
        if first_pending is not None:
            self.calls_seen = first_pending
        else:
            self.calls_seen = last + 1
        self.calls += new
        return new


async def start_telegram(workdir: Path, *, name: str = "telegram") -> TelegramFake:
    argv = [
        sys.executable,
        "-m",
        FAKE_TELEGRAM_MODULE,
        "--port",
        "0",
        "--token",
        TOKEN,
        "--bot-id",
        str(BOT_ID),
    ]
    proc = spawn(name, argv, workdir)
    base = await proc.wait_line("READY ")
    return TelegramFake(proc, base)


def bot_env(
    workdir: Path,
    telegram: TelegramFake,
    vendor: VendorFake,
    *,
    preset: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a bot process wired to the two fakes."""
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": telegram.base_url,
        "TELEGRAM_BASE_FILE_URL": telegram.root_url + "/file/bot",
        "VENDOR": preset,
        "VENDOR_BASE_URL": vendor.base_url,
        "VENDOR_API_KEY": "sk-test",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "DATA_DIR": str(workdir / "data"),
        "OUTPUT_DIR": str(workdir / "out"),
        "METRICS_FILE": str(workdir / "metrics.json"),
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra or {})
    return env


def bot_argv(workers: int = 0) -> list[str]:
    """``imagine-bot run`` (plus ``--workers K`` when asked for)."""
    script = Path(sys.executable).with_name("imagine-bot")
    argv = [str(script), "run"] if script.exists() else [sys.executable, "-m", "bots.cli", "run"]
    return argv + (["--workers", str(workers)] if workers else [])


def start_bot(workdir: Path, env: dict[str, str], *, workers: int = 0, name: str = "bot") -> Proc:
    # cwd is the work folder: a developer's .env in the repository must not leak in.
    # The worker children inherit it (and the environment) from the intake.
    return spawn(name, bot_argv(workers), workdir, env=env, cwd=workdir)


async def wait_workers(bot: Proc, workers: int, timeout: float = 30.0) -> list[int]:
    """Until the intake has started its ``workers`` children; their pids."""
    deadline = time.monotonic() + timeout
    while True:
        found = bot.children()
        if len(found) >= workers or time.monotonic() > deadline:
            return found
        if not bot.alive():
            raise RuntimeError(f"bot exited:\n{bot.text()[-3000:]}")
        await asyncio.sleep(0.1)


async def wait_polling(
    client: httpx.AsyncClient, telegram: TelegramFake, bot: Proc, timeout: float = 30.0
) -> None:
    """Until the bot has sent its first getUpdates (it is then ready for updates)."""
    deadline = time.monotonic() + timeout
    start = len(telegram.calls)
    while time.monotonic() < deadline:
        await telegram.poll(client)
        if any(c["method"] == "getUpdates" for c in telegram.calls[start:]):
            return
        # A long poll is recorded only once answered: look at the raw list too.
        response = await client.get(
            f"{telegram.root_url}/_control/calls",
            params={"since": telegram.calls_seen, "method": "getUpdates"},
        )
        if response.json():
            return
        if not bot.alive():
            raise RuntimeError(f"bot exited:\n{bot.text()[-3000:]}")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"bot never polled in {timeout}s:\n{bot.text()[-3000:]}")


def message_update(
    user_id: int,
    text: str,
    *,
    message_id: int,
    reply_to: dict[str, Any] | None = None,
    photo: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A private-chat message update (the fake assigns the update_id)."""
    user = {
        "id": user_id,
        "is_bot": False,
        "first_name": f"U{user_id}",
        "username": f"user{user_id}",
        "language_code": "en",
    }
    msg: dict[str, Any] = {
        "message_id": message_id,
        "from": user,
        "chat": {
            "id": user_id,
            "type": "private",
            "first_name": f"U{user_id}",
            "username": f"user{user_id}",
        },
        "date": int(time.time()),
    }
    if text:
        key = "caption" if photo else "text"
        msg[key] = text
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0])
            msg["caption_entities" if photo else "entities"] = [
                {"type": "bot_command", "offset": 0, "length": length}
            ]
    if photo is not None:
        msg["photo"] = photo
    if reply_to is not None:
        msg["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
    return {"message": msg}


def callback_update(
    user_id: int, data: str, message: dict[str, Any], query_id: str
) -> dict[str, Any]:
    user = {
        "id": user_id,
        "is_bot": False,
        "first_name": f"U{user_id}",
        "username": f"user{user_id}",
        "language_code": "en",
    }
    return {
        "callback_query": {
            "id": query_id,
            "from": user,
            "message": message,
            "chat_instance": f"ci{user_id}",
            "data": data,
        }
    }
