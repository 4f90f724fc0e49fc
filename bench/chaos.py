"""Chaos: the real bot under random traffic, a faulty vendor and SIGKILLs; then the books.

Usage: .venv/bin/python bench/chaos.py [--duration 180] [--users 40] [--seed 1]
           [--style openai|tasks] [--rate 4] [--backend sqlite|postgres]
           [--workers K] [--lease 5] [--keep]

Starts the fake vendor (``compat-sizes`` for ``--style openai``, the async-task
``aigptimage`` for ``--style tasks``) injecting random faults (402, 409, 429, 500,
hangs that end in the bot's timeout, slow answers, malformed bodies, dropped
connections, billed-then-500; for tasks: tasks that fail or finish late), the fake
Telegram Bot API, and the real bot (``imagine-bot run --workers K``: the intake
and K worker processes, its children) on SQLite or, with ``--backend postgres``, a
throwaway PostgreSQL server (``bench/_postgres.py``). Random traffic from
``--users`` users (generate, edit by replying to a result, reroll and variation
buttons, balance) plus admin top-ups and /resume runs for ``--duration`` seconds
while bot processes are SIGKILLed at random moments: a worker (found by its parent
pid; the intake's supervisor starts it again), or the intake, restarted at once. An
intake is killed together with its workers, as a crashed machine or container would
lose them (a SIGKILLed intake alone would leave its workers running as orphans);
the new intake starts K new ones. The bot runs with a short job lease
(``JOB_LEASE_SECONDS``, ``--lease``, 5 s by default; the bot's own default is 30 s)
so jobs of killed processes are recovered within the run; the run says so.

Then traffic stops, the vendor stops misbehaving, the bot is killed once more and
restarted with nothing to do but sweep; once every job is terminal (or after a
timeout) it is stopped and the database is checked through ``storage``:

- the ledger sums to zero and no balance is negative (``check_invariants``);
- every job is terminal; every job's user received the image (a send carrying the
  job's reroll button) or was told they were not charged;
- credits charged == prices of the images the vendor billed, except losses booked
  to ``system:vendor_loss`` (listed);
- no hold was resolved twice and every hold agrees with its job;
- purchases (users pay Stars; some ``successful_payment`` updates arrive twice): no
  charge id is credited twice, each credits its pack, and ``system:sales`` holds
  exactly minus what was sold.

Exits 1 on any violation (each is printed), and when nothing happened (no
traffic or no jobs: "no jobs ran"); 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bench._postgres import PostgresServer  # noqa: E402
from bench._procs import (  # noqa: E402
    Proc,
    TelegramFake,
    VendorFake,
    bot_env,
    start_bot,
    start_telegram,
    start_vendor,
    tree_pids,
)
from core.vendors.presets import PRESETS  # noqa: E402
from storage import SYSTEM_VENDOR_LOSS, open_store  # noqa: E402

ADMIN = 1
# credits:stars, as an operator writes CREDIT_PACKS.
PACKS = {100: 50, 300: 120}
FIRST_USER = 20_000
NOT_CHARGED = "not charged"  # every "you were not charged" sentence of core/locales/en.py
# The sweeper's last pass must finish within this after the final restart.
SETTLE_TIMEOUT = 40.0

STYLES: dict[str, dict[str, Any]] = {
    "openai": {
        "preset": "compat-sizes",
        "fake": ("openai", "compat-sizes"),
        "faults": "402,409,429,500,hang,slow,malformed,disconnect,truncated,billed_then_500",
    },
    "tasks": {
        "preset": "aigptimage",
        "fake": ("tasks", None),
        "faults": "402,409,429,500,slow,malformed,task_fail,task_late",
    },
}


@dataclass
class World:
    """What the traffic generator knows: results it can reply to or press."""

    rng: random.Random
    users: list[int]
    results: dict[int, list[tuple[dict[str, Any], str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    photos: dict[int, dict[str, Any]] = field(default_factory=dict)
    actions: Counter[str] = field(default_factory=Counter)
    nonce: int = 0
    purchases: dict[str, int] = field(default_factory=dict)
    """Charge ids the users paid, and the credits each pack holds."""

    def prompt(self, what: str) -> str:
        self.nonce += 1
        return f"{what} #{self.nonce}"


def png_bytes(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    """A small real PNG for the users' own photos (``--style tasks``)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


