"""``imagine-bot``: the command line. Operators use it to run the bot, check the
configuration, make or edit images locally and manage credits; it is a frontend
like the chat ones and goes through the same core calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import importlib.metadata
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bots.dashboard.server import serve_dashboard
from bots.files import URL, FolderFrontend
from bots.health import serve_health
from bots.processes import supervised_workers
from core import redaction
from core.app import Imagine
from core.bootstrap import build_app, configure_logging
from core.errors import ConfigError, ImagineError, InsufficientCredits, InvalidRequest
from core.locales import LANGUAGES
from core.messages import Messages
from core.ports import ChatRef, UserRef
from core.redaction import secrets_from
from core.settings import DEFAULT_DASHBOARD_LISTEN, Settings, VendorConfig, load_settings
from core.sources import PATH, SourceRef
from core.types import Background, OutputFormat, Quality, Resolution
from core.vendor_health import VendorState, read_state
from storage import StorageError, open_store

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


def _version() -> str:
    try:
        return importlib.metadata.version("imagine-bot")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown: the package is not installed)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imagine-bot", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    sub.add_parser(
        "dashboard",
        help="serve the read-only admin dashboard (DASHBOARD_LISTEN, default "
        "127.0.0.1:8090; login with DASHBOARD_TOKEN or the token it prints)",
    )

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
        raise InvalidRequest(f"no such file: {ref}", kind="download", reason="missing")
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
    """Hosts an image URL may name even on a private network: the vendors' own and
    those in ``FETCH_ALLOW_HOSTS``."""
    bases = [m.preset.base_url for m in app.jobs.pool.members]
    own = tuple(urlsplit(base).hostname or "" for base in bases if base)
    return (*own, *app.settings.fetch_allow_hosts)


async def _job(app: Imagine, args: argparse.Namespace) -> int:
    user = _user(args.user)
    out_dir = args.out or app.settings.output_dir
    await asyncio.to_thread(_writable, out_dir)
    profile = await app.profile(user)
    overrides = {
        k: v
        for k, v in (
            ("aspect", args.aspect),
            ("resolution", args.resolution),
            ("quality", args.quality),
            ("n", args.n),
        )
        if v is not None
    }
    refs: tuple[SourceRef, ...] = ()
    mask: SourceRef | None = None
    if args.command == "edit":
        refs = tuple(_source(ref) for ref in args.image)
        if args.mask:
            mask = _source(args.mask)
    # The prompt is one argument: its "--" words are text, not flags.
    request = await app.request(
        user,
        args.prompt,
        overrides=overrides,
        profile=profile,
        inline_flags=False,
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
        notices=lambda text: print(f"imagine-bot: {_cli_notice(app.text, text)}", file=sys.stderr),
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


# A doctor check that talks to a service gives up after this many seconds.
DOCTOR_TIMEOUT = 5.0
# Written and deleted again by ``doctor``: proves the database takes writes.
DOCTOR_FLAG = "doctor:write-check"


def _shown_url(url: str) -> str:
    """A database URL fit to print: its password replaced."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    return url.replace(f":{password}@", ":***@", 1)


def _folder_problem(folder: Path, setting: str) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".imagine-bot-doctor-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return f"{setting} {folder} is not writable: {err.strerror or type(err).__name__}."
    return None


async def _database_problem(settings: Settings, states: list[str] | None = None) -> str | None:
    """Open the store and commit a write that leaves nothing behind; ``states`` gets
    one line per configured vendor's state as every process sees it."""
    shown = _shown_url(settings.database_url)
    try:
        store = await asyncio.wait_for(open_store(settings.database_url), 2 * DOCTOR_TIMEOUT)
        try:
            async with store.transaction() as tx:
                await store.flags.set(tx, DOCTOR_FLAG, str(time.time()))
                await store.flags.delete(tx, DOCTOR_FLAG)
            if states is not None:
                async with store.read() as tx:
                    for config in settings.vendors:
                        name = config.name if settings.failover else None
                        state = await read_state(store, tx, name)
                        states.append(f"vendor {config.name}: {_state_words(state)}")
        finally:
            await store.close()
    except TimeoutError:
        return f"the database {shown} did not answer within {2 * DOCTOR_TIMEOUT:g} s."
    except Exception as err:  # every driver has its own errors; each is one sentence here
        reason = redaction.redact(str(err).strip().rstrip(".")) or type(err).__name__
        return f"the database {shown} cannot be opened and written: {reason}."
    return None


