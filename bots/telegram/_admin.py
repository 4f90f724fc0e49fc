"""Admin commands: credits and jobs for the allowlist in ``ADMIN_USER_IDS``.

Core decides who is an admin (and audits refusals); a ``<user>`` is a reply to
their message, a numeric id or the @username of someone the bot has seen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bots.telegram._turns import Context, Turn, TurnBase, turn
from bots.telegram._users import replied_user, resolve_target, user_ref
from core.errors import InvalidRequest, NotAdmin, UnknownUser
from core.ports import UserRef


def _display(user: UserRef) -> str:
    return f"@{user.username}" if user.username else user.user_id


class AdminHandlers(TurnBase):
    async def _target_and_args(self, turn: Turn, args: list[str]) -> tuple[UserRef, list[str]]:
        """``<user>`` is a reply to their message, a numeric id or a seen @username.
        Non-admins learn nothing about users: they get the NotAdmin sentence."""
        author = replied_user(turn.message)
        try:
            if author is not None:
                return user_ref(author), args
            if not args:
                raise InvalidRequest("missing user", kind="usage")
            return await resolve_target(self.app.find_user, args[0]), args[1:]
        except (InvalidRequest, UnknownUser):
            if not turn.is_admin:
                raise NotAdmin() from None
            raise

    async def _amount_command(
        self,
        turn: Turn,
        context: Context,
        usage_key: str,
        action: Callable[[UserRef, int, str | None], Awaitable[int]],
        done_key: str,
    ) -> None:
        args = list(context.args or [])
        usage = self.app.text.t(usage_key, turn.locale)
        try:
            target, rest = await self._target_and_args(turn, args)
        except InvalidRequest:
            await self.say(turn, self.app.text.t("admin.usage", turn.locale, usage=usage))
            return
        if not rest or not rest[0].lstrip("-").isdigit():
            if not turn.is_admin:
                raise NotAdmin()
            key = "admin.usage" if not rest else "admin.bad_amount"
            await self.say(turn, self.app.text.t(key, turn.locale, usage=usage))
            return
        amount = int(rest[0])
        reason = " ".join(rest[1:]) or None
        balance = await action(target, amount, reason)
        await self.say(
            turn,
            self.app.text.t(
                done_key, turn.locale, amount=amount, user=_display(target), balance=balance
            ),
        )

    @turn
    async def topup(self, turn: Turn, context: Context) -> None:
        await self._amount_command(
            turn,
            context,
            "usage.topup",
            lambda t, a, r: self.app.admin_topup(turn.user, t, a, r, turn.request_id),
            "admin.topup_done",
        )

    @turn
    async def setcredits(self, turn: Turn, context: Context) -> None:
        await self._amount_command(
            turn,
            context,
            "usage.setcredits",
            lambda t, a, r: self.app.admin_set(turn.user, t, a, r, turn.request_id),
            "admin.set_done",
        )

    @turn
    async def deduct(self, turn: Turn, context: Context) -> None:
        await self._amount_command(
            turn,
            context,
            "usage.deduct",
            lambda t, a, r: self.app.admin_deduct(turn.user, t, a, r, turn.request_id),
            "admin.deduct_done",
        )

    @turn
    async def credits(self, turn: Turn, context: Context) -> None:
        try:
            target, _ = await self._target_and_args(turn, list(context.args or []))
        except InvalidRequest:
            await self.say(
                turn,
                self.app.text.t(
                    "admin.usage", turn.locale, usage=self.app.text.t("usage.credits", turn.locale)
                ),
            )
            return
        report = await self.app.admin_show(turn.user, target)
        await self.say(turn, self.app.text.account_report(turn.locale, report, _display(target)))

    @turn
    async def jobs(self, turn: Turn, context: Context) -> None:
        jobs = await self.app.admin_jobs(turn.user, limit=10)
        text = self.app.text.jobs(turn.locale, jobs)
        vendors = self.app.text.vendors(turn.locale, await self.app.vendor_states())
        await self.say(turn, f"{text}\n\n{vendors}")

    @turn
    async def resume(self, turn: Turn, context: Context) -> None:
        args = list(context.args or [])
        vendor = args[0] if args else None
        cleared = await self.app.admin_resume(turn.user, vendor)
        key = "admin.resumed" if cleared else "admin.not_paused"
        if vendor is not None:
            key += ".named"
        await self.say(turn, self.app.text.t(key, turn.locale, vendor=vendor))

    @turn
    async def stats(self, turn: Turn, context: Context) -> None:
        card = await self.app.admin_stats(turn.user)
        chat = turn.update.effective_chat
        if chat is None:
            return
        await turn.update.get_bot().send_photo(
            chat.id, card.png, caption=self.app.text.stats(turn.locale, card.today)
        )
