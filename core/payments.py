"""Credits users buy themselves: Telegram Stars invoices and Discord consumable
SKUs. Every purchase is one ledger transfer of kind ``purchase`` from
``system:sales`` to the user, keyed by the platform's charge id (Telegram's
``telegram_payment_charge_id``, a Discord entitlement id), so a redelivered update,
a second process or a restart after a crash credits nothing more. A refund is a
``purchase_refund`` transfer back, made before the platform is asked to return the
money, and only while the user still has the credits (see docs/core-api.md).

The buyer is told their new balance once: whoever tells them first claims the
payment's notice (``claim_notice``), so a redelivery, a second process or the next
start after a crash between crediting and telling tells them if nobody had, and
never twice. A crash between the claim and the message itself loses that one
message (the balance is right either way, and ``/balance`` shows it).

A platform can refund a purchase itself (Discord deletes the entitlement):
``platform_refunded`` takes the credits back by the same ``purchase_refund``
transfer as an admin's refund, with the platform as the actor, once per payment
(``platform_refunded_at``); when the user has spent them nothing is taken, the
payment keeps its status with that mark, and the admins are alerted once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from core.admin import AccountOf, CreditAdmin
from core.errors import PackUnavailable, RefundRefused, RefundUnconfirmed, UnknownPayment
from core.packs import STARS, CreditPack, pack_of_payload, payload_credits
from core.ports import UserRef
from core.settings import Settings
from storage.errors import InsufficientFunds
from storage.interfaces import SYSTEM_SALES, Account, Payment, Store, Tx

if TYPE_CHECKING:
    from core.messages import Messages

log = logging.getLogger(__name__)

PURCHASE = "purchase"
PURCHASE_REFUND = "purchase_refund"

PLATFORM_NAMES = {"discord": "Discord", "telegram": "Telegram"}

RefundOnPlatform = Callable[[Payment, UserRef], Awaitable[None]]
"""Asks the platform to return the money; returns when it did (or says it already
had), raises otherwise."""


def _user_of(platform: str, account: Account) -> UserRef:
    """The buyer behind a payment's account, as the frontends address users."""
    return UserRef(platform, account.external_id, account.username)


def sales_platforms(settings: Settings) -> frozenset[str]:
    """The platforms where the operator sells packs."""
    return frozenset(
        p
        for p, packs in (
            ("telegram", settings.credit_packs),
            ("discord", settings.discord_sku_packs),
        )
        if packs
    )


@dataclass(frozen=True, slots=True)
class Purchase:
    payment: Payment
    balance: int
    credited: bool
    """False: this charge had been credited before (a redelivery); nothing moved now."""


@dataclass(frozen=True, slots=True)
class Refund:
    payment: Payment
    user: UserRef
    """Who had bought it."""
    balance: int
    """The user's balance after the credits were taken back."""
    already: bool
    """The payment had been refunded before; nothing happened now."""


@dataclass(frozen=True, slots=True)
class PlatformRefund:
    """What the bot did about a purchase the platform refunded itself."""

    payment: Payment
    """As it was before this refund."""
    user: UserRef
    balance: int
    """The user's balance now."""
    outcome: Literal["taken", "spent", "already"]
    """``taken``: the credits were taken back now (tell the user). ``spent``: the
    user had spent them, nothing was taken and the admins were alerted.
    ``already``: acted on before (a redelivery, the next start), or an admin had
    taken the credits back: nothing happened now."""


@dataclass(frozen=True, slots=True)
class Notice:
    """A buyer nobody has told about their purchase yet."""

    payment: Payment
    user: UserRef
    balance: int


@dataclass(frozen=True, slots=True)
class PaymentSummary:
    payment: Payment
    user_key: str


