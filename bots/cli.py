"""``imagine-bot``: the command line. Operators use it to run the bot, check the
configuration, make or edit images locally and manage credits; it is a frontend
like the chat ones and goes through the same core calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import re
import signal
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bots.files import URL, FolderFrontend
from bots.processes import supervised_workers
from core.app import Imagine
from core.bootstrap import build_app, configure_logging
from core.errors import ConfigError, ImagineError, InvalidRequest
from core.messages import Messages
from core.options import Defaults
from core.ports import ChatRef, UserRef
from core.redaction import secrets_from
from core.settings import Settings, load_settings
from core.sources import PATH, SourceRef
from core.types import Background, OutputFormat, Quality, Resolution

log = logging.getLogger("imagine-bot")


_USER_FORMS = re.compile(r"^(?:telegram:-?\d+|discord:\d+|console:local|cli:[\w.-]+)$")


def _user(raw: str | None) -> UserRef:
    """``telegram:123``, ``discord:456``, ``console:local`` (the console chat's user)
    or ``cli:<name>``; anything else is refused rather than created with a grant."""
    if not raw:
        return UserRef("cli", "operator")
    if not _USER_FORMS.match(raw):
        raise ConfigError(
            f"{raw!r} is no user id: use telegram:<numeric id>, discord:<numeric id>, "
            "console:local or cli:<name>."
        )
    platform, _, uid = raw.partition(":")
    return UserRef(platform, uid)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imagine-bot", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="start every platform whose token is set, else the console chat"
    )
    run.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="K",
        help="also start K worker processes on this machine (jobs run in them and here)",
    )
    sub.add_parser(
        "worker",
        help="run jobs only, for every platform whose token is set (scale out: more "
        "processes or machines on one PostgreSQL database)",
    )
    sub.add_parser("doctor", help="check the configuration and say what is wrong")

    def job_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("prompt")
        sp.add_argument("--aspect", default=None, help="aspect ratio, e.g. 16:9")
        sp.add_argument("--resolution", default=None, choices=[r.value for r in Resolution])
        sp.add_argument("--quality", default=None, choices=[q.value for q in Quality])
        sp.add_argument("--n", type=int, default=None, help="number of images")
        sp.add_argument("--background", default=None, choices=[b.value for b in Background])
        sp.add_argument(
            "--format",
            dest="output_format",
            default=None,
            choices=[f.value for f in OutputFormat],
            help="output file format",
        )
        sp.add_argument("--out", type=Path, default=None, help="folder for the results")
        sp.add_argument(
            "--user",
            default=None,
            help="who pays, e.g. telegram:123 (default: the local operator account cli:operator)",
        )

    job_options(sub.add_parser("imagine", help="generate images"))
    edit = sub.add_parser("edit", help="edit images")
    job_options(edit)
    edit.add_argument("--image", action="append", required=True, help="path or http(s) URL")
    edit.add_argument("--mask", default=None, help="mask image path")

    credits = sub.add_parser("credits", help="manage a user's credits")
    csub = credits.add_subparsers(dest="action", required=True)
    for name in ("topup", "set", "deduct"):
        c = csub.add_parser(name)
        c.add_argument("user")
        c.add_argument("amount", type=int)
        c.add_argument("reason", nargs="?", default=None)
    csub.add_parser("show").add_argument("user")
    csub.add_parser("history").add_argument("user")

    discord = sub.add_parser("discord", help="Discord tools")
    dsub = discord.add_subparsers(dest="action", required=True)
    dsub.add_parser("sync", help="register the slash commands now")
    return p


def _source(ref: str) -> SourceRef:
    """A command-line image: a URL (the worker fetches it; vendors that fetch inputs
    may use it as it is) or a local file, checked now so a typo costs nothing."""
    if ref.startswith(("http://", "https://")):
        return SourceRef(URL, ref, public_url=ref)
    path = Path(ref).expanduser()
    if not path.is_file():
        raise InvalidRequest("missing file", kind="download", reason=f"no file {ref}")
    return SourceRef(PATH, str(path.resolve()), size=path.stat().st_size)


def _writable(folder: Path) -> None:
    """Found before the paid call, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".imagine-bot-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"cannot write results to {folder}: {err.strerror or type(err).__name__}."
        ) from None


def _vendor_hosts(app: Imagine) -> tuple[str, ...]:
    """Hosts an image URL may name even on a private network: the vendor's own and
    those in ``FETCH_ALLOW_HOSTS``."""
    base = app.preset.base_url
    own = (urlsplit(base).hostname or "",) if base else ()
    return (*own, *app.settings.fetch_allow_hosts)