def _telegram_getme_url(settings: Settings, token: str) -> str:
    base = (settings.telegram_base_url or "https://api.telegram.org").rstrip("/")
    if not base.endswith("/bot"):
        base += "/bot"
    return f"{base}{token}/getMe"


async def _token_checks(settings: Settings) -> tuple[list[str], list[str]]:
    """Ask Telegram (getMe) and Discord (/users/@me) whether they take the tokens.
    Returns (lines to print, errors); no network only skips a check."""
    lines: list[str] = []
    errors: list[str] = []
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(DOCTOR_TIMEOUT), follow_redirects=False
    ) as client:
        if settings.telegram_token:
            host = urlsplit(settings.telegram_base_url or "https://api.telegram.org").netloc
            try:
                response = await client.get(_telegram_getme_url(settings, settings.telegram_token))
            except httpx.TransportError as err:
                lines.append(
                    f"telegram: token not checked: cannot reach {host} ({type(err).__name__})."
                )
            else:
                if response.status_code == 200:
                    name = (response.json().get("result") or {}).get("username", "?")
                    lines.append(f"telegram: token accepted (@{name}).")
                elif response.status_code in (401, 404):
                    errors.append(
                        f"Telegram ({host}) rejected TELEGRAM_BOT_TOKEN (HTTP "
                        f"{response.status_code}): copy it again from @BotFather."
                    )
                else:
                    lines.append(
                        f"telegram: token not checked: {host} answered HTTP {response.status_code}."
                    )
        if settings.discord_token:
            from discord.http import Route  # the API address (tests point it at a fake)

            host = urlsplit(Route.BASE).netloc
            try:
                response = await client.get(
                    f"{Route.BASE}/users/@me",
                    headers={"Authorization": f"Bot {settings.discord_token}"},
                )
            except httpx.TransportError as err:
                lines.append(
                    f"discord: token not checked: cannot reach {host} ({type(err).__name__})."
                )
            else:
                if response.status_code == 200:
                    lines.append(f"discord: token accepted ({response.json().get('username')}).")
                elif response.status_code == 401:
                    errors.append(
                        "Discord rejected DISCORD_BOT_TOKEN: copy the bot token again from "
                        "the developer portal."
                    )
                else:
                    lines.append(
                        f"discord: token not checked: {host} answered HTTP {response.status_code}."
                    )
    return lines, errors


async def _doctor_checks(settings: Settings) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    errors: list[str] = []
    problem = await asyncio.to_thread(_folder_problem, settings.data_dir, "DATA_DIR")
    if problem:
        errors.append(problem)
    else:
        lines.append(f"data folder: {settings.data_dir} is writable.")
    states: list[str] = []
    problem = await _database_problem(settings, states)
    if problem:
        errors.append(problem)
    else:
        lines.append("database: opened and written.")
        lines.extend(states)
    token_lines, token_errors = await _token_checks(settings)
    return lines + token_lines, errors + token_errors


def _state_words(state: VendorState) -> str:
    if state.state == "healthy":
        return "healthy"
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(state.since or 0))
    probe = time.strftime("%H:%M UTC", time.gmtime(state.probe_at or 0))
    return f"{state.state} since {since} ({state.why}); next probe {probe}"