async def _fetchall(tx: Any, sql: str) -> list[Any]:
    """Rows of a read-only query on either backend (aiosqlite ``fetchall``, asyncpg
    ``fetch``); the queries here are plain SQL that both accept."""
    fetch = getattr(tx, "fetchall", None) or tx.fetch
    return list(await fetch(sql))


def _reroll_job(call: dict[str, Any]) -> str | None:
    markup = call["params"].get("reply_markup") or {}
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            data = str(button.get("callback_data") or "")
            if data.startswith("r:"):
                return data[2:]
    return None


def _learn(world: World, calls: list[dict[str, Any]]) -> None:
    for call in calls:
        if call["status"] != 200 or call["method"] not in ("sendPhoto", "sendDocument"):
            continue
        job = _reroll_job(call)
        result = (call.get("response") or {}).get("result")
        if job and isinstance(result, dict):
            world.results[int(result["chat"]["id"])].append((result, job))


async def _act(client: httpx.AsyncClient, tg: TelegramFake, world: World, style: str) -> None:
    rng = world.rng
    user = rng.choice(world.users)
    mine = world.results.get(user) or []
    roll = rng.random()
    res = rng.choice(["1K", "1K", "1K", "2K", "4K"])
    if rng.random() < 0.08:  # whatever they have made so far
        await _buy(client, tg, world, user)
        return
    if style == "tasks":
        # The task vendor only edits: users send their own picture with /edit.
        if roll < 0.55 or not mine:
            photo = world.photos[user]
            world.actions["edit_own_photo"] += 1
            await tg.control(
                client,
                "message",
                {
                    "user_id": user,
                    "photo": [photo],
                    "caption": f"/edit {world.prompt('paint it')} --ar 1:1 --res {res}",
                },
            )
            return
    elif roll < 0.45 or not mine:
        world.actions["generate"] += 1
        await tg.control(
            client,
            "message",
            {
                "user_id": user,
                "text": f"/imagine {world.prompt('a fox')} --ar 1:1 --res {res}",
            },
        )
        return
    message, job = rng.choice(mine[-5:])
    if roll < 0.62:
        world.actions["edit_reply"] += 1
        await tg.control(
            client,
            "message",
            {
                "user_id": user,
                "text": world.prompt("make it night"),
                "reply_to": message,
            },
        )
    elif roll < 0.80:
        world.actions["reroll"] += 1
        await tg.control(
            client,
            "callback_query",
            {
                "data": f"r:{job}",
                "user_id": user,
                "message": message,
            },
        )
    elif roll < 0.86:
        world.actions["variation"] += 1
        await tg.control(
            client,
            "callback_query",
            {
                "data": f"v:{job}",
                "user_id": user,
                "message": message,
            },
        )
    elif roll < 0.94:
        world.actions["topup"] += 1
        await tg.control(
            client,
            "message",
            {
                "user_id": ADMIN,
                "text": f"/topup {user} {rng.choice([100, 300, 1000])} chaos",
            },
        )
    elif roll < 0.97:
        world.actions["resume"] += 1
        await tg.control(client, "message", {"user_id": ADMIN, "text": "/resume"})
    else:
        world.actions["balance"] += 1
        await tg.control(client, "message", {"user_id": user, "text": "/balance"})


