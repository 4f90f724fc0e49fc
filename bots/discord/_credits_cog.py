"""Admin commands: ``/credits topup|set|deduct|show|jobs|resume|payments|refund``.

Registered with ``default_member_permissions=administrator`` so ordinary members do
not see the group, but that is only a hint a server owner can change: core checks
every call against ``ADMIN_USER_IDS`` (``NotAdmin``, audited). Answers are ephemeral.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from ._context import app_of
from ._translator import text
from ._users import PLATFORM, interaction_user, user_ref

if TYPE_CHECKING:
    from core.app import Imagine

    from ._bot import ImagineBot

MESSAGE_LIMIT = 2000
_OPTIONS = {
    "user": text("option.user"),
    "amount": text("option.amount"),
    "reason": text("option.reason"),
}


async def _locale(app: Imagine, interaction: discord.Interaction) -> str:
    return (await app.profile(interaction_user(interaction))).locale


async def _reply(interaction: discord.Interaction, text: str) -> None:
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    await interaction.response.send_message(
        text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
    )


def _request_id(interaction: discord.Interaction) -> str:
    # One interaction is one admin action, however often Discord re-sends it.
    return f"interaction:{interaction.id}"


class CreditsCog(commands.Cog):
    credits = app_commands.Group(
        name="credits",
        description=text("command.credits"),
        default_permissions=discord.Permissions(administrator=True),
    )

    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @credits.command(name="topup", description=text("command.credits.topup"))
    @app_commands.describe(**_OPTIONS)
    async def topup(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        amount: app_commands.Range[int, 1],
        reason: str | None = None,
    ) -> None:
        app = app_of(interaction)
        balance = await app.admin_topup(
            interaction_user(interaction), user_ref(user), amount, reason, _request_id(interaction)
        )
        text = app.text.t(
            "admin.topup_done",
            await _locale(app, interaction),
            amount=amount,
            user=user.mention,
            balance=balance,
        )
        await _reply(interaction, text)

    @credits.command(name="set", description=text("command.credits.set"))
    @app_commands.describe(**{**_OPTIONS, "amount": text("option.new_balance")})
    async def set_(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        amount: app_commands.Range[int, 0],
        reason: str | None = None,
    ) -> None:
        app = app_of(interaction)
        balance = await app.admin_set(
            interaction_user(interaction), user_ref(user), amount, reason, _request_id(interaction)
        )
        text = app.text.t(
            "admin.set_done", await _locale(app, interaction), user=user.mention, balance=balance
        )
        await _reply(interaction, text)

    @credits.command(name="deduct", description=text("command.credits.deduct"))
    @app_commands.describe(**_OPTIONS)
    async def deduct(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        amount: app_commands.Range[int, 1],
        reason: str,
    ) -> None:
        app = app_of(interaction)
        balance = await app.admin_deduct(
            interaction_user(interaction), user_ref(user), amount, reason, _request_id(interaction)
        )
        text = app.text.t(
            "admin.deduct_done",
            await _locale(app, interaction),
            amount=amount,
            user=user.mention,
            balance=balance,
        )
        await _reply(interaction, text)

    @credits.command(name="show", description=text("command.credits.show"))
    @app_commands.describe(user=text("option.user"))
    async def show(self, interaction: discord.Interaction, user: discord.User) -> None:
        app = app_of(interaction)
        report = await app.admin_show(interaction_user(interaction), user_ref(user))
        locale = await _locale(app, interaction)
        await _reply(interaction, app.text.account_report(locale, report, user.mention))

    @credits.command(name="jobs", description=text("command.credits.jobs"))
    async def jobs(self, interaction: discord.Interaction) -> None:
        app = app_of(interaction)
        summaries = await app.admin_jobs(interaction_user(interaction))
        locale = await _locale(app, interaction)
        vendors = app.text.vendors(locale, await app.vendor_states())
        await _reply(interaction, f"{app.text.jobs(locale, summaries)}\n\n{vendors}")

    @credits.command(name="resume", description=text("command.credits.resume"))
    @app_commands.describe(vendor=text("option.vendor"))
    async def resume(self, interaction: discord.Interaction, vendor: str | None = None) -> None:
        app = app_of(interaction)
        cleared = await app.admin_resume(interaction_user(interaction), vendor)
        key = "admin.resumed" if cleared else "admin.not_paused"
        if vendor is not None:
            key += ".named"
        await _reply(interaction, app.text.t(key, await _locale(app, interaction), vendor=vendor))

    @credits.command(name="payments", description=text("command.credits.payments"))
    async def payments(self, interaction: discord.Interaction) -> None:
        app = app_of(interaction)
        found = await app.payments.recent(interaction_user(interaction), limit=10)
        await _reply(interaction, app.text.payments(await _locale(app, interaction), found))

    @credits.command(name="refund", description=text("command.credits.refund"))
    @app_commands.describe(charge_id=text("option.charge_id"))
    async def refund(self, interaction: discord.Interaction, charge_id: str) -> None:
        # Discord has no refund call for apps: the credits come back here, the money
        # through the developer portal or Discord support, as the answer says.
        app = app_of(interaction)
        done = await app.payments.take_back(interaction_user(interaction), PLATFORM, charge_id)
        locale = await _locale(app, interaction)
        if done.already:
            text = app.text.t("payments.already_refunded", locale, charge_id=charge_id)
        else:
            text = app.text.t(
                "payments.refunded.discord",
                locale,
                charge_id=done.payment.charge_id,
                credits=done.payment.credits,
                user=f"<@{done.user.user_id}>",
                balance=done.balance,
            )
        await _reply(interaction, text)
