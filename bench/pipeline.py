"""The whole pipeline at scale: N users send /imagine at the same moment.

Usage: .venv/bin/python bench/pipeline.py [--n 500] [--latency 2.0] [--stream]
           [--resolution 1K|4K|both] [--backend sqlite|postgres] [--workers K] [--keep]

Per resolution it starts three OS processes: the fake vendor (fixed latency L;
``aiearth`` for 1K, ``compat-sizes`` for 4K; no capacity limit of its own, so it
could take all N at once), the fake Telegram Bot API, and the real bot
(``imagine-bot run --workers K`` with ``METRICS_FILE`` set: the intake plus K
worker processes). ``--backend postgres`` starts a throwaway PostgreSQL server
(``bench/_postgres.py``, default durability settings) and points ``DATABASE_URL``
at it. The bot runs with its DEFAULT concurrency settings: the bench sets neither
``VENDOR_CONCURRENCY_MAX`` nor ``WORKER_JOBS``. After one warm-up job per bot
process it queues N ``/imagine <prompt> --ar 1:1 --res <R>`` updates from N
distinct users in one request, waits for every result, and prints figures
computed from the fakes' own timestamps and the bot's own metrics file:

- update -> first status message: from the moment the updates were queued to the
  fake's receipt of the bot's first sendMessage in that chat;
- bot overhead per job: (result received by the fake - update handed to the bot by
  getUpdates) - vendor time (request arrival at the vendor to its answer);
- wall time for all N, next to L and the bot's default vendor limit (its waves);
- event-loop lag inside each bot process over the burst (core.metrics histogram
  deltas; every process writes the one METRICS_FILE with its pid, so the bench
  polls it and keeps each pid's snapshots);
- peak RSS (largest process) and CPU seconds per job summed over the bot's whole
  process tree: the intake and its worker children (/proc/<pid>/stat).

Each figure is compared with its target and marked PASS or MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._postgres import PostgresServer  # noqa: E402
from bench._procs import (  # noqa: E402
    Proc,
    TelegramFake,
    bot_env,
    message_update,
    percentile,
    start_bot,
    start_telegram,
    start_vendor,
    wait_polling,
    wait_workers,
)
from core.metrics import lag_stats, subtract  # noqa: E402
from core.settings import load_settings  # noqa: E402

FIRST_STATUS_P99_MS = 250.0
OVERHEAD_P99_MS = {"1K": 100.0, "4K": 600.0}
WALL_SLACK_S = 1.5
LOOP_LAG_P99_MS = 50.0
PEAK_RSS_MB = 400.0

# Which preset (and fake flavor) can make each resolution.
VENDOR_FOR = {"1K": "aiearth", "4K": "compat-sizes"}
WARMUP_USER = 999


def default_vendor_limit() -> int:
    """The bot's own starting vendor limit (``VENDOR_CONCURRENCY_MAX``'s default)."""
    return load_settings({}, env_file=None).vendor_concurrency_max


@dataclass
class Round:
    resolution: str
    n: int
    latency: float
    cap: int
    backend: str = "sqlite"
    workers: int = 0
    first_status_ms: list[float] = field(default_factory=list)
    handed_over_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    vendor_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    done: int = 0
    failed: list[str] = field(default_factory=list)
    lag: dict[str, float] = field(default_factory=dict)
    rss_mb: float = 0.0
    cpu_per_job_ms: float = 0.0
    intake_cpu_per_job_ms: float = 0.0
    processes: int = 1
    others_cpu_per_job_ms: tuple[float, ...] = (0.0, 0.0, 0.0)
    vendor_max_in_flight: int = 0
    # loop lag per bot process over the burst: (role, pid) -> lag_stats
    lag_by_process: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)


def _metrics(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def _chat(call: dict[str, Any]) -> int | None:
    chat = call["params"].get("chat_id")
    try:
        return int(chat)
    except (TypeError, ValueError):
        return None


def _is_result(call: dict[str, Any]) -> bool:
    """A delivered result carries the reroll button (``r:<job>``); a streamed preview
    photo does not."""
    if call["method"] not in ("sendPhoto", "sendDocument", "sendMessage"):
        return False
    return '"r:' in json.dumps(call["params"].get("reply_markup") or {})


async def _wait_results(
    client: httpx.AsyncClient,
    telegram: TelegramFake,
    users: set[int],
    since: float,
    timeout: float,
    bot: Proc,
) -> tuple[dict[int, float], dict[int, float], dict[int, str]]:
    """First status message time, result time and error text per chat."""
    first: dict[int, float] = {}
    result: dict[int, float] = {}
    errors: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in await telegram.poll(client):
            chat = _chat(call)
            if chat not in users or call["time"] < since or call["status"] != 200:
                continue
            method = call["method"]
            if method == "sendMessage":
                if chat not in first:
                    first[chat] = call["time"]
                elif "charged" in str(call["params"].get("text", "")):
                    errors[chat] = call["params"]["text"]
            elif method == "editMessageText" and "charged" in str(call["params"].get("text")):
                errors[chat] = call["params"]["text"]
            if _is_result(call):
                result.setdefault(chat, call["time"])
        if len(result) + len(errors) >= len(users):
            break
        if not bot.alive():
            raise RuntimeError(f"bot died:\n{bot.text()[-3000:]}")
        await asyncio.sleep(0.2)
    return first, result, errors


def _delivered_at(telegram: TelegramFake, since: float) -> dict[int, float]:
    """When each update id was handed to the bot: the first getUpdates answer that
    carried it (a long poll waiting since before the push counts from the push)."""
    out: dict[int, float] = {}
    for call in telegram.calls:
        if call["method"] != "getUpdates" or not call.get("response"):
            continue
        for update in call["response"].get("result") or []:
            out.setdefault(update["update_id"], max(call["time"], since))
    return out


def _vendor_times(
    requests: list[dict[str, Any]], billed: list[dict[str, Any]], tag: str
) -> dict[int, float]:
    """Vendor time per bench user: request arrival to the vendor's answer.

    The fake records when a request arrived and when it billed (right before it
    answers), but not which request a bill belongs to; with one fixed latency the
    answers come back in arrival order, so the k-th request pairs with the k-th bill."""
    ours = sorted(
        (r for r in requests if r.get("json") and tag in str(r["json"].get("prompt", ""))),
        key=lambda r: r["time"],
    )
    bills = sorted(b["time"] for b in billed)
    bills = bills[len(bills) - len(ours) :] if len(bills) >= len(ours) else bills
    out: dict[int, float] = {}
    for req, bill in zip(ours, bills, strict=False):
        prompt = str(req["json"]["prompt"])
        uid = int(prompt.split(" user ")[1].split()[0])
        out[uid] = bill - req["time"]
    return out


class MetricsWatch:
    """Polls the bot's METRICS_FILE: the intake and every worker rewrite that one
    file (each snapshot names its pid), so each pid's snapshots are kept as seen."""

    def __init__(self, path: Path, interval: float = 0.1) -> None:
        self.path = path
        self.interval = interval
        self.seen: dict[int, list[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    def take(self) -> None:
        snap = _metrics(self.path)
        pid = snap.get("pid")
        if not isinstance(pid, int):
            return
        mine = self.seen.setdefault(pid, [])
        if not mine or mine[-1].get("written_at") != snap.get("written_at"):
            mine.append(snap)

    async def _run(self) -> None:
        while True:
            self.take()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.take()

    def window(self, since: float) -> dict[int, dict[str, float]]:
        """Loop-lag stats per pid between its last snapshot before ``since`` (or
        nothing, if the process had not written yet) and its last snapshot."""
        out: dict[int, dict[str, float]] = {}
        for pid, snaps in self.seen.items():
            before = [s for s in snaps if float(s.get("written_at") or 0) <= since]
            first = (before[-1].get("loop_lag_ms") or {}).get("histogram") or {} if before else {}
            last = (snaps[-1].get("loop_lag_ms") or {}).get("histogram") or {}
            if float(snaps[-1].get("written_at") or 0) > since:
                out[pid] = lag_stats(subtract(last, first))
        return out

    def peak_rss_mb(self) -> float:
        return max(
            (float(s.get("peak_rss_mb") or 0) for snaps in self.seen.values() for s in snaps),
            default=0.0,
        )


def _max_in_flight(requests: list[dict[str, Any]], billed: list[dict[str, Any]], tag: str) -> int:
    """Most of our calls the vendor held at once (arrival +1, its bill -1)."""
    events = [
        (r["time"], 1)
        for r in requests
        if r.get("json") and tag in str(r["json"].get("prompt", ""))
    ]
    events += [(b["time"], -1) for b in billed]
    level = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        level = max(0, level + step)
        peak = max(peak, level)
    return peak


async def run_round(args: argparse.Namespace, resolution: str, workdir: Path) -> Round:
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url = None
        if args.backend == "postgres":
            pg = stack.enter_context(PostgresServer())
            database_url = pg.url
            shown = pg.settings("server_version", "fsync", "synchronous_commit", "max_connections")
            print(f"PostgreSQL {pg.url} ({', '.join(f'{k}={v}' for k, v in shown.items())})")
        return await _run_round(args, resolution, workdir, database_url)
    raise AssertionError("unreachable")


async def _run_round(
    args: argparse.Namespace, resolution: str, workdir: Path, database_url: str | None
) -> Round:
    n, latency, workers = args.n, args.latency, args.workers
    cap = default_vendor_limit()
    preset = VENDOR_FOR[resolution]
    out = Round(resolution, n, latency, cap, args.backend, workers)
    vendor = await start_vendor(workdir, flavor=preset, latency=latency, stream=args.stream)
    telegram = await start_telegram(workdir)
    # Streaming (and its preview uploads) only when asked for, whatever the preset says.
    config = workdir / "vendor.toml"
    config.write_text(f"stream = {'true' if args.stream else 'false'}\n")
    # No concurrency settings: the bot's defaults (VENDOR_CONCURRENCY_MAX, WORKER_JOBS)
    # are what is measured. Each user sends one job, within the default per-user limits.
    extra = {
        "VENDOR_CONFIG": str(config),
        "WELCOME_CREDITS": "1000000",
        "SWEEP_INTERVAL": "3600",
    }
    if database_url:
        extra["DATABASE_URL"] = database_url
    env = bot_env(workdir, telegram, vendor, preset=preset, extra=extra)
    bot = start_bot(workdir, env, workers=workers)
    metrics_file = workdir / "metrics.json"
    watch = MetricsWatch(metrics_file)
    procs = [bot, telegram.proc, vendor.proc]
    limits = httpx.Limits(max_connections=20)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            await wait_polling(client, telegram, bot)
            worker_pids = await wait_workers(bot, workers)
            if len(worker_pids) < workers:
                raise RuntimeError(f"only {len(worker_pids)} of {workers} workers started")
            out.processes = 1 + len(worker_pids)
            # Warm-up jobs, one per bot process, sent together: imports, connection pools
            # and the first Pillow call are paid once per process, not per burst.
            warm_users = {WARMUP_USER + i for i in range(workers + 1)}
            t_warm = time.time()
            await telegram.push(
                client,
                [
                    message_update(
                        uid, f"/imagine warm up --ar 1:1 --res {resolution}", message_id=1
                    )
                    for uid in sorted(warm_users)
                ],
            )
            _, done, errs = await _wait_results(
                client, telegram, warm_users, t_warm, latency + 60, bot
            )
            if set(done) != warm_users:
                raise RuntimeError(f"warm-up jobs failed: {errs or bot.text()[-3000:]}")
            watch.start()
            await asyncio.sleep(1.5)  # every process flushes its metrics past the warm-up
            cpu_before = bot.tree_cpu_seconds()
            intake_before = bot.cpu_seconds()
            others_before = _others_cpu(vendor.proc, telegram.proc)

            tag = f"bench{int(time.time())}"
            users = list(range(10_000, 10_000 + n))
            updates = [
                message_update(
                    uid,
                    f"/imagine {tag} user {uid} a lighthouse at dusk --ar 1:1 --res {resolution}",
                    message_id=1,
                )
                for uid in users
            ]
            t_push = time.time()
            pushed = await telegram.push(client, updates)
            update_user = {u["update_id"]: u["message"]["chat"]["id"] for u in pushed}
            timeout = latency * math.ceil(n / cap) + 120
            first, result, errors = await _wait_results(
                client, telegram, set(users), t_push, timeout, bot
            )
            t_end = max(result.values(), default=time.time())
            cpu_after = bot.tree_cpu_seconds()
            intake_after = bot.cpu_seconds()
            others_after = _others_cpu(vendor.proc, telegram.proc)
            out.rss_mb = bot.tree_peak_rss_mb()
            if len(bot.children()) != workers:
                print(f"warning: {len(bot.children())} worker processes at the end, not {workers}")
            await asyncio.sleep(1.5)
            await watch.stop()
            requests = await vendor.get(client, "requests")
            billed = await vendor.get(client, "billed")
    finally:
        await watch.stop()
        for proc in procs:
            await proc.stop()

    delivered = {
        update_user[uid]: t
        for uid, t in _delivered_at(telegram, t_push).items()
        if uid in update_user
    }
    vendor_s = _vendor_times(requests, billed, tag)
    out.vendor_max_in_flight = _max_in_flight(requests, billed, tag)
    out.done = len(result)
    out.failed = [f"user {u}: {errors.get(u, 'no answer')}" for u in users if u not in result]
    out.wall_s = t_end - t_push
    out.first_status_ms = [(first[u] - t_push) * 1000 for u in users if u in first]
    out.handed_over_ms = [(delivered[u] - t_push) * 1000 for u in users if u in delivered]
    out.vendor_s = list(vendor_s.values())
    for uid in users:
        if uid in result and uid in delivered and uid in vendor_s:
            out.overhead_ms.append(((result[uid] - delivered[uid]) - vendor_s[uid]) * 1000)
    for pid, stats in watch.window(t_push).items():
        role = "intake" if pid == bot.pid else "worker"
        out.lag_by_process[(role, pid)] = stats
    out.lag = out.lag_by_process.get(("intake", bot.pid), {})
    out.cpu_per_job_ms = (cpu_after - cpu_before) / max(1, n) * 1000
    out.intake_cpu_per_job_ms = (intake_after - intake_before) / max(1, n) * 1000
    out.others_cpu_per_job_ms = tuple(
        (a - b) / max(1, n) * 1000 for a, b in zip(others_after, others_before, strict=True)
    )
    out.rss_mb = max(out.rss_mb, watch.peak_rss_mb())
    return out


def _others_cpu(vendor: Proc, telegram: Proc) -> tuple[float, float, float]:
    """CPU seconds of the fake vendor, the fake Telegram API and this driver."""
    return vendor.cpu_seconds(), telegram.cpu_seconds(), time.process_time()


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(r: Round) -> list[tuple[str, bool]]:
    """Print one round's figures; the (target, met) pairs."""
    p = percentile
    print(
        f"\n=== {r.resolution}: N={r.n}, vendor latency L={r.latency:.1f}s, "
        f"backend={r.backend}, workers K={r.workers} ({r.processes} bot processes), "
        f"bot default vendor limit={r.cap} ==="
    )
    print(f"results: {r.done}/{r.n} delivered" + (f", {len(r.failed)} not" if r.failed else ""))
    for line in r.failed[:5]:
        print(f"  {line}")
    fs50, fs99 = p(r.first_status_ms, 0.5), p(r.first_status_ms, 0.99)
    ov50, ov99 = p(r.overhead_ms, 0.5), p(r.overhead_ms, 0.99)
    v50, v99 = p(r.vendor_s, 0.5), p(r.vendor_s, 0.99)
    waves = math.ceil(r.n / r.cap)
    n_fs, n_ov = len(r.first_status_ms), len(r.overhead_ms)
    ho50, ho99 = p(r.handed_over_ms, 0.5), p(r.handed_over_ms, 0.99)
    # getUpdates hands over at most 100 updates per call (as Telegram does), so a
    # burst reaches the bot in batches; the next batch waits for the bot to ask.
    print(f"update -> getUpdates    p50 {ho50:7.1f} ms   p99 {ho99:7.1f} ms")
    print(f"update -> first status  p50 {fs50:7.1f} ms   p99 {fs99:7.1f} ms  (n={n_fs})")
    print(f"vendor time             p50 {v50 * 1000:7.1f} ms   p99 {v99 * 1000:7.1f} ms")
    print(f"bot overhead per job    p50 {ov50:7.1f} ms   p99 {ov99:7.1f} ms  (n={n_ov})")
    print(
        f"wall time for all N     {r.wall_s:7.2f} s    (L={r.latency:.1f}s x {waves} wave(s) "
        f"of the default limit {r.cap}; vendor held at most {r.vendor_max_in_flight} at once)"
    )
    for (role, pid), lag in sorted(r.lag_by_process.items()):
        print(
            f"event-loop lag {role:<6}  max {lag.get('max', 0):6.1f} ms   "
            f"p50 {lag.get('p50', 0):5.1f} ms   p99 {lag.get('p99', 0):5.1f} ms  "
            f"({int(lag.get('samples', 0))} samples, 1 ms buckets, pid {pid})"
        )
    if not r.lag_by_process:
        print("event-loop lag          (no metrics snapshot over the burst)")
    print(f"bot peak RSS            {r.rss_mb:7.1f} MB  (largest of its processes)")
    print(
        f"bot CPU per job         {r.cpu_per_job_ms:7.2f} ms  (all {r.processes} processes; "
        f"the intake alone {r.intake_cpu_per_job_ms:.2f})"
    )
    # The fakes and this driver share the machine's cores with the bot: their CPU is
    # what a bot on the same 2-core box has to leave them.
    vendor_ms, telegram_ms, driver_ms = r.others_cpu_per_job_ms
    print(
        f"others' CPU per job     {sum(r.others_cpu_per_job_ms):7.2f} ms  (fake vendor "
        f"{vendor_ms:.2f}, fake Telegram {telegram_ms:.2f}, this driver {driver_ms:.2f})"
    )
    targets = [
        (
            f"first status p99 {fs99:.0f} ms <= {FIRST_STATUS_P99_MS:.0f} ms",
            fs99 <= FIRST_STATUS_P99_MS and len(r.first_status_ms) == r.n,
        ),
        (
            f"overhead p99 {ov99:.0f} ms <= {OVERHEAD_P99_MS[r.resolution]:.0f} ms "
            f"({r.resolution})",
            ov99 <= OVERHEAD_P99_MS[r.resolution] and len(r.overhead_ms) == r.n,
        ),
    ]
    limit = r.latency * waves + WALL_SLACK_S
    targets.append(
        (
            f"all {r.n} done in {r.wall_s:.2f} s <= L x {waves} + {WALL_SLACK_S} = {limit:.1f} s",
            r.wall_s <= limit and r.done == r.n,
        )
    )
    targets += [
        (
            f"intake loop lag p99 {r.lag.get('p99', 0):.0f} ms <= {LOOP_LAG_P99_MS:.0f} ms",
            bool(r.lag) and r.lag.get("p99", 0) <= LOOP_LAG_P99_MS,
        ),
        (f"peak RSS {r.rss_mb:.0f} MB <= {PEAK_RSS_MB:.0f} MB", r.rss_mb <= PEAK_RSS_MB),
    ]
    for text, ok in targets:
        print(f"  {_verdict(ok)}  {text}")
    return targets


async def main_async(args: argparse.Namespace) -> int:
    resolutions = ["1K", "4K"] if args.resolution == "both" else [args.resolution]
    base = Path(tempfile.mkdtemp(prefix="imagine-bench-"))
    print(f"work folder: {base}  (logs, database, metrics)")
    all_ok = True
    for res in resolutions:
        r = await run_round(args, res, base / res)
        all_ok &= all(ok for _, ok in report(r))
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0 if all_ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=500, help="simultaneous users (default 500)")
    p.add_argument("--latency", type=float, default=2.0, help="vendor latency L in seconds")
    p.add_argument("--stream", action="store_true", help="vendor answers as server-sent events")
    p.add_argument("--resolution", choices=("1K", "4K", "both"), default="both")
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
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    if args.workers < 0:
        p.error("--workers takes 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