async def _buy(client: httpx.AsyncClient, tg: TelegramFake, world: World, user: int) -> None:
    """A Stars payment as Telegram reports it; half of them are delivered twice."""
    credits = world.rng.choice(sorted(PACKS))
    charge = f"chaos-charge-{len(world.purchases) + 1}-{user}"
    world.purchases[charge] = credits
    world.actions["buy"] += 1
    paid = {
        "currency": "XTR",
        "total_amount": PACKS[credits],
        "invoice_payload": f"pack:{credits}:{PACKS[credits]}",
        "telegram_payment_charge_id": charge,
        "provider_payment_charge_id": "",
    }
    for _ in range(world.rng.choice((1, 2))):
        world.nonce += 1
        message = {
            "message_id": 10_000_000 + world.nonce,
            "from": {"id": user, "is_bot": False, "first_name": f"U{user}", "language_code": "en"},
            "chat": {"id": user, "type": "private", "first_name": f"U{user}"},
            "date": int(time.time()),
            "successful_payment": paid,
        }
        await tg.control(client, "update", {"message": message})


def _check_sales(
    transfers: list[dict[str, Any]], totals: dict[str, int], purchases: dict[str, int]
) -> tuple[list[str], str]:
    bad: list[str] = []
    bought = [t for t in transfers if t["kind"] == "purchase"]
    refunded = sum(t["amount"] for t in transfers if t["kind"] == "purchase_refund")
    per_charge = Counter(str(t["reason"]).split(" ", 1)[-1] for t in bought)
    for charge, n in per_charge.items():
        if n > 1:
            bad.append(f"purchase {charge} credited {n} times")
    for t in bought:
        charge = str(t["reason"]).split(" ", 1)[-1]
        if charge not in purchases:
            bad.append(f"purchase {charge} was never paid")
        elif t["amount"] != purchases[charge]:
            bad.append(
                f"purchase {charge} credited {t['amount']}, its pack holds {purchases[charge]}"
            )
    sold = sum(t["amount"] for t in bought) - refunded
    if totals.get("system:sales", 0) != -sold:
        bad.append(f"sales: system:sales is {totals.get('system:sales')}, expected {-sold}")
    line = (
        f"purchases: {len(purchases)} paid, {len(bought)} credited ({sold} credits); "
        f"system:sales {totals.get('system:sales', 0)}"
    )
    return bad, line


async def _traffic(
    client: httpx.AsyncClient,
    tg: TelegramFake,
    world: World,
    style: str,
    rate: float,
    until: float,
) -> None:
    while time.monotonic() < until:
        _learn(world, await tg.poll(client))
        try:
            await _act(client, tg, world, style)
        except httpx.HTTPError as err:
            print(f"traffic: {err!r}", file=sys.stderr)
        await asyncio.sleep(world.rng.expovariate(rate))


async def _crash_intake(
    workdir: Path, env: dict[str, str], holder: list[Proc], workers: int
) -> list[int]:
    """SIGKILL the intake and its workers, start a new intake (which starts K new
    workers); the killed workers' pids."""
    below = holder[0].kill_tree()
    await asyncio.to_thread(holder[0].popen.wait)
    holder[0] = start_bot(workdir, env, workers=workers)
    return below


async def _killer(
    workdir: Path,
    env: dict[str, str],
    holder: list[Proc],
    rng: random.Random,
    gap: tuple[float, float],
    until: float,
    kills: list[tuple[float, str]],
    workers: int,
) -> None:
    while True:
        wait = rng.uniform(*gap)
        if time.monotonic() + wait >= until:
            return
        await asyncio.sleep(wait)
        # With K workers: a worker K times in K+1, the intake (and its workers) else.
        victims = holder[0].children() if workers else []
        if victims and rng.random() < workers / (workers + 1):
            pid = rng.choice(victims)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kills.append((time.monotonic(), "worker"))
            continue
        await _crash_intake(workdir, env, holder, workers)
        kills.append((time.monotonic(), "intake"))


# --- the checks ------------------------------------------------------------------------


