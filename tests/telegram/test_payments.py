"""Credits bought in Telegram Stars, against the fake Bot API: the invoice's fields,
the pre-checkout answer, a redelivered ``successful_payment``, refunds (also after
the credits were spent), and a SIGKILL between crediting and telling the user."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.ports import UserRef
from core.settings import load_settings
from storage import open_store
from storage.interfaces import SYSTEM_SALES
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram.conftest import ADMIN_ID, TOKEN, USER_ID, Harness, env_for, running_bot

ROOT = Path(__file__).resolve().parents[2]
PACKS = "100:50,500:200"


@pytest.fixture
async def shop(fake: FakeTelegramAPI, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(fake, tmp_path, CREDIT_PACKS=PACKS) as harness:
        yield harness


def pay(bot: Harness, payload: str, stars: int, charge_id: str, user_id: int = USER_ID) -> Any:
    update = bot.fake.successful_payment(payload, stars, user_id=user_id, charge_id=charge_id)
    return bot.fake.push_update(update)


async def sales_and_invariants(bot: Harness) -> int:
    async with bot.app.store.read() as tx:
        assert await bot.app.store.ledger.check_invariants(tx) == []
        return (await bot.app.store.ledger.system_account(tx, SYSTEM_SALES)).balance


async def test_buy_lists_packs_and_a_press_sends_a_stars_invoice(shop: Harness) -> None:
    shop.send("/buy")
    menu = await shop.said("Pick a pack")
    rows = menu.params["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for row in rows for b in row] == ["b:100:50", "b:500:200"]
    assert "100 credits" in rows[0][0]["text"] and "50" in rows[0][0]["text"]

    shop.press("b:500:200", menu.response["result"])
    [invoice] = await shop.fake.wait_for("sendInvoice")
    assert invoice.status == 200, invoice.response
    assert invoice.params["currency"] == "XTR"
    assert invoice.params["provider_token"] == ""
    assert invoice.params["payload"] == "pack:500:200"
    assert invoice.params["prices"] == [{"label": "500 credits", "amount": 200}]
    assert invoice.params["chat_id"] == USER_ID


async def test_pre_checkout_is_answered_after_checking_the_pack(shop: Harness) -> None:
    good = shop.fake.push_update(shop.fake.pre_checkout_query("pack:100:50", 50, user_id=USER_ID))
    repriced = shop.fake.push_update(
        shop.fake.pre_checkout_query("pack:100:40", 40, user_id=USER_ID)
    )
    wrong_total = shop.fake.push_update(
        shop.fake.pre_checkout_query("pack:100:50", 49, user_id=USER_ID)
    )
    await shop.fake.wait_for("answerPreCheckoutQuery", count=3)
    answers = {
        k: shop.fake.pre_checkouts[u["pre_checkout_query"]["id"]]["answer"]
        for k, u in (("good", good), ("repriced", repriced), ("wrong", wrong_total))
    }
    assert answers["good"] == {"ok": True, "error_message": None}
    assert (
        answers["repriced"]["ok"] is False
        and "no longer sold" in answers["repriced"]["error_message"]
    )
    assert answers["wrong"]["ok"] is False
    assert await shop.balance() == 100  # a pre-checkout credits nothing


async def test_successful_payment_credits_once_however_often_it_arrives(shop: Harness) -> None:
    pay(shop, "pack:500:200", 200, "charge-A")
    await shop.said("500 credits were added. Your balance: 600")
    pay(shop, "pack:500:200", 200, "charge-A")  # redelivered
    await shop.said("already credited (500 credits). Your balance: 600")
    assert await shop.balance() == 600
    assert await sales_and_invariants(shop) == -500

    shop.send("/history")
    history = await shop.said("purchase")
    assert "+500" in history.params["text"] or "500" in history.params["text"]
    assert "charge-A" in history.params["text"]


async def test_two_processes_see_the_same_payment_and_credit_it_once(shop: Harness) -> None:
    user = UserRef("telegram", str(USER_ID))
    results = await asyncio.gather(
        *(
            shop.app.payments.credit_stars(user, "charge-B", "pack:100:50", 50, "XTR")
            for _ in range(5)
        )
    )
    assert sum(r.credited for r in results) == 1
    assert {r.balance for r in results} <= {200, 100 + 100}
    assert await shop.balance() == 200


async def test_admin_refund_returns_the_stars_and_takes_the_credits_back(shop: Harness) -> None:
    pay(shop, "pack:100:50", 50, "charge-R")
    await shop.said("100 credits were added")
    shop.send("/refund charge-R", user_id=USER_ID)  # not an admin
    await shop.said("Only the bot's admins")
    shop.send("/refund charge-R", user_id=ADMIN_ID)
    await shop.said("Refunded 50 XTR for charge-R; 100 credits were taken back")
    [refund] = shop.fake.calls_of("refundStarPayment")
    assert refund.params == {"user_id": USER_ID, "telegram_payment_charge_id": "charge-R"}
    assert shop.fake.star_payments["charge-R"]["refunded"] is True
    assert await shop.balance() == 100
    assert await sales_and_invariants(shop) == 0

    shop.send("/refund charge-R", user_id=ADMIN_ID)  # again: nothing more moves
    await shop.said("charge-R was already refunded")
    assert len(shop.fake.calls_of("refundStarPayment")) == 1
    shop.send("/payments", user_id=ADMIN_ID)
    listing = await shop.said("Recent payments")
    assert "charge-R" in listing.params["text"] and "refunded" in listing.params["text"]


async def test_refund_after_the_credits_were_spent_is_refused(shop: Harness) -> None:
    pay(shop, "pack:100:50", 50, "charge-S")
    await shop.said("Your balance: 200")
    # The user spends most of it (an admin deduction stands in for jobs).
    await shop.app.admin_deduct(
        UserRef("telegram", str(ADMIN_ID)), UserRef("telegram", str(USER_ID)), 150, "spent"
    )
    shop.send("/refund charge-S", user_id=ADMIN_ID)
    await shop.said("Not refunded: the user has only 50 credits left")
    assert shop.fake.calls_of("refundStarPayment") == []
    assert shop.fake.star_payments["charge-S"]["refunded"] is False
    assert await shop.balance() == 50
    await sales_and_invariants(shop)


async def test_out_of_credits_offers_buy(shop: Harness) -> None:
    await shop.app.admin_set(
        UserRef("telegram", str(ADMIN_ID)), UserRef("telegram", str(USER_ID)), 0, "empty"
    )
    shop.send("/imagine a lighthouse --n 1")
    refusal = await shop.said("Send /buy to buy credits")
    assert "balance is 0" in refusal.params["text"]


async def test_help_offers_buy_and_admins_see_refund_and_payments(shop: Harness) -> None:
    shop.send("/help")
    shown = (await shop.said("/price", chat_id=USER_ID)).params["text"]
    assert "/buy" in shown and "/refund" not in shown and "/stats" not in shown
    shop.send("/help", user_id=ADMIN_ID)
    shown = (await shop.said("/price", chat_id=ADMIN_ID)).params["text"]
    assert "/buy" in shown and "/refund <charge id>" in shown and "/payments" in shown
    assert "/resume [vendor]" in shown and "/stats" in shown


async def test_without_packs_buy_says_ask_an_admin(bot: Harness) -> None:
    bot.send("/help")
    assert "/buy" not in (await bot.said("/price")).params["text"]
    bot.send("/buy")
    await bot.said("cannot be bought here")
    await bot.app.admin_set(
        UserRef("telegram", str(ADMIN_ID)), UserRef("telegram", str(USER_ID)), 0, "empty"
    )
    bot.send("/imagine a lighthouse --n 1")
    refusal = await bot.said("Ask an admin for a top-up")
    assert "/buy" not in refusal.params["text"]


async def test_sigkill_between_crediting_and_answering(tmp_path: Path) -> None:
    """The bot is killed while it tells the user their new balance: the credit is
    committed; the redelivered update after a restart credits nothing more and the
    user is told."""
    async with FakeTelegramAPI(token=TOKEN, bot_username="imagine_test_bot") as fake:
        env = {**os.environ, **env_for(fake, tmp_path, CREDIT_PACKS=PACKS), "PYTHONPATH": str(ROOT)}

        async def start() -> asyncio.subprocess.Process:
            before = len(fake.calls_of("getUpdates"))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bots.cli", "run", cwd=tmp_path, env=env,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await fake.wait_for("getUpdates", count=before + 1, timeout=30)
            return proc

        proc = await start()
        fake.method_latency["sendMessage"] = 30.0  # the answer hangs: kill it mid-way
        update = fake.successful_payment("pack:500:200", 200, user_id=USER_ID, charge_id="ch-K")
        fake.push_update(dict(update))
        await fake.wait_for(
            "sendMessage",
            lambda c: "500 credits were added" in str(c.params.get("text")),
            timeout=30,
        )
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        fake.method_latency.clear()

        proc = await start()
        try:
            fake.push_update({k: v for k, v in update.items() if k != "update_id"})
            told = await fake.wait_for(
                "sendMessage",
                lambda c: "already credited" in str(c.params.get("text")) and c.status == 200,
                timeout=30,
            )
            assert "Your balance: 600" in told[0].params["text"]
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
        settings = load_settings({**env}, env_file=None)
        store = await open_store(settings.database_url)
        try:
            async with store.read() as tx:
                assert await store.ledger.check_invariants(tx) == []
                account = await store.ledger.find_account(tx, "telegram", str(USER_ID))
                assert account is not None and account.balance == 600
                sales = await store.ledger.system_account(tx, SYSTEM_SALES)
                assert sales.balance == -500
        finally:
            await store.close()
