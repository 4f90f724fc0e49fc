"""Credits bought through Discord's app monetization: ``DISCORD_SKU_PACKS`` maps
consumable SKUs from the developer portal to credit packs. ``/buy`` shows them as
premium buttons (Discord's store takes the payment); each entitlement for such a SKU
(``on_entitlement_create``, one carried by an interaction, or one found at start)
credits the ledger once per entitlement id and is then consumed. A crash between
the two credits nothing twice: the entitlement stays unconsumed on Discord, and the
next start finds it, credits nothing more and consumes it. The buyer gets one DM
with their new balance after the consume, sent by whoever claims the payment's
notice first, so the start after such a crash sends the DM the crashed process
never sent."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from core.payments import Purchase
from core.ports import UserRef
from storage.interfaces import Payment

from ._context import app_of
from ._translator import text
from ._users import PLATFORM, interaction_user

if TYPE_CHECKING:
    from ._bot import ImagineBot

log = logging.getLogger(__name__)


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
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        for entitlement in interaction.entitlements:
            await self.redeem(entitlement, tell=True)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        await self.reconcile()

    async def reconcile(self) -> int:
        """Credit and consume what is still unconsumed on Discord (bought while the
        bot was down, or credited just before a crash), and tell the buyers nobody
        told; how many entitlements were redeemed."""
        app = self.bot.app
        skus = [discord.Object(int(p.sku_id)) for p in app.payments.packs(PLATFORM) if p.sku_id]
        if not skus:
            return 0
        redeemed = 0
        try:
            async for entitlement in self.bot.entitlements(
                limit=None, skus=skus, exclude_ended=True
            ):
                if await self.redeem(entitlement, tell=True) is not None:
                    redeemed += 1
        except discord.HTTPException as err:
            log.warning("could not list Discord entitlements: %s", err)
        for notice in await app.payments.unnotified(PLATFORM):
            if notice.payment.consumed_at is not None:  # else the entitlement is still due
                await self._tell(notice.user, notice.payment, notice.balance)
        return redeemed

    async def redeem(self, entitlement: discord.Entitlement, *, tell: bool) -> Purchase | None:
        app = self.bot.app
        if entitlement.consumed or entitlement.deleted or entitlement.user_id is None:
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
            # Credited, not consumed: the next start finds it and only consumes it.
            log.warning("could not consume entitlement %s: %s", entitlement.id, err)
            return purchase
        await app.payments.consumed(PLATFORM, str(entitlement.id))
        if tell:
            await self._tell(user, purchase.payment, purchase.balance)
        return purchase

    async def _tell(self, user: UserRef, payment: Payment, balance: int) -> None:
        app = self.bot.app
        if not await app.payments.claim_notice(PLATFORM, payment.charge_id):
            return  # told before (a redelivery, or another process was first)
        locale = (await app.profile(user)).locale
        thanks = app.text.t("payments.credited", locale, credits=payment.credits, balance=balance)
        try:
            channel = await self.bot.create_dm(discord.Object(int(user.user_id)))
            await channel.send(thanks)
        except discord.HTTPException as err:
            # Mostly DMs closed to the bot: not retried, /balance shows the credits.
            log.info("could not DM %s about entitlement %s: %s", user.key, payment.charge_id, err)
