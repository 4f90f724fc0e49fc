"""Run one fake vendor as a standalone process (for benchmarks and manual poking).

    python -m tests.fakes.vendor_server --style openai|envelope|tasks [--flavor F]
        [--port 0] [--key sk-test] [--latency 2.0] [--stream]
        [--fault-rate 0.2 --seed 1 --fault-kinds 429,500,slow]

Prints ``READY http://127.0.0.1:PORT`` (the root URL) then ``BASE_URL <url>`` (what a
client is configured with: ``/v1`` appended for aiearth) and serves until killed.
``--latency``: seconds before each successful image answer (openai/envelope styles,
spread across SSE events when streaming); for the tasks style it is the wall time a
task takes to finish (``task_seconds``). ``--stream`` honours ``stream: true`` even on
flavors whose seed does not document it. Script faults and read bills over HTTP:
``POST /_control/faults`` (JSON list of ``Fault`` fields), ``GET /_control/billed``,
``GET /_control/requests``, ``POST /_control/reset``, ``POST /_control/config``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .vendor_base import FakeVendor
from .vendor_envelope import FakeEnvelopeVendor
from .vendor_openai import FLAVORS, FakeOpenAIVendor
from .vendor_tasks import FakeTaskVendor


def build(args: argparse.Namespace) -> FakeVendor:
    """The fake described by the command line."""
    kinds = args.fault_kinds.split(",") if args.fault_kinds else None
    common = {
        "key": args.key,
        "port": args.port,
        "fault_rate": args.fault_rate,
        "seed": args.seed,
        "random_fault_kinds": kinds,
    }
    fake: FakeVendor
    if args.style == "openai":
        fake = FakeOpenAIVendor(
            flavor=args.flavor or "openai",
            stream=True if args.stream else None,
            latency=args.latency,
            **common,
        )
    elif args.style == "envelope":
        fake = FakeEnvelopeVendor(latency=args.latency, **common)
    else:
        tasks = FakeTaskVendor(**common)
        if args.latency > 0:
            tasks.task_seconds = args.latency
            tasks.task_polls_to_finish = None
        fake = tasks
    return fake


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m tests.fakes.vendor_server",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--style", choices=("openai", "envelope", "tasks"), required=True)
    p.add_argument(
        "--flavor", choices=FLAVORS, default=None, help="openai style only (default: openai)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--key", default="sk-test")
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--fault-kinds",
        default=None,
        help="comma-separated kinds for random faults (default per style)",
    )
    args = p.parse_args(argv)
    if args.flavor and args.style != "openai":
        p.error("--flavor applies to --style openai only")
    return args


async def serve(args: argparse.Namespace) -> None:
    """Start, announce, and serve until SIGTERM/SIGINT."""
    fake = build(args)
    fake.host = args.host
    await fake.start()
    print(f"READY {fake.root_url}", flush=True)
    print(f"BASE_URL {fake.base_url}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
