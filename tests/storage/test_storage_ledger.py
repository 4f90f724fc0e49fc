"""Unit tests for the ledger (both backends): transfers, holds, idempotency, invariants."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest
from storage_raw import raw_execute
from storage_test_clock import FakeClock

from storage import (
    SYSTEM_REVENUE,
    SYSTEM_TOPUP,
    SYSTEM_WELCOME,
    Account,
    AccountNotFound,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    StorageError,
    Store,
)


async def _user(store: Store, uid: str = "1", credits: int = 0, **kw: object) -> Account:
    async with store.transaction() as tx:
        acct = await store.ledger.get_or_create_account(tx, "telegram", uid, **kw)  # type: ignore[arg-type]
        if credits:
            topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
            await store.ledger.transfer(
                tx, f"seed:{uid}", topup.id, acct.id, credits, "topup", actor="test"
            )
        return await store.ledger.get_account(tx, acct.id)


async def _invariants(store: Store) -> list[str]:
    async with store.read() as tx:
        return await store.ledger.check_invariants(tx)


# ----------------------------------------------------------------- accounts


async def test_system_accounts_exist_and_sum_zero(store: Store) -> None:
    async with store.read() as tx:
        for name in ("system:topup", "system:revenue", "system:vendor_loss", "system:welcome"):
            acct = await store.ledger.system_account(tx, name)
            assert acct.kind == "system" and acct.name == name and acct.balance == 0
        assert (await store.ledger.system_account(tx, "topup")).name == SYSTEM_TOPUP
        with pytest.raises(AccountNotFound):
            await store.ledger.system_account(tx, "system:nope")
        assert await store.ledger.check_invariants(tx) == []


async def test_get_or_create_is_stable_and_username_lookup(store: Store) -> None:
    a1 = await _user(store, "42", username="@Alice")
    a2 = await _user(store, "42")
    assert a1.id == a2.id and a2.username == "Alice"
    async with store.transaction() as tx:
        assert (await store.ledger.find_by_username(tx, "telegram", "alice")) == a2
        assert (await store.ledger.find_by_username(tx, "telegram", "@ALICE")) is not None
        assert await store.ledger.find_by_username(tx, "discord", "alice") is None
        assert await store.ledger.find_account(tx, "telegram", "42") == a2
        assert await store.ledger.find_account(tx, "telegram", "43") is None
        # Username moves to another user: lookups follow the new holder.
        b = await store.ledger.get_or_create_account(tx, "telegram", "43", username="alice")
        found = await store.ledger.find_by_username(tx, "telegram", "Alice")
        assert found is not None and found.id == b.id
        assert (await store.ledger.get_account(tx, a1.id)).username is None
        with pytest.raises(AccountNotFound):
            await store.ledger.get_account(tx, 9999)
        with pytest.raises(StorageError):
            await store.ledger.get_or_create_account(tx, "system", "x")
        # A renamed user keeps the account and is found under the new name.
        renamed = await store.ledger.get_or_create_account(tx, "telegram", "42", username="Alicia")
        assert renamed.id == a1.id and renamed.username == "Alicia"
        assert await store.ledger.find_by_username(tx, "telegram", "alicia") == renamed


async def test_welcome_grant_only_once(store: Store) -> None:
    a = await _user(store, "7", welcome_grant=25)
    assert a.balance == 25
    a = await _user(store, "7", welcome_grant=25)
    a = await _user(store, "7", welcome_grant=99)  # config changed: still only once
    assert a.balance == 25
    async with store.read() as tx:
        hist = await store.ledger.history(tx, a.id)
        assert [t.transfer_id for t in hist] == ["welcome:telegram:7"]
        assert hist[0].kind == "grant"
        assert (await store.ledger.system_account(tx, SYSTEM_WELCOME)).balance == -25
    assert await _invariants(store) == []


# ----------------------------------------------------------------- transfers


async def test_transfer_moves_and_replay_is_idempotent(store: Store) -> None:
    a = await _user(store)
    async with store.transaction() as tx:
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        t1 = await store.ledger.transfer(tx, "tp1", topup.id, a.id, 100, "topup", actor="adm")
        t2 = await store.ledger.transfer(tx, "tp1", topup.id, a.id, 100, "topup", actor="adm")
        assert t1 == t2
        assert (await store.ledger.balance(tx, a.id)).posted == 100
        with pytest.raises(IdempotencyConflict):
            await store.ledger.transfer(tx, "tp1", topup.id, a.id, 101, "topup")
        with pytest.raises(IdempotencyConflict):
            await store.ledger.transfer(tx, "tp1", a.id, topup.id, 100, "deduct")
        # Domain errors leave the transaction usable.
        assert (await store.ledger.balance(tx, a.id)).posted == 100
    # Replay in a later transaction too.
    async with store.transaction() as tx:
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        again = await store.ledger.transfer(tx, "tp1", topup.id, a.id, 100, "topup")
        assert again.seq == t1.seq
        assert (await store.ledger.balance(tx, a.id)).posted == 100
        assert (await store.ledger.system_account(tx, SYSTEM_TOPUP)).balance == -100
    assert await _invariants(store) == []


async def test_transfer_validation(store: Store) -> None:
    a = await _user(store, credits=10)
    async with store.transaction() as tx:
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        for bad in (0, -5):
            with pytest.raises(InvalidAmount):
                await store.ledger.transfer(tx, "x", topup.id, a.id, bad, "topup")
        with pytest.raises(InvalidAmount):
            await store.ledger.transfer(tx, "x", a.id, a.id, 1, "topup")
        with pytest.raises(InvalidAmount):
            await store.ledger.transfer(tx, "x", topup.id, a.id, True, "topup")
        with pytest.raises(AccountNotFound):
            await store.ledger.transfer(tx, "x", 9999, a.id, 1, "topup")
        with pytest.raises(InsufficientFunds) as ei:
            await store.ledger.transfer(tx, "d1", a.id, topup.id, 11, "deduct")
        assert (ei.value.available, ei.value.needed) == (10, 11)
        # Overdraft flag does not let a user go negative (schema invariant).
        with pytest.raises(InsufficientFunds):
            await store.ledger.transfer(
                tx, "d2", a.id, topup.id, 11, "deduct", allow_overdraft=True
            )
        await store.ledger.transfer(tx, "d3", a.id, topup.id, 10, "deduct")
        assert (await store.ledger.balance(tx, a.id)).posted == 0
        # System accounts may go negative.
        vl = await store.ledger.system_account(tx, "system:vendor_loss")
        rev = await store.ledger.system_account(tx, SYSTEM_REVENUE)
        await store.ledger.transfer(tx, "vl1", vl.id, rev.id, 5, "vendor_loss")
        assert (await store.ledger.get_account(tx, vl.id)).balance == -5
    assert await _invariants(store) == []


async def test_credit_to_missing_account_writes_nothing(store: Store) -> None:
    a = await _user(store, credits=10)
    async with store.transaction() as tx:
        with pytest.raises(AccountNotFound):
            await store.ledger.transfer(tx, "x", a.id, 9999, 5, "deduct")
        # Checked before the debit: the transaction is still clean and commits.
    async with store.read() as tx:
        assert (await store.ledger.balance(tx, a.id)).posted == 10
        assert await store.ledger.get_transfer(tx, "x") is None


async def test_driver_error_poisons_transaction(store: Store) -> None:
    a = await _user(store, credits=10)
    with pytest.raises(StorageError, match="rolled back"):
        async with store.transaction() as tx:
            await store.ledger.reserve(tx, "h", a.id, 5)
            with pytest.raises(StorageError, match="append-only"):
                await raw_execute(tx, "DELETE FROM transfers")
            # Caller swallowed the error; the commit must still be refused.
    async with store.read() as tx:
        assert await store.ledger.get_hold(tx, "h") is None


async def test_set_balance_corrects_with_transfers(store: Store) -> None:
    a = await _user(store, credits=50)
    async with store.transaction() as tx:
        up = await store.ledger.set_balance(tx, "sb1", a.id, 80, actor="adm", reason="fix")
        assert up is not None and up.amount == 30 and up.credit_account_id == a.id
        assert up.kind == "correction"
        # Replaying the same correction id does nothing more.
        assert await store.ledger.set_balance(tx, "sb1", a.id, 80, actor="adm", reason="x") == up
        assert await store.ledger.set_balance(tx, "sb2", a.id, 80, actor="adm", reason="x") is None
        down = await store.ledger.set_balance(tx, "sb3", a.id, 5, actor="adm", reason="fix")
        assert down is not None and down.amount == 75 and down.debit_account_id == a.id
        assert (await store.ledger.balance(tx, a.id)).posted == 5
        await store.ledger.reserve(tx, "h", a.id, 4)
        with pytest.raises(InvalidAmount):
            await store.ledger.set_balance(tx, "sb4", a.id, 3, actor="adm", reason="x")
        with pytest.raises(InvalidAmount):
            await store.ledger.set_balance(tx, "sb5", a.id, -1, actor="adm", reason="x")
        assert await store.ledger.set_balance(tx, "sb6", a.id, 4, actor="adm", reason="x")
        b = await store.ledger.balance(tx, a.id)
        assert (b.posted, b.pending, b.available) == (4, 4, 0)
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        assert topup.balance == -4
        with pytest.raises(IdempotencyConflict):
            other = await store.ledger.get_or_create_account(tx, "telegram", "2")
            await store.ledger.set_balance(tx, "sb1", other.id, 1, actor="adm", reason="x")
    assert await _invariants(store) == []


# ----------------------------------------------------------------- holds


async def test_reserve_post_partial_releases_rest(store: Store) -> None:
    a = await _user(store, credits=100)
    async with store.transaction() as tx:
        h = await store.ledger.reserve(tx, "h1", a.id, 40, job_id="j1", expires_at=123.0)
        assert (h.status, h.amount, h.job_id, h.expires_at) == ("pending", 40, "j1", 123.0)
        b = await store.ledger.balance(tx, a.id)
        assert (b.posted, b.pending, b.available) == (100, 40, 60)
    async with store.transaction() as tx:
        r = await store.ledger.post(tx, "h1", 25)
        assert (r.status, r.held, r.charged, r.released, r.already) == ("posted", 40, 25, 15, False)
        assert r.transfer_id == "charge:h1"
        b = await store.ledger.balance(tx, a.id)
        assert (b.posted, b.pending, b.available) == (75, 0, 75)
        rev = await store.ledger.system_account(tx, SYSTEM_REVENUE)
        assert rev.balance == 25
        charge = (await store.ledger.history(tx, a.id, limit=1))[0]
        assert (charge.kind, charge.amount, charge.hold_id, charge.job_id) == (
            "charge",
            25,
            "h1",
            "j1",
        )
        hold = await store.ledger.get_hold(tx, "h1")
        assert hold is not None and hold.status == "posted" and hold.charged == 25
    assert await _invariants(store) == []


async def test_post_zero_and_full_and_custom_transfer_id(store: Store) -> None:
    a = await _user(store, credits=100)
    async with store.transaction() as tx:
        await store.ledger.reserve(tx, "z", a.id, 10)
        await store.ledger.reserve(tx, "f", a.id, 10)
        r0 = await store.ledger.post(tx, "z", 0)
        assert (r0.charged, r0.released, r0.transfer_id) == (0, 10, None)
        rf = await store.ledger.post(tx, "f", 10, transfer_id="my-charge")
        assert (rf.charged, rf.released, rf.transfer_id) == (10, 0, "my-charge")
        assert (await store.ledger.balance(tx, a.id)).available == 90
        assert len(await store.ledger.history(tx, a.id)) == 2  # seed + one charge
    assert await _invariants(store) == []


async def test_second_resolution_changes_nothing(store: Store, clock: FakeClock) -> None:
    a = await _user(store, credits=100)
    async with store.transaction() as tx:
        await store.ledger.reserve(tx, "h", a.id, 30)
        first = await store.ledger.post(tx, "h", 20)
    clock.advance(10)
    async with store.transaction() as tx:
        for again in (
            await store.ledger.post(tx, "h", 20),
            await store.ledger.post(tx, "h", 5),
            await store.ledger.post(tx, "h", 999),  # even an invalid amount: already resolved
            await store.ledger.void(tx, "h", "late"),
            await store.ledger.expire(tx, "h"),
        ):
            assert again.already is True
            assert (again.status, again.charged, again.released, again.resolved_at) == (
                "posted",
                20,
                10,
                first.resolved_at,
            )
        b = await store.ledger.balance(tx, a.id)
        assert (b.posted, b.pending) == (80, 0)
        await store.ledger.reserve(tx, "v", a.id, 30)
        v = await store.ledger.void(tx, "v", "vendor error")
        assert (v.status, v.released, v.reason, v.already) == ("voided", 30, "vendor error", False)
        v2 = await store.ledger.post(tx, "v", 30)
        assert (v2.status, v2.already, v2.charged) == ("voided", True, 0)
        await store.ledger.reserve(tx, "e", a.id, 30)
        e = await store.ledger.expire(tx, "e")
        assert (e.status, e.already) == ("expired", False)
        assert (await store.ledger.void(tx, "e", "x")).status == "expired"
        b = await store.ledger.balance(tx, a.id)
        assert (b.posted, b.pending) == (80, 0)
    assert await _invariants(store) == []


async def test_hold_errors(store: Store) -> None:
    a = await _user(store, credits=50)
    async with store.transaction() as tx:
        with pytest.raises(InsufficientFunds) as ei:
            await store.ledger.reserve(tx, "big", a.id, 51)
        assert (ei.value.available, ei.value.needed) == (50, 51)
        await store.ledger.reserve(tx, "h1", a.id, 30)
        with pytest.raises(InsufficientFunds) as ei:
            await store.ledger.reserve(tx, "h2", a.id, 21)
        assert (ei.value.available, ei.value.needed) == (20, 21)
        with pytest.raises(InvalidAmount):
            await store.ledger.reserve(tx, "h3", a.id, 0)
        with pytest.raises(AccountNotFound):
            await store.ledger.reserve(tx, "h4", 9999, 1)
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        with pytest.raises(StorageError):
            await store.ledger.reserve(tx, "h5", topup.id, 1)
        with pytest.raises(InvalidAmount):
            await store.ledger.post(tx, "h1", 31)
        with pytest.raises(InvalidAmount):
            await store.ledger.post(tx, "h1", -1)
        for op in (
            store.ledger.post(tx, "nope", 1),
            store.ledger.void(tx, "nope", "x"),
            store.ledger.expire(tx, "nope"),
        ):
            with pytest.raises(HoldNotFound):
                await op
        # Replay of a reserve: same input -> same hold, no double pending.
        again = await store.ledger.reserve(tx, "h1", a.id, 30)
        assert again.amount == 30
        assert (await store.ledger.balance(tx, a.id)).pending == 30
        with pytest.raises(IdempotencyConflict):
            await store.ledger.reserve(tx, "h1", a.id, 31)
        # post with a transfer id that is already taken.
        with pytest.raises(IdempotencyConflict):
            await store.ledger.post(tx, "h1", 5, transfer_id="seed:1")
        assert (await store.ledger.get_hold(tx, "h1")).status == "pending"  # type: ignore[union-attr]
    assert await _invariants(store) == []


async def test_failed_reserve_rolled_back_with_transaction(store: Store) -> None:
    a = await _user(store, credits=50)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await store.ledger.reserve(tx, "h", a.id, 10)
            raise RuntimeError("crash before commit")
    async with store.read() as tx:
        assert await store.ledger.get_hold(tx, "h") is None
        assert (await store.ledger.balance(tx, a.id)).pending == 0


async def test_open_expired_and_job_holds(store: Store) -> None:
    a = await _user(store, credits=100)
    async with store.transaction() as tx:
        await store.ledger.reserve(tx, "h1", a.id, 10, job_id="j1", expires_at=100.0)
        await store.ledger.reserve(tx, "h2", a.id, 10, job_id="j1", expires_at=200.0)
        await store.ledger.reserve(tx, "h3", a.id, 10, job_id="j2")
        assert {h.id for h in await store.ledger.open_holds(tx)} == {"h1", "h2", "h3"}
        assert [h.id for h in await store.ledger.expired_holds(tx, 150.0)] == ["h1"]
        assert [h.id for h in await store.ledger.holds_for_job(tx, "j1")] == ["h1", "h2"]
        await store.ledger.expire(tx, "h1")
        assert await store.ledger.expired_holds(tx, 150.0) == []
        assert {h.id for h in await store.ledger.open_holds(tx)} == {"h2", "h3"}


async def test_history_newest_first_and_totals(store: Store, clock: FakeClock) -> None:
    a = await _user(store, credits=100, welcome_grant=5)
    async with store.transaction() as tx:
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        clock.advance(1)
        await store.ledger.reserve(tx, "h", a.id, 20)
        await store.ledger.post(tx, "h", 15)
        clock.advance(1)
        await store.ledger.transfer(tx, "ded", a.id, topup.id, 7, "deduct", actor="adm")
        hist = await store.ledger.history(tx, a.id)
        assert [t.kind for t in hist] == ["deduct", "charge", "topup", "grant"]
        assert [t.delta_for(a.id) for t in hist] == [-7, -15, 100, 5]
        assert [t.kind for t in await store.ledger.history(tx, a.id, limit=2)] == [
            "deduct",
            "charge",
        ]
        tot = await store.ledger.totals(tx)
        assert tot["system:revenue"] == 15
        assert tot["system:topup"] == -93
        assert tot["system:welcome"] == -5
        assert tot["users_balance"] == 83
        assert tot["sum"] == 0


async def test_check_invariants_detects_tampering(store: Store) -> None:
    """The checker must actually catch broken books (edit rows behind the repo)."""
    a = await _user(store, credits=100)
    async with store.transaction() as tx:
        await store.ledger.reserve(tx, "h", a.id, 10)

    class Undo(Exception):
        pass

    with pytest.raises(Undo):  # roll the tampering back afterwards
        async with store.transaction() as tx:
            await raw_execute(
                tx, "UPDATE accounts SET balance = balance + 1, pending = 3 WHERE id = ?", a.id
            )
            joined = "\n".join(await store.ledger.check_invariants(tx))
            assert "sum of all balances is 1" in joined
            assert "pending is 3 but open holds sum to 10" in joined
            assert "transfers sum to 100" in joined
            raise Undo
    assert await _invariants(store) == []


async def test_transfers_are_append_only(store: Store) -> None:
    await _user(store, credits=10)
    with pytest.raises(StorageError, match="append-only"):
        async with store.transaction() as tx:
            await raw_execute(tx, "UPDATE transfers SET amount = 1")
    with pytest.raises(StorageError, match="append-only"):
        async with store.transaction() as tx:
            await raw_execute(tx, "DELETE FROM transfers")


async def test_concurrent_resolutions_and_crossed_transfers(store: Store) -> None:
    """Many transactions at once (on PostgreSQL: many connections): a hold is
    resolved exactly once, and transfers crossing between the same two accounts in
    both directions neither deadlock nor overdraw."""
    a = await _user(store, "1", credits=100)
    b = await _user(store, "2", credits=100)
    async with store.transaction() as tx:
        await store.ledger.reserve(tx, "h", a.id, 30)

    async def resolve(i: int) -> bool:
        async with store.transaction() as tx:
            if i % 3 == 0:
                r = await store.ledger.post(tx, "h", 10)
            elif i % 3 == 1:
                r = await store.ledger.void(tx, "h", "x")
            else:
                r = await store.ledger.expire(tx, "h")
            await asyncio.sleep(0.001)
        return not r.already

    assert sum(await asyncio.gather(*(resolve(i) for i in range(12)))) == 1

    async def cross(i: int) -> bool:
        src, dst = (a.id, b.id) if i % 2 else (b.id, a.id)
        try:
            async with store.transaction() as tx:
                await store.ledger.transfer(tx, f"x{i}", src, dst, 40, "gift")
                await asyncio.sleep(0.001)
        except InsufficientFunds:
            return False
        return True

    await asyncio.gather(*(cross(i) for i in range(20)))
    async with store.read() as tx:
        assert await store.ledger.check_invariants(tx) == []
        total = 0
        for x in (a.id, b.id):
            total += (await store.ledger.get_account(tx, x)).balance
        hold = await store.ledger.get_hold(tx, "h")
        assert hold is not None and total == 200 - hold.charged


async def test_amounts_past_the_bound_are_refused_and_balances_stay_integers(
    store: Store,
) -> None:
    """Past 2**63 SQLite would turn a balance into REAL and later top-ups would
    vanish: every amount is bounded, and the database refuses a non-integer."""
    acct = await _user(store, "big")
    async with store.transaction() as tx:
        topup = await store.ledger.system_account(tx, SYSTEM_TOPUP)
        for amount in (10**12 + 1, 2**63, 10**23):
            with pytest.raises(InvalidAmount):
                await store.ledger.transfer(tx, f"big:{amount}", topup.id, acct.id, amount, "topup")
            with pytest.raises(InvalidAmount):
                await store.ledger.reserve(tx, f"hold:{amount}", acct.id, amount)
        await store.ledger.transfer(tx, "max", topup.id, acct.id, 10**12, "topup")
    # Behind the repository: SQLite's trigger refuses it, PostgreSQL's BIGINT column
    # cannot hold anything but an integer. Either way no fraction is stored.
    with contextlib.suppress(StorageError, sqlite3.IntegrityError):
        async with store.transaction() as tx:
            await raw_execute(
                tx, "UPDATE accounts SET balance = balance + 0.5 WHERE id = ?", acct.id
            )
    async with store.read() as tx:
        balance = (await store.ledger.get_account(tx, acct.id)).balance
    assert type(balance) is int and balance in (10**12, 10**12 + 1)
    # A rounded tamper (PostgreSQL) is what the invariant check exists to catch.
    assert (await _invariants(store) == []) is (balance == 10**12)