async def _job(app: Imagine, args: argparse.Namespace) -> int:
    user = _user(args.user)
    out_dir = args.out or app.settings.output_dir
    await asyncio.to_thread(_writable, out_dir)
    profile = await app.profile(user)
    defaults = profile.defaults
    changes = {
        k: v
        for k, v in (
            ("aspect", args.aspect),
            ("resolution", args.resolution),
            ("quality", args.quality),
            ("n", args.n),
        )
        if v is not None
    }
    defaults = (
        replace(defaults, **changes)
        if changes
        else Defaults(defaults.aspect, defaults.resolution, defaults.quality, defaults.n)
    )
    refs: tuple[SourceRef, ...] = ()
    mask: SourceRef | None = None
    if args.command == "edit":
        refs = tuple(_source(ref) for ref in args.image)
        if args.mask:
            mask = _source(args.mask)
    request = app.build_request(
        args.prompt,
        defaults,
        user=user,
        background=Background(args.background) if args.background else None,
        output_format=OutputFormat(args.output_format) if args.output_format else None,
        refs=refs,
        mask_ref=mask,
    )
    # Only this process can write into this folder: its jobs get a queue of their own.
    out = FolderFrontend(
        "cli",
        out_dir,
        text=app.text,
        notices=lambda text: print(f"imagine-bot: {text}", file=sys.stderr),
        allow_hosts=_vendor_hosts(app),
    )
    app.add_frontend(out, queue=f"cli:{uuid.uuid4().hex}")
    try:
        await app.run_job(user, request, ChatRef("cli"), profile=profile)
    except ImagineError as err:
        if err.job_id is None:  # refused at intake: nobody told the user yet
            raise
        return 1  # the worker printed the reason through the frontend
    return 0


async def _credits(app: Imagine, args: argparse.Namespace) -> int:
    # The person at this terminal is the operator: recorded as the actor cli:operator.
    actor = UserRef("cli", "operator")
    target = _user(args.user)
    text = app.text
    if args.action == "topup":
        balance = await app.admin_topup(actor, target, args.amount, args.reason)
        print(text.t("admin.topup_done", amount=args.amount, user=target.key, balance=balance))
    elif args.action == "set":
        balance = await app.admin_set(actor, target, args.amount, args.reason)
        print(text.t("admin.set_done", user=target.key, balance=balance))
    elif args.action == "deduct":
        balance = await app.admin_deduct(actor, target, args.amount, args.reason)
        print(text.t("admin.deduct_done", amount=args.amount, user=target.key, balance=balance))
    else:
        report = await app.admin_show(actor, target)
        if args.action == "history":
            print(text.account_report(None, report, target.key))
        else:
            print(
                text.t(
                    "admin.show", user=target.key, balance=report.balance, pending=report.pending
                )
            )
    return 0


def _doctor(settings: Settings) -> int:
    preset = settings.preset
    print(f"vendor: {preset.name} ({preset.style}; {preset.description})")
    if preset.seed:
        print(f"  follows seed document {preset.seed}")
    print(f"  base URL: {preset.base_url or '(local)'}")
    print(f"  model: {preset.model}; key: {'set' if settings.vendor_api_key else 'not set'}")
    print("  sizes: " + "; ".join(f"{t}: {', '.join(a)}" for t, a in preset.sizes.items()))
    print(f"database: {settings.database_url}")
    print(
        f"telegram: {'token set' if settings.telegram_token else 'off (TELEGRAM_BOT_TOKEN unset)'}"
    )
    print(f"discord: {'token set' if settings.discord_token else 'off (DISCORD_BOT_TOKEN unset)'}")
    print(f"admins: {', '.join(sorted(settings.admin_ids)) or 'none (ADMIN_USER_IDS unset)'}")
    problems = []
    if preset.needs_public_urls and not settings.public_base_url:
        problems.append(
            "VENDOR needs public image URLs for edits from Telegram: set "
            "PUBLIC_BASE_URL (Discord attachments work without it)."
        )
    if not settings.admin_ids:
        problems.append("ADMIN_USER_IDS is empty: nobody can top up credits from a chat.")
    for problem in problems:
        print(f"warning: {problem}")
    print("configuration OK")
    return 0


