"""A fake Telegram Bot API server for tests and benchmarks.

``FakeTelegramAPI`` speaks the Bot API over real HTTP on 127.0.0.1 (aiohttp, random free
port) so that the *real* python-telegram-bot stack (HTTPX request layer, ``Application``,
``Updater`` long polling, ``File.download_*``) runs unmodified against it::

    async with FakeTelegramAPI(token="123:ABC", bot_username="imagine_test_bot") as fake:
        app = (ApplicationBuilder().token(fake.token).base_url(fake.base_url)
               .base_file_url(fake.base_file_url).build())
        fake.push_update(fake.message("/start", user_id=42))
        ...
        [call] = await fake.wait_for("sendMessage")

What it does:

* records every call (``fake.calls``: method, decoded params, uploaded files, timestamps);
  form-urlencoded, multipart and JSON bodies are accepted, and the JSON-string fields
  python-telegram-bot sends (``reply_markup``, ``media``, ``entities``...) are decoded;
* answers with plausible objects (messages with increasing ids, photos with fresh file ids
  whose uploaded bytes can be downloaded again through ``getFile``);
* enforces the Telegram limits a bot can trip over (photo 10 MB and dimensions, captions
  1024, text 4096, media groups 2-10, getFile 20 MB, HTML / MarkdownV2 entity parsing,
  "message is not modified", replies to unknown messages) with Telegram's error format;
* implements ``getUpdates`` long polling (offset / timeout / limit) over a queue filled by
  ``push_update``, plus builders for message and callback-query updates;
* injects faults (``fail_next``: 429 with ``retry_after`` or any status) and latency
  (``latency`` for every call, ``method_latency`` per method);
* Telegram Stars payments: ``sendInvoice`` (XTR takes exactly one price and an empty
  provider token), ``answerPreCheckoutQuery`` (once, within 10 s), ``refundStarPayment``,
  and builders for ``pre_checkout_query`` and ``successful_payment`` updates;
* ``getUpdates`` honours ``allowed_updates`` as Telegram does: an update of another
  type is dropped, never delivered.

Run standalone for benchmarks driven from another process::

    python -m tests.fakes.telegram_api --port 0 --token 123:ABC

prints ``READY <base_url>`` and serves control endpoints (they exist in-process too):

* ``POST /_control/update``   JSON update dict or list -> queued update(s) with update_id
* ``POST /_control/message``  JSON kwargs of ``message()`` (``text``, ``user_id``, ...) -> queued
* ``POST /_control/callback_query``  JSON kwargs of ``callback_query()`` -> queued update
* ``GET  /_control/calls?since=N[&method=M]``  recorded calls from index N, without file
  bytes (``files`` give filename/content_type/size), ``time`` = wall-clock seconds
* ``POST /_control/file[?mime=&width=&height=&file_size=&document=1&file_name=]``  raw
  bytes body -> PhotoSize dict (or Document dict with ``document=1``)
* ``POST /_control/fail``     JSON kwargs of ``fail_next()``
* ``POST /_control/latency``  ``{"latency": seconds}``;  ``POST /_control/clear``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import io
import itertools
import json
import re
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

JSONDict = dict[str, Any]

MB = 1024 * 1024
PHOTO_MAX_BYTES = 10 * MB
UPLOAD_MAX_BYTES = 50 * MB
DOWNLOAD_MAX_BYTES = 20 * MB
PHOTO_MAX_DIMENSION_SUM = 10_000
PHOTO_MAX_RATIO = 20.0
CAPTION_MAX_CHARS = 1024
TEXT_MAX_CHARS = 4096
CALLBACK_ANSWER_MAX_CHARS = 200
MEDIA_GROUP_MIN = 2
MEDIA_GROUP_MAX = 10
PHOTO_SIZE_STEPS = (90, 320, 800, 1280, 2560)

# Form fields that are always plain strings; every other form field is JSON-decoded when it
# parses (python-telegram-bot json.dumps every non-string value, so "5" -> 5, "true" -> True).
# fmt: off
_STRING_FIELDS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "file_id", "url", "action",
    "emoji", "title", "description", "short_description", "name", "first_name",
    "last_name", "query", "inline_message_id", "business_connection_id", "data",
    "secret_token", "language_code", "message_effect_id", "photo", "document", "video",
    "audio", "animation", "voice", "video_note", "sticker", "thumbnail", "question",
    "explanation", "address", "phone_number", "payload", "currency", "switch_pm_text",
    "next_offset", "ip_address", "custom_title", "invite_link", "chat_id",
    "provider_token", "pre_checkout_query_id", "error_message", "telegram_payment_charge_id",
})
# fmt: on
_INT_RE = re.compile(r"-?\d+")
_ATTACH = "attach://"

# fmt: off
_CANONICAL_METHODS = (
    "getMe", "getUpdates", "getFile", "getChat", "getChatMember", "getMyCommands",
    "getWebhookInfo", "sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup",
    "sendChatAction", "editMessageText", "editMessageCaption", "editMessageMedia",
    "editMessageReplyMarkup", "deleteMessage", "deleteMessages", "answerCallbackQuery",
    "setMyCommands", "deleteMyCommands", "deleteWebhook", "setWebhook", "logOut", "close",
    "copyMessage", "forwardMessage", "sendAnimation", "sendVideo", "sendSticker",
    "setMessageReaction", "setMyDescription", "setMyShortDescription", "setMyName",
    "setChatMenuButton", "sendInvoice", "answerPreCheckoutQuery", "refundStarPayment",
)
# fmt: on
STARS = "XTR"
PRE_CHECKOUT_DEADLINE = 10.0
_UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
    "inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request",
)  # fmt: skip


class ApiError(Exception):
    """An error answer in Telegram's format (raised inside method handlers)."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part received by the fake."""

    data: bytes
    filename: str | None
    content_type: str | None

    @property
    def size(self) -> int:
        return len(self.data)


_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="photo"; filename="a.png"`` -> ("form-data", {...})."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key.lower()] = raw
    return head.strip().lower(), params


def parse_form_data(
    body: bytes, content_type: str
) -> list[tuple[str, str | None, str | None, bytes]]:
    """RFC 7578 multipart/form-data as (name, filename, content type, bytes) parts.

    aiohttp's reader parses every part's headers through the ``email`` package; at a
    few hundred uploads a second that made this fake, not the bot, the bottleneck
    of the pipeline benchmark. Form data from HTTP clients is simple enough to split
    directly: the boundary never occurs inside a part."""
    _, ct_params = _header_params(content_type)
    boundary = ct_params.get("boundary")
    if not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("multipart body is not terminated")
    parts: list[tuple[str, str | None, str | None, bytes]] = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise ValueError("malformed multipart part")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            head, data = chunk[2:-2].removesuffix(b"\r\n"), b""
        name: str | None = None
        filename: str | None = None
        part_type: str | None = None
        for line in head.decode("utf-8").split("\r\n"):
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "content-disposition":
                _, disposition = _header_params(value)
                name, filename = disposition.get("name"), disposition.get("filename")
            elif key == "content-type":
                part_type = value.strip()
        if name is None:
            raise ValueError("multipart part without a name")
        parts.append((name, filename, part_type, data))
    return parts


