"""CPU per vendor request: httpx's own transport against ``core.http_transport``.

Usage: .venv/bin/python bench/vendor_transport.py [--n 500] [--rounds 4]

Starts a small JSON server as its own OS process (so its CPU is not counted), then
sends ``--rounds`` bursts of N concurrent POSTs through an ``httpx.AsyncClient``
with each transport in turn and prints the client's CPU time per request. The
pool holds N connections and is warmed first, as the bot's is after its first jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.http_transport import AiohttpTransport  # noqa: E402

SERVER = """
import json, sys
from aiohttp import web

async def answer(request):
    await request.read()
    body = json.dumps({"created": 1, "data": [{"url": "http://127.0.0.1/r.png"}]})
    return web.Response(body=body.encode(), content_type="application/json")

app = web.Application()
app.router.add_post("/v1/images/generations", answer)
ready = lambda *_: print("READY", flush=True)  # noqa: E731
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=ready)
"""


class ShardedPools(httpx.AsyncBaseTransport):
    """What the vendor clients used before ``core.http_transport``: httpcore's pool
    rescans all its connections per request, so N connections were split into
    pools of 8 (the shape that measured best)."""

    def __init__(self, n: int, shard: int = 8) -> None:
        size = httpx.Limits(max_connections=shard, max_keepalive_connections=shard)
        self._pools = [httpx.AsyncHTTPTransport(limits=size) for _ in range(-(-n // shard))]
        self._next = itertools.cycle(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


async def burst(client: httpx.AsyncClient, n: int) -> None:
    async def one() -> None:
        response = await client.post(
            "images/generations", json={"prompt": "a lighthouse at dusk " * 10, "n": 1}
        )
        response.raise_for_status()
        response.json()

    await asyncio.gather(*(one() for _ in range(n)))


async def measure(
    name: str, transport: httpx.AsyncBaseTransport, url: str, n: int, rounds: int
) -> float:
    async with httpx.AsyncClient(
        base_url=url, transport=transport, headers={"Authorization": "Bearer bench"}, timeout=60
    ) as client:
        await burst(client, n)  # open and warm the pool
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            await burst(client, n)
        per_request = (time.process_time() - cpu) / (n * rounds) * 1000
        print(
            f"{name:<20} {per_request:6.2f} ms CPU per request   "
            f"({rounds} x {n} concurrent, {time.perf_counter() - wall:.2f} s wall)"
        )
        return per_request


async def main_async(args: argparse.Namespace) -> None:
    port = 18_000 + (hash(time.time()) % 2000)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(port), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        if (await server.stdout.readline()).strip() != b"READY":
            raise RuntimeError("the bench server did not start")
        url = f"http://127.0.0.1:{port}/v1/"
        limits = httpx.Limits(max_connections=args.n, max_keepalive_connections=args.n)
        one_pool = httpx.AsyncHTTPTransport(limits=limits)
        await measure("httpx, one pool", one_pool, url, args.n, args.rounds)
        sharded = await measure("httpx, pools of 8", ShardedPools(args.n), url, args.n, args.rounds)
        ours = await measure(
            "core.http_transport", AiohttpTransport(args.n), url, args.n, args.rounds
        )
        print(f"core.http_transport / pools of 8: {ours / sharded:.2f}")
    finally:
        server.terminate()
        await server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=500, help="concurrent requests per burst")
    parser.add_argument("--rounds", type=int, default=4, help="measured bursts")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