def _doctor(settings: Settings) -> int:
    """Print the configuration, then check what can be checked from here: the data
    folder, the database and, when reachable, the platform tokens. Exit 1 when
    something is wrong; warnings alone do not fail."""
    preset = settings.preset
    if settings.failover:
        print("vendors, in failover order: " + ", ".join(v.name for v in settings.vendors))
    for config in settings.vendors or (VendorConfig(preset.name, preset, settings.vendor_api_key),):
        shown = config.preset
        head = f"{config.name} ({shown.name})" if config.name != shown.name else shown.name
        print(f"vendor: {head}: {shown.description or 'no description'}")
        print(f"  wire style: {shown.style}; base URL: {shown.base_url or '(local)'}")
        print(f"  model: {shown.model}; key: {'set' if config.api_key else 'not set'}")
        print("  sizes: " + "; ".join(f"{t}: {', '.join(a)}" for t, a in shown.sizes.items()))
    print(f"database: {_shown_url(settings.database_url)}")
    print(
        f"telegram: {'token set' if settings.telegram_token else 'off (TELEGRAM_BOT_TOKEN unset)'}"
    )
    print(f"discord: {'token set' if settings.discord_token else 'off (DISCORD_BOT_TOKEN unset)'}")
    print(f"admins: {', '.join(sorted(settings.admin_ids)) or 'none (ADMIN_USER_IDS unset)'}")
    lines, errors = asyncio.run(_doctor_checks(settings))
    for line in lines:
        print(line)
    warnings = []
    if preset.needs_public_urls and not settings.public_base_url:
        warnings.append(
            "VENDOR needs public image URLs for edits from Telegram: set "
            "PUBLIC_BASE_URL (Discord attachments work without it)."
        )
    if not settings.admin_ids:
        warnings.append("ADMIN_USER_IDS is empty: nobody can top up credits from a chat.")
    for warning in warnings:
        print(f"warning: {warning}")
    for error in errors:
        print(f"error: {error}")
    if errors:
        print(f"found {len(errors)} error(s): the bot will not run until they are fixed.")
        return 1
    print("configuration OK")
    return 0


# Young-generation size for a running bot (CPython's default is 700 allocations).
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """A running bot allocates many short-lived objects per job (Bot API objects,
    HTTP frames, rows) while what it built at startup lives as long as the process.
    Freezing the startup heap keeps full collections from rescanning it, and a
    larger young generation collects a burst's garbage in fewer passes (measured in
    docs/performance.md)."""
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
        if not sys.stdin.isatty():  # Docker without -it, CI: the chat would read EOF
            raise ConfigError(
                "no TELEGRAM_BOT_TOKEN or DISCORD_BOT_TOKEN set, and no terminal for the "
                "console chat: set a token, or start it from a terminal (docker run -it)."
            )
        from bots.console import run_console

        # Nobody else can reach a console: its one user is the operator.
        settings = replace(settings, admin_ids=settings.admin_ids | {"console:local"})
        runners.append(run_console)
    if workers:
        # The worker processes inherit this environment: only this process serves
        # HEALTH_LISTEN (each of them would ask for the same address).
        os.environ["HEALTH_LISTEN"] = ""
    async with (
        build_app(settings, announce=True) as app,
        serve_health(app),
        serve_dashboard(app.stats, settings.dashboard_listen, settings.dashboard_token),
        supervised_workers(workers, stop),
    ):
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
    async with (
        build_app(settings) as app,
        serve_health(app),
        contextlib.AsyncExitStack() as platforms,
    ):
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


async def _dashboard(settings: Settings) -> int:
    """The dashboard alone: it reads the database and runs no jobs."""
    stop = asyncio.Event()
    _signals(stop)
    listen = settings.dashboard_listen or DEFAULT_DASHBOARD_LISTEN
    async with (
        build_app(settings, sweep=False, work=False) as app,
        serve_dashboard(app.stats, listen, settings.dashboard_token),
    ):
        await stop.wait()
    return 0


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    # The person at this terminal runs the bot: the local operator account is an admin.
    settings = replace(settings, admin_ids=settings.admin_ids | {"cli:operator"})
    if args.command in ("run", "worker"):
        _raise_open_files()
    if args.command in ("run", "worker", "imagine", "edit"):
        # Found at start in one sentence, not when the first result is saved.
        problem = await asyncio.to_thread(_folder_problem, settings.data_dir, "DATA_DIR")
        if problem:
            raise ConfigError(problem, setting="DATA_DIR")
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
    if args.command == "dashboard":
        return await _dashboard(settings)
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


# Catalogue sentences that speak to a chat user; the command line says it its way.
_CLI_SENTENCES = {
    "prompt_empty": 'give a prompt, e.g. imagine-bot imagine "a red fox in the snow".',
    "no_image": "give the image to edit with --image PATH or --image URL.",
    "public_url": (
        "this vendor fetches the images it edits from a public URL: give --image an "
        "http(s) URL, not a local file."
    ),
    "generate_unavailable": (
        "this vendor only edits images: use imagine-bot edit --image PATH instruction."
    ),
}