@dataclass
class Call:
    """One recorded Bot API call. ``time`` is ``time.monotonic()``, ``wall`` is ``time.time()``."""

    method: str
    params: JSONDict
    files: dict[str, UploadedFile]
    time: float
    wall: float
    status: int = 0  # HTTP status answered (0 while the call is still being handled)
    response: JSONDict | None = None  # the JSON body answered

    @property
    def result(self) -> Any:
        """The ``result`` of a successful answer, else ``None``."""
        return self.response.get("result") if self.response else None

    def to_json(self, index: int | None = None) -> JSONDict:
        """JSON-friendly form without file bytes; ``time`` is wall-clock seconds."""
        out: JSONDict = {
            "method": self.method,
            "params": self.params,
            "files": {
                name: {"filename": f.filename, "content_type": f.content_type, "size": f.size}
                for name, f in self.files.items()
            },
            "time": self.wall,
            "status": self.status,
            "response": self.response,
        }
        if index is not None:
            out["index"] = index
        return out


@dataclass
class StoredFile:
    """A file the fake can serve through getFile + /file/bot<token>/<file_path>."""

    file_id: str
    file_unique_id: str
    data: bytes
    mime: str
    file_path: str
    file_size: int


@dataclass
class _Fault:
    status: int
    description: str
    parameters: JSONDict | None
    times: int
    skip: int = 0  # matching calls to let through before failing
    match: Callable[[JSONDict], bool] | None = None  # only calls whose params match

    def applies(self, params: JSONDict) -> bool:
        """Whether this call is failed (consumes a skip when it is let through)."""
        if self.match is not None and not self.match(params):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True


@dataclass
class _Poller:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    conflict: bool = False


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _image_info(data: bytes) -> tuple[int, int, str] | None:
    """(width, height, mime) read from the image header with Pillow, or None."""
    from PIL import Image  # imported lazily: standalone startup stays fast

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            mime = Image.MIME.get(img.format or "", "application/octet-stream")
    except Exception:
        return None
    return width, height, mime


_EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif",
    "application/pdf": "pdf", "text/plain": "txt", "video/mp4": "mp4",
}  # fmt: skip

# ----------------------------------------------------------------------------- text parsing

_HTML_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?\s*(/?)>")
_HTML_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")
# fmt: off
_HTML_ALLOWED = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "tg-emoji", "code", "pre", "blockquote", "br",
})
# fmt: on
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}


def _byte_offset(text: str, pos: int) -> int:
    return len(text[:pos].encode("utf-8"))


def _parse_html(text: str) -> str:
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "<":
            m = _HTML_TAG.match(text, pos)
            if m is None:
                token = re.match(r"</?([^\s>]*)", text[pos:])
                name = token.group(1) if token else ""
                raise _bad_request(
                    f'can\'t parse entities: Unsupported start tag "{name}" at byte offset '
                    f"{_byte_offset(text, pos)}"
                )
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name not in _HTML_ALLOWED:
                kind = "end" if closing else "start"
                raise _bad_request(
                    f'can\'t parse entities: Unsupported {kind} tag "{name}" at byte offset '
                    f"{_byte_offset(text, pos)}"
                )
            if name == "br":
                out.append("\n")
            elif closing:
                if not stack or stack[-1] != name:
                    expected = f'expected "</{stack[-1]}>", ' if stack else ""
                    raise _bad_request(
                        f"can't parse entities: Unmatched end tag at byte offset "
                        f'{_byte_offset(text, pos)}, {expected}found "</{name}>"'
                    )
                stack.pop()
            elif not m.group(4):
                stack.append(name)
            pos = m.end()
        elif ch == "&":
            ent = _HTML_ENTITY.match(text, pos)
            if ent:
                out.append(html.unescape(ent.group()))
                pos = ent.end()
            else:
                out.append("&")
                pos += 1
        elif ch == ">":
            out.append(">")
            pos += 1
        else:
            out.append(ch)
            pos += 1
    if stack:
        raise _bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out)


def _parse_markdown_v2(text: str) -> str:
    out: list[str] = []
    open_marks: list[tuple[str, int]] = []
    pos = 0
    in_link = False
    n = len(text)

    def reserved(ch: str, at: int) -> ApiError:
        return _bad_request(
            f"can't parse entities: Character '{ch}' is reserved and must be escaped with "
            f"the preceding '\\'"
        )

    while pos < n:
        ch = text[pos]
        if ch == "\\":
            if pos + 1 < n:
                out.append(text[pos + 1])
                pos += 2
            else:
                raise reserved("\\", pos)
            continue
        if text.startswith("```", pos):
            end = text.find("```", pos + 3)
            if end < 0:
                raise _bad_request(
                    f"can't parse entities: Can't find end of Pre entity at byte offset "
                    f"{_byte_offset(text, pos)}"
                )
            body = text[pos + 3 : end]
            if "\n" in body and re.match(r"[\w+-]*\n", body):
                body = body.split("\n", 1)[1]
            out.append(body.replace("\\`", "`").replace("\\\\", "\\"))
            pos = end + 3
            continue
        if ch == "`":
            end = pos + 1
            while end < n and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise _bad_request(
                    f"can't parse entities: Can't find end of Code entity at byte offset "
                    f"{_byte_offset(text, pos)}"
                )
            out.append(text[pos + 1 : end].replace("\\`", "`").replace("\\\\", "\\"))
            pos = end + 1
            continue
        mark = None
        for candidate in ("__", "||", "*", "_", "~"):
            if text.startswith(candidate, pos):
                mark = candidate
                break
        if mark is not None:
            if open_marks and open_marks[-1][0] == mark:
                open_marks.pop()
            elif any(m == mark for m, _ in open_marks):
                raise _bad_request(
                    f"can't parse entities: Can't find end of {_MDV2_NAMES[open_marks[-1][0]]} "
                    f"entity at byte offset {_byte_offset(text, open_marks[-1][1])}"
                )
            else:
                open_marks.append((mark, pos))
            pos += len(mark)
            continue
        if ch == "[":
            in_link = True
            open_marks.append(("[", pos))
            pos += 1
            continue
        if ch == "]" and in_link:
            in_link = False
            while open_marks and open_marks[-1][0] != "[":
                open_marks.pop()
            if open_marks:
                open_marks.pop()
            if pos + 1 < n and text[pos + 1] == "(":
                end = pos + 2
                while end < n and text[end] != ")":
                    end += 2 if text[end] == "\\" else 1
                if end >= n:
                    raise _bad_request(
                        "can't parse entities: Can't find end of a URL at byte offset "
                        f"{_byte_offset(text, pos + 1)}"
                    )
                pos = end + 1
            else:
                pos += 1
            continue
        if ch == ">" and (pos == 0 or text[pos - 1] == "\n"):
            pos += 1  # blockquote marker
            continue
        if ch in _MDV2_RESERVED:
            raise reserved(ch, pos)
        out.append(ch)
        pos += 1
    if open_marks:
        mark, at = open_marks[-1]
        name = "TextUrl" if mark == "[" else _MDV2_NAMES[mark]
        raise _bad_request(
            f"can't parse entities: Can't find end of {name} entity at byte offset "
            f"{_byte_offset(text, at)}"
        )
    return "".join(out)


