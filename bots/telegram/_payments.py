"""Credits bought in Telegram Stars: ``/buy`` lists the packs, a press sends an
invoice (currency ``XTR``, no provider token), the pre-checkout is answered at
once after checking the pack, and ``successful_payment`` credits the ledger once
per ``telegram_payment_charge_id``. Admins: ``/refund <charge id>``, ``/payments``.
"""

from __future__ import annotations

import logging
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice, Update
from telegram.error import BadRequest

from bots.telegram._errors import redact
from bots.telegram._turns import Context, Turn, TurnBase, turn
from bots.telegram._users import PLATFORM, hint_locale
from core.errors import NotAdmin, PackUnavailable
from core.packs import STARS, CreditPack, pack_of_payload
from core.ports import UserRef
from storage.interfaces import Payment

log = logging.getLogger(__name__)

BUY_PREFIX = "b:"
BUY_PATTERN = r"^b:\d+:\d+$"
# Telegram's answer when the charge was refunded before: the refund is done.
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


class PaymentHandlers(TurnBase):
    @turn
    async def buy(self, turn: Turn, context: Context) -> None:
        packs = self.app.payments.packs(PLATFORM)
        if not packs:
            await self.say(turn, self.app.text.t("payments.none", turn.locale))
            return
        rows = [
            [
                InlineKeyboardButton(
                    self.app.text.t(
                        "payments.pack_button", turn.locale, credits=p.credits, stars=p.price
                    ),
                    callback_data=BUY_PREFIX + p.payload.removeprefix("pack:"),
                )
            ]
            for p in packs
        ]
        balance = turn.profile.balance if turn.profile else 0
        await self.say(
            turn,
            self.app.text.t("payments.menu", turn.locale, balance=balance),
            InlineKeyboardMarkup(rows),
        )

    @turn
    async def buy_press(self, turn: Turn, context: Context) -> None:
        query = turn.update.callback_query
        assert query is not None and query.data is not None
        payload = "pack:" + query.data.removeprefix(BUY_PREFIX)
        pack = pack_of_payload(payload, self.app.payments.packs(PLATFORM))
        if pack is None:
            await query.answer(self.app.text.t("payments.pack_gone", turn.locale), show_alert=True)
            return
        await query.answer()
        await self._invoice(turn, pack)

    async def _invoice(self, turn: Turn, pack: CreditPack) -> None:
        title = self.app.text.t("payments.invoice_title", turn.locale, credits=pack.credits)
        await turn.update.get_bot().send_invoice(
            turn.chat_id,
            title=title,
            description=self.app.text.t(
                "payments.invoice_description", turn.locale, credits=pack.credits
            ),
            payload=pack.payload,
            currency=STARS,
            prices=[LabeledPrice(title, pack.price)],
            # Stars need no payment provider: the token is empty by definition.
            provider_token="",
        )

    async def pre_checkout(self, update: Update, context: Context) -> None:
        """Telegram waits 10 seconds for this answer: no profile, no database write,
        only the check that the pack is still sold at that price."""
        query = update.pre_checkout_query
        if query is None:
            return
        try:
            self.app.payments.checkout(query.invoice_payload, query.currency, query.total_amount)
        except PackUnavailable:
            locale = hint_locale(query.from_user.language_code, self.app.settings.default_locale)
            await query.answer(
                ok=False, error_message=self.app.text.t("payments.pack_gone", locale)
            )
            return
        await query.answer(ok=True)

    @turn
    async def successful_payment(self, turn: Turn, context: Context) -> None:
        message = turn.message
        assert message is not None and message.successful_payment is not None
        paid = message.successful_payment
        purchase = await self.app.payments.credit_stars(
            turn.user,
            paid.telegram_payment_charge_id,
            paid.invoice_payload,
            paid.total_amount,
            paid.currency,
        )
        key = "payments.credited" if purchase.credited else "payments.already_credited"
        await self.say(
            turn,
            self.app.text.t(
                key, turn.locale, credits=purchase.payment.credits, balance=purchase.balance
            ),
        )

    @turn
    async def refund(self, turn: Turn, context: Context) -> None:
        args = list(context.args or [])
        if len(args) != 1:
            if not turn.is_admin:
                raise NotAdmin()
            await self.say(turn, self.app.text.t("payments.refund_usage", turn.locale))
            return
        bot = turn.update.get_bot()

        async def on_telegram(payment: Payment, user: UserRef) -> None:
            try:
                await bot.refund_star_payment(int(user.user_id), payment.charge_id)
            except BadRequest as err:
                if ALREADY_REFUNDED not in str(err):
                    raise
                log.info("charge %s was already refunded on Telegram", redact(payment.charge_id))

        done = await self.app.payments.refund(turn.user, PLATFORM, args[0], on_telegram)
        payment = done.payment
        if done.already:
            text = self.app.text.t("payments.already_refunded", turn.locale, charge_id=args[0])
        else:
            text = self.app.text.t(
                "payments.refunded",
                turn.locale,
                amount=payment.amount,
                currency=payment.currency,
                charge_id=payment.charge_id,
                credits=payment.credits,
                user=done.user.key,
                balance=done.balance,
            )
        await self.say(turn, text)

    @turn
    async def payments(self, turn: Turn, context: Context) -> None:
        found = await self.app.payments.recent(turn.user, limit=10)
        if not found:
            await self.say(turn, self.app.text.t("payments.recent_empty", turn.locale))
            return
        lines = [self.app.text.t("payments.recent_header", turn.locale)]
        for item in found:
            p = item.payment
            lines.append(
                self.app.text.t(
                    "payments.recent_line",
                    turn.locale,
                    when=time.strftime("%m-%d %H:%M", time.gmtime(p.created_at)),
                    user=item.user_key,
                    credits=p.credits,
                    amount=p.amount,
                    currency=p.currency,
                    status=self.app.text.t(f"payments.status.{p.status}", turn.locale),
                    charge_id=p.charge_id,
                )
            )
        await self.say(turn, "\n".join(lines))


def is_payment_update(update: Update) -> bool:
    """Money already taken (or about to be): never dropped by the flood guard."""
    message = update.message
    return update.pre_checkout_query is not None or (
        message is not None and message.successful_payment is not None
    )
