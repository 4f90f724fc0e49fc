"""Credits bought as Discord consumable SKUs, against the fake Discord: /buy shows
premium buttons, an entitlement credits once per entitlement id (created twice, or
also carried by an interaction) and is consumed; one credited but not consumed
(the consume failed, as after a crash) is consumed by the next start, crediting
nothing more; one Discord consumed just before a crash, before our row said so, is
settled by the next start from what Discord reports (the listing, or the
entitlement read back), and a consume Discord refuses as a second one settles it
too; and the real ``imagine-bot run`` killed with SIGKILL between crediting and
consuming (the consume lost, or reaching Discord): the next start consumes it if
needed, credits nothing more and DMs the buyer the one message the killed process
never sent."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.discord._buy_cog import BuyCog
from core.app import Imagine
from core.bootstrap import build_app
from core.ports import UserRef
from core.settings import load_settings
from storage import open_store
from storage.interfaces import SYSTEM_SALES, Payment
from tests.discord.conftest import ADMIN_ID, USER_ID, Harness, base_env, running
from tests.fakes.discord_api import Call, FakeDiscord

ROOT = Path(__file__).resolve().parents[2]
SKU_CREDITS = 250


@pytest.fixture
async def shop(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[tuple[Harness, str]]:
    sku = fake.add_sku("250 credits")
    env = base_env(tmp_path, DISCORD_SKU_PACKS=f"{sku['id']}:{SKU_CREDITS}")
    settings = load_settings(env, env_file=None)
    async with build_app(settings, sweep=False) as app, running(fake, app) as bot:
        yield Harness(app, fake, bot, lambda: running(fake, app)), sku["id"]


async def wait_balance(h: Harness, expected: int) -> None:
    for _ in range(200):
        if await h.balance() == expected:
            return
        await asyncio.sleep(0.025)
    assert await h.balance() == expected


async def books(h: Harness) -> int:
    async with h.app.store.read() as tx:
        assert await h.app.store.ledger.check_invariants(tx) == []
        return (await h.app.store.ledger.system_account(tx, SYSTEM_SALES)).balance


async def test_buy_shows_the_skus_as_premium_buttons(shop: tuple[Harness, str]) -> None:
    h, sku = shop
    payload = await h.slash("buy")
    call = await h.callback(payload)
    data = call.payload["data"]
    assert "250 credits: 250 credits" in data["content"]
    [row] = data["components"]
    [button] = row["components"]
    assert button["type"] == 2 and button["style"] == 6 and str(button["sku_id"]) == sku
    assert "custom_id" not in button and "label" not in button


async def test_entitlement_created_twice_credits_once_and_is_consumed(
    shop: tuple[Harness, str],
) -> None:
    h, sku = shop
    ent = await h.fake.create_entitlement(USER_ID, sku)
    await wait_balance(h, 100 + SKU_CREDITS)
    await h.fake.wait_for_call(f"/entitlements/{ent['id']}/consume", method="POST")
    assert h.fake.entitlements[int(ent["id"])]["consumed"] is True
    dm = await h.fake.wait_for_call("/messages", method="POST")
    assert "250 credits were added" in dm.payload["content"]

    # Discord sends the same event again, and an interaction carries it too.
    h.fake.entitlements[int(ent["id"])]["consumed"] = False
    await h.fake.dispatch("ENTITLEMENT_CREATE", ent)
    payload = h.fake.slash_interaction("balance", user_id=USER_ID)
    payload["entitlements"] = [ent]
    await h.fake.send_interaction(payload)
    await h.ephemeral(payload)
    assert await h.balance() == 100 + SKU_CREDITS
    assert await books(h) == -SKU_CREDITS

    async with h.app.store.read() as tx:
        account = await h.app.store.ledger.find_account(tx, "discord", str(USER_ID))
        assert account is not None
        [purchase] = [
            t for t in await h.app.store.ledger.history(tx, account.id) if t.kind == "purchase"
        ]
    assert purchase.reason == f"discord {ent['id']}"


async def test_credited_but_not_consumed_is_consumed_after_a_restart(
    shop: tuple[Harness, str],
) -> None:
    h, sku = shop
    path = "/consume"
    h.fake.inject_error(path, status=500, method="POST", times=1)
    ent = await h.fake.create_entitlement(USER_ID, sku)
    await wait_balance(h, 100 + SKU_CREDITS)
    await h.fake.wait_for_call(path, method="POST")
    assert h.fake.entitlements[int(ent["id"])]["consumed"] is False
    assert [p.charge_id for p in await h.app.payments.unconsumed("discord")] == [ent["id"]]

    await h.bot.close()
    async with h.start_bot() as bot:
        cog = bot.get_cog("BuyCog")
        assert isinstance(cog, BuyCog)
        for _ in range(200):
            if h.fake.entitlements[int(ent["id"])]["consumed"]:
                break
            await asyncio.sleep(0.025)
        assert h.fake.entitlements[int(ent["id"])]["consumed"] is True
    assert await h.balance() == 100 + SKU_CREDITS
    assert await h.app.payments.unconsumed("discord") == []
    assert await books(h) == -SKU_CREDITS


async def test_an_entitlement_found_at_start_is_credited(fake: FakeDiscord, tmp_path: Path) -> None:
    """Bought while the bot was down: the start lists it, credits it, consumes it."""
    sku = fake.add_sku("250 credits")
    ent = fake.entitlement(USER_ID, sku["id"])
    env = base_env(tmp_path, DISCORD_SKU_PACKS=f"{sku['id']}:{SKU_CREDITS}")
    async with build_app(load_settings(env, env_file=None), sweep=False) as app:
        async with running(fake, app):
            await fake.wait_for_call(f"/entitlements/{ent['id']}/consume", method="POST")
        assert await app.balance(UserRef("discord", str(USER_ID))) == 100 + SKU_CREDITS


async def answer(h: Harness, name: str, options: object = (), **kwargs: object) -> str:
    payload = await h.slash(name, options, **kwargs)
    return await h.ephemeral(payload)


async def test_help_offers_buy_and_admins_see_payments_and_refund(
    shop: tuple[Harness, str],
) -> None:
    h, _ = shop
    shown = await answer(h, "help")
    assert "/buy" in shown and "refund" not in shown
    shown = await answer(h, "help", user_id=ADMIN_ID)
    assert "/buy" in shown and "|payments|refund" in shown


async def test_help_without_packs_does_not_offer_buy(harness: Harness) -> None:
    assert "/buy" not in await answer(harness, "help")


async def test_admin_lists_payments_of_both_platforms_and_takes_back_a_purchase(
    shop: tuple[Harness, str],
) -> None:
    h, sku = shop
    ent = await h.fake.create_entitlement(USER_ID, sku)
    await wait_balance(h, 100 + SKU_CREDITS)
    stars_buyer = UserRef("telegram", "4242")
    await h.app.payments.credit_stars(stars_buyer, "tg-charge-1", "pack:100:50", 50, "XTR")

    refused = await answer(h, "credits", subcommand="payments", user_id=USER_ID)
    assert "Only the bot's admins" in refused
    listing = await answer(h, "credits", subcommand="payments", user_id=ADMIN_ID)
    assert ent["id"] in listing and "tg-charge-1" in listing
    assert listing.index("tg-charge-1") < listing.index(ent["id"])  # newest first

    calls = len(h.fake.calls)
    shown = await answer(
        h, "credits", {"charge_id": ent["id"]}, subcommand="refund", user_id=ADMIN_ID
    )
    assert f"{SKU_CREDITS} credits of {ent['id']}" in shown and f"<@{USER_ID}>" in shown
    assert "Discord's support" in shown  # the money is returned outside the bot
    assert await h.balance() == 100
    assert await books(h) == -100  # only the Stars purchase is still sold
    # Nothing was asked of Discord but the answer itself.
    assert all("/interactions/" in c.path for c in h.fake.calls[calls:])

    again = await answer(
        h, "credits", {"charge_id": ent["id"]}, subcommand="refund", user_id=ADMIN_ID
    )
    assert f"{ent['id']} was already refunded" in again
    assert await h.balance() == 100
    listing = await answer(h, "credits", subcommand="payments", user_id=ADMIN_ID)
    assert "refunded" in listing


async def test_taking_back_spent_credits_is_refused(shop: tuple[Harness, str]) -> None:
    h, sku = shop
    ent = await h.fake.create_entitlement(USER_ID, sku)
    await wait_balance(h, 100 + SKU_CREDITS)
    admin, user = UserRef("discord", str(ADMIN_ID)), UserRef("discord", str(USER_ID))
    await h.app.admin_deduct(admin, user, 200, "spent")
    shown = await answer(
        h, "credits", {"charge_id": ent["id"]}, subcommand="refund", user_id=ADMIN_ID
    )
    assert "Not refunded: the user has only 150 credits left" in shown
    assert await h.balance() == 150
    unknown = await answer(
        h, "credits", {"charge_id": "123"}, subcommand="refund", user_id=ADMIN_ID
    )
    assert "No payment has that charge id" in unknown
    await books(h)


def is_dm(c: Call) -> bool:
    return c.method == "POST" and c.path.startswith("/channels/") and c.path.endswith("/messages")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("reached", [False, True], ids=["consume-lost", "consume-reached"])
async def test_sigkill_between_crediting_and_consuming(
    fake: FakeDiscord, tmp_path: Path, reached: bool
) -> None:
    """The bot process dies while its consume call is in flight (the fake holds it,
    the test kills the process when it arrives); then the call is lost, or Discord
    acts on it and the answer goes nowhere."""
    sku = fake.add_sku("250 credits")
    env = {
        **os.environ,
        **base_env(tmp_path, DISCORD_SKU_PACKS=f"{sku['id']}:{SKU_CREDITS}"),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "bot.log"

    async def start() -> asyncio.subprocess.Process:
        seen = len(fake.calls)
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.fakes.discord_child", fake.base_url, "run",
                cwd=tmp_path, env=env, stdout=out, stderr=out,
            )  # fmt: skip
        # The start's reconcile lists the entitlements once it is connected.
        await fake.wait_for_call("/entitlements", 60, method="GET", start=seen)
        return proc

    async def db_state() -> tuple[int, int, int, object]:
        settings = load_settings(env, env_file=None)
        store = await open_store(settings.database_url)
        try:
            async with store.read() as tx:
                assert await store.ledger.check_invariants(tx) == []
                account = await store.ledger.find_account(tx, "discord", str(USER_ID))
                assert account is not None
                sales = await store.ledger.system_account(tx, SYSTEM_SALES)
                bought = [
                    t for t in await store.ledger.history(tx, account.id) if t.kind == "purchase"
                ]
                payment = await store.payments.get(tx, "discord", ent["id"])
        finally:
            await store.close()
        return account.balance, sales.balance, len(bought), payment

    proc = await start()
    consume = fake.hold("/consume", method="POST")
    ent = await fake.create_entitlement(USER_ID, sku["id"])
    await asyncio.wait_for(consume.arrived.wait(), 60)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    consume.release(reached=reached)
    await fake.wait_for_call(lambda c: c in consume.calls, 10)

    balance, sales, purchases, payment = await db_state()
    assert (balance, sales, purchases) == (100 + SKU_CREDITS, -SKU_CREDITS, 1)
    assert payment is not None and payment.consumed_at is None and payment.notified_at is None
    assert fake.entitlements[int(ent["id"])]["consumed"] is reached
    assert not [c for c in fake.calls if is_dm(c)], "told before the crash"

    consume_path = f"/entitlements/{ent['id']}/consume"
    proc = await start()
    try:
        if reached:  # nothing to consume: the start only settles the row and tells
            dm = await fake.wait_for_call(is_dm, 60)
        else:
            done = await fake.wait_for_call(
                lambda c: c.path.endswith(consume_path) and c.status == 204, 60
            )
            dm = await fake.wait_for_call(is_dm, 60, start=fake.calls.index(done))
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]

    assert fake.entitlements[int(ent["id"])]["consumed"] is True
    assert f"{SKU_CREDITS} credits were added" in dm.payload["content"]
    assert f"{100 + SKU_CREDITS}" in dm.payload["content"]
    assert [c.payload.get("content") for c in fake.calls if is_dm(c)] == [dm.payload["content"]]
    balance, sales, purchases, payment = await db_state()
    assert (balance, sales, purchases) == (100 + SKU_CREDITS, -SKU_CREDITS, 1)
    assert payment is not None and payment.consumed_at is not None
    assert payment.notified_at is not None
    consumes = [c for c in fake.calls if c.path.endswith(consume_path)]
    assert len(consumes) == (1 if reached else 2)
    assert all(c.status in (204, 503) for c in consumes)


async def test_a_consumed_purchase_nobody_told_about_is_told_at_start(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    """A crash after the consume but before the DM: the next start sends it, once."""
    sku = fake.add_sku("250 credits")
    ent = fake.entitlement(USER_ID, sku["id"])
    fake.entitlements[int(ent["id"])]["consumed"] = True
    env = base_env(tmp_path, DISCORD_SKU_PACKS=f"{sku['id']}:{SKU_CREDITS}")
    async with build_app(load_settings(env, env_file=None), sweep=False) as app:
        user = UserRef("discord", str(USER_ID))
        await app.payments.credit_entitlement(user, ent["id"], sku["id"])
        await app.payments.consumed("discord", ent["id"])
        async with running(fake, app):
            dm = await fake.wait_for_call(is_dm, 10)
        assert f"{100 + SKU_CREDITS}" in dm.payload["content"]
        assert await app.payments.unnotified("discord") == []
        async with running(fake, app):
            await fake.wait_for_call("/entitlements", method="GET", start=fake.calls.index(dm))
        assert len([c for c in fake.calls if is_dm(c)]) == 1


async def settled(app: Imagine, charge_id: str) -> Payment:
    async with app.store.read() as tx:
        assert await app.store.ledger.check_invariants(tx) == []
        payment = await app.store.payments.get(tx, "discord", charge_id)
    assert payment is not None and payment.consumed_at is not None, payment
    assert payment.notified_at is not None
    assert await app.payments.unconsumed("discord") == []
    return payment


@pytest.mark.parametrize("listing", ["answers", "fails"])
async def test_consumed_on_discord_before_a_crash_is_settled_at_start(
    fake: FakeDiscord, tmp_path: Path, listing: str
) -> None:
    """Discord consumed the entitlement, then the process died before marking our row:
    the next start sees it consumed (in the listing, or read back when the listing
    fails), marks the row, credits nothing more, consumes nothing and tells the
    buyer once."""
    sku = fake.add_sku("250 credits")
    ent = fake.entitlement(USER_ID, sku["id"])
    env = base_env(tmp_path, DISCORD_SKU_PACKS=f"{sku['id']}:{SKU_CREDITS}")
    async with build_app(load_settings(env, env_file=None), sweep=False) as app:
        user = UserRef("discord", str(USER_ID))
        await app.payments.credit_entitlement(user, ent["id"], sku["id"])
        fake.entitlements[int(ent["id"])]["consumed"] = True  # the consume reached Discord
        if listing == "fails":
            fake.inject_error(
                lambda c: c.method == "GET" and c.path.endswith("/entitlements"), status=403
            )
        async with running(fake, app) as bot:
            dm = await fake.wait_for_call(is_dm, 10)
            await settled(app, ent["id"])
            cog = bot.get_cog("BuyCog")
            assert isinstance(cog, BuyCog)
            assert await cog.reconcile() == 0  # a second pass finds nothing to do
        read_back = [c for c in fake.calls if c.path.endswith(f"/entitlements/{ent['id']}")]
        assert len(read_back) == (1 if listing == "fails" else 0)
        assert f"{100 + SKU_CREDITS}" in dm.payload["content"]
        assert [c for c in fake.calls if is_dm(c)] == [dm]
        assert not [c for c in fake.calls if c.path.endswith("/consume")]
        assert await app.balance(user) == 100 + SKU_CREDITS
        async with app.store.read() as tx:
            assert (await app.store.ledger.system_account(tx, SYSTEM_SALES)).balance == (
                -SKU_CREDITS
            )


async def test_a_consume_refused_as_already_done_settles_the_payment(
    shop: tuple[Harness, str],
) -> None:
    """A redelivered event still says unconsumed, but Discord consumed it before a
    crash: the consume is refused, the bot reads the entitlement back, marks the
    row and tells the buyer once; nothing more is credited."""
    h, sku = shop
    ent = h.fake.entitlement(USER_ID, sku)
    await h.app.payments.credit_entitlement(UserRef("discord", str(USER_ID)), ent["id"], sku)
    h.fake.entitlements[int(ent["id"])]["consumed"] = True
    await h.fake.dispatch("ENTITLEMENT_CREATE", {**ent, "consumed": False})
    refused = await h.fake.wait_for_call(f"/entitlements/{ent['id']}/consume", method="POST")
    assert refused.status == 400
    dm = await h.fake.wait_for_call(is_dm, 10)
    assert "250 credits were added" in dm.payload["content"]
    await settled(h.app, ent["id"])
    assert await h.balance() == 100 + SKU_CREDITS
    assert await books(h) == -SKU_CREDITS
    assert [c for c in h.fake.calls if is_dm(c)] == [dm]


# --- Discord's own refunds (ENTITLEMENT_DELETE) --------------------------------------


def dms_to(fake: FakeDiscord, user_id: int) -> list[str]:
    """What the bot DMed ``user_id`` so far."""
    return [
        str(c.payload.get("content"))
        for c in fake.calls
        if is_dm(c)
        and fake.dm_channels[int(c.path.split("/")[2])]["recipients"][0]["id"] == str(user_id)
    ]


async def wait_dm(fake: FakeDiscord, user_id: int, words: str) -> None:
    for _ in range(400):
        if any(words in m for m in dms_to(fake, user_id)):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"no DM to {user_id} with {words!r}: {dms_to(fake, user_id)}")


async def barrier(h: Harness, sku: str, balance: int) -> None:
    """A later purchase, credited and DMed: the events sent before it were handled."""
    told = len(dms_to(h.fake, USER_ID))
    await h.fake.create_entitlement(USER_ID, sku)
    await wait_balance(h, balance)
    for _ in range(400):
        if len(dms_to(h.fake, USER_ID)) > told:
            return
        await asyncio.sleep(0.025)


async def refunds(app: Imagine) -> list[tuple[int, str | None]]:
    async with app.store.read() as tx:
        assert await app.store.ledger.check_invariants(tx) == []
        account = await app.store.ledger.find_account(tx, "discord", str(USER_ID))
        assert account is not None
        return [
            (t.amount, t.actor)
            for t in await app.store.ledger.history(tx, account.id)
            if t.kind == "purchase_refund"
        ]


async def payment_of(app: Imagine, charge_id: str) -> Payment:
    async with app.store.read() as tx:
        payment = await app.store.payments.get(tx, "discord", charge_id)
    assert payment is not None
    return payment


async def test_a_refund_by_discord_takes_the_credits_back_once(shop: tuple[Harness, str]) -> None:
    h, sku = shop
    ent = await h.fake.create_entitlement(USER_ID, sku)
    await wait_balance(h, 100 + SKU_CREDITS)
    await wait_dm(h.fake, USER_ID, "credits were added")

    await h.fake.delete_entitlement(ent["id"])
    await h.fake.delete_entitlement(ent["id"])  # Discord delivers it again
    await wait_dm(h.fake, USER_ID, f"Discord refunded your purchase, so its {SKU_CREDITS}")
    await wait_balance(h, 100)
    await barrier(h, sku, 100 + SKU_CREDITS)

    told = [m for m in dms_to(h.fake, USER_ID) if "refunded" in m]
    assert told == [
        f"Discord refunded your purchase, so its {SKU_CREDITS} credits were taken back. "
        "Your balance: 100."
    ]
    assert await h.balance() == 100 + SKU_CREDITS
    assert await refunds(h.app) == [(SKU_CREDITS, "discord:platform")]
    assert await books(h) == -SKU_CREDITS  # only the later purchase is still sold
    payment = await payment_of(h.app, ent["id"])
    assert payment.status == "refunded" and payment.platform_refunded_at is not None
    assert dms_to(h.fake, ADMIN_ID) == []  # nothing for the admins to do

    # An admin's refund afterwards takes nothing more.
    again = await answer(
        h, "credits", {"charge_id": ent["id"]}, subcommand="refund", user_id=ADMIN_ID
    )
    assert f"{ent['id']} was already refunded" in again
    assert await h.balance() == 100 + SKU_CREDITS
    listing = await answer(h, "credits", subcommand="payments", user_id=ADMIN_ID)
    assert "refunded by the platform" in listing and "already spent" not in listing


async def test_a_refund_by_discord_of_spent_credits_alerts_the_admins_once(
    shop: tuple[Harness, str],
) -> None:
    h, sku = shop
    ent = await h.fake.create_entitlement(USER_ID, sku)
    await wait_balance(h, 100 + SKU_CREDITS)
    admin, user = UserRef("discord", str(ADMIN_ID)), UserRef("discord", str(USER_ID))
    await h.app.admin_deduct(admin, user, 300, "spent")

    await h.fake.delete_entitlement(ent["id"])
    await h.fake.delete_entitlement(ent["id"])
    await wait_dm(h.fake, ADMIN_ID, "already spent")
    # Credits again: a redelivery now still takes nothing.
    await barrier(h, sku, 50 + SKU_CREDITS)
    await h.fake.delete_entitlement(ent["id"])
    await barrier(h, sku, 50 + 2 * SKU_CREDITS)

    [alert] = dms_to(h.fake, ADMIN_ID)
    assert ent["id"] in alert and f"discord:{USER_ID}" in alert
    assert f"({SKU_CREDITS} credits)" in alert and "balance: 50" in alert
    assert await h.balance() == 50 + 2 * SKU_CREDITS
    assert await refunds(h.app) == []
    assert not [m for m in dms_to(h.fake, USER_ID) if "refunded" in m]
    payment = await payment_of(h.app, ent["id"])
    assert payment.status == "credited" and payment.platform_refunded_at is not None
    listing = await answer(h, "credits", subcommand="payments", user_id=ADMIN_ID)
    assert "refunded by the platform, credits already spent" in listing
    await books(h)


async def test_a_deleted_entitlement_that_is_not_ours_changes_nothing(
    shop: tuple[Harness, str],
) -> None:
    h, sku = shop
    other = h.fake.add_sku("a sticker pack")
    ent = await h.fake.create_entitlement(USER_ID, other["id"])  # not a credit pack
    uncredited = h.fake.entitlement(USER_ID, sku)  # never reached the bot
    await h.fake.delete_entitlement(ent["id"])
    await h.fake.delete_entitlement(uncredited["id"])
    await barrier(h, sku, 100 + SKU_CREDITS)

    assert await h.balance() == 100 + SKU_CREDITS
    assert [m for m in dms_to(h.fake, USER_ID) if "refunded" in m] == []
    assert dms_to(h.fake, ADMIN_ID) == []
    async with h.app.store.read() as tx:
        assert await h.app.store.payments.get(tx, "discord", ent["id"]) is None
        assert await h.app.store.payments.get(tx, "discord", uncredited["id"]) is None
    assert await refunds(h.app) == []
    assert await books(h) == -SKU_CREDITS


@pytest.mark.parametrize("spent", [False, True], ids=["kept", "spent"])
async def test_an_entitlement_deleted_while_the_bot_was_down_is_settled_at_start(
    fake: FakeDiscord, tmp_path: Path, spent: bool
) -> None:
    """Discord refunded a credited purchase while the bot was down: the start's
    listing shows it deleted, and the same rule applies, once."""
    sku = fake.add_sku("250 credits")
    ent = fake.entitlement(USER_ID, sku["id"])
    env = base_env(tmp_path, DISCORD_SKU_PACKS=f"{sku['id']}:{SKU_CREDITS}")
    async with build_app(load_settings(env, env_file=None), sweep=False) as app:
        user = UserRef("discord", str(USER_ID))
        await app.payments.credit_entitlement(user, ent["id"], sku["id"])
        await app.payments.consumed("discord", ent["id"])
        await app.payments.claim_notice("discord", ent["id"])
        fake.entitlements[int(ent["id"])]["consumed"] = True
        if spent:
            await app.admin_deduct(UserRef("discord", str(ADMIN_ID)), user, 300, "spent")
        fake.entitlements[int(ent["id"])]["deleted"] = True

        async with running(fake, app) as bot:
            if spent:
                await wait_dm(fake, ADMIN_ID, "already spent")
            else:
                await wait_dm(fake, USER_ID, "Discord refunded your purchase")
            cog = bot.get_cog("BuyCog")
            assert isinstance(cog, BuyCog)
            assert await cog.reconcile() == 0  # a second pass does nothing more
        async with running(fake, app):  # nor does the next start
            await fake.wait_for_call("/entitlements", method="GET", start=len(fake.calls))

        listed = [c for c in fake.calls if c.method == "GET" and c.path.endswith("/entitlements")]
        assert all(c.query.get("exclude_deleted") in ("0", "false") for c in listed)
        payment = await payment_of(app, ent["id"])
        assert payment.platform_refunded_at is not None
        assert payment.status == ("credited" if spent else "refunded")
        assert await app.balance(user) == (50 if spent else 100)
        assert await refunds(app) == ([] if spent else [(SKU_CREDITS, "discord:platform")])
        assert len(dms_to(fake, ADMIN_ID)) == (1 if spent else 0)
        assert len([m for m in dms_to(fake, USER_ID) if "refunded" in m]) == (0 if spent else 1)
        assert not [c for c in fake.calls if c.path.endswith("/consume")]