def _parse_markdown_legacy(text: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"(?<!\\)[*_`]", "", text)


def visible_text(text: str, parse_mode: str | None) -> str:
    """Text as Telegram shows it after entity parsing; raises ApiError like Telegram does."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown_legacy(text)
    if mode:
        raise _bad_request(f"unsupported parse_mode {parse_mode!r}")
    return text


# ----------------------------------------------------------------------------- the fake


class FakeTelegramAPI:
    """A fake Telegram Bot API server (see the module docstring)."""

    def __init__(
        self,
        token: str = "123:ABC",
        bot_username: str = "imagine_test_bot",
        bot_id: int | None = None,
        *,
        bot_first_name: str = "Imagine Test Bot",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        if bot_id is None:
            head = token.split(":", 1)[0]
            bot_id = int(head) if head.isdigit() else 123
        self.bot_id = bot_id
        self.bot_first_name = bot_first_name
        self.host = host
        self.port = port
        self.latency = latency
        self.calls: list[Call] = []
        self.messages: dict[int | str, list[JSONDict]] = {}
        self.deleted_messages: list[tuple[int | str, int]] = []
        self.files: dict[str, StoredFile] = {}
        self.chats: dict[int | str, JSONDict] = {}
        self.commands: list[JSONDict] = []
        # Menus by language_code ("" for everyone else), as the Bot API keeps them.
        self.menus: dict[str, list[JSONDict]] = {}
        self.webhook_url: str = ""
        self.overrides: dict[str, Any] = {}
        # Seconds a call of that method waits before it is answered (overrides latency).
        self.method_latency: dict[str, float] = {}
        self.allowed_updates: set[str] | None = None
        # Stars: pre-checkout queries sent (id -> deadline, answer) and payments made.
        self.pre_checkouts: dict[str, JSONDict] = {}
        self.star_payments: dict[str, JSONDict] = {}
        self._charge_counter = itertools.count(1)

        self._updates: list[JSONDict] = []
        self._next_update_id = 1
        self._last_pushed_id = 0
        self._update_event = asyncio.Event()
        self._calls_event = asyncio.Event()
        self._faults: dict[str, list[_Fault]] = {}
        self._message_ids: dict[int | str, int] = {}
        self._known: dict[tuple[int | str, int], JSONDict] = {}
        self._paths: dict[str, StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._callback_counter = itertools.count(1)
        self._media_group_counter = itertools.count(1)
        self._poller: _Poller | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, Callable[[JSONDict, dict[str, UploadedFile]], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "getFile": self._get_file,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getMyCommands": self._get_my_commands,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getWebhookInfo": self._get_webhook_info,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendMediaGroup": self._send_media_group,
            "sendChatAction": self._send_chat_action,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageMedia": self._edit_message_media,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "sendInvoice": self._send_invoice,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "refundStarPayment": self._refund_star_payment,
        }
        self._canonical = {m.lower(): m for m in (*_CANONICAL_METHODS, *self._handlers)}

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_url(...)``."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder().base_file_url(...)``."""
        return f"http://{self.host}:{self.port}/file/bot"

    @property
    def url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def bot_user(self) -> JSONDict:
        """The bot's ``User`` object as in ``from`` of its messages."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=UPLOAD_MAX_BYTES * 2)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_post("/_control/update", self._control_update)
        app.router.add_post("/_control/message", self._control_message)
        app.router.add_post("/_control/callback_query", self._control_callback_query)
        app.router.add_get("/_control/calls", self._control_calls)
        app.router.add_post("/_control/file", self._control_file)
        app.router.add_post("/_control/fail", self._control_fail)
        app.router.add_post("/_control/clear", self._control_clear)
        app.router.add_post("/_control/latency", self._control_latency)
        return app

    async def start(self) -> None:
        """Start serving; afterwards ``port``/``base_url`` are set."""
        self._closing = False
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=2048)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Answer pending long polls and shut the server down."""
        self._closing = True
        self._wake_updates()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegramAPI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test helpers

    def calls_of(self, method: str) -> list[Call]:
        """Recorded calls of ``method`` (case-insensitive), oldest first."""
        wanted = self._canonical.get(method.lower(), method)
        return [c for c in self.calls if c.method == wanted]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[Call]:
        """Wait until at least ``count`` calls of ``method`` match ``predicate``; return them all.

        Raises ``TimeoutError`` listing what was called instead.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [c for c in self.calls_of(method) if predicate is None or predicate(c)]
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [c.method for c in self.calls if c.method != "getUpdates"]
                raise TimeoutError(
                    f"{len(found)}/{count} matching {method} calls after {timeout}s; "
                    f"calls seen (getUpdates omitted): {seen}"
                )
            event = self._calls_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def clear(self) -> None:
        """Forget recorded calls, bot messages, pending updates and faults (files stay)."""
        self.calls.clear()
        self.messages.clear()
        self.deleted_messages.clear()
        self._updates.clear()
        self._faults.clear()

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
        parameters: JSONDict | None = None,
        *,
        skip: int = 0,
        match: Callable[[JSONDict], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"`` = any but getUpdates) with an
        error. 429 defaults to ``Too Many Requests: retry after N`` plus ``retry_after``.

        ``skip`` lets that many calls through first (fail the second album, not the first);
        ``match`` limits the fault to calls whose decoded params it accepts (fail only the
        message carrying buttons, not the status message)."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                400: "Bad Request: injected failure",
                401: "Unauthorized",
                403: "Forbidden: bot was blocked by the user",
                404: "Not Found",
                409: "Conflict: terminated by other getUpdates request",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(status, f"Error {status}")
        if parameters is None and status == 429:
            parameters = {"retry_after": retry_after}
        key = "*" if method == "*" else self._canonical.get(method.lower(), method)
        self._faults.setdefault(key, []).append(
            _Fault(status, description, parameters, times, skip, match)
        )

    def set_response(self, method: str, result: Any) -> None:
        """Answer ``method`` with this fixed ``result`` (or a callable(params) -> result)."""
        self.overrides[self._canonical.get(method.lower(), method)] = result

    # ------------------------------------------------------------------ updates

    def push_update(self, update: JSONDict) -> JSONDict:
        """Queue an update for getUpdates; assigns ``update_id`` when missing/out of order."""
        uid = update.get("update_id")
        if not isinstance(uid, int) or uid <= self._last_pushed_id:
            uid = max(self._next_update_id, self._last_pushed_id + 1)
            update["update_id"] = uid
        self._last_pushed_id = uid
        self._next_update_id = max(self._next_update_id, uid + 1)
        self._updates.append(update)
        self._wake_updates()
        return update

    def push_updates(self, updates: Iterable[JSONDict]) -> list[JSONDict]:
        return [self.push_update(u) for u in updates]

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def _wake_updates(self) -> None:
        self._update_event.set()
        self._update_event = asyncio.Event()

    def _reserve_update_id(self) -> int:
        uid = self._next_update_id
        self._next_update_id += 1
        return uid

    def user(
        self,
        user_id: int,
        *,
        username: str | None = None,
        first_name: str | None = None,
        language_code: str | None = "en",
    ) -> JSONDict:
        """A (human) ``User`` dict."""
        user: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name or f"User{user_id}",
        }
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def chat(
        self,
        chat_id: int | str,
        chat_type: str = "private",
        *,
        title: str | None = None,
        user: JSONDict | None = None,
    ) -> JSONDict:
        """Register (or return) a ``Chat`` dict."""
        known = self.chats.get(chat_id)
        if known is not None and title is None and known["type"] == chat_type:
            return known
        chat: JSONDict = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = (user or {}).get("first_name", f"User{chat_id}")
            if user and user.get("username"):
                chat["username"] = user["username"]
        else:
            chat["title"] = title or f"Test {chat_type} {chat_id}"
        self.chats[chat_id] = chat
        return chat

    def _next_message_id(self, chat_id: int | str) -> int:
        mid = self._message_ids.get(chat_id, 0) + 1
        self._message_ids[chat_id] = mid
        return mid

    @staticmethod
    def _unwrap_message(msg: JSONDict) -> JSONDict:
        """Accept a message dict or an update / call result wrapping one."""
        if "message_id" in msg:
            return msg
        for key in ("message", "edited_message", "channel_post", "result"):
            inner = msg.get(key)
            if isinstance(inner, dict) and "message_id" in inner:
                return inner
            if isinstance(inner, list) and inner and isinstance(inner[0], dict):
                return inner[0]
        raise ValueError(f"not a message dict: {msg!r}")

    def _entities_for(self, text: str) -> list[JSONDict]:
        entities: list[JSONDict] = []
        command = re.match(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?", text)
        if command:
            entities.append({"type": "bot_command", "offset": 0, "length": _utf16_len(command[0])})
        for m in re.finditer(r"(?<![\w/@])@[A-Za-z0-9_]{3,}", text):
            offset = _utf16_len(text[: m.start()])
            entities.append({"type": "mention", "offset": offset, "length": _utf16_len(m[0])})
        return entities

    def message(
        self,
        text: str | None = None,
        *,
        user_id: int,
        chat_id: int | str | None = None,
        chat_type: str = "private",
        username: str | None = None,
        first_name: str | None = None,
        language_code: str | None = "en",
        reply_to: JSONDict | None = None,
        photo: list[JSONDict] | JSONDict | None = None,
        document: JSONDict | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        chat_title: str | None = None,
        message_id: int | None = None,
    ) -> JSONDict:
        """An ``Update`` dict carrying a user's message (not queued: see ``push_update``).

        ``/command`` text or captions get a ``bot_command`` entity, ``@name`` a mention.
        ``reply_to`` is a previous message (user update or bot message / call result).
        ``chat_id`` defaults to ``user_id`` (private chat); another ``chat_id`` with the
        default ``chat_type`` makes a supergroup.
        """
        if chat_id is None:
            chat_id = user_id if chat_type == "private" else -(1_000_000_000_000 + user_id)
        elif chat_type == "private" and chat_id != user_id:
            chat_type = "supergroup"  # a private chat's id is the user's id
        user = self.user(
            user_id, username=username, first_name=first_name, language_code=language_code
        )
        chat = self.chat(chat_id, chat_type, title=chat_title, user=user)
        msg: JSONDict = {
            "message_id": message_id or self._next_message_id(chat_id),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
        }
        if reply_to is not None:
            ref = self._unwrap_message(reply_to)
            msg["reply_to_message"] = {k: v for k, v in ref.items() if k != "reply_to_message"}
        if text is not None:
            msg["text"] = text
            entities = self._entities_for(text)
            if entities:
                msg["entities"] = entities
        if photo is not None:
            msg["photo"] = [photo] if isinstance(photo, dict) else list(photo)
        if document is not None:
            msg["document"] = document
        if caption is not None:
            msg["caption"] = caption
            entities = self._entities_for(caption)
            if entities:
                msg["caption_entities"] = entities
        if media_group_id is not None:
            msg["media_group_id"] = media_group_id
        self._known[(chat_id, msg["message_id"])] = msg
        return {"update_id": self._reserve_update_id(), "message": msg}

    def callback_query(
        self,
        data: str,
        *,
        user_id: int,
        message: JSONDict,
        username: str | None = None,
        first_name: str | None = None,
        language_code: str | None = "en",
    ) -> JSONDict:
        """An ``Update`` dict for a press of an inline button under the bot's ``message``."""
        msg = self._unwrap_message(message)
        query_id = f"{next(self._callback_counter)}{user_id}"
        return {
            "update_id": self._reserve_update_id(),
            "callback_query": {
                "id": query_id,
                "from": self.user(
                    user_id,
                    username=username,
                    first_name=first_name,
                    language_code=language_code,
                ),
                "message": msg,
                "chat_instance": f"ci{msg['chat']['id']}",
                "data": data,
            },
        }

    # ------------------------------------------------------------------ Stars payments

    def pre_checkout_query(
        self,
        payload: str,
        total_amount: int,
        *,
        user_id: int,
        currency: str = STARS,
        language_code: str | None = "en",
    ) -> JSONDict:
        """An ``Update`` with the ``pre_checkout_query`` Telegram sends when the user
        presses Pay; the bot has ``PRE_CHECKOUT_DEADLINE`` seconds to answer it."""
        query_id = f"pcq{next(self._callback_counter)}{user_id}"
        self.pre_checkouts[query_id] = {
            "deadline": time.monotonic() + PRE_CHECKOUT_DEADLINE,
            "answer": None,
        }
        return {
            "update_id": self._reserve_update_id(),
            "pre_checkout_query": {
                "id": query_id,
                "from": self.user(user_id, language_code=language_code),
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
            },
        }

    def successful_payment(
        self,
        payload: str,
        total_amount: int,
        *,
        user_id: int,
        currency: str = STARS,
        charge_id: str | None = None,
        language_code: str | None = "en",
    ) -> JSONDict:
        """An ``Update`` with the service message of a completed Stars payment; the
        charge is remembered so ``refundStarPayment`` can return it once."""
        charge_id = charge_id or f"stxCHARGE{next(self._charge_counter):06d}u{user_id}"
        self.star_payments.setdefault(
            charge_id, {"user_id": user_id, "amount": total_amount, "refunded": False}
        )
        update = self.message(None, user_id=user_id, language_code=language_code)
        update["message"]["successful_payment"] = {
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "",
        }
        return update

    def _send_invoice(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        self._chat_id(params)
        title, description = params.get("title"), params.get("description")
        payload, currency = params.get("payload"), params.get("currency")
        if not isinstance(title, str) or not 1 <= len(title) <= 32:
            raise _bad_request("INVOICE_TITLE_INVALID")
        if not isinstance(description, str) or not 1 <= len(description) <= 255:
            raise _bad_request("INVOICE_DESCRIPTION_INVALID")
        if not isinstance(payload, str) or not 1 <= len(payload.encode()) <= 128:
            raise _bad_request("INVOICE_PAYLOAD_INVALID")
        if not isinstance(currency, str) or not currency:
            raise _bad_request("CURRENCY_INVALID")
        prices = params.get("prices")
        if not isinstance(prices, list) or not prices:
            raise _bad_request("can't parse prices JSON object")
        for price in prices:
            if not isinstance(price, dict) or not isinstance(price.get("amount"), int):
                raise _bad_request("can't parse prices JSON object")
            if not isinstance(price.get("label"), str) or not price["label"]:
                raise _bad_request("LABEL_INVALID")
        token = params.get("provider_token")
        if currency == STARS:
            if token not in (None, ""):
                raise _bad_request("PAYMENT_PROVIDER_INVALID")
            if len(prices) != 1:
                raise _bad_request("STARS_INVOICE_INVALID")
            if not 1 <= prices[0]["amount"] <= 10_000:
                raise _bad_request("STARS_INVOICE_INVALID")
        elif not token:
            raise _bad_request("PAYMENT_PROVIDER_INVALID")
        invoice = {
            "title": title,
            "description": description,
            "start_parameter": params.get("start_parameter") or "",
            "currency": currency,
            "total_amount": sum(p["amount"] for p in prices),
        }
        return self._commit(self._new_bot_message(params, {"invoice": invoice}))

    def _answer_pre_checkout_query(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        query = self.pre_checkouts.get(str(params.get("pre_checkout_query_id") or ""))
        if query is None or query["answer"] is not None or time.monotonic() > query["deadline"]:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        ok = params.get("ok")
        if not isinstance(ok, bool):
            raise _bad_request("ok must be a boolean")
        if not ok and not params.get("error_message"):
            raise _bad_request("ERROR_MESSAGE_EMPTY")
        query["answer"] = {"ok": ok, "error_message": params.get("error_message")}
        return True

    def _refund_star_payment(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        charge = self.star_payments.get(str(params.get("telegram_payment_charge_id") or ""))
        if charge is None or charge["user_id"] != params.get("user_id"):
            raise _bad_request("CHARGE_NOT_FOUND")
        if charge["refunded"]:
            raise _bad_request("CHARGE_ALREADY_REFUNDED")
        charge["refunded"] = True
        return True

    # ------------------------------------------------------------------ files

    def _store(
        self, data: bytes, mime: str, folder: str, file_size: int | None = None
    ) -> StoredFile:
        n = next(self._file_counter)
        ext = _EXTENSIONS.get(mime, "bin")
        stored = StoredFile(
            file_id=f"AgAD{n:06d}fake{self.bot_id}",
            file_unique_id=f"AQAD{n:06d}",
            data=data,
            mime=mime,
            file_path=f"{folder}/file_{n}.{ext}",
            file_size=len(data) if file_size is None else file_size,
        )
        self.files[stored.file_id] = stored
        self._paths[stored.file_path] = stored
        return stored

    def add_file(
        self,
        data: bytes,
        *,
        mime: str = "image/jpeg",
        width: int | None = None,
        height: int | None = None,
        file_size: int | None = None,
    ) -> JSONDict:
        """Register a downloadable photo; returns a ``PhotoSize`` dict.

        Width/height default to the image's real size (Pillow), ``file_size`` to ``len(data)``
        (pass a larger one to exercise getFile's 20 MB limit without allocating it).
        """
        if width is None or height is None:
            info = _image_info(data)
            w, h = (info[0], info[1]) if info else (512, 512)
            width = w if width is None else width
            height = h if height is None else height
        stored = self._store(data, mime, "photos", file_size)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": width,
            "height": height,
            "file_size": stored.file_size,
        }

    def add_document(
        self,
        data: bytes,
        *,
        file_name: str = "image.png",
        mime: str = "image/png",
        file_size: int | None = None,
    ) -> JSONDict:
        """Register a downloadable file; returns a ``Document`` dict."""
        stored = self._store(data, mime, "documents", file_size)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime,
            "file_size": stored.file_size,
        }

    def file_bytes(self, file_id: str) -> bytes:
        """Bytes of a registered or bot-uploaded file."""
        return self.files[file_id].data

    # ------------------------------------------------------------------ HTTP plumbing

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(
            body=json.dumps(body, ensure_ascii=False).encode(),
            status=status,
            content_type="application/json",
        )

    @staticmethod
    def _decode_field(name: str, value: str) -> Any:
        if name in _STRING_FIELDS:
            if name == "chat_id" and _INT_RE.fullmatch(value):
                return int(value)
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value

    def _parse(self, request: web.Request, body: bytes) -> tuple[JSONDict, dict[str, UploadedFile]]:
        params: JSONDict = {}
        files: dict[str, UploadedFile] = {}
        for key, value in request.query.items():
            params[key] = self._decode_field(key, value)
        if not body:
            return params, files
        ctype = request.content_type
        if ctype == "application/json":
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                params.update(parsed)
        elif ctype == "multipart/form-data":
            for name, filename, part_type, data in parse_form_data(
                body, request.headers["Content-Type"]
            ):
                if filename is not None:
                    files[name] = UploadedFile(data, filename, part_type)
                else:
                    params[name] = self._decode_field(name, data.decode("utf-8"))
        else:
            charset = request.charset or "utf-8"
            for key, item in urllib.parse.parse_qsl(
                body.decode(charset), keep_blank_values=True, strict_parsing=False
            ):
                params[key] = self._decode_field(key, item)
        return params, files

    async def _handle_api(self, request: web.Request) -> web.Response:
        raw_method = request.match_info["method"]
        method = self._canonical.get(raw_method.lower(), raw_method)
        if request.match_info["token"] != self.token:
            return self._json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        body = await request.read() if request.can_read_body else b""
        # Stamped once the request is in, before this fake spends its own time parsing
        # it: benchmarks read these stamps as "the bot's call arrived".
        received = time.monotonic(), time.time()
        try:
            params, files = self._parse(request, body)
        except Exception as exc:
            return self._json(
                {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}, 400
            )
        call = Call(method, params, files, *received)
        self.calls.append(call)
        self._calls_event.set()
        self._calls_event = asyncio.Event()
        delay = self.method_latency.get(method, self.latency)
        if delay > 0:
            await asyncio.sleep(delay)
        status, body_out = await self._dispatch(method, params, files)
        call.status, call.response = status, body_out
        return self._json(body_out, status)

    def _take_fault(self, method: str, params: JSONDict | None = None) -> _Fault | None:
        for key in (method, "*"):
            if key == "*" and method == "getUpdates":
                continue
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                if not fault.applies(params or {}):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
                return fault
        return None

    async def _dispatch(
        self, method: str, params: JSONDict, files: dict[str, UploadedFile]
    ) -> tuple[int, JSONDict]:
        fault = self._take_fault(method, params)
        if fault is not None:
            err = ApiError(fault.status, fault.description, fault.parameters)
            return err.status, err.payload()
        try:
            if method in self.overrides:
                result = self.overrides[method]
                if callable(result):
                    result = result(params)
            else:
                handler = self._handlers.get(method)
                if handler is None:
                    result = self._generic(method, params, files)
                else:
                    result = handler(params, files)
                    if asyncio.iscoroutine(result):
                        result = await result
        except ApiError as err:
            return err.status, err.payload()
        return 200, {"ok": True, "result": result}

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        stored = self._paths.get(request.match_info["path"])
        if stored is not None:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            return web.Response(body=stored.data, content_type=stored.mime)
        return self._json({"ok": False, "error_code": 404, "description": "Not Found"}, 404)

    # ------------------------------------------------------------------ control endpoints

    async def _control_update(self, request: web.Request) -> web.Response:
        body = await request.json()
        items = body if isinstance(body, list) else [body]
        pushed = [self.push_update(u) for u in items]
        return self._json(pushed if isinstance(body, list) else pushed[0])

    async def _control_message(self, request: web.Request) -> web.Response:
        body: JSONDict = await request.json()
        text = body.pop("text", None)
        return self._json(self.push_update(self.message(text, **body)))

    async def _control_callback_query(self, request: web.Request) -> web.Response:
        body: JSONDict = await request.json()
        data = body.pop("data")
        return self._json(self.push_update(self.callback_query(data, **body)))

    async def _control_calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        method = request.query.get("method")
        out = [
            c.to_json(i)
            for i, c in enumerate(self.calls[since:], start=since)
            if method is None or c.method == method
        ]
        return self._json(out)

    async def _control_file(self, request: web.Request) -> web.Response:
        data = await request.read()
        q = request.query
        mime = q.get("mime") or request.headers.get("Content-Type") or "image/jpeg"
        if mime == "application/octet-stream":
            mime = "image/jpeg"
        if q.get("document"):
            return self._json(
                self.add_document(data, file_name=q.get("file_name", "image.png"), mime=mime)
            )
        return self._json(
            self.add_file(
                data,
                mime=mime,
                width=int(q["width"]) if "width" in q else None,
                height=int(q["height"]) if "height" in q else None,
                file_size=int(q["file_size"]) if "file_size" in q else None,
            )
        )

    async def _control_fail(self, request: web.Request) -> web.Response:
        body: JSONDict = await request.json()
        self.fail_next(**body)
        return self._json({"ok": True})

    async def _control_clear(self, request: web.Request) -> web.Response:
        self.clear()
        return self._json({"ok": True})

    async def _control_latency(self, request: web.Request) -> web.Response:
        body: JSONDict = await request.json()
        if body.get("method"):
            self.method_latency[str(body["method"])] = float(body.get("latency", 0.0))
        else:
            self.latency = float(body.get("latency", 0.0))
        return self._json({"ok": True})

    # ------------------------------------------------------------------ method helpers

    def _chat_id(self, params: JSONDict) -> int | str:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, str) and _INT_RE.fullmatch(chat_id):
            return int(chat_id)
        if not isinstance(chat_id, int | str):
            raise _bad_request("chat not found")
        return chat_id

    def _chat_obj(self, chat_id: int | str) -> JSONDict:
        if chat_id in self.chats:
            return self.chats[chat_id]
        if isinstance(chat_id, int) and chat_id > 0:
            return self.chat(chat_id, "private")
        return self.chat(chat_id, "supergroup")

    def _find_message(self, chat_id: int | str, message_id: Any) -> JSONDict | None:
        try:
            return self._known.get((chat_id, int(message_id)))
        except (TypeError, ValueError):
            return None

    def _check_text(self, text: Any, parse_mode: Any, limit: int, what: str) -> str:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        plain = visible_text(text, parse_mode if isinstance(parse_mode, str) else None)
        if len(plain) > limit:
            if what == "caption":
                raise _bad_request("message caption is too long")
            raise _bad_request("message is too long")
        return plain

    def _new_bot_message(self, params: JSONDict, content: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        msg: JSONDict = {
            "message_id": self._next_message_id(chat_id),
            "from": self.bot_user,
            "chat": self._chat_obj(chat_id),
            "date": int(time.time()),
        }
        if params.get("message_thread_id"):
            msg["message_thread_id"] = params["message_thread_id"]
        reply = params.get("reply_parameters")
        reply_id: Any = None
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply, dict):
            reply_id = reply.get("message_id")
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
            reply_chat = reply.get("chat_id", chat_id)
        else:
            reply_id = params.get("reply_to_message_id")
            reply_chat = chat_id
        if reply_id is not None:
            ref = self._find_message(reply_chat, reply_id)
            if ref is not None:
                msg["reply_to_message"] = {k: v for k, v in ref.items() if k != "reply_to_message"}
            elif not allow_missing:
                raise _bad_request("message to be replied not found")
        msg.update(content)
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            msg["reply_markup"] = markup
        return msg

    def _commit(self, msg: JSONDict) -> JSONDict:
        chat_id = msg["chat"]["id"]
        self.messages.setdefault(chat_id, []).append(msg)
        self._known[(chat_id, msg["message_id"])] = msg
        return msg

    def _caption_content(self, params: JSONDict, source: JSONDict | None = None) -> JSONDict:
        src = params if source is None else source
        caption = src.get("caption")
        if caption is None or caption == "":
            return {}
        plain = self._check_text(caption, src.get("parse_mode"), CAPTION_MAX_CHARS, "caption")
        out: JSONDict = {"caption": plain}
        entities = src.get("caption_entities")
        if isinstance(entities, list) and entities:
            out["caption_entities"] = entities
        return out

    def _input_file(
        self, value: Any, files: dict[str, UploadedFile], field_name: str
    ) -> UploadedFile | StoredFile | str:
        """Resolve a media field to an upload, a known file, or a URL."""
        if field_name in files and (value is None or value == ""):
            return files[field_name]
        if isinstance(value, str) and value.startswith(_ATTACH):
            part = files.get(value[len(_ATTACH) :])
            if part is None:
                raise _bad_request(f'can\'t find attached file "{value}"')
            return part
        if value is None and field_name in files:
            return files[field_name]
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
        if value is None:
            raise _bad_request(f"there is no {field_name} in the request")
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _photo_sizes(self, source: UploadedFile | StoredFile | str) -> list[JSONDict]:
        if isinstance(source, str):  # URL: the fake does not fetch it
            data, width, height, mime = b"", 1024, 1024, "image/jpeg"
        elif isinstance(source, StoredFile):
            info = _image_info(source.data)
            width, height = (info[0], info[1]) if info else (512, 512)
            data, mime = source.data, source.mime
        else:
            data = source.data
            if not data:
                raise _bad_request("file must be non-empty")
            if len(data) > PHOTO_MAX_BYTES:
                raise _bad_request("PHOTO_SAVE_FILE_INVALID")
            info = _image_info(data)
            if info is None:
                raise _bad_request("IMAGE_PROCESS_FAILED")
            width, height, mime = info
            if width + height > PHOTO_MAX_DIMENSION_SUM:
                raise _bad_request("PHOTO_INVALID_DIMENSIONS")
            if max(width, height) / max(1, min(width, height)) > PHOTO_MAX_RATIO:
                raise _bad_request("PHOTO_INVALID_DIMENSIONS")
        sizes: list[JSONDict] = []
        longest = max(width, height, 1)
        for step in PHOTO_SIZE_STEPS:
            scale = min(1.0, step / longest)
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            # Bytes stay the original upload (no resampling: keeps the fake fast).
            stored = self._store(data, mime, "photos")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": stored.file_size,
                }
            )
            if scale >= 1.0:
                break
        return sizes

    def _document(self, source: UploadedFile | StoredFile | str) -> JSONDict:
        if isinstance(source, str):
            name = source.rsplit("/", 1)[-1] or "file"
            stored = self._store(b"", "application/octet-stream", "documents")
        elif isinstance(source, StoredFile):
            name = source.file_path.rsplit("/", 1)[-1]
            stored = self._store(source.data, source.mime, "documents")
        else:
            if not source.data:
                raise _bad_request("file must be non-empty")
            if source.size > UPLOAD_MAX_BYTES:
                raise ApiError(413, "Request Entity Too Large")
            name = source.filename or "file"
            mime = source.content_type or "application/octet-stream"
            if mime == "application/octet-stream":
                info = _image_info(source.data)
                if info:
                    mime = info[2]
            stored = self._store(source.data, mime, "documents")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": name,
            "mime_type": stored.mime,
            "file_size": stored.file_size,
        }

    def _media_content(self, item: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        kind = item.get("type")
        source = self._input_file(item.get("media"), files, "media")
        content: JSONDict
        if kind == "photo":
            content = {"photo": self._photo_sizes(source)}
        elif kind in ("document", "audio"):
            content = {kind: self._document(source)}
        elif kind in ("video", "animation"):
            doc = self._document(source)
            doc.update(
                {
                    "width": item.get("width", 640),
                    "height": item.get("height", 480),
                    "duration": item.get("duration", 1),
                }
            )
            content = {kind: doc}
        else:
            raise _bad_request(f'can\'t parse InputMedia: unsupported media type "{kind}"')
        content.update(self._caption_content(params={}, source=item))
        if item.get("has_spoiler"):
            content["has_media_spoiler"] = True
        return content

    def _edit_target(self, params: JSONDict) -> JSONDict | None:
        """The bot message to edit, or None for inline messages."""
        if params.get("inline_message_id"):
            return None
        chat_id = self._chat_id(params)
        msg = self._find_message(chat_id, params.get("message_id"))
        if msg is None:
            raise _bad_request("message to edit not found")
        if msg.get("from", {}).get("id") != self.bot_id:
            raise _bad_request("message can't be edited")
        return msg

    @staticmethod
    def _not_modified() -> ApiError:
        return _bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )

    @staticmethod
    def _apply_markup(msg: JSONDict, params: JSONDict) -> None:
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            msg["reply_markup"] = markup
        else:
            msg.pop("reply_markup", None)

    # ------------------------------------------------------------------ method handlers

    def _get_me(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            # Telegram remembers the list until the next one; [] means the default.
            self.allowed_updates = {str(a) for a in allowed} or None
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._drop_unwanted()
        if self._updates or timeout == 0 or self._closing:
            return self._updates[:limit]
        # A newer getUpdates terminates an older one with 409, as on Telegram.
        if self._poller is not None:
            self._poller.conflict = True
            self._poller.done.set()
        poller = _Poller()
        self._poller = poller
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while not self._updates and not self._closing and not poller.conflict:
                self._drop_unwanted()
                if self._updates:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wake = asyncio.ensure_future(self._update_event.wait())
                done_wait = asyncio.ensure_future(poller.done.wait())
                try:
                    await asyncio.wait(
                        {wake, done_wait}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    wake.cancel()
                    done_wait.cancel()
        finally:
            if self._poller is poller:
                self._poller = None
        if poller.conflict:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot "
                "instance is running",
            )
        self._drop_unwanted()
        return self._updates[:limit]

    def _drop_unwanted(self) -> None:
        if self.allowed_updates is None:
            return
        self._updates = [
            u
            for u in self._updates
            if not any(k in u for k in _UPDATE_TYPES) or any(k in u for k in self.allowed_updates)
        ]

    def _get_file(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        file_id = params.get("file_id")
        stored = self.files.get(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise _bad_request("invalid file_id")
        if stored.file_size > DOWNLOAD_MAX_BYTES:
            raise _bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }

    def _get_chat(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        chat = dict(self._chat_obj(self._chat_id(params)))
        chat.setdefault("accent_color_id", 0)
        chat.setdefault("max_reaction_count", 11)
        chat.setdefault(
            "accepted_gift_types",
            {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return chat

    def _get_chat_member(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        user_id = int(params.get("user_id") or 0)
        user = self.bot_user if user_id == self.bot_id else self.user(user_id)
        return {"status": "member", "user": user}

    def _get_my_commands(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        return self.menus.get(str(params.get("language_code") or ""), self.commands)

    def _set_my_commands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for cmd in commands:
            name = cmd.get("command", "") if isinstance(cmd, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(cmd.get("description", "")) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        code = str(params.get("language_code") or "")
        if code and not re.fullmatch(r"[a-z]{2}", code):  # ISO 639-1 only
            raise _bad_request("LANGUAGE_CODE_INVALID")
        self.menus[code] = commands
        if not code:
            self.commands = commands
        return True

    def _delete_my_commands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self.menus.pop(str(params.get("language_code") or ""), None)
        self.commands = []
        return True

    def _get_webhook_info(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _set_webhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self.webhook_url = str(params.get("url") or "")
        return True

    def _delete_webhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _send_message(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        text = params.get("text")
        if text is None or text == "":
            raise _bad_request("message text is empty")
        plain = self._check_text(text, params.get("parse_mode"), TEXT_MAX_CHARS, "text")
        if not plain.strip():
            raise _bad_request("message text is empty")
        content: JSONDict = {"text": plain}
        if isinstance(params.get("entities"), list) and params["entities"]:
            content["entities"] = params["entities"]
        if isinstance(params.get("link_preview_options"), dict):
            content["link_preview_options"] = params["link_preview_options"]
        return self._commit(self._new_bot_message(params, content))

    def _send_photo(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        self._chat_id(params)
        caption = self._caption_content(params)
        source = self._input_file(params.get("photo"), files, "photo")
        content: JSONDict = {"photo": self._photo_sizes(source), **caption}
        if params.get("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._commit(self._new_bot_message(params, content))

    def _send_document(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        self._chat_id(params)
        caption = self._caption_content(params)
        source = self._input_file(params.get("document"), files, "document")
        content = {"document": self._document(source), **caption}
        return self._commit(self._new_bot_message(params, content))

    def _generic(self, method: str, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        """Unknown ``send*`` methods produce a message; anything else answers ``true``."""
        if method.startswith("send") and "chat_id" in params:
            content: JSONDict = self._caption_content(params)
            if isinstance(params.get("text"), str):
                content["text"] = params["text"]
            kind = method[4:].lower()
            value = params.get(kind)
            if value is not None or kind in files:
                content[kind] = self._document(self._input_file(value, files, kind))
            return self._commit(self._new_bot_message(params, content))
        return True

    def _send_media_group(self, params: JSONDict, files: dict[str, UploadedFile]) -> list[JSONDict]:
        self._chat_id(params)
        media = params.get("media")
        if not isinstance(media, list):
            raise _bad_request("can't parse media JSON object")
        if not MEDIA_GROUP_MIN <= len(media) <= MEDIA_GROUP_MAX:
            raise _bad_request(
                f"wrong number of media in the group: {len(media)}; must include 2-10 items"
            )
        kinds = {item.get("type") for item in media if isinstance(item, dict)}
        if len(kinds) > 1 and not kinds <= {"photo", "video"}:
            raise _bad_request("documents and audio can't be mixed with other media types")
        contents = [self._media_content(item, files) for item in media]
        group_id = f"{int(time.time())}{next(self._media_group_counter):06d}"
        messages = []
        for content in contents:
            msg = self._new_bot_message(params, content)
            msg["media_group_id"] = group_id
            msg.pop("reply_markup", None)
            messages.append(self._commit(msg))
        return messages

    def _send_chat_action(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self._chat_id(params)
        action = params.get("action")
        valid = {
            "typing", "upload_photo", "record_video", "upload_video", "record_voice",
            "upload_voice", "upload_document", "choose_sticker", "find_location",
            "record_video_note", "upload_video_note",
        }  # fmt: skip
        if action not in valid:
            raise _bad_request("wrong parameter action in request")
        return True

    def _edit_message_text(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        text = params.get("text")
        if text is None or text == "":
            raise _bad_request("message text is empty")
        plain = self._check_text(text, params.get("parse_mode"), TEXT_MAX_CHARS, "text")
        msg = self._edit_target(params)
        if msg is None:
            return True
        if "text" not in msg:
            raise _bad_request("there is no text in the message to edit")
        if msg["text"] == plain and msg.get("reply_markup") == params.get("reply_markup"):
            raise self._not_modified()
        msg["text"] = plain
        msg["edit_date"] = int(time.time())
        self._apply_markup(msg, params)
        return msg

    def _edit_message_caption(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        caption = self._caption_content(params)
        msg = self._edit_target(params)
        if msg is None:
            return True
        if not any(k in msg for k in ("photo", "document", "video", "animation", "audio")):
            raise _bad_request("there is no caption in the message to edit")
        if msg.get("caption") == caption.get("caption") and msg.get("reply_markup") == params.get(
            "reply_markup"
        ):
            raise self._not_modified()
        msg.pop("caption", None)
        msg.pop("caption_entities", None)
        msg.update(caption)
        msg["edit_date"] = int(time.time())
        self._apply_markup(msg, params)
        return msg

    def _edit_message_media(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        media = params.get("media")
        if not isinstance(media, dict):
            raise _bad_request("can't parse InputMedia JSON object")
        content = self._media_content(media, files)
        msg = self._edit_target(params)
        if msg is None:
            return True
        for key in (
            "photo",
            "document",
            "video",
            "animation",
            "audio",
            "caption",
            "caption_entities",
            "has_media_spoiler",
        ):
            msg.pop(key, None)
        msg.update(content)
        msg["edit_date"] = int(time.time())
        self._apply_markup(msg, params)
        return msg

    def _edit_message_reply_markup(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        msg = self._edit_target(params)
        if msg is None:
            return True
        new = params.get("reply_markup")
        new_kb = new if isinstance(new, dict) and new.get("inline_keyboard") else None
        if msg.get("reply_markup") == new_kb:
            raise self._not_modified()
        msg["edit_date"] = int(time.time())
        self._apply_markup(msg, params)
        return msg

    def _delete_one(self, chat_id: int | str, message_id: Any) -> None:
        msg = self._find_message(chat_id, message_id)
        if msg is None:
            raise _bad_request("message to delete not found")
        mid = msg["message_id"]
        del self._known[(chat_id, mid)]
        bucket = self.messages.get(chat_id, [])
        self.messages[chat_id] = [m for m in bucket if m["message_id"] != mid]
        self.deleted_messages.append((chat_id, mid))

    def _delete_message(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self._delete_one(self._chat_id(params), params.get("message_id"))
        return True

    def _delete_messages(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        chat_id = self._chat_id(params)
        for mid in params.get("message_ids") or []:
            with contextlib.suppress(ApiError):
                self._delete_one(chat_id, mid)
        return True

    def _answer_callback_query(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        if not params.get("callback_query_id"):
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if isinstance(text, str) and len(text) > CALLBACK_ANSWER_MAX_CHARS:
            raise _bad_request("MESSAGE_TOO_LONG")
        return True


# ----------------------------------------------------------------------------- standalone


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeTelegramAPI(
        token=args.token,
        bot_username=args.bot_username,
        bot_id=args.bot_id,
        host=args.host,
        port=args.port,
        latency=args.latency,
    )
    await fake.start()
    print(f"READY {fake.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="123:ABC")
    parser.add_argument("--bot-username", default="imagine_test_bot")
    parser.add_argument("--bot-id", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main(sys.argv[1:])