def _bill_price(preset_name: str, bill: dict[str, Any]) -> int:
    """What the vendor charged for one billed success, in credits (our price table
    mirrors the vendor's bill; markup is 0 in this run)."""
    table = PRESETS[preset_name].price.per_image
    for key in (
        f"{bill.get('size')}:{bill.get('quality')}",
        str(bill.get("resolution")),
        str(bill.get("quality")),
        "*",
    ):
        if key in table:
            return int(table[key]) * int(bill.get("images") or 1)
    raise KeyError(f"no price for bill {bill}")


async def _jobs_settled(url: str) -> tuple[int, int, int]:
    """(jobs, not terminal, failed and not yet told)."""
    store = await open_store(url)
    try:
        async with store.read() as tx:
            rows = await _fetchall(
                tx,
                "SELECT COUNT(*), "
                "SUM(CASE WHEN state NOT IN ('SUCCEEDED', 'FAILED') THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN state = 'FAILED' AND NOT notified THEN 1 ELSE 0 END) FROM jobs",
            )
    finally:
        await store.close()
    total, open_, untold = rows[0]
    return int(total or 0), int(open_ or 0), int(untold or 0)


async def check(
    url: str,
    calls: list[dict[str, Any]],
    bills: list[dict[str, Any]],
    preset: str,
    purchases: dict[str, int] | None = None,
) -> tuple[list[str], list[str]]:
    """(violations, report lines)."""
    bad: list[str] = []
    out: list[str] = []
    store = await open_store(url)
    try:
        async with store.read() as tx:
            invariants = await store.ledger.check_invariants(tx)
            totals = await store.ledger.totals(tx)
            jobs = [dict(r) for r in await _fetchall(tx, "SELECT * FROM jobs")]
            holds = {r["id"]: dict(r) for r in await _fetchall(tx, "SELECT * FROM holds")}
            transfers = [
                dict(r)
                for r in await _fetchall(
                    tx,
                    "SELECT t.*, d.external_id AS debit, c.external_id AS credit FROM transfers t "
                    "JOIN accounts d ON d.id = t.debit_account_id "
                    "JOIN accounts c ON c.id = t.credit_account_id ORDER BY seq",
                )
            ]
            loss_id = (await store.ledger.system_account(tx, SYSTEM_VENDOR_LOSS)).id
    finally:
        await store.close()

    # 0. something happened at all
    if not jobs:
        bad.append("no jobs ran: the database holds no job")
    # 1. the ledger
    out.append(f"ledger totals: {json.dumps(totals)}")
    bad += [f"ledger: {p}" for p in invariants]
    if totals.get("sum") != 0:
        bad.append(f"ledger: balances sum to {totals.get('sum')}, not 0")

    # 2. every job terminal, every user served or told
    states = Counter(j["state"] for j in jobs)
    out.append(f"jobs: {len(jobs)} {dict(states)}")
    delivered: dict[str, int] = Counter()
    told_edit: set[tuple[int, int]] = set()
    told_msgs: Counter[int] = Counter()
    for call in calls:
        if call["status"] != 200:
            continue
        method, params = call["method"], call["params"]
        job = _reroll_job(call) if method in ("sendPhoto", "sendDocument", "sendMessage") else None
        if job:
            delivered[job] += 1
        text = str(params.get("text") or "")
        if NOT_CHARGED in text.lower():
            chat = int(params.get("chat_id") or 0)
            if method == "editMessageText":
                told_edit.add((chat, int(params.get("message_id") or 0)))
            elif method == "sendMessage":
                told_msgs[chat] += 1
    untold = 0
    for j in sorted(jobs, key=lambda j: j["created_at"]):
        if j["state"] not in ("SUCCEEDED", "FAILED"):
            bad.append(f"job {j['id']} left in {j['state']}")
            continue
        chat_data = json.loads(j["chat"]).get("chat") or {}
        chat, status_id = int(chat_data.get("chat_id") or 0), chat_data.get("status_message_id")
        if j["state"] == "SUCCEEDED":
            if not delivered.get(j["id"]):
                bad.append(f"job {j['id']} SUCCEEDED but chat {chat} never received it")
            continue
        if (chat, status_id) in told_edit:
            continue
        if told_msgs[chat] > 0:
            told_msgs[chat] -= 1
            continue
        if delivered.get(j["id"]):
            # Delivered, then failed (e.g. killed mid-upload, redelivery refused): the
            # image reached the user and they were not charged.
            continue
        untold += 1
        bad.append(
            f"job {j['id']} FAILED ({j['error']}) and chat {chat} was never told "
            f"(notified={j['notified']})"
        )
    redelivered = sum(1 for n in delivered.values() if n > 1)
    out.append(
        f"deliveries: {sum(delivered.values())} sends for {len(delivered)} jobs "
        f"({redelivered} delivered more than once after a crash); failed and untold: "
        f"{untold}"
    )

    # 3. money: charged == billed, except booked losses
    charges = [t for t in transfers if t["kind"] == "charge"]
    losses = [t for t in transfers if loss_id in (t["debit_account_id"], t["credit_account_id"])]
    charged = sum(t["amount"] for t in charges)
    billed = sum(_bill_price(preset, b) for b in bills)
    lost = sum(t["amount"] for t in losses if t["debit_account_id"] == loss_id)
    by_job = {j["id"]: j for j in jobs}
    out.append(
        f"vendor billed {len(bills)} calls = {billed} credits; users charged "
        f"{charged} credits in {len(charges)} charges; losses booked {lost} credits "
        f"in {len(losses)} transfers"
    )
    for t in losses:
        owner = by_job.get(t["job_id"] or "")
        out.append(
            f"  loss {t['amount']:>4} job {t['job_id']} reason={t['reason']} "
            f"(job {owner['state'] if owner else '?'}, error {owner['error'] if owner else '?'})"
        )
    if charged > billed:
        bad.append(f"money: users charged {charged} but the vendor billed only {billed}")
    if billed - charged > lost:
        bad.append(
            f"money: vendor billed {billed}, users charged {charged}: "
            f"{billed - charged} credits neither charged nor booked as a loss ({lost})"
        )
    succeeded = [j for j in jobs if j["state"] == "SUCCEEDED"]
    if len(succeeded) > len(bills):
        bad.append(f"money: {len(succeeded)} jobs charged, only {len(bills)} vendor bills")
    loss_jobs = {t["job_id"] for t in losses}
    if len(bills) > len(succeeded) + len(loss_jobs):
        bad.append(
            f"money: {len(bills)} bills but only {len(succeeded)} charged jobs and "
            f"{len(loss_jobs)} jobs with a booked loss"
        )
    out.append(
        f"billed but not charged: {billed - charged} credits, covered by booked losses "
        f"of {lost} (the rest of the losses are maybe-billed calls the vendor did not "
        f"bill: a conservative booking)"
    )

    # 4. holds: resolved once, agreeing with their job
    per_hold = Counter(t["hold_id"] for t in transfers if t["hold_id"])
    for hold_id, n in per_hold.items():
        if n > 1:
            bad.append(f"hold {hold_id} resolved {n} times")
    for j in jobs:
        hold = holds.get(j["hold_id"] or "")
        if hold is None:
            if j["hold_id"]:
                bad.append(f"job {j['id']} names missing hold {j['hold_id']}")
            continue
        want = {"SUCCEEDED": ("posted",), "FAILED": ("voided", "expired")}.get(j["state"])
        if want and hold["status"] not in want:
            bad.append(f"job {j['id']} is {j['state']} but its hold is {hold['status']}")
        if j["state"] == "SUCCEEDED" and hold["charged"] != (j["cost"] or 0):
            bad.append(f"job {j['id']} cost {j['cost']} but its hold charged {hold['charged']}")
    pending = [h for h in holds.values() if h["status"] == "pending"]
    if pending:
        bad.append(f"{len(pending)} holds still pending")

    # 5. purchases and the sales account
    sales_bad, sales_line = _check_sales(transfers, totals, purchases or {})
    bad += sales_bad
    out.append(sales_line)
    return bad, out