# Young-generation size for a running bot (CPython's default is 700 allocations).
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """A running bot allocates many short-lived objects per job (Bot API objects,
    HTTP frames, rows) while what it built at startup lives as long as the process.
    Freezing the startup heap keeps full collections from rescanning it, and a
    larger young generation collects a burst's garbage in fewer passes.
    bench/pipeline.py, N = 300, three runs each: 15.1 -> 13.3 ms of CPU per job."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def _signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no signal handlers
            loop.add_signal_handler(sig, stop.set)


# Open files a running bot may need: a connection per vendor call in flight
# (VENDOR_CONCURRENCY_MAX), the Bot API pool, the database, job files.
WANTED_OPEN_FILES = 8192


def _raise_open_files() -> None:
    """The usual soft limit (1024) is below what 500 calls in flight need; the hard
    limit is the operator's, and is left alone."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, WANTED_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _run(settings: Settings, workers: int) -> int:
    stop = asyncio.Event()
    _signals(stop)
    runners: list[Callable[[Imagine, asyncio.Event], Coroutine[Any, Any, None]]] = []
    if settings.telegram_token:
        from bots.telegram import run_telegram

        runners.append(run_telegram)
    if settings.discord_token:
        from bots.discord import run_discord

        runners.append(run_discord)
    if not runners:
        from bots.console import run_console

        # Nobody else can reach a console: its one user is the operator.
        settings = replace(settings, admin_ids=settings.admin_ids | {"console:local"})
        runners.append(run_console)
    async with build_app(settings, announce=True) as app, supervised_workers(workers, stop):
        _tune_gc()
        tasks = [asyncio.create_task(r(app, stop)) for r in runners]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    return 0


async def _worker(settings: Settings) -> int:
    """Workers only: deliver through each platform's REST API, no chat events."""
    if not (settings.telegram_token or settings.discord_token):
        raise ConfigError(
            "imagine-bot worker delivers to Telegram or Discord: set TELEGRAM_BOT_TOKEN "
            "or DISCORD_BOT_TOKEN (the console chat runs its jobs itself)."
        )
    stop = asyncio.Event()
    _signals(stop)
    async with build_app(settings) as app, contextlib.AsyncExitStack() as platforms:
        if settings.telegram_token:
            from bots.telegram import telegram_delivery

            await platforms.enter_async_context(telegram_delivery(app))
        if settings.discord_token:
            from bots.discord import discord_delivery

            await platforms.enter_async_context(discord_delivery(app))
        _tune_gc()
        await app.sweep()
        log.info("worker %s running", app.worker.worker_id if app.worker else "?")
        await stop.wait()
    return 0


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    # The person at this terminal runs the bot: the local operator account is an admin.
    settings = replace(settings, admin_ids=settings.admin_ids | {"cli:operator"})
    if args.command in ("run", "worker"):
        _raise_open_files()
    if args.command == "run":
        if args.workers < 0:
            raise ConfigError("--workers takes a count of 0 or more.")
        if args.workers and not (settings.telegram_token or settings.discord_token):
            raise ConfigError(
                "--workers needs TELEGRAM_BOT_TOKEN or DISCORD_BOT_TOKEN: the console "
                "chat runs its jobs in its own process."
            )
        return await _run(settings, args.workers)
    if args.command == "worker":
        return await _worker(settings)
    if args.command == "discord":
        from bots.discord import sync_commands

        async with build_app(settings, sweep=False) as app:
            print(await sync_commands(app))
        return 0
    async with build_app(settings, sweep=False, work=args.command in ("imagine", "edit")) as app:
        if args.command in ("imagine", "edit"):
            return await _job(app, args)
        return await _credits(app, args)


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop where it is installed (Linux, macOS): the bot spends a fifth of its CPU in
    the event loop itself under load, and uvloop's is written in C."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"imagine-bot: {err.detail}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level if args.command in ("run", "worker") else "WARNING",
        secrets=secrets_from(settings),
    )
    if settings.vendor_is_default_mock and args.command in ("run", "imagine", "edit", "doctor"):
        print(
            "imagine-bot: VENDOR is unset, using the built-in mock vendor (placeholder "
            "images, no network). Set VENDOR in .env for a real one.",
            file=sys.stderr,
        )
    if args.command == "doctor":
        return _doctor(settings)
    try:
        return _run_loop(_main(args, settings))
    except ConfigError as err:
        print(f"imagine-bot: {err.detail}", file=sys.stderr)
        return 2
    except ImagineError as err:
        print(f"imagine-bot: {Messages().error(err, 'en')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
