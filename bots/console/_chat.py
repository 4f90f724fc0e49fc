"""Parsing console lines into core calls and printing the answers."""

from __future__ import annotations

import asyncio
import shlex
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bots.files import FolderFrontend
from core.app import Imagine
from core.errors import ImagineError, InvalidRequest
from core.ports import ChatRef, UserRef
from core.sources import PATH, SourceRef

CONSOLE_USER = UserRef("console", "local", "you")


def _leading_files(words: list[str]) -> list[SourceRef]:
    """Pops the leading words that name files (the worker reads them)."""
    refs: list[SourceRef] = []
    while words and Path(words[0]).expanduser().is_file():
        path = Path(words.pop(0)).expanduser().resolve()
        refs.append(SourceRef(PATH, str(path), size=path.stat().st_size))
    return refs


class ConsoleChat:
    """One line in, answers out. ``handle`` is also what the tests drive."""

    def __init__(
        self, app: Imagine, emit: Callable[[str], None] = print, user: UserRef = CONSOLE_USER
    ) -> None:
        self.app = app
        self.emit = emit
        self.user = user
        self.frontend = FolderFrontend(
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
            "/settings": self.settings,
            "/topup": self.topup,
            "/jobs": self.jobs,
            "/resume": self.resume,
            "/help": self.help,
            "/start": self.start,
        }

    async def imagine(self, text: str, locale: str) -> None:
        profile = await self.app.profile(self.user)
        parsed = self.app.parse_prompt(text, profile.defaults)
        request = self.app.build_request(parsed.prompt, parsed.defaults, user=self.user)
        await self.app.run_job(self.user, request, ChatRef("console"), profile=profile)

    async def edit(self, text: str, locale: str) -> None:
        """``/edit PATH [PATH...] instruction``: leading words that are files are sources."""
        words = text.split()
        refs = await asyncio.to_thread(_leading_files, words)
        if not refs:
            raise InvalidRequest("no image", kind="no_image")
        profile = await self.app.profile(self.user)
        parsed = self.app.parse_prompt(" ".join(words), profile.defaults)
        request = self.app.build_request(
            parsed.prompt, parsed.defaults, user=self.user, refs=tuple(refs)
        )
        await self.app.run_job(self.user, request, ChatRef("console"), profile=profile)

    async def price(self, text: str, locale: str) -> None:
        profile = await self.app.profile(self.user)
        parsed = self.app.parse_prompt(text, profile.defaults)
        request = self.app.build_request(parsed.prompt, parsed.defaults, user=self.user)
        self.emit(
            self.app.text.price(
                locale, await self.app.quote(self.user, request), request, button_hint=False
            )
        )

    async def balance(self, _: str, locale: str) -> None:
        self.emit(self.app.text.balance(locale, await self.app.balance(self.user)))

    async def history(self, _: str, locale: str) -> None:
        self.emit(self.app.text.history(locale, await self.app.history(self.user)))

    async def settings(self, text: str, locale: str) -> None:
        """``/settings --ar 16:9 --q high`` or ``/settings lang=zh``."""
        profile = await self.app.profile(self.user)
        lang = None
        for word in text.split():
            if word.startswith(("lang=", "language=")):
                lang = word.split("=", 1)[1]
                text = text.replace(word, "")
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
        self.emit(
            self.app.text.t(
                "options.saved",
                saved.locale or locale,
                summary=self.app.text.options_summary(locale, saved),
            )
        )

    async def topup(self, text: str, locale: str) -> None:
        """``/topup AMOUNT [reason]`` tops up the console user (the operator)."""
        words = shlex.split(text) if text else []
        if not words or not words[0].isdigit():
            self.emit(self.app.text.t("admin.usage", locale, usage="/topup AMOUNT [reason]"))
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

    async def resume(self, _: str, locale: str) -> None:
        cleared = await self.app.admin_resume(self.user)
        self.emit(self.app.text.t("admin.resumed" if cleared else "admin.not_paused", locale))

    async def help(self, _: str, locale: str) -> None:
        self.emit(self.app.text.help(locale, self.app.preset, True, platform="console"))

    async def start(self, _: str, locale: str) -> None:
        profile = await self.app.profile(self.user)
        self.emit(self.app.text.welcome(locale, profile.balance, self.app.preset, True, "console"))


async def run_console(app: Imagine, stop: asyncio.Event) -> None:
    chat = ConsoleChat(app)
    await app.sweep("console")
    await chat.start("", await chat.locale())
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        print("> ", end="", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:  # end of input
            break
        if line.strip() in ("/quit", "/exit"):
            break
        await chat.handle(line)