# --- the run -----------------------------------------------------------------------------


async def _start_all(
    workdir: Path, args: argparse.Namespace, database_url: str
) -> tuple[VendorFake, TelegramFake, dict[str, str]]:
    spec = STYLES[args.style]
    style, flavor = spec["fake"]
    vendor = await start_vendor(
        workdir,
        style=style,
        flavor=flavor,
        latency=args.latency,
        fault_rate=args.fault_rate,
        seed=args.seed,
        fault_kinds=spec["faults"],
    )
    telegram = await start_telegram(workdir)
    config = workdir / "vendor.toml"
    # Short timeouts so hangs become timeouts (maybe billed) within the run.
    config.write_text(
        "request_timeout = 4.0\nretry_after_cap = 1.0\nmax_retries = 2\n"
        "poll_initial = 0.3\npoll_max = 1.0\ntask_deadline = 20.0\n"
    )
    extra = {
        "VENDOR_CONFIG": str(config),
        "ADMIN_USER_IDS": f"telegram:{ADMIN}",
        "WELCOME_CREDITS": "600",
        "CREDIT_PACKS": ",".join(f"{c}:{s}" for c, s in PACKS.items()),
        "USER_MAX_ACTIVE_JOBS": "3",
        "USER_JOBS_PER_MINUTE": "30",
        "SWEEP_INTERVAL": "1",
        "DELIVERY_GRACE": "5",
        # Jobs of a killed process come back when their lease runs out: a short one
        # recovers them within the run (the bot's default is 30 s).
        "JOB_LEASE_SECONDS": f"{args.lease:g}",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
    }
    if spec["preset"] == "aigptimage":
        port = random.Random(args.seed).randrange(20_000, 40_000)
        extra["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        extra["PUBLIC_LISTEN"] = f"127.0.0.1:{port}"
    env = bot_env(workdir, telegram, vendor, preset=spec["preset"], extra=extra)
    return vendor, telegram, env


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="imagine-chaos-"))
    print(f"work folder: {workdir}")
    with contextlib.ExitStack() as stack:
        if args.backend == "postgres":
            pg = stack.enter_context(PostgresServer())
            shown = pg.settings("server_version", "fsync", "synchronous_commit")
            print(f"PostgreSQL {pg.url} ({', '.join(f'{k}={v}' for k, v in shown.items())})")
            url = pg.url
        else:
            url = f"sqlite:///{workdir / 'db.sqlite3'}"
        return await _run(args, workdir, url)
    raise AssertionError("unreachable")


