"""Purchases on both backends: concurrent deliveries of one charge credit it once,
and the sales account mirrors what was sold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from core.bootstrap import build_app
from core.errors import RefundRefused
from core.ports import UserRef
from core.settings import Settings
from storage.interfaces import SYSTEM_SALES


async def test_concurrent_deliveries_of_one_charge_credit_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(CREDIT_PACKS="100:50", WELCOME_CREDITS="0")
    async with build_app(settings, sweep=False) as app:
        user = UserRef("telegram", "4242")
        results = await asyncio.gather(
            *(app.payments.credit_stars(user, "c-1", "pack:100:50", 50, "XTR") for _ in range(8))
        )
        assert sum(r.credited for r in results) == 1
        assert await app.balance(user) == 100
        async with app.store.read() as tx:
            assert await app.store.ledger.check_invariants(tx) == []
            sales = await app.store.ledger.system_account(tx, SYSTEM_SALES)
            assert sales.balance == -100
            [payment] = await app.store.payments.recent(tx)
        assert (payment.charge_id, payment.credits, payment.amount) == ("c-1", 100, 50)


async def test_refund_is_refused_after_spending_and_done_once_otherwise(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(CREDIT_PACKS="100:50", WELCOME_CREDITS="0", ADMIN_USER_IDS="cli:op")
    async with build_app(settings, sweep=False) as app:
        user, admin = UserRef("telegram", "7"), UserRef("cli", "op")
        await app.payments.credit_stars(user, "c-2", "pack:100:50", 50, "XTR")
        calls: list[Any] = []

        async def platform(payment: Any, who: UserRef) -> None:
            calls.append((payment.charge_id, who.user_id))

        await app.admin_deduct(admin, user, 1, "spent")
        with pytest.raises(RefundRefused):
            await app.payments.refund(admin, "telegram", "c-2", platform)
        assert calls == [] and await app.balance(user) == 99
        await app.admin_topup(admin, user, 1, "back")
        done = await app.payments.refund(admin, "telegram", "c-2", platform)
        again = await app.payments.refund(admin, "telegram", "c-2", platform)
        assert (done.already, again.already) == (False, True)
        assert calls == [("c-2", "7")] and await app.balance(user) == 0
        async with app.store.read() as tx:
            assert await app.store.ledger.check_invariants(tx) == []
            assert (await app.store.ledger.system_account(tx, SYSTEM_SALES)).balance == 0


async def test_the_buyer_is_told_once_and_an_untold_payment_is_found(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(DISCORD_SKU_PACKS="555:30", WELCOME_CREDITS="0")
    async with build_app(settings, sweep=False) as app:
        user = UserRef("discord", "77")
        await app.payments.credit_entitlement(user, "e-1", "555")
        await app.payments.credit_entitlement(user, "e-2", "555")
        [first, second] = await app.payments.unnotified("discord")
        assert (first.payment.charge_id, first.user, first.balance) == ("e-1", user, 60)
        assert second.payment.charge_id == "e-2"

        claims = await asyncio.gather(
            *(app.payments.claim_notice("discord", "e-1") for _ in range(6))
        )
        assert sorted(claims) == [False] * 5 + [True]
        assert [n.payment.charge_id for n in await app.payments.unnotified("discord")] == ["e-2"]
        assert await app.payments.claim_notice("telegram", "e-2") is False  # other platform
