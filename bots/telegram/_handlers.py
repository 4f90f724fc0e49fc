"""Update handlers: each reads the update, builds one core request, awaits one
facade call and renders the outcome with the shared catalogue.

Every handler runs inside ``turn`` (``_turns.py``), which resolves who asks and
reports errors in one place; admin commands live in ``_admin.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    PreCheckoutQueryHandler,
    TypeHandler,
    filters,
)

from bots.telegram import _keyboards as kb
from bots.telegram._admin import AdminHandlers
from bots.telegram._media import DOWNLOAD_LIMIT, AlbumCache, collect, has_media
from bots.telegram._payments import BUY_PATTERN, PaymentHandlers, is_payment_update
from bots.telegram._progress import StatusBoard
from bots.telegram._public_files import PublicFiles
from bots.telegram._turns import MESSAGE_MAX, Context, Turn, text_after_command, turn
from bots.telegram._users import PLATFORM, hint_locale
from core.app import Imagine
from core.errors import ImagineError, InvalidRequest
from core.job_ids import short_id
from core.locales import take_language
from core.options import Defaults
from core.ports import ChatRef
from core.results import Submitted
from core.sources import SourceRef
from core.types import ImageRequest, Progress

# Album items arrive as separate updates; a captioned "/edit" album waits this long
# for its siblings before gathering them.
ALBUM_SETTLE = 1.0
PROMPT_PREVIEW = 300


def _short(prompt: str, limit: int = PROMPT_PREVIEW) -> str:
    return prompt if len(prompt) <= limit else prompt[: limit - 1] + "…"


def _with_option(defaults: Defaults, field: str, value: str) -> Defaults:
    if field == "n":
        return replace(defaults, n=int(value) if value.isdigit() else defaults.n)
    if field == "aspect":
        return replace(defaults, aspect=value)
    if field == "resolution":
        return replace(defaults, resolution=value)
    if field == "quality":
        return replace(defaults, quality=value)
    return defaults


class Handlers(AdminHandlers, PaymentHandlers):
    def __init__(
        self,
        app: Imagine,
        albums: AlbumCache,
        status: StatusBoard,
        public_files: PublicFiles | None,
    ) -> None:
        super().__init__(app, status)
        self.albums = albums
        self.public_files = public_files
        # Drafts whose Generate was pressed; a second quick press must not run twice.
        self._launched: set[str] = set()

    # --- wiring ---------------------------------------------------------------------

    def register(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        # Group -2 sees every update first and drops a flood before it costs anything.
        application.add_handler(TypeHandler(Update, self.throttle), group=-2)
        # Group -1: album items are remembered as they pass.
        application.add_handler(TypeHandler(Update, self.remember_album), group=-1)
        commands: dict[str, Callable[[Update, Context], Coroutine[Any, Any, None]]] = {
            "start": self.start,
            "help": self.help,
            "imagine": self.imagine,
            "edit": self.edit_command,
            "price": self.price,
            "balance": self.balance,
            "history": self.history,
            "show": self.show,
            "settings": self.settings,
            "topup": self.topup,
            "setcredits": self.setcredits,
            "deduct": self.deduct,
            "credits": self.credits,
            "jobs": self.jobs,
            "resume": self.resume,
            "buy": self.buy,
            "refund": self.refund,
            "payments": self.payments,
            "stats": self.stats,
        }
        for name, callback in commands.items():
            application.add_handler(CommandHandler(name, callback))
        edit_caption = filters.CaptionRegex(r"^/edit(@\w+)?(\s|$)") & (
            filters.PHOTO | filters.Document.IMAGE
        )
        application.add_handler(MessageHandler(edit_caption, self.edit_caption))
        application.add_handler(
            MessageHandler(filters.TEXT & filters.REPLY & ~filters.COMMAND, self.edit_reply)
        )
        application.add_handler(CallbackQueryHandler(self.button, pattern=r"^[dsrveh]:"))
        application.add_handler(CallbackQueryHandler(self.buy_press, pattern=BUY_PATTERN))
        application.add_handler(PreCheckoutQueryHandler(self.pre_checkout))
        application.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, self.successful_payment))

    async def throttle(self, update: Update, context: Context) -> None:
        tg_user = update.effective_user
        if tg_user is None or tg_user.is_bot or is_payment_update(update):
            return
        key = f"{PLATFORM}:{tg_user.id}"
        if self.app.throttle.allow(key):
            return
        if self.app.throttle.should_notice(key):
            locale = hint_locale(tg_user.language_code, self.app.settings.default_locale)
            text = self.app.text.t("throttled", locale)
            with contextlib.suppress(TelegramError):
                if update.callback_query is not None:
                    await update.callback_query.answer(text)
                elif update.effective_chat is not None:
                    await update.get_bot().send_message(update.effective_chat.id, text)
        raise ApplicationHandlerStop

    async def remember_album(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None:
            return
        self.albums.remember(message)
        if message.reply_to_message is not None:
            self.albums.remember(message.reply_to_message)

    # --- queueing a job ----------------------------------------------------------------

    async def _run(
        self,
        turn: Turn,
        start: Callable[[ChatRef], Awaitable[Submitted]],
        *,
        reply_to: int | None,
        status_id: int | None = None,
    ) -> None:
        """Post (or reuse) the status message, then make the one intake call; a worker
        runs the job and the frontend turns the status into the result (or the
        reason it failed)."""
        bot = turn.update.get_bot()
        first = self.app.text.status(Progress(stage="submitted"), turn.locale, 0)
        if status_id is None:
            status = await bot.send_message(
                turn.chat_id,
                first,
                reply_parameters=(
                    ReplyParameters(reply_to, allow_sending_without_reply=True)
                    if reply_to
                    else None
                ),
            )
            status_id = status.message_id
        else:
            await bot.edit_message_text(first, chat_id=turn.chat_id, message_id=status_id)
        chat = ChatRef(
            PLATFORM,
            {"chat_id": turn.chat_id, "reply_to": reply_to, "status_message_id": status_id},
        )
        try:
            submitted = await start(chat)
        except Exception as err:
            await self.report(turn, err, status_id=status_id)
            return
        if submitted.position:
            queued = Progress(stage="queued", queue_position=submitted.position)
            with contextlib.suppress(TelegramError):
                await bot.edit_message_text(
                    self.app.text.status(queued, turn.locale, 0),
                    chat_id=turn.chat_id,
                    message_id=status_id,
                )

    async def _submit(
        self, turn: Turn, request: ImageRequest, *, reply_to: int | None, status_id: int | None
    ) -> None:
        async def start(chat: ChatRef) -> Submitted:
            return await self.app.submit(turn.user, request, chat, profile=turn.profile)

        await self._run(turn, start, reply_to=reply_to, status_id=status_id)

    # --- plain commands ---------------------------------------------------------------

    @turn
    async def start(self, turn: Turn, context: Context) -> None:
        balance = turn.profile.balance if turn.profile else 0
        can_buy = bool(self.app.payments.packs(PLATFORM))
        await self.say(
            turn,
            self.app.text.welcome(
                turn.locale, balance, self.app.preset, turn.is_admin, PLATFORM, can_buy
            ),
        )

    @turn
    async def help(self, turn: Turn, context: Context) -> None:
        can_buy = bool(self.app.payments.packs(PLATFORM))
        await self.say(
            turn,
            self.app.text.help(turn.locale, self.app.preset, turn.is_admin, PLATFORM, can_buy),
        )

    @turn
    async def balance(self, turn: Turn, context: Context) -> None:
        await self.say(turn, self.app.text.balance(turn.locale, await self.app.balance(turn.user)))

    @turn
    async def history(self, turn: Turn, context: Context) -> None:
        entries = await self.app.history(turn.user, limit=10)
        shown = list(dict.fromkeys(e.job_id for e in entries if e.shows_image and e.job_id))
        markup = kb.history_keyboard(
            shown, lambda job: self.app.text.t("button.show", turn.locale, job=short_id(job))
        )
        await self.say(turn, self.app.text.history(turn.locale, entries), markup)

    @turn
    async def show(self, turn: Turn, context: Context) -> None:
        """``/show <id>``: an earlier result posted again, with its buttons."""
        typed = text_after_command(turn.message).strip()
        if not typed:
            await self.say(turn, self.app.text.t("show.usage", turn.locale))
            return
        reply_to = turn.message.message_id if turn.message else None
        await self.app.show(turn.user, typed, self._here(turn, reply_to), profile=turn.profile)

    def _here(self, turn: Turn, reply_to: int | None) -> ChatRef:
        return ChatRef(PLATFORM, {"chat_id": turn.chat_id, "reply_to": reply_to})

    @turn
    async def price(self, turn: Turn, context: Context) -> None:
        request = await self.app.request(
            turn.user, text_after_command(turn.message), defaults=turn.defaults
        )
        info = await self.app.quote(turn.user, request)
        await self.say(turn, self.app.text.price(turn.locale, info, request))

    # --- /imagine and its menu --------------------------------------------------------

    @turn
    async def imagine(self, turn: Turn, context: Context) -> None:
        message = turn.message
        assert message is not None
        text = text_after_command(message)
        target = message.reply_to_message
        if target is not None and has_media(target):
            # "/imagine <instruction>" as a reply to a picture is an edit.
            await self._edit(turn, text, target)
            return
        parsed = self.app.parse_prompt(text, turn.defaults)
        request = await self.app.request(
            turn.user, parsed.prompt, defaults=parsed.defaults, inline_flags=False
        )
        if parsed.explicit:
            await self._submit(turn, request, reply_to=message.message_id, status_id=None)
            return
        draft = await self.app.drafts.create(turn.user, parsed.prompt, parsed.defaults)
        text, markup = await self._draft_view(turn, draft.id, parsed.prompt, parsed.defaults)
        await self.say(turn, text, markup)

    def _choice(self, defaults: Defaults) -> kb.Choice:
        preset = self.app.preset
        return kb.Choice(
            aspects=preset.aspects(defaults.resolution),
            tiers=preset.tiers,
            qualities=preset.qualities,
            n_max=preset.n_max,
            aspect=defaults.aspect,
            resolution=defaults.resolution,
            quality=defaults.quality,
            n=defaults.n,
        )

    async def _draft_view(
        self, turn: Turn, draft_id: str, prompt: str, defaults: Defaults
    ) -> tuple[str, InlineKeyboardMarkup]:
        request = await self.app.request(turn.user, prompt, defaults=defaults, inline_flags=False)
        info = await self.app.quote(turn.user, request)
        text = f"{_short(prompt)}\n\n{self.app.text.price(turn.locale, info, request)}"
        markup = kb.draft_keyboard(
            draft_id,
            self._choice(defaults),
            self.app.text.t("button.generate", turn.locale, price=info.price),
            self.app.text.t("button.cancel", turn.locale),
        )
        return text, markup

    # --- buttons ----------------------------------------------------------------------

    @turn
    async def button(self, turn: Turn, context: Context) -> None:
        query = turn.update.callback_query
        assert query is not None
        press = kb.decode(query.data or "")
        if press is None:
            await query.answer()
            return
        if press.kind == "d":
            await self._draft_press(turn, query, press)
        elif press.kind == "s":
            await self._settings_press(turn, query, press)
        elif press.kind == "e":
            await query.answer(self.app.text.t("edit.hint", turn.locale), show_alert=True)
        elif press.kind == "h":
            await self._show_press(turn, query, press)
        else:
            await self._result_press(turn, query, press)

    async def _alert(self, query: CallbackQuery, text: str) -> None:
        await query.answer(text[:200], show_alert=True)

    async def _draft_press(self, turn: Turn, query: CallbackQuery, press: kb.Press) -> None:
        message = query.message if isinstance(query.message, Message) else None
        draft = await self.app.drafts.get(press.target)
        if draft is None or message is None:
            await self._alert(query, self.app.text.t("draft.expired", turn.locale))
            return
        if draft.user_key != turn.user.key:
            await self._alert(query, self.app.text.t("draft.not_yours", turn.locale))
            return
        if press.action == "x":
            await self.app.drafts.delete(draft.id)
            await query.answer()
            await message.edit_text(self.app.text.t("draft.cancelled", turn.locale))
            return
        if press.action == "go":
            if draft.id in self._launched:
                await query.answer()
                return
            self._launched.add(draft.id)
            try:
                await self.app.drafts.delete(draft.id)
                await query.answer()
                request = await self.app.request(
                    turn.user, draft.prompt, defaults=draft.defaults, inline_flags=False
                )
                reply_to = message.reply_to_message.message_id if message.reply_to_message else None
                await self._submit(turn, request, reply_to=reply_to, status_id=message.message_id)
            finally:
                self._launched.discard(draft.id)
            return
        field = kb.FIELDS.get(press.action)
        if field is None or field == "locale":
            await query.answer()
            return
        wanted = _with_option(draft.defaults, field, press.value).fitted(self.app.preset)
        updated = await self.app.drafts.update(
            draft.id,
            aspect=wanted.aspect,
            resolution=wanted.resolution,
            quality=wanted.quality,
            n=wanted.n,
        )
        if updated is None:
            await self._alert(query, self.app.text.t("draft.expired", turn.locale))
            return
        await query.answer()
        text, markup = await self._draft_view(turn, draft.id, updated.prompt, updated.defaults)
        await _edit_quietly(message, text, markup)

    async def _result_press(self, turn: Turn, query: CallbackQuery, press: kb.Press) -> None:
        """Reroll / Variations: only the job's owner (or an admin) may press them;
        anyone else gets a short answer on the button and nothing runs."""
        message = query.message if isinstance(query.message, Message) else None
        try:
            if press.kind == "r":
                request = await self.app.reroll_request(turn.user, press.target)
            elif press.kind == "v":
                request = await self.app.variation_request(turn.user, press.target)
            else:
                await query.answer()
                return
        except InvalidRequest as err:
            await self._alert(query, self.app.text.error(err, turn.locale))
            return
        await query.answer()
        reply_to = message.message_id if message else None
        await self._submit(turn, request, reply_to=reply_to, status_id=None)

    async def _show_press(self, turn: Turn, query: CallbackQuery, press: kb.Press) -> None:
        """Show under /history: core checks the presser may see the job; a refusal
        or a removed result is a short answer on the button."""
        message = query.message if isinstance(query.message, Message) else None
        reply_to = message.message_id if message else None
        try:
            await self.app.show(
                turn.user, press.target, self._here(turn, reply_to), profile=turn.profile
            )
        except ImagineError as err:
            await self._alert(query, self.app.text.error(err, turn.locale))
            return
        await query.answer()

    # --- /settings --------------------------------------------------------------------

    def _settings_view(self, turn: Turn, defaults: Defaults) -> tuple[str, InlineKeyboardMarkup]:
        locale = defaults.locale or turn.locale
        text = self.app.text.options_summary(locale, defaults)
        markup = kb.settings_keyboard(
            turn.user.user_id,
            self._choice(defaults),
            self.app.text.locale(locale),
            self.app.text.t("button.done", locale),
        )
        return text, markup

    @turn
    async def settings(self, turn: Turn, context: Context) -> None:
        """The menu, or ``/settings lang=ja --ar 16:9`` typed out."""
        words, lang = take_language(text_after_command(turn.message))
        if not words and lang is None:
            text, markup = self._settings_view(turn, turn.defaults)
            await self.say(turn, text, markup)
            return
        d = self.app.parse_prompt(words, turn.defaults).defaults
        saved = await self.app.save_defaults(
            turn.user,
            aspect=d.aspect,
            resolution=d.resolution,
            quality=d.quality,
            n=d.n,
            locale=lang,
        )
        shown = saved.locale or turn.locale
        summary = self.app.text.options_summary(shown, saved.fitted(self.app.preset))
        await self.say(turn, self.app.text.t("options.saved", shown, summary=summary))

    async def _settings_press(self, turn: Turn, query: CallbackQuery, press: kb.Press) -> None:
        message = query.message if isinstance(query.message, Message) else None
        if press.target != turn.user.user_id or message is None:
            await self._alert(query, self.app.text.t("draft.not_yours", turn.locale))
            return
        current = turn.defaults
        if press.action == "ok":
            await query.answer()
            summary = self.app.text.options_summary(turn.locale, current)
            await _edit_quietly(
                message, self.app.text.t("options.saved", turn.locale, summary=summary), None
            )
            return
        field = kb.FIELDS.get(press.action)
        if field is None:
            await query.answer()
            return
        if field == "locale":
            saved = await self.app.save_defaults(turn.user, locale=press.value)
        else:
            wanted = _with_option(current, field, press.value).fitted(self.app.preset)
            saved = await self.app.save_defaults(
                turn.user,
                aspect=wanted.aspect,
                resolution=wanted.resolution,
                quality=wanted.quality,
                n=wanted.n,
            )
        await query.answer()
        shown = saved.fitted(self.app.preset)
        text, markup = self._settings_view(replace(turn, locale=shown.locale or turn.locale), shown)
        await _edit_quietly(message, text, markup)

    # --- editing ----------------------------------------------------------------------

    @turn
    async def edit_command(self, turn: Turn, context: Context) -> None:
        message = turn.message
        assert message is not None
        target = message.reply_to_message
        if target is None:
            raise InvalidRequest("no image", kind="no_image")
        await self._edit(turn, text_after_command(message), target)

    @turn
    async def edit_caption(self, turn: Turn, context: Context) -> None:
        message = turn.message
        assert message is not None
        if message.media_group_id:
            await asyncio.sleep(ALBUM_SETTLE)  # let the album's other items arrive
        await self._edit(turn, text_after_command(message), message)

    @turn
    async def edit_reply(self, turn: Turn, context: Context) -> None:
        message = turn.message
        assert message is not None and message.reply_to_message is not None
        target = message.reply_to_message
        if not has_media(target):
            return  # an ordinary conversation reply, not meant for the bot
        bot_id = turn.update.get_bot().id
        to_bot = target.from_user is not None and target.from_user.id == bot_id
        if not (turn.is_private or to_bot):
            return  # in groups only "/edit" replies (privacy mode hides the rest anyway)
        await self._edit(turn, message.text or "", target)

    async def _edit(self, turn: Turn, text: str, target: Message) -> None:
        """Queue an edit of the images ``target`` shows: their file ids only; the
        worker downloads them once the price is held."""
        preset = self.app.preset
        # A bad flag or an empty instruction is refused before the images are looked at.
        if not self.app.parse_prompt(text, turn.defaults).prompt.strip():
            raise InvalidRequest("empty prompt", kind="prompt_empty")
        if preset.needs_public_urls and self.public_files is None:
            raise InvalidRequest("PUBLIC_BASE_URL is not set", kind="public_url")
        refs = collect(target, self.albums, min(16, preset.max_input_images))
        for ref in refs:
            if ref.file_size is not None and ref.file_size > DOWNLOAD_LIMIT:
                raise InvalidRequest(
                    "image too large", kind="bytes", limit_mb=DOWNLOAD_LIMIT // 2**20
                )
        request = await self.app.request(
            turn.user,
            text,
            defaults=turn.defaults,
            refs=[SourceRef(PLATFORM, r.file_id, r.file_size) for r in refs],
        )
        reply_to = turn.message.message_id if turn.message else None
        await self._submit(turn, request, reply_to=reply_to, status_id=None)


async def _edit_quietly(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    try:
        await message.edit_text(text[:MESSAGE_MAX], reply_markup=markup)
    except BadRequest as err:
        if "not modified" not in err.message.lower():
            raise