def _cli_error(err: ImagineError, user: str | None = None) -> str:
    kind = err.params.get("kind") if isinstance(err, InvalidRequest) else None
    if isinstance(kind, str) and kind in _CLI_SENTENCES:
        return _CLI_SENTENCES[kind]
    if kind == "download" and isinstance(err, InvalidRequest) and err.reason == "missing":
        return f"{err.detail}."
    if isinstance(err, InsufficientCredits):
        who = user or "cli:operator"
        return (
            f"this costs {err.price} credits but {who} has {err.balance}: top up with "
            f"imagine-bot credits topup {who} {max(err.price - err.balance, 1)}."
        )
    return Messages().error(err, "en")


def _cli_notice(text: Messages, notice: str) -> str:
    """A failure the worker told through the folder frontend, in command-line words
    where the catalogue's sentence speaks to a chat user."""
    for kind, sentence in _CLI_SENTENCES.items():
        if any(notice == text.t(f"invalid.{kind}", locale) for locale in LANGUAGES):
            return sentence
    return notice


def _host(url: str | None, default: str) -> str:
    return urlsplit(url).netloc if url else default


def _failure(err: BaseException, settings: Settings) -> str | None:
    """One sentence for a failure the operator fixes outside the program (network,
    database, folders), or None for a bug (which keeps its traceback)."""
    telegram_error = sys.modules.get("telegram.error")
    if telegram_error is not None and isinstance(err, telegram_error.NetworkError):
        if settings.telegram_base_url:
            host = _host(settings.telegram_base_url, "")
            return f"cannot reach {host} (TELEGRAM_BASE_URL): check the network and the address."
        return "cannot reach api.telegram.org: check the network (or set TELEGRAM_BASE_URL)."
    if telegram_error is not None and isinstance(err, telegram_error.TelegramError):
        return f"Telegram refused to start the bot: {redaction.redact(err.message)}."
    discord = sys.modules.get("discord")
    if discord is not None and isinstance(
        err, discord.GatewayNotFound | discord.ConnectionClosed | discord.DiscordServerError
    ):
        return "cannot connect to Discord's gateway: check the network, then try again."
    if discord is not None and isinstance(err, discord.HTTPException):
        return f"Discord refused to start the bot (HTTP {err.status}): {err.text or 'no reason'}."
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(err, aiohttp.ClientConnectorError):
        where = err.host if err.port in (80, 443, None) else f"{err.host}:{err.port}"
        return f"cannot reach {where}: check the network."
    if aiohttp is not None and isinstance(err, aiohttp.ClientError):
        return f"a connection failed ({type(err).__name__}): check the network."
    if isinstance(err, StorageError):
        reason = redaction.redact(str(err).strip().rstrip(".")) or type(err).__name__
        return (
            f"cannot use the database {_shown_url(settings.database_url)}: {reason} "
            "(check DATABASE_URL and its folder)."
        )
    if isinstance(err, OSError) and err.filename is not None:
        what = err.strerror or type(err).__name__
        return f"cannot use {err.filename}: {what} (check DATA_DIR, OUTPUT_DIR and permissions)."
    if isinstance(err, OSError) and err.errno == errno.EADDRINUSE:
        return (
            "an address to listen on is already in use: change PUBLIC_LISTEN or "
            "TELEGRAM_WEBHOOK_LISTEN, or stop what holds it."
        )
    if isinstance(err, ConnectionError | TimeoutError):
        return f"a connection failed ({err.strerror or type(err).__name__}): check the network."
    if isinstance(err, OSError):
        return f"the system refused: {err.strerror or err}."
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"imagine-bot: {err.detail}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level if args.command in ("run", "worker", "dashboard") else "WARNING",
        secrets=secrets_from(settings),
        fmt=settings.log_format,
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
        print(f"imagine-bot: {_cli_error(err, getattr(args, 'user', None))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        sentence = _failure(err, settings)
        if sentence is None:
            raise
        log.debug("%s", sentence, exc_info=True)  # the traceback, at LOG_LEVEL=DEBUG
        print(f"imagine-bot: {sentence}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
