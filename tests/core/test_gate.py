"""The global cap on vendor calls: never more than its capacity, slots go to the
user with the fewest running calls, and waiters learn their position."""

from __future__ import annotations

import asyncio

from core.gate import FairGate


async def test_capacity_and_fair_order() -> None:
    gate = FairGate(2)
    order: list[str] = []
    release = asyncio.Event()
    running = 0
    peak = 0

    async def call(user: str, tag: str) -> None:
        nonlocal running, peak
        async with gate.slot(user):
            running += 1
            peak = max(peak, running)
            order.append(tag)
            await release.wait()
            running -= 1

    # One user floods the queue first; two others arrive later.
    tasks = [asyncio.create_task(call("greedy", f"g{i}")) for i in range(5)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(call("alice", "a")), asyncio.create_task(call("bob", "b"))]
    await asyncio.sleep(0.01)
    assert order == ["g0", "g1"] and gate.waiting == 5
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2
    # alice and bob run no call, so they go before greedy's third and later ones.
    assert order.index("a") < order.index("g2") and order.index("b") < order.index("g2")


async def test_positions_are_reported_and_cancelled_waiters_leave() -> None:
    gate = FairGate(1)
    hold = asyncio.Event()
    seen: dict[str, list[int]] = {"x": [], "y": []}

    def reporter(name: str):  # type: ignore[no-untyped-def]
        async def report(position: int) -> None:
            seen[name].append(position)

        return report

    async def call(name: str) -> None:
        async with gate.slot(name, reporter(name) if name in seen else None):
            await hold.wait()

    first = asyncio.create_task(call("w"))
    await asyncio.sleep(0)
    x = asyncio.create_task(call("x"))
    await asyncio.sleep(0)
    y = asyncio.create_task(call("y"))
    await asyncio.sleep(0.01)
    assert seen == {"x": [1], "y": [2]}
    x.cancel()
    await asyncio.sleep(0.01)
    assert seen["y"] == [2, 1]
    hold.set()
    await asyncio.gather(first, y)
    assert gate.in_use == 0 and gate.waiting == 0