async def _run(args: argparse.Namespace, workdir: Path, url: str) -> int:
    rng = random.Random(args.seed)
    print(
        f"JOB_LEASE_SECONDS={args.lease:g} set for this run (the bot's default is 30 s) so "
        f"jobs of killed processes are recovered within it"
    )
    vendor, telegram, env = await _start_all(workdir, args, url)
    holder = [start_bot(workdir, env, workers=args.workers)]
    users = [FIRST_USER + i for i in range(args.users)]
    world = World(rng, users)
    kills: list[tuple[float, str]] = []
    preset = STYLES[args.style]["preset"]
    started = time.monotonic()
    settled = (0, -1, -1)
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            if args.style == "tasks":
                for i, user in enumerate(users):
                    world.photos[user] = await telegram.upload(
                        client, png_bytes(64 + i % 7, 64, (i % 255, 90, 120)), "image/png"
                    )
            # Everybody says hello first so admins can find them by id.
            for user in users:
                await telegram.control(client, "message", {"user_id": user, "text": "/start"})
            until = started + args.duration
            gap = (max(4.0, args.duration / 12), max(8.0, args.duration / 6))
            if args.workers:  # more processes to kill: kill more often
                gap = (gap[0] / 2, gap[1] / 2)
            await asyncio.gather(
                _traffic(client, telegram, world, args.style, args.rate, until),
                _killer(workdir, env, holder, rng, gap, until, kills, args.workers),
            )
            # Traffic stops; let the live bot finish what it can.
            await vendor.post(client, "config", {"fault_rate": 0.0})
            await asyncio.sleep(args.drain)
            # One more crash, then a bot with nothing to do but sweep.
            await _crash_intake(workdir, env, holder, args.workers)
            kills.append((time.monotonic(), "intake"))
            deadline = time.monotonic() + SETTLE_TIMEOUT + args.lease
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                _learn(world, await telegram.poll(client))
                settled = await _jobs_settled(url)
                if settled[1] == 0 and settled[2] == 0:
                    await asyncio.sleep(1.5)  # last notices reach the fake
                    break
            await holder[0].stop(timeout=60)
            await telegram.poll(client)
            bills = await vendor.get(client, "billed")
            requests = await vendor.get(client, "requests")
    finally:
        below = tree_pids(holder[0].pid)[1:]
        for proc in (holder[0], telegram.proc, vendor.proc):
            await proc.stop(timeout=60 if proc is holder[0] else 10)
        for pid in below:  # workers the intake could not stop in time: nothing left running
            if Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    bad, lines = await check(url, telegram.calls, bills, preset, world.purchases)
    actions = sum(world.actions.values())
    if actions == 0:
        bad.insert(0, "no jobs ran: the traffic generator sent no action")
    print(
        f"chaos: style={args.style} preset={preset} backend={args.backend} "
        f"workers={args.workers} duration={args.duration:.0f}s users={args.users} "
        f"seed={args.seed} lease={args.lease:g}s"
    )
    print(f"traffic: {actions} actions {dict(world.actions)}")
    by_kind = Counter(kind for _, kind in kills)
    print(
        f"SIGKILLs: {len(kills)} ({by_kind['intake']} of the intake with its workers, "
        f"the last one after traffic stopped; {by_kind['worker']} of a worker alone)"
    )
    print(f"vendor: {len(requests)} API requests, {len(bills)} billed")
    tg_methods = Counter(c["method"] for c in telegram.calls)
    print(f"telegram calls: {dict(tg_methods)}")
    answers = Counter(
        str(c["params"].get("text", ""))[:60]
        for c in telegram.calls
        if c["method"] in ("sendMessage", "editMessageText") and c["status"] == 200
    )
    print("answers seen most:", "; ".join(f"{n}x {t!r}" for t, n in answers.most_common(8)))
    for line in lines:
        print(line)
    crashes = [line for line in holder[0].text().splitlines() if "Traceback" in line]
    if crashes:
        print(f"bot log has {len(crashes)} tracebacks (see {workdir / 'bot.log'})")
    if bad:
        print(f"\nVIOLATIONS ({len(bad)}):")
        for line in bad[:200]:
            print(f"  - {line}")
    else:
        print("\nOK: no violations")
    if not args.keep and not bad:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if bad else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=180.0, help="seconds of traffic")
    p.add_argument("--users", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--style", choices=tuple(STYLES), default="openai")
    p.add_argument("--rate", type=float, default=4.0, help="actions per second")
    p.add_argument("--latency", type=float, default=1.0, help="vendor latency, seconds")
    p.add_argument("--fault-rate", type=float, default=0.25)
    p.add_argument(
        "--drain",
        type=float,
        default=6.0,
        help="seconds the live bot gets to finish after traffic stops",
    )
    p.add_argument(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the bot's database; postgres starts a throwaway server (bench/_postgres.py)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="K",
        help="worker processes beside the intake: imagine-bot run --workers K (default 0)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=5.0,
        help="JOB_LEASE_SECONDS of the bot for this run (default 5; the bot's own is 30)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    if args.workers < 0:
        p.error("--workers takes 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
