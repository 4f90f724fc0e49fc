"""Purchases on both backends: concurrent deliveries of one charge credit it once,
and the sales account mirrors what was sold; a platform's own refund takes the
credits back once (also when delivered concurrently, and never again by an admin),
or, spent already, takes nothing and alerts the admins once."""

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
from tests.conftest import RecordingFrontend


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


async def purchase_refunds(app: Any, user: UserRef) -> list[tuple[int, str | None]]:
    async with app.store.read() as tx:
        assert await app.store.ledger.check_invariants(tx) == []
        account = await app.store.ledger.find_account(tx, user.platform, user.user_id)
        return [
            (t.amount, t.actor)
            for t in await app.store.ledger.history(tx, account.id)
            if t.kind == "purchase_refund"
        ]


async def test_a_platform_refund_takes_the_credits_back_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(DISCORD_SKU_PACKS="555:30", WELCOME_CREDITS="0")
    async with build_app(settings, sweep=False) as app:
        frontend = RecordingFrontend("discord")
        app.add_frontend(frontend)
        user = UserRef("discord", "77")
        await app.payments.credit_entitlement(user, "e-1", "555")
        await app.payments.credit_entitlement(user, "e-2", "555")

        done = await asyncio.gather(
            *(app.payments.platform_refunded("discord", "e-1") for _ in range(6))
        )
        assert sorted(d.outcome for d in done if d is not None) == ["already"] * 5 + ["taken"]
        [taken] = [d for d in done if d is not None and d.outcome == "taken"]
        assert (taken.user, taken.balance, taken.payment.credits) == (user, 30, 30)
        assert await app.balance(user) == 30
        assert await purchase_refunds(app, user) == [(30, "discord:platform")]
        assert await app.payments.platform_refunded("discord", "nope") is None
        assert frontend.alerts == []

        # An admin's refund afterwards takes nothing more, and the payment reads so.
        admin = UserRef("cli", "admin")
        again = await app.payments.take_back(admin, "discord", "e-1")
        assert again.already and await app.balance(user) == 30
        async with app.store.read() as tx:
            payment = await app.store.payments.get(tx, "discord", "e-1")
        assert payment is not None and payment.status == "refunded"
        assert payment.platform_refunded_at is not None and payment.consumed_at is not None
        listing = app.text.payments("en", await app.payments.recent(admin))
        assert "refunded by the platform" in listing and "already spent" not in listing

        # An admin took e-2 back first: the platform's refund takes nothing more.
        await app.payments.take_back(admin, "discord", "e-2")
        later = await app.payments.platform_refunded("discord", "e-2")
        assert later is not None and later.outcome == "already"
        assert await app.balance(user) == 0
        assert len(await purchase_refunds(app, user)) == 2
        async with app.store.read() as tx:
            assert (await app.store.ledger.system_account(tx, SYSTEM_SALES)).balance == 0


async def test_a_platform_refund_of_spent_credits_takes_nothing_and_alerts_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        DISCORD_SKU_PACKS="555:30", WELCOME_CREDITS="0", ADMIN_USER_IDS="cli:admin"
    )
    async with build_app(settings, sweep=False) as app:
        frontend = RecordingFrontend("discord")
        app.add_frontend(frontend)
        user, admin = UserRef("discord", "77"), UserRef("cli", "admin")
        await app.payments.credit_entitlement(user, "e-1", "555")
        await app.admin_deduct(admin, user, 10, "spent")

        done = await asyncio.gather(
            *(app.payments.platform_refunded("discord", "e-1") for _ in range(4))
        )
        assert sorted(d.outcome for d in done if d is not None) == ["already"] * 3 + ["spent"]
        [alert] = frontend.alerts
        assert "e-1" in alert and "discord:77" in alert and "(30 credits)" in alert
        assert "balance: 20" in alert
        assert await app.balance(user) == 20
        assert await purchase_refunds(app, user) == []

        # With credits again, a redelivery still takes nothing: the admins decide.
        await app.admin_topup(admin, user, 100, "back")
        again = await app.payments.platform_refunded("discord", "e-1")
        assert again is not None and again.outcome == "already"
        assert await app.balance(user) == 120 and len(frontend.alerts) == 1
        async with app.store.read() as tx:
            payment = await app.store.payments.get(tx, "discord", "e-1")
            audit = [a for a in await app.store.audit.recent(tx) if a.actor == "discord:platform"]
        assert payment is not None and payment.status == "credited"
        assert payment.platform_refunded_at is not None
        assert [(a.action, a.target) for a in audit] == [("purchase_refund", "discord:77")]
        assert "already spent" in (audit[0].detail or "")
        listing = app.text.payments("en", await app.payments.recent(admin))
        assert "refunded by the platform, credits already spent" in listing
        assert await app.payments.unnotified("discord") == []
