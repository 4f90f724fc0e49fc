"""Hypothesis stateful test: the ledger (SQLite, then PostgreSQL) against a tiny
in-memory model.

Random sequences of top-ups, deductions, reserves, posts (random amount <= held),
voids, expiries, idempotent replays, rolled-back transactions and "crashes"
(close the store and reopen the file).  After every step the books must balance
and agree with the model.  Hypothesis's state machine is synchronous, so async
calls run on a private event loop owned by the machine.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from storage import (
    SYSTEM_REVENUE,
    SYSTEM_TOPUP,
    IdempotencyConflict,
    InsufficientFunds,
    Store,
    open_store,
)
from tests.pg import PgServer

T = TypeVar("T")


@dataclass
class ModelHold:
    account: int
    amount: int
    status: str = "pending"
    charged: int = 0


@dataclass(frozen=True)
class ModelTransfer:
    debit: int
    credit: int
    amount: int
    kind: str


class _Rollback(Exception):
    pass


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-sm-"))
        self.path = self.make_url()
        self.store: Store = self.run(open_store(self.path))
        self.balances: dict[int, int] = {}
        self.users: list[int] = []
        self.holds: dict[str, ModelHold] = {}
        self.transfers: dict[str, ModelTransfer] = {}
        self.counter = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def make_url(self) -> str:
        """The database this example runs on (a fresh SQLite file here)."""
        return str(self.dir / "ledger.sqlite3")

    async def drop(self) -> None:
        """Remove what ``make_url`` made beyond ``self.dir`` (nothing here)."""

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
            self.run(self.drop())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def pending(self, account: int) -> int:
        return sum(
            h.amount for h in self.holds.values() if h.account == account and h.status == "pending"
        )

    def available(self, account: int) -> int:
        return self.balances[account] - self.pending(account)

    # ------------------------------------------------------------------ setup

    @initialize()
    def setup(self) -> None:
        async def go() -> None:
            async with self.store.transaction() as tx:
                self.topup = (await self.store.ledger.system_account(tx, SYSTEM_TOPUP)).id
                self.revenue = (await self.store.ledger.system_account(tx, SYSTEM_REVENUE)).id
                for uid in ("1", "2", "3"):
                    acct = await self.store.ledger.get_or_create_account(tx, "telegram", uid)
                    self.users.append(acct.id)

        self.run(go())
        self.balances = {a: 0 for a in (*self.users, self.topup, self.revenue)}

    # ------------------------------------------------------------------ transfers

    def _apply_transfer(self, tid: str, t: ModelTransfer) -> None:
        self.transfers[tid] = t
        self.balances[t.debit] -= t.amount
        self.balances[t.credit] += t.amount

    @rule(user=st.integers(0, 2), amount=st.integers(1, 120))
    def topup(self, user: int, amount: int) -> None:
        acct, tid = self.users[user], self.next_id("top")

        async def go() -> None:
            async with self.store.transaction() as tx:
                await self.store.ledger.transfer(tx, tid, self.topup, acct, amount, "topup")

        self.run(go())
        self._apply_transfer(tid, ModelTransfer(self.topup, acct, amount, "topup"))

    @rule(user=st.integers(0, 2), amount=st.integers(1, 120))
    def deduct(self, user: int, amount: int) -> None:
        acct, tid = self.users[user], self.next_id("ded")

        async def go() -> bool:
            async with self.store.transaction() as tx:
                try:
                    await self.store.ledger.transfer(tx, tid, acct, self.topup, amount, "deduct")
                except InsufficientFunds as e:
                    assert (e.available, e.needed) == (self.available(acct), amount)
                    return False
            return True

        ok = self.run(go())
        assert ok == (amount <= self.available(acct))
        if ok:
            self._apply_transfer(tid, ModelTransfer(acct, self.topup, amount, "deduct"))

    @precondition(lambda self: bool(self.transfers))
    @rule(pick=st.integers(0, 10_000), tamper=st.booleans())
    def replay_transfer(self, pick: int, tamper: bool) -> None:
        tid = sorted(self.transfers)[pick % len(self.transfers)]
        t = self.transfers[tid]

        async def go() -> None:
            async with self.store.transaction() as tx:
                if tamper:
                    with pytest.raises(IdempotencyConflict):
                        await self.store.ledger.transfer(
                            tx, tid, t.debit, t.credit, t.amount + 1, t.kind
                        )
                else:
                    got = await self.store.ledger.transfer(
                        tx, tid, t.debit, t.credit, t.amount, t.kind
                    )
                    assert (got.debit_account_id, got.credit_account_id, got.amount) == (
                        t.debit,
                        t.credit,
                        t.amount,
                    )

        self.run(go())

    # ------------------------------------------------------------------ holds

    @rule(user=st.integers(0, 2), amount=st.integers(1, 80))
    def reserve(self, user: int, amount: int) -> None:
        acct, hid = self.users[user], self.next_id("hold")

        async def go() -> bool:
            async with self.store.transaction() as tx:
                try:
                    await self.store.ledger.reserve(tx, hid, acct, amount)
                except InsufficientFunds as e:
                    assert (e.available, e.needed) == (self.available(acct), amount)
                    return False
            return True

        ok = self.run(go())
        assert ok == (amount <= self.available(acct))
        if ok:
            self.holds[hid] = ModelHold(acct, amount)

    @precondition(lambda self: bool(self.holds))
    @rule(pick=st.integers(0, 10_000))
    def replay_reserve(self, pick: int) -> None:
        hid = sorted(self.holds)[pick % len(self.holds)]
        h = self.holds[hid]

        async def go() -> None:
            async with self.store.transaction() as tx:
                got = await self.store.ledger.reserve(tx, hid, h.account, h.amount)
                assert got.status == h.status

        self.run(go())

    @precondition(lambda self: bool(self.holds))
    @rule(
        pick=st.integers(0, 10_000),
        frac=st.floats(0, 1),
        op=st.sampled_from(["post", "void", "expire"]),
    )
    def resolve(self, pick: int, frac: float, op: str) -> None:
        hid = sorted(self.holds)[pick % len(self.holds)]
        h = self.holds[hid]
        amount = int(h.amount * frac)

        async def go() -> Any:
            async with self.store.transaction() as tx:
                if op == "post":
                    return await self.store.ledger.post(tx, hid, amount)
                if op == "void":
                    return await self.store.ledger.void(tx, hid, "test")
                return await self.store.ledger.expire(tx, hid)

        res = self.run(go())
        if h.status == "pending":
            assert not res.already
            h.status = {"post": "posted", "void": "voided", "expire": "expired"}[op]
            if op == "post":
                h.charged = amount
                if amount:
                    self._apply_transfer(
                        f"charge:{hid}", ModelTransfer(h.account, self.revenue, amount, "charge")
                    )
        else:
            # Second resolution of any kind: nothing changes, first one reported.
            assert res.already
        assert (res.status, res.charged, res.held) == (h.status, h.charged, h.amount)

    # ------------------------------------------------------------------ failures

    @rule(user=st.integers(0, 2), amount=st.integers(1, 50))
    def rolled_back_transaction(self, user: int, amount: int) -> None:
        acct = self.users[user]

        async def go() -> None:
            with pytest.raises(_Rollback):
                async with self.store.transaction() as tx:
                    await self.store.ledger.transfer(
                        tx, self.next_id("lost"), self.topup, acct, amount, "topup"
                    )
                    # Funded by the top-up above, so this reserve always succeeds.
                    await self.store.ledger.reserve(tx, self.next_id("lost"), acct, amount)
                    raise _Rollback

        self.run(go())  # model unchanged: nothing may survive the rollback

    @rule()
    def crash_and_reopen(self) -> None:
        self.run(self.store.close())
        self.store = self.run(open_store(self.path))

    # ------------------------------------------------------------------ invariants

    @invariant()
    def books_balance_and_match_model(self) -> None:
        if not self.users:
            return

        async def go() -> None:
            async with self.store.read() as tx:
                assert await self.store.ledger.check_invariants(tx) == []
                for acct, posted in self.balances.items():
                    a = await self.store.ledger.get_account(tx, acct)
                    assert a.balance == posted, (acct, a.balance, posted)
                    if a.kind == "user":
                        assert a.pending == self.pending(acct)
                        assert a.available >= 0
                open_ids = {h.id for h in await self.store.ledger.open_holds(tx)}
                assert open_ids == {k for k, h in self.holds.items() if h.status == "pending"}
                tot = await self.store.ledger.totals(tx)
                assert tot["sum"] == 0

        self.run(go())
        assert sum(self.balances.values()) == 0


LedgerMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerStateful = LedgerMachine.TestCase


class PgLedgerMachine(LedgerMachine):
    """The same machine on PostgreSQL: a fresh database per example ("crashes"
    close the pool and reconnect)."""

    server: PgServer | None = None

    def make_url(self) -> str:
        assert self.server is not None
        return self.run(self.server.create_database())

    async def drop(self) -> None:
        assert self.server is not None
        await self.server.drop_database(self.path)


def test_ledger_stateful_postgres(pg_server: PgServer) -> None:
    PgLedgerMachine.server = pg_server
    try:
        # Fewer examples than on SQLite: each one costs a database and a pool.
        run_state_machine_as_test(
            PgLedgerMachine,
            settings=settings(
                max_examples=10,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        PgLedgerMachine.server = None