class Payments:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        admin: CreditAdmin,
        account_of: AccountOf,
        *,
        text: Messages,
        alert_admins: Callable[[str], Awaitable[None]],
    ) -> None:
        self.store = store
        self.settings = settings
        self.admin = admin
        self._account_of = account_of
        self.text = text
        self._alert_admins = alert_admins

    # --- the shop ------------------------------------------------------------------

    def packs(self, platform: str) -> tuple[CreditPack, ...]:
        if platform == "telegram":
            return self.settings.credit_packs
        if platform == "discord":
            return self.settings.discord_sku_packs
        return ()

    def checkout(self, payload: str, currency: str, total: int) -> CreditPack:
        """Telegram's pre-checkout: the pack the invoice names must still be sold
        at that price in Stars, else ``PackUnavailable``."""
        pack = pack_of_payload(payload, self.settings.credit_packs)
        if pack is None or currency != STARS or total != pack.price:
            raise PackUnavailable(f"no pack {payload!r} at {total} {currency}")
        return pack

    def sku_pack(self, sku_id: str) -> CreditPack | None:
        return next((p for p in self.settings.discord_sku_packs if p.sku_id == sku_id), None)

    # --- crediting -----------------------------------------------------------------

    async def credit_stars(
        self, user: UserRef, charge_id: str, payload: str, total: int, currency: str
    ) -> Purchase:
        """A ``successful_payment``: Telegram has the money, so the pack the invoice
        named is credited even if the operator removed it since the pre-checkout."""
        pack = payload_credits(payload)
        if pack is None or not charge_id:
            log.error("a payment from %s names no pack (%r); not credited", user.key, payload)
            raise PackUnavailable(f"unknown payload {payload!r}")
        return await self.credit(user, charge_id, pack, amount=total, currency=currency)

    async def credit_entitlement(
        self, user: UserRef, entitlement_id: str, sku_id: str
    ) -> Purchase | None:
        """A Discord entitlement for one of the configured SKUs (None: not ours)."""
        pack = self.sku_pack(sku_id)
        if pack is None:
            return None
        return await self.credit(user, entitlement_id, pack, amount=0, currency="SKU")

    async def credit(
        self, user: UserRef, charge_id: str, pack: CreditPack, *, amount: int, currency: str
    ) -> Purchase:
        platform = user.platform
        transfer_id = f"{PURCHASE}:{platform}:{charge_id}"
        async with self.store.transaction() as tx:
            account = await self._account_of(tx, user)
            payment, inserted = await self.store.payments.add(
                tx,
                Payment(
                    platform=platform,
                    charge_id=charge_id,
                    account_id=account.id,
                    credits=pack.credits,
                    amount=amount,
                    currency=currency,
                    pack=pack.key,
                    transfer_id=transfer_id,
                ),
            )
            if inserted:
                sales = await self.store.ledger.system_account(tx, SYSTEM_SALES)
                await self.store.ledger.transfer(
                    tx,
                    transfer_id,
                    sales.id,
                    account.id,
                    pack.credits,
                    PURCHASE,
                    actor=user.key,
                    reason=f"{platform} {charge_id}",
                    allow_overdraft=True,
                )
                await self.store.audit.record(
                    tx,
                    user.key,
                    PURCHASE,
                    user.key,
                    f"{platform} {charge_id} pack {pack.key}: {pack.credits} credits "
                    f"for {amount} {currency}",
                    True,
                )
            balance = (await self.store.ledger.balance(tx, payment.account_id)).available
        if inserted:
            log.info("%s bought %d credits (%s %s)", user.key, pack.credits, platform, charge_id)
        return Purchase(payment, balance, inserted)

    async def consumed(self, platform: str, charge_id: str) -> bool:
        """Discord consumed the entitlement: nothing is left to do for it. True if
        this changed the row (False: no such payment, or marked before)."""
        async with self.store.transaction() as tx:
            return await self.store.payments.mark_consumed(tx, platform, charge_id)

    async def unconsumed(self, platform: str) -> list[Payment]:
        async with self.store.read() as tx:
            return await self.store.payments.unconsumed(tx, platform)

    # --- telling the buyer -----------------------------------------------------------

    async def claim_notice(self, platform: str, charge_id: str) -> bool:
        """True exactly once per payment: the caller now tells the buyer."""
        async with self.store.transaction() as tx:
            return await self.store.payments.claim_notice(tx, platform, charge_id)

    async def unnotified(self, platform: str) -> list[Notice]:
        """Credited payments whose buyer nobody has told yet (a crash in between)."""
        found = []
        async with self.store.read() as tx:
            for payment in await self.store.payments.unnotified(tx, platform):
                account = await self.store.ledger.get_account(tx, payment.account_id)
                balance = (await self.store.ledger.balance(tx, account.id)).available
                user = _user_of(platform, account)
                found.append(Notice(payment, user, balance))
        return found

    # --- the platform's own refunds ---------------------------------------------------

    async def platform_refunded(self, platform: str, charge_id: str) -> PlatformRefund | None:
        """The platform refunded this charge itself (Discord deleted the entitlement);
        None when it is not a payment of ours. Only a platform's event or its listing
        reaches this: no command does, so no admin is asked."""
        actor = f"{platform}:platform"
        outcome: Literal["taken", "spent", "already"] = "already"
        async with self.store.transaction() as tx:
            payment = await self.store.payments.get(tx, platform, charge_id)
            if payment is None:
                return None
            account = await self.store.ledger.get_account(tx, payment.account_id)
            user = _user_of(platform, account)
            if payment.platform_refunded_at is None:
                took = spent = False
                if payment.status == "credited":
                    try:
                        await self._take_back_credits(tx, payment, actor)
                        took = True
                    except InsufficientFunds:
                        spent = True  # raised before anything was written
                # The mark after the ledger, the order an admin refund locks in.
                if await self.store.payments.mark_platform_refunded(tx, platform, charge_id):
                    if took:
                        await self.store.payments.set_status(
                            tx, platform, charge_id, "credited", "refunded"
                        )
                        outcome = "taken"
                    elif spent:
                        outcome = "spent"
                    else:  # an admin took them back; the platform returned the money
                        await self.store.payments.set_status(
                            tx, platform, charge_id, "refunding", "refunded"
                        )
                    # Nothing is left to consume, and no "credits added" DM is due.
                    await self.store.payments.mark_consumed(tx, platform, charge_id)
                    await self.store.payments.claim_notice(tx, platform, charge_id)
                    await self.store.audit.record(
                        tx,
                        actor,
                        PURCHASE_REFUND,
                        user.key,
                        f"{platform} {charge_id} refunded by the platform: "
                        + {
                            "taken": f"{payment.credits} credits taken back",
                            "spent": f"{payment.credits} credits already spent, none taken",
                            "already": "credits taken back before",
                        }[outcome],
                        True,
                    )
            balance = (await self.store.ledger.balance(tx, account.id)).available
        if outcome == "taken":
            log.info("%s refunded %s; %d credits taken back", platform, charge_id, payment.credits)
        elif outcome == "spent":
            log.warning(
                "%s refunded %s but %s spent its %d credits; nothing taken back",
                platform,
                charge_id,
                user.key,
                payment.credits,
            )
            await self._alert_admins(
                self.text.t(
                    "alert.platform_refund_spent",
                    None,
                    platform=PLATFORM_NAMES.get(platform, platform),
                    user=account.name,
                    charge_id=charge_id,
                    credits=payment.credits,
                    balance=balance,
                )
            )
        return PlatformRefund(payment, user, balance, outcome)

    async def _take_back_credits(self, tx: Tx, payment: Payment, actor: str) -> None:
        """The purchase's credits back to ``system:sales``. The admin refund and the
        platform's own share this transfer id: whichever comes first takes them,
        the other takes nothing more. ``InsufficientFunds`` (raised before anything
        is written) when the user has spent them."""
        sales = await self.store.ledger.system_account(tx, SYSTEM_SALES)
        await self.store.ledger.transfer(
            tx,
            f"{PURCHASE_REFUND}:{payment.platform}:{payment.charge_id}",
            payment.account_id,
            sales.id,
            payment.credits,
            PURCHASE_REFUND,
            actor=actor,
            reason=f"{payment.platform} {payment.charge_id}",
        )

    # --- admins --------------------------------------------------------------------

    async def refund(
        self, actor: UserRef, platform: str, charge_id: str, on_platform: RefundOnPlatform
    ) -> Refund:
        """Take the credits back, then have the platform return the money. Refused
        (``RefundRefused``) when the user has spent them; when the platform does not
        confirm, the credits stay taken back and a second call only retries it."""
        await self.admin.authorize(actor, PURCHASE_REFUND, f"{platform}:{charge_id}")
        async with self.store.transaction() as tx:
            payment = await self.store.payments.get(tx, platform, charge_id)
            if payment is None:
                raise UnknownPayment(charge_id, charge_id=charge_id)
            account = await self.store.ledger.get_account(tx, payment.account_id)
            if payment.status == "credited":
                try:
                    await self._take_back_credits(tx, payment, actor.key)
                except InsufficientFunds as exc:
                    raise RefundRefused(
                        charge_id, credits=payment.credits, balance=exc.available
                    ) from None
                await self.store.payments.set_status(
                    tx, platform, charge_id, "credited", "refunding"
                )
            balance = (await self.store.ledger.balance(tx, account.id)).available
        user = _user_of(platform, account)
        if payment.status != "refunded":
            try:
                await on_platform(payment, user)
            except Exception as exc:
                log.warning("refund of %s %s not confirmed: %s", platform, charge_id, exc)
                raise RefundUnconfirmed(str(exc), charge_id=charge_id) from None
            async with self.store.transaction() as tx:
                await self.store.payments.set_status(
                    tx, platform, charge_id, "refunding", "refunded"
                )
        return Refund(payment, user, balance, payment.status == "refunded")

    async def take_back(self, actor: UserRef, platform: str, charge_id: str) -> Refund:
        """``refund`` for a platform with no refund API (Discord): the credits come
        back under the same rule, and the money is returned outside the bot."""

        async def by_hand(payment: Payment, user: UserRef) -> None:
            log.info(
                "%s %s: credits taken back; the money is refunded by hand", platform, charge_id
            )

        return await self.refund(actor, platform, charge_id, by_hand)

    async def recent(self, actor: UserRef, limit: int = 10) -> list[PaymentSummary]:
        await self.admin.authorize(actor, "payments", None)
        async with self.store.read() as tx:
            found = []
            for payment in await self.store.payments.recent(tx, limit):
                account = await self.store.ledger.get_account(tx, payment.account_id)
                found.append(PaymentSummary(payment, account.name))
        return found
