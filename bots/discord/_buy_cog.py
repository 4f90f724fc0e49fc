"""Credits bought through Discord's app monetization: ``DISCORD_SKU_PACKS`` maps
consumable SKUs from the developer portal to credit packs. ``/buy`` shows them as
premium buttons (Discord's store takes the payment); each entitlement for such a SKU
(``on_entitlement_create``, one carried by an interaction, or one found at start)
credits the ledger once per entitlement id and is then consumed. A crash between
the two credits nothing twice: the entitlement stays unconsumed on Discord, and the
next start finds it, credits nothing more and consumes it. A crash after Discord
consumed it but before the payment row says so (or a consume whose answer was
lost) is settled from what Discord reports: the start reads back every payment it
still holds as unconsumed, and a refused consume reads the entitlement back, so a
row Discord calls consumed (or no longer knows) is marked consumed and nothing more
is credited. The buyer gets one DM with their new balance after the consume, sent
by whoever claims the payment's notice first, so the start after such a crash
sends the DM the crashed process never sent.

When Discord refunds a purchase it deletes the entitlement (``on_entitlement_delete``,
or a deleted one in the start's listing): the credits are taken back once and the
buyer gets a DM, or, spent already, nothing is taken and the admins are alerted
(``Payments.platform_refunded``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from core.payments import PlatformRefund, Purchase
from core.ports import UserRef
from storage.interfaces import Payment

from ._context import app_of
from ._translator import text
from ._users import PLATFORM, interaction_user

if TYPE_CHECKING:
    from ._bot import ImagineBot

log = logging.getLogger(__name__)
# Past every snowflake: a listing that pages back from here sees them all.
_NEWEST = discord.Object(id=(1 << 63) - 1)


class BuyCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @app_commands.command(name="buy", description=text("command.buy"))
    async def buy(self, interaction: discord.Interaction) -> None:
        app = app_of(interaction)
        profile = await app.profile(interaction_user(interaction))
        packs = app.payments.packs(PLATFORM)
        if not packs:
            await interaction.response.send_message(
                app.text.t("payments.none", profile.locale), ephemeral=True
            )
            return
        names: dict[str, str] = {}
        with contextlib.suppress(discord.HTTPException):
            names = {str(s.id): s.name for s in await self.bot.fetch_skus()}
        lines = [app.text.t("payments.menu.discord", profile.locale, balance=profile.balance)]
        view = discord.ui.View(timeout=None)
        for pack in packs:
            assert pack.sku_id is not None
            name = names.get(pack.sku_id, pack.sku_id)
            lines.append(
                app.text.t("payments.pack_line", profile.locale, name=name, credits=pack.credits)
            )
            view.add_item(
                discord.ui.Button(style=discord.ButtonStyle.premium, sku_id=int(pack.sku_id))
            )
        await interaction.response.send_message("\n".join(lines), view=view, ephemeral=True)

    # --- entitlements ---------------------------------------------------------------

    @commands.Cog.listener()
    async def on_entitlement_create(self, entitlement: discord.Entitlement) -> None:
        await self.redeem(entitlement, tell=True)

    @commands.Cog.listener()
    async def on_entitlement_delete(self, entitlement: discord.Entitlement) -> None:
        await self.refunded(entitlement)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        for entitlement in interaction.entitlements:
            await self.redeem(entitlement, tell=True)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        await self.reconcile()

    async def reconcile(self) -> int:
        """Credit and consume what is still unconsumed on Discord (bought while the
        bot was down, or credited just before a crash), settle the payments Discord
        consumed before a crash let us record it, and tell the buyers nobody told;
        how many entitlements were redeemed."""
        app = self.bot.app
        skus = [discord.Object(int(p.sku_id)) for p in app.payments.packs(PLATFORM) if p.sku_id]
        if not skus:
            return 0
        redeemed = 0
        # Payments we hold as unconsumed: a crash before or after Discord consumed them.
        pending = {p.charge_id: p for p in await app.payments.unconsumed(PLATFORM)}
        try:
            async for entitlement in self._listing(skus):
                if entitlement.deleted:
                    pending.pop(str(entitlement.id), None)
                    await self.refunded(entitlement)
                    continue
                if pending.pop(str(entitlement.id), None) is None and entitlement.consumed:
                    continue  # settled long ago: the listing shows every purchase
                if await self.redeem(entitlement, tell=True) is not None:
                    redeemed += 1
        except discord.HTTPException as err:
            log.warning("could not list Discord entitlements: %s", err)
        # Those the listing did not show (it failed, or a SKU was dropped from
        # DISCORD_SKU_PACKS): ask Discord about each one.
        for payment in pending.values():
            redeemed += await self._recheck(payment)
        for notice in await app.payments.unnotified(PLATFORM):
            if notice.payment.consumed_at is not None:  # else the entitlement is still due
                await self._tell(notice.user, notice.payment, notice.balance)
        return redeemed

    async def _listing(self, skus: list[discord.Object]) -> AsyncIterator[discord.Entitlement]:
        """Every entitlement for these SKUs, deleted ones too (Discord refunded them,
        maybe while the bot was down). ``Client.entitlements`` forwards
        ``exclude_deleted`` only when it pages backwards (discord.py 2.7 drops it
        going forwards), so the listing starts past the newest id and pages back."""
        async for entitlement in self.bot.entitlements(
            skus=skus,
            limit=None,
            before=_NEWEST,
            exclude_ended=True,
            exclude_deleted=False,
        ):
            yield entitlement

    async def _recheck(self, payment: Payment) -> int:
        """One payment we hold as unconsumed, settled by what Discord says of its
        entitlement now; 1 if it was redeemed (consumed) now."""
        try:
            entitlement = await self.bot.fetch_entitlement(int(payment.charge_id))
        except discord.NotFound:
            log.info("entitlement %s is gone on Discord; nothing to consume", payment.charge_id)
            await self.bot.app.payments.consumed(PLATFORM, payment.charge_id)
            return 0
        except discord.HTTPException as err:
            log.warning("could not read entitlement %s: %s", payment.charge_id, err)
            return 0
        if await self.redeem(entitlement, tell=True) is not None:
            return 1
        return 0

    async def redeem(self, entitlement: discord.Entitlement, *, tell: bool) -> Purchase | None:
        app = self.bot.app
        if entitlement.deleted:
            await self.refunded(entitlement)
            return None
        if entitlement.consumed:
            # Nothing left to do on Discord. If we credited it, our row may still say
            # unconsumed (a crash right after Discord consumed it): settle it; the
            # buyer nobody told is told by the start's reconcile. Never credited now.
            if await app.payments.consumed(PLATFORM, str(entitlement.id)):
                log.info("entitlement %s was consumed on Discord before a crash", entitlement.id)
            return None
        if entitlement.user_id is None:
            return None
        user = UserRef(PLATFORM, str(entitlement.user_id))
        purchase = await app.payments.credit_entitlement(
            user, str(entitlement.id), str(entitlement.sku_id)
        )
        if purchase is None:
            return None  # a SKU that is not a credit pack
        try:
            await entitlement.consume()
        except discord.NotFound:
            log.info("entitlement %s is gone on Discord; nothing to consume", entitlement.id)
        except discord.HTTPException as err:
            # Refused (Discord answers a second consume with an error) or no answer
            # (it may have consumed it anyway): what Discord reports now decides.
            if not await self._consumed_on_discord(entitlement.id):
                # Credited, not consumed: the next start finds it and only consumes it.
                log.warning("could not consume entitlement %s: %s", entitlement.id, err)
                return purchase
        await app.payments.consumed(PLATFORM, str(entitlement.id))
        if tell:
            await self._tell(user, purchase.payment, purchase.balance)
        return purchase

    async def refunded(self, entitlement: discord.Entitlement) -> PlatformRefund | None:
        """Discord deleted the entitlement (a refund): see ``Payments.platform_refunded``;
        None when it was never credited here (another SKU, or not bought through
        this bot's database)."""
        app = self.bot.app
        done = await app.payments.platform_refunded(PLATFORM, str(entitlement.id))
        if done is not None and done.outcome == "taken":
            locale = (await app.profile(done.user)).locale
            await self._dm(
                done.user,
                done.payment.charge_id,
                app.text.t(
                    "payments.platform_refunded",
                    locale,
                    platform="Discord",
                    credits=done.payment.credits,
                    balance=done.balance,
                ),
            )
        return done

    async def _consumed_on_discord(self, entitlement_id: int) -> bool:
        """True if Discord reports the entitlement consumed (or no longer knows it)."""
        try:
            found = await self.bot.fetch_entitlement(entitlement_id)
        except discord.NotFound:
            return True
        except discord.HTTPException as err:
            log.warning("could not read entitlement %s back: %s", entitlement_id, err)
            return False
        return found.consumed or found.deleted

    async def _tell(self, user: UserRef, payment: Payment, balance: int) -> None:
        app = self.bot.app
        if not await app.payments.claim_notice(PLATFORM, payment.charge_id):
            return  # told before (a redelivery, or another process was first)
        locale = (await app.profile(user)).locale
        thanks = app.text.t("payments.credited", locale, credits=payment.credits, balance=balance)
        await self._dm(user, payment.charge_id, thanks)

    async def _dm(self, user: UserRef, charge_id: str, message: str) -> None:
        try:
            channel = await self.bot.create_dm(discord.Object(int(user.user_id)))
            await channel.send(message)
        except discord.HTTPException as err:
            # Mostly DMs closed to the bot: not retried, /balance shows the credits.
            log.info("could not DM %s about entitlement %s: %s", user.key, charge_id, err)
