"""Parsing console lines into core calls and printing the answers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shlex
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bots.files import FolderFrontend
from core.app import Imagine
from core.errors import ImagineError
from core.locales import take_language
from core.ports import ChatRef, Delivery, UserRef
from core.sources import PATH, SourceRef

CONSOLE_USER = UserRef("console", "local", "you")
T = TypeVar("T")

# A word with one of these endings (or a slash) is meant as a file, not as the
# first word of an instruction.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic")


def _looks_like_path(word: str, first: bool) -> bool:
    if word.lower().endswith(IMAGE_SUFFIXES):
        return True
    return first and ("/" in word or word.startswith("~"))


def _leading_files(text: str) -> tuple[list[SourceRef], str, str | None]:
    """Splits ``/edit``'s text into the leading files (shell-quoted words, so a path
    may hold spaces: ``"my photo.png"``) and the instruction, kept as typed.
    The third item names a leading word that looks like a file but is none."""
    refs: list[SourceRef] = []
    stream = io.StringIO(text)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    while True:
        start = stream.tell()
        try:
            word = lexer.get_token()
        except ValueError:  # an unbalanced quote: the instruction's own apostrophe
            word = None
        if not word:
            return refs, text[start:].strip(), None
        path = Path(word).expanduser()
        if path.is_file():
            path = path.resolve()
            refs.append(SourceRef(PATH, str(path), size=path.stat().st_size))
            continue
        if _looks_like_path(word, first=not refs):
            return refs, "", word
        return refs, text[start:].strip(), None


class ConsoleFrontend(FolderFrontend):
    """Saves results like the command line, then prints what the chat platforms put
    under a result: the prompt, its cost and the new balance."""

    async def deliver(self, delivery: Delivery) -> None:
        await super().deliver(delivery)
        if delivery.caption:
            self.emit(delivery.caption)


class ConsoleChat:
    """One line in, answers out. ``handle`` is also what the tests drive."""

    def __init__(
        self, app: Imagine, emit: Callable[[str], None] = print, user: UserRef = CONSOLE_USER
    ) -> None:
        self.app = app
        self.emit = emit
        self.user = user
        self.frontend = ConsoleFrontend(
            "console", app.settings.output_dir, emit, text=app.text, show_progress=True
        )
        # Only this process can print here: its jobs get a queue of their own.
        app.add_frontend(self.frontend, queue=f"console:{uuid.uuid4().hex}")

    async def locale(self) -> str:
        return (await self.app.profile(self.user)).locale

    async def handle(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        command, _, rest = line.partition(" ")
        command = command.lower()
        locale = await self.locale()
        try:
            handler = self._commands().get(command)
            if handler is None:
                self.emit(self.app.text.help(locale, self.app.preset, True, platform="console"))
                return
            await handler(rest.strip(), locale)
        except ImagineError as err:
            if err.job_id is None:  # a queued job's failure was printed by its worker
                self.emit(self.app.text.error(err, locale))

    def _commands(self) -> dict[str, Callable[[str, str], Awaitable[None]]]:
        return {
            "/imagine": self.imagine,
            "/edit": self.edit,
            "/price": self.price,
            "/balance": self.balance,
            "/history": self.history,
            "/show": self.show,
            "/settings": self.settings,
            "/topup": self.topup,
            "/jobs": self.jobs,
            "/resume": self.resume,
            "/help": self.help,
            "/start": self.start,
        }

    async def imagine(self, text: str, locale: str) -> None:
        profile = await self.app.profile(self.user)
        request = await self.app.request(self.user, text, profile=profile)
        await self.app.run_job(self.user, request, ChatRef("console"), profile=profile)

    async def edit(self, text: str, locale: str) -> None:
        """``/edit PATH [PATH...] instruction``: leading words that are files are sources;
        quote a path with spaces (``/edit "my photo.png" make it blue``)."""
        refs, instruction, missing = await asyncio.to_thread(_leading_files, text)
        if missing is not None:
            self.emit(self.app.text.t("console.no_such_file", locale, path=missing))
            return
        if not refs:
            self.emit(self.app.text.t("console.edit_usage", locale))
            return
        profile = await self.app.profile(self.user)
        request = await self.app.request(self.user, instruction, refs=refs, profile=profile)
        await self.app.run_job(self.user, request, ChatRef("console"), profile=profile)

    async def price(self, text: str, locale: str) -> None:
        profile = await self.app.profile(self.user)
        request = await self.app.request(self.user, text, profile=profile)
        self.emit(
            self.app.text.price(
                locale, await self.app.quote(self.user, request), request, button_hint=False
            )
        )

    async def balance(self, _: str, locale: str) -> None:
        self.emit(self.app.text.balance(locale, await self.app.balance(self.user)))

    async def history(self, _: str, locale: str) -> None:
        self.emit(self.app.text.history(locale, await self.app.history(self.user)))

    async def show(self, text: str, locale: str) -> None:
        """``/show ID``: an earlier result saved and printed again (ids in /history)."""
        if not text:
            self.emit(self.app.text.t("show.usage", locale))
            return
        await self.app.show(self.user, text, ChatRef("console"))

    async def settings(self, text: str, locale: str) -> None:
        """``/settings --ar 16:9 --q high`` or ``/settings lang=zh``."""
        profile = await self.app.profile(self.user)
        text, lang = take_language(text)
        parsed = self.app.parse_prompt(text, profile.defaults)
        d = parsed.defaults
        saved = await self.app.save_defaults(
            self.user,
            aspect=d.aspect,
            resolution=d.resolution,
            quality=d.quality,
            n=d.n,
            locale=lang,
        )
        shown = saved.locale or locale
        self.emit(
            self.app.text.t(
                "options.saved", shown, summary=self.app.text.options_summary(shown, saved)
            )
        )

    async def topup(self, text: str, locale: str) -> None:
        """``/topup AMOUNT [reason]`` tops up the console user (the operator)."""
        words = shlex.split(text) if text else []
        if not words or not words[0].isdigit():
            usage = self.app.text.t("usage.console_topup", locale)
            self.emit(self.app.text.t("admin.usage", locale, usage=usage))
            return
        balance = await self.app.admin_topup(
            self.user, self.user, int(words[0]), " ".join(words[1:]) or None
        )
        self.emit(
            self.app.text.t(
                "admin.topup_done",
                locale,
                amount=int(words[0]),
                user=self.user.key,
                balance=balance,
            )
        )

    async def jobs(self, _: str, locale: str) -> None:
        self.emit(self.app.text.jobs(locale, await self.app.admin_jobs(self.user)))
        self.emit(self.app.text.vendors(locale, await self.app.vendor_states()))

    async def resume(self, rest: str, locale: str) -> None:
        vendor = rest.strip() or None
        cleared = await self.app.admin_resume(self.user, vendor)
        key = "admin.resumed" if cleared else "admin.not_paused"
        self.emit(self.app.text.t(key + (".named" if vendor else ""), locale, vendor=vendor))

    async def help(self, _: str, locale: str) -> None:
        self.emit(self.app.text.help(locale, self.app.preset, True, platform="console"))
        user = self.user.key
        command = f"imagine-bot credits topup {user} 100"
        self.emit(self.app.text.t("console.who", locale, user=user, command=command))

    async def start(self, _: str, locale: str) -> None:
        profile = await self.app.profile(self.user)
        self.emit(self.app.text.welcome(locale, profile.balance, self.app.preset, True, "console"))


class StdinLines:
    """Lines typed on standard input, read by a daemon thread with ``os.read``: the
    chat can stop waiting at once (Ctrl-C, SIGTERM), and nothing waits for the
    thread at exit (a thread blocked in ``sys.stdin.readline`` holds the interpreter's
    stdin lock, and the default executor's shutdown would wait for it)."""

    def __init__(self, fd: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=self._read, args=(fd,), name="console-stdin", daemon=True).start()

    def _put(self, line: str | None) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._lines.put_nowait, line)
        except RuntimeError:  # the loop is closed: nobody reads any more
            return False
        return True

    def _read(self, fd: int) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:  # end of input
                if pending:
                    self._put(pending.decode(errors="replace"))
                self._put(None)
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not self._put(line.decode(errors="replace")):
                    return

    async def next(self, stop: asyncio.Event) -> str | None:
        """The next line, or None at the end of input or once ``stop`` is set."""
        return await _until_stopped(self._lines.get(), stop)


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None as soon as ``stop`` is set (``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task.result() if not task.cancelled() else None


def _stdin_fd() -> int:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return 0


async def run_console(app: Imagine, stop: asyncio.Event) -> None:
    """Until /quit, the end of input, Ctrl-C or SIGTERM (``stop``), whichever first;
    a job in flight when the chat stops is left to the worker and the sweeper."""
    chat = ConsoleChat(app)
    await app.sweep("console")
    await chat.start("", await chat.locale())
    lines = StdinLines(_stdin_fd())
    while not stop.is_set():
        print("> ", end="", flush=True)
        line = await lines.next(stop)
        if line is None:  # end of input, or stopped
            break
        if line.strip() in ("/quit", "/exit"):
            break
        await _until_stopped(chat.handle(line), stop)
    if stop.is_set():
        print()  # past the prompt (and the ^C the terminal echoed)
