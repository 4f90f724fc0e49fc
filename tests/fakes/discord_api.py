"""In-process fake of the Discord REST API, gateway and CDN for tests.

`FakeDiscord` runs one aiohttp application on 127.0.0.1 (random port) that serves

* the REST API under ``/api/v10`` (the routes a bot with slash commands, components,
  modals, follow-ups and plain channel messages needs),
* a JSON (uncompressed, text-frame) gateway websocket at ``/gw``,
* attachment downloads under ``/attachments/...`` and ``/media/attachments/...``.

A real ``discord.ext.commands.Bot`` is pointed at it with ``fake.install()`` (sets
``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``), then
``await bot.login(token)`` and ``asyncio.create_task(bot.connect())``.

Every REST request is recorded in ``fake.calls`` as a :class:`Call`. Payload builders
(``user``, ``attachment``, ``message``, ``slash_interaction``, ...) return raw gateway
dicts that ``dispatch`` / ``send_interaction`` push to the connected bot.

Realistic behaviours enforced by the fake (each can be relaxed through an attribute):

* files larger than the limit -> HTTP 413 ``{"code": 40005, ...}``. Channel routes use
  ``upload_limit``; interaction callbacks/webhooks use that interaction's
  ``attachment_size_limit`` (defaults to ``upload_limit``);
* an interaction can be acknowledged once (second callback -> 400, code 40060), only
  within ``callback_deadline`` seconds (else 404, code 10062); webhook calls for a token
  whose interaction was never acknowledged -> 404, code 10015;
* a modal (callback type 9) cannot answer a modal submit (400, code 50035);
* the first follow-up after a "thinking" defer (type 5) replaces the loading original
  message, as Discord does;
* without the MESSAGE_CONTENT intent (read from IDENTIFY) guild messages that do not
  mention the bot and are not the bot's own lose content/embeds/attachments/components
  (``enforce_content_intent``).

App monetization: ``add_sku`` makes a SKU the store lists (``GET .../skus``);
``entitlement`` records a purchase of one, listed by ``GET .../entitlements`` (consumed
ones too, with ``"consumed": true``) and read by ``GET .../entitlements/{id}``,
consumed once by ``POST .../entitlements/{id}/consume`` (an unknown one is 404, code
10070; a second consume is refused with a 400, as Discord refuses it), and
``create_entitlement`` also sends the ``ENTITLEMENT_CREATE`` dispatch, and
``delete_entitlement`` refunds one as Discord does: the entitlement is kept with
``"deleted": true`` (listed only with ``exclude_deleted=false``, unconsumable) and the
``ENTITLEMENT_DELETE`` dispatch carries the entitlement object.
An interaction can carry entitlements in its ``entitlements`` list.

``hold`` keeps matching REST calls unanswered until released (to kill a bot process
while its request is in flight); a released call is answered 503 and changes
nothing, as if it never reached Discord, unless released with ``reached=True``: then
Discord acts on it (the answer goes to a process that may be gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import mimetypes
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yarl
from aiohttp import WSMsgType, web

__all__ = ["DISCORD_EPOCH", "MIB", "Call", "FakeDiscord", "Hold"]

DISCORD_EPOCH = 1420070400000
MIB = 1024 * 1024
MESSAGE_CONTENT_INTENT = 1 << 15
ALL_PERMISSIONS = str((1 << 53) - 1)
LOADING_FLAG = 128
EPHEMERAL_FLAG = 64

JsonDict = dict[str, Any]
FileTuple = tuple[str, str, bytes, str]


@dataclass
class Call:
    """One REST request received by the fake (path is relative to ``/api/v10``)."""

    method: str
    path: str
    json: Any
    files: list[FileTuple]
    time: float
    query: dict[str, str] = field(default_factory=dict)
    status: int = 0
    response: Any = None

    @property
    def payload(self) -> JsonDict:
        """The JSON body as a dict (empty dict when absent or not a dict)."""
        return self.json if isinstance(self.json, dict) else {}


@dataclass
class _InjectedError:
    match: Callable[[Call], bool]
    status: int
    body: Any
    times: int


@dataclass
class Hold:
    """Calls ``FakeDiscord.hold`` keeps waiting; ``arrived`` is set by the first."""

    match: Callable[[Call], bool]
    calls: list[Call] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    reached: bool = False

    def release(self, *, reached: bool = False) -> None:
        self.reached = reached
        self.released.set()


@dataclass
class _InteractionState:
    id: int
    token: str
    type: int
    created: float
    size_limit: int
    message_id: int | None
    user: JsonDict
    channel_id: int
    acked_type: int | None = None
    original_id: int | None = None


class _HTTPError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message}


def _json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py only parses a body as JSON when the header is exactly this string.
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
    )


def _iso(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}+00:00"


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a project dependency
        return None, None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height
    except Exception:
        return None, None


class FakeDiscord:
    """Fake Discord REST + gateway + CDN server for one bot, one guild, one text channel."""

    def __init__(
        self,
        *,
        app_id: int = 111_111_111_111_111_111,
        bot_user_id: int | None = None,
        guild_id: int = 222_222_222_222_222_222,
        channel_id: int = 333_333_333_333_333_333,
        bot_name: str = "imagine-bot",
        guild_name: str = "Test Guild",
        channel_name: str = "general",
        heartbeat_interval: int = 45000,
    ) -> None:
        self.app_id = app_id
        self.bot_user_id = bot_user_id if bot_user_id is not None else app_id
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.guild_name = guild_name
        self.channel_name = channel_name
        self.heartbeat_interval = heartbeat_interval

        self.upload_limit: int = 10 * MIB
        self.request_limit: int | None = None
        self.attachment_size_limit: int | None = None
        self.callback_deadline: float | None = 3.0
        self.enforce_content_intent: bool = True
        self.member_permissions: str = ALL_PERMISSIONS
        self.app_permissions: str = ALL_PERMISSIONS

        self.calls: list[Call] = []
        self.unhandled: list[Call] = []
        self.skus: list[JsonDict] = []
        self.entitlements: dict[int, JsonDict] = {}
        self.errors: list[BaseException] = []
        self.cdn_requests: list[str] = []
        self.gateway_sent: list[JsonDict] = []
        self.gateway_received: list[JsonDict] = []
        self.identify: JsonDict | None = None
        self.messages: dict[int, JsonDict] = {}
        self.dm_channels: dict[int, JsonDict] = {}
        self.users: dict[int, JsonDict] = {}
        self.global_commands: list[JsonDict] = []
        self.guild_commands: dict[int, list[JsonDict]] = {}

        self._interactions: dict[int, _InteractionState] = {}
        self._tokens: dict[str, _InteractionState] = {}
        self._cdn: dict[str, tuple[bytes, str]] = {}
        self._errors: list[_InjectedError] = []
        self._holds: list[Hold] = []
        self._snowflake_seq = 0
        self._seq = 0
        self._ws: web.WebSocketResponse | None = None
        self._ws_lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._call_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

        self.bot_user: JsonDict = {
            "id": str(self.bot_user_id),
            "username": bot_name,
            "global_name": None,
            "discriminator": "0",
            "avatar": None,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "public_flags": 0,
        }
        self.users[self.bot_user_id] = self.bot_user
        self.owner = self.user(999_999_999_999_999_999, "owner")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start serving on 127.0.0.1 with a random free port."""
        app = web.Application(client_max_size=1024 * MIB)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle_rest)
        app.router.add_get("/gw", self._handle_gateway)
        app.router.add_get("/gw/", self._handle_gateway)
        app.router.add_get("/attachments/{tail:.*}", self._handle_cdn)
        app.router.add_get("/media/attachments/{tail:.*}", self._handle_cdn)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Close the gateway connection and the server."""
        for hold in self._holds:
            hold.release()
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord.start() has not been awaited")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> yarl.URL:
        return yarl.URL(f"ws://127.0.0.1:{self.port}/gw")

    def install(self) -> Callable[[], None]:
        """Point discord.py at this fake; returns a callable restoring the old values."""
        import discord.gateway
        import discord.http

        old_base = discord.http.Route.BASE
        old_gw = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.rest_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self.gateway_url

        def undo() -> None:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gw

        return undo

    # ------------------------------------------------------------------ ids & helpers
    def snowflake(self) -> int:
        """A fresh, increasing snowflake whose timestamp is now."""
        self._snowflake_seq += 1
        ms = int(time.time() * 1000) - DISCORD_EPOCH
        return (ms << 22) | (self._snowflake_seq & 0x3FFFFF)

    def cdn_url(self, attachment_id: int, filename: str, *, channel_id: int | None = None) -> str:
        """URL where the fake serves an attachment's bytes."""
        return f"{self.base_url}/{self._cdn_key(attachment_id, filename, channel_id)}"

    def _cdn_key(self, attachment_id: int, filename: str, channel_id: int | None) -> str:
        return f"attachments/{channel_id or self.channel_id}/{attachment_id}/{filename}"

    def calls_to(self, path_contains: str, method: str | None = None) -> list[Call]:
        """Recorded calls whose path contains the substring (and method matches)."""
        return [
            c
            for c in self.calls
            if path_contains in c.path and (method is None or c.method == method.upper())
        ]

    async def wait_for_call(
        self,
        predicate: str | Callable[[Call], bool],
        timeout: float = 5,
        *,
        method: str | None = None,
        start: int = 0,
    ) -> Call:
        """Wait until a call matching predicate (or path substring) has been recorded.

        Only answered calls match, so ``call.status``/``call.response`` are filled in.
        ``start`` skips the first calls (pass ``len(fake.calls)`` to wait for a new one).
        """
        match = self._matcher(predicate, method)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for c in self.calls[start:]:
                if c.status and match(c):  # status is set once the fake has answered
                    return c
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                recent = [f"{c.method} {c.path}" for c in self.calls[-10:]]
                raise TimeoutError(f"no call matching {predicate!r}; recent: {recent}")
            self._call_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._call_event.wait(), remaining)

    @staticmethod
    def _matcher(
        predicate: str | Callable[[Call], bool], method: str | None = None
    ) -> Callable[[Call], bool]:
        if isinstance(predicate, str):
            sub = predicate

            def match(c: Call) -> bool:
                return sub in c.path and (method is None or c.method == method.upper())

            return match
        return predicate

    def interaction_responses(self, interaction_id: int | str) -> list[Call]:
        """Callback + webhook (edit/follow-up/delete) calls for an interaction, in order."""
        st = self._interactions.get(int(interaction_id))
        if st is None:
            return []
        cb = f"/interactions/{st.id}/{st.token}/"
        wh = f"/webhooks/{self.app_id}/{st.token}"
        return [c for c in self.calls if c.path.startswith(cb) or c.path.startswith(wh)]

    def original_response(self, interaction_id: int | str) -> JsonDict | None:
        """The current original-response message object of an interaction, if any."""
        st = self._interactions.get(int(interaction_id))
        if st is None or st.original_id is None:
            return None
        return self.messages.get(st.original_id)

    def bot_messages(self, channel_id: int | None = None) -> list[JsonDict]:
        """Messages authored by the bot (channel sends, interaction responses), oldest first."""
        return [
            m
            for m in self.messages.values()
            if m["author"]["id"] == str(self.bot_user_id)
            and (channel_id is None or m["channel_id"] == str(channel_id))
        ]

    def attachment_bytes(self, attachment: Mapping[str, Any]) -> bytes:
        """Bytes behind an attachment object produced by the fake."""
        key = str(attachment["url"]).split("?", 1)[0].removeprefix(self.base_url + "/")
        return self._cdn[key][0]

    def inject_error(
        self,
        predicate: str | Callable[[Call], bool],
        *,
        status: int = 500,
        body: Any = None,
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching REST calls with ``status``/``body``."""
        if body is None:
            body = {"code": 0, "message": f"{status}: injected error"}
        self._errors.append(_InjectedError(self._matcher(predicate, method), status, body, times))

    def hold(self, predicate: str | Callable[[Call], bool], *, method: str | None = None) -> Hold:
        """Keep matching REST calls unanswered until ``release()``; then answer them
        503 without acting on them (the request never reached Discord), or act on
        them and answer as usual after ``release(reached=True)``."""
        hold = Hold(self._matcher(predicate, method))
        self._holds.append(hold)
        return hold

    # ------------------------------------------------------------------ payload builders
    def user(self, id: int, name: str | None = None, *, bot: bool = False) -> JsonDict:
        """A user object (registered so later builders reuse it)."""
        if name is None and id in self.users:
            return self.users[id]
        u: JsonDict = {
            "id": str(id),
            "username": name or f"user{id}",
            "global_name": name or f"user{id}",
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
            "flags": 0,
        }
        self.users[id] = u
        return u

    def _user_obj(self, user: int | Mapping[str, Any]) -> JsonDict:
        if isinstance(user, Mapping):
            return dict(user)
        return self.users.get(user) or self.user(user)

    def member(self, user: int | Mapping[str, Any], *, with_user: bool = True) -> JsonDict:
        """A guild member object."""
        m: JsonDict = {
            "roles": [],
            "nick": None,
            "avatar": None,
            "joined_at": _iso(time.time() - 86400),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            m["user"] = self._user_obj(user)
        return m

    def channel(self) -> JsonDict:
        """The fake guild's text channel object."""
        return {
            "id": str(self.channel_id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": self.channel_name,
            "position": 0,
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "permission_overwrites": [],
            "flags": 0,
        }

    def guild(self) -> JsonDict:
        """GUILD_CREATE payload: one text channel, @everyone role, the bot member."""
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": self.owner["id"],
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                {
                    "id": str(self.guild_id),
                    "name": "@everyone",
                    "permissions": "1071698660929",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": _iso(time.time() - 86400),
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "voice_states": [],
            "members": [self.member(self.bot_user_id)],
            "channels": [self.channel()],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        *,
        channel_id: int | None = None,
        description: str | None = None,
    ) -> JsonDict:
        """An attachment object whose bytes the fake serves at its ``url``/``proxy_url``.

        Width/height are read with Pillow when omitted and the data is an image.
        """
        att_id = self.snowflake()
        if content_type is None or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(filename)[0] or content_type
        if width is None and height is None and (content_type or "").startswith("image/"):
            width, height = _image_size(data)
        key = self._cdn_key(att_id, filename, channel_id)
        self._cdn[key] = (data, content_type or "application/octet-stream")
        query = (
            f"?ex={int(time.time()) + 86400:x}&is={int(time.time()):x}&hm={secrets.token_hex(8)}&"
        )
        att: JsonDict = {
            "id": str(att_id),
            "filename": filename,
            "size": len(data),
            "url": f"{self.base_url}/{key}{query}",
            "proxy_url": f"{self.base_url}/media/{key}{query}",
        }
        if content_type:
            att["content_type"] = content_type
        if width is not None and height is not None:
            att["width"] = width
            att["height"] = height
        if description is not None:
            att["description"] = description
        return att

    def message(
        self,
        content: str,
        *,
        author_id: int,
        attachments: Iterable[Mapping[str, Any]] = (),
        embeds: Iterable[Mapping[str, Any]] = (),
        referenced_message: Mapping[str, Any] | None = None,
        mentions: Iterable[int | Mapping[str, Any]] = (),
        components: Iterable[Mapping[str, Any]] = (),
        channel_id: int | None = None,
        dm: bool = False,
        message_id: int | None = None,
    ) -> JsonDict:
        """A MESSAGE_CREATE payload (also stored so the bot can fetch it over REST)."""
        author = self._user_obj(author_id)
        mid = message_id or self.snowflake()
        in_guild = not dm
        if dm and channel_id is None:
            channel_id = int(self._dm_channel(author_id)["id"])
        ch = channel_id or self.channel_id
        mention_objs: list[JsonDict] = []
        for m in mentions:
            u = self._user_obj(m)
            if in_guild:
                u = {**u, "member": self.member(int(u["id"]), with_user=False)}
            mention_objs.append(u)
        msg: JsonDict = {
            "id": str(mid),
            "type": 19 if referenced_message is not None else 0,
            "channel_id": str(ch),
            "author": author,
            "content": content,
            "timestamp": _iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mention_objs,
            "mention_roles": [],
            "attachments": [dict(a) for a in attachments],
            "embeds": [dict(e) for e in embeds],
            "components": [dict(c) for c in components],
            "pinned": False,
            "flags": 0,
        }
        if in_guild:
            msg["guild_id"] = str(self.guild_id)
            msg["member"] = self.member(author_id, with_user=False)
        if referenced_message is not None:
            msg["message_reference"] = {
                "type": 0,
                "message_id": str(referenced_message["id"]),
                "channel_id": str(referenced_message.get("channel_id", ch)),
            }
            if in_guild:
                msg["message_reference"]["guild_id"] = str(self.guild_id)
            msg["referenced_message"] = dict(referenced_message)
        self.messages[mid] = msg
        return msg

    def _dm_channel(self, user_id: int) -> JsonDict:
        for ch in self.dm_channels.values():
            if ch["recipients"][0]["id"] == str(user_id):
                return ch
        cid = self.snowflake()
        ch = {
            "id": str(cid),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [self._user_obj(user_id)],
        }
        self.dm_channels[cid] = ch
        return ch

    def _interaction(
        self,
        itype: int,
        data: JsonDict | None,
        *,
        user_id: int,
        message: Mapping[str, Any] | None = None,
        dm: bool = False,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
    ) -> JsonDict:
        iid = self.snowflake()
        token = f"itoken.{iid}.{secrets.token_urlsafe(24)}"
        limit = attachment_size_limit or self.attachment_size_limit or self.upload_limit
        payload: JsonDict = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": itype,
            "token": token,
            "version": 1,
            "app_permissions": self.app_permissions,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": limit,
        }
        if data is not None:
            payload["data"] = data
        if dm:
            dm_ch = self._dm_channel(user_id)
            payload["channel_id"] = dm_ch["id"]
            payload["channel"] = dict(dm_ch)
            payload["user"] = self._user_obj(user_id)
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": str(self.guild_id)}
        else:
            member = self.member(user_id)
            member["permissions"] = self.member_permissions
            payload.update(
                {
                    "guild_id": str(self.guild_id),
                    "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
                    "guild_locale": "en-US",
                    "channel_id": str(self.channel_id),
                    "channel": {**self.channel(), "permissions": self.member_permissions},
                    "member": member,
                    "context": 0,
                    "authorizing_integration_owners": {"0": str(self.guild_id)},
                }
            )
        if message is not None:
            payload["message"] = dict(message)
        st = _InteractionState(
            id=iid,
            token=token,
            type=itype,
            created=time.monotonic(),
            size_limit=limit,
            message_id=int(message["id"]) if message is not None else None,
            user=(payload.get("member") or {}).get("user") or payload.get("user") or {},
            channel_id=int(payload["channel_id"]),
        )
        self._interactions[iid] = st
        self._tokens[token] = st
        return payload

    @staticmethod
    def _option_type(value: Any) -> int:
        if isinstance(value, bool):
            return 5
        if isinstance(value, int):
            return 4
        if isinstance(value, float):
            return 10
        if isinstance(value, Mapping) and "filename" in value:
            return 11
        if isinstance(value, Mapping) and "username" in value:
            return 6
        return 3

    def _normalise_options(
        self, options: Sequence[Mapping[str, Any]] | Mapping[str, Any], resolved: JsonDict
    ) -> list[JsonDict]:
        if isinstance(options, Mapping):
            options = [{"name": k, "value": v} for k, v in options.items()]
        out: list[JsonDict] = []
        for opt in options:
            o = dict(opt)
            if "options" in o and o.get("type") in (1, 2, None):
                o.setdefault("type", 1)
                o["options"] = self._normalise_options(o["options"], resolved)
                out.append(o)
                continue
            value = o.get("value")
            o.setdefault("type", self._option_type(value))
            if isinstance(value, Mapping):
                if "filename" in value:  # attachment object
                    resolved.setdefault("attachments", {})[str(value["id"])] = dict(value)
                elif "username" in value:  # user object
                    resolved.setdefault("users", {})[str(value["id"])] = dict(value)
                    resolved.setdefault("members", {})[str(value["id"])] = {
                        **self.member(int(value["id"]), with_user=False),
                        "permissions": self.member_permissions,
                    }
                o["value"] = str(value["id"])
            out.append(o)
        return out

    def slash_interaction(
        self,
        name: str,
        options: Sequence[Mapping[str, Any]] | Mapping[str, Any] = (),
        *,
        user_id: int,
        resolved: Mapping[str, Any] | None = None,
        subcommand: str | None = None,
        subcommand_group: str | None = None,
        command_id: int | None = None,
        command_guild_id: int | None = None,
        dm: bool = False,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
    ) -> JsonDict:
        """An INTERACTION_CREATE payload for ``/name [group] [sub] options``.

        ``options`` is raw option dicts (``{"name", "type", "value"}``; ``type`` is
        inferred when missing) or a ``{name: value}`` mapping. A value that is an
        attachment dict from :meth:`attachment` becomes a type-11 option with
        ``resolved.attachments`` filled in; a user dict becomes a type-6 option.
        ``command_guild_id`` must be set for commands registered as guild commands.
        """
        res: JsonDict = {k: dict(v) for k, v in (resolved or {}).items()}
        opts = self._normalise_options(options, res)
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        if subcommand_group is not None:
            opts = [{"name": subcommand_group, "type": 2, "options": opts}]
        data: JsonDict = {
            "id": str(command_id or self._command_id(name, command_guild_id)),
            "name": name,
            "type": 1,
            "options": opts,
        }
        if res:
            data["resolved"] = res
        if command_guild_id is not None:
            data["guild_id"] = str(command_guild_id)
        return self._interaction(
            2,
            data,
            user_id=user_id,
            dm=dm,
            attachment_size_limit=attachment_size_limit,
            locale=locale,
        )

    def _command_id(self, name: str, guild_id: int | None) -> int:
        cmds = self.guild_commands.get(guild_id, []) if guild_id else self.global_commands
        for c in cmds:
            if c["name"] == name:
                return int(c["id"])
        return self.snowflake()

    def context_menu_interaction(
        self,
        name: str,
        target_message: Mapping[str, Any],
        *,
        user_id: int,
        command_guild_id: int | None = None,
        attachment_size_limit: int | None = None,
    ) -> JsonDict:
        """A message context-menu command (type 2, data.type 3) targeting a message.

        The target is exempt from the message-content intent, so it is sent in full.
        """
        data: JsonDict = {
            "id": str(self._command_id(name, command_guild_id)),
            "name": name,
            "type": 3,
            "target_id": str(target_message["id"]),
            "resolved": {"messages": {str(target_message["id"]): dict(target_message)}},
        }
        if command_guild_id is not None:
            data["guild_id"] = str(command_guild_id)
        return self._interaction(
            2, data, user_id=user_id, attachment_size_limit=attachment_size_limit
        )

    def component_interaction(
        self,
        custom_id: str,
        *,
        user_id: int,
        message: Mapping[str, Any],
        component_type: int = 2,
        values: Sequence[str] | None = None,
    ) -> JsonDict:
        """A component (button by default; pass ``component_type=3`` + values for a select)."""
        data: JsonDict = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        return self._interaction(3, data, user_id=user_id, message=message)

    def modal_submit_interaction(
        self,
        custom_id: str,
        values: Mapping[str, str],
        *,
        user_id: int,
        message: Mapping[str, Any] | None = None,
        labels: bool = False,
    ) -> JsonDict:
        """A modal submit (type 5): one text input per ``{custom_id: value}``.

        Inputs are wrapped in action rows (type 1), or label components (type 18)
        when ``labels`` is true (what Discord sends for modals built with Labels).
        """
        rows: list[JsonDict] = []
        for i, (cid, value) in enumerate(values.items()):
            text_input = {"type": 4, "id": i + 2, "custom_id": cid, "value": value}
            if labels:
                rows.append({"type": 18, "id": i + 100, "component": text_input})
            else:
                rows.append({"type": 1, "id": i + 100, "components": [text_input]})
        data: JsonDict = {"custom_id": custom_id, "components": rows}
        return self._interaction(5, data, user_id=user_id, message=message)

    # ------------------------------------------------------------------ gateway
    async def wait_ready(self, timeout: float = 10) -> None:
        """Wait until the bot identified and READY + GUILD_CREATE were sent."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def dispatch(self, event: str, data: Mapping[str, Any]) -> None:
        """Push a DISPATCH (op 0) event to the connected bot."""
        if self._ws is None or self._ws.closed:
            raise RuntimeError("no gateway connection")
        if event == "MESSAGE_CREATE":
            data = self._apply_content_intent(data)
        self._seq += 1
        await self._send_ws({"op": 0, "t": event, "s": self._seq, "d": dict(data)})

    async def send_interaction(self, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        """Dispatch INTERACTION_CREATE; the callback deadline starts now."""
        st = self._interactions.get(int(payload["id"]))
        if st is not None:
            st.created = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def send_message(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """Dispatch MESSAGE_CREATE for a payload from :meth:`message`."""
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    def _has_content_intent(self) -> bool:
        if self.identify is None:
            return True
        return bool(int(self.identify.get("intents", 0)) & MESSAGE_CONTENT_INTENT)

    def _strip_content(self, msg: Mapping[str, Any]) -> JsonDict:
        out = dict(msg)
        if not self.enforce_content_intent or self._has_content_intent():
            return out
        if "guild_id" not in out:  # DMs are exempt
            return out
        bot_id = str(self.bot_user_id)
        if out.get("author", {}).get("id") == bot_id:
            return out
        if any(m.get("id") == bot_id for m in out.get("mentions", [])):
            return out
        out.update(content="", embeds=[], attachments=[], components=[])
        return out

    def _apply_content_intent(self, msg: Mapping[str, Any]) -> JsonDict:
        out = self._strip_content(msg)
        ref = out.get("referenced_message")
        if isinstance(ref, Mapping):
            out["referenced_message"] = self._strip_content(ref)
        return out

    async def _send_ws(self, payload: JsonDict) -> None:
        ws = self._ws
        if ws is None:
            raise RuntimeError("no gateway connection")
        async with self._ws_lock:
            self.gateway_sent.append(payload)
            await ws.send_str(json.dumps(payload))

    def ready_payload(self) -> JsonDict:
        return {
            "v": 10,
            "user": self.bot_user,
            "user_settings": {},
            "private_channels": [],
            "relationships": [],
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": secrets.token_hex(16),
            "session_type": "normal",
            "resume_gateway_url": str(self.gateway_url),
            "application": {"id": str(self.app_id), "flags": 0},
            "geo_ordered_rtc_regions": [],
        }

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=4000)
        self._ws = ws
        self._ready.clear()
        await self._send_ws({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            self.gateway_received.append(data)
            op = data.get("op")
            if op == 1:
                await self._send_ws({"op": 11})
            elif op == 2:
                self.identify = data.get("d") or {}
                self._seq = 0
                await self.dispatch("READY", self.ready_payload())
                await self.dispatch("GUILD_CREATE", self.guild())
                self._ready.set()
            elif op == 6:
                await self.dispatch("RESUMED", {})
                self._ready.set()
        if self._ws is ws:
            self._ws = None
        return ws

    # ------------------------------------------------------------------ CDN
    async def _handle_cdn(self, request: web.Request) -> web.Response:
        key = "attachments/" + request.match_info["tail"]
        self.cdn_requests.append(str(request.rel_url))
        item = self._cdn.get(key)
        if item is None:
            return web.Response(status=404, text="not found")
        data, ctype = item
        return web.Response(body=data, headers={"Content-Type": ctype})

    # ------------------------------------------------------------------ REST plumbing
    async def _read_body(self, request: web.Request) -> tuple[Any, list[FileTuple]]:
        ctype = request.headers.get("Content-Type", "")
        files: list[FileTuple] = []
        body: Any = None
        if ctype.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = getattr(part, "name", None) or ""
                if name == "payload_json":
                    body = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    raw = await part.read(decode=False)  # type: ignore[union-attr]
                    pctype = part.headers.get("Content-Type", "application/octet-stream")
                    files.append((name, getattr(part, "filename", None) or "", bytes(raw), pctype))
        else:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
        return body, files

    async def _handle_rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        call = Call(
            method=request.method,
            path=path,
            json=None,
            files=[],
            time=time.time(),
            query=dict(request.query),
        )
        call.json, call.files = await self._read_body(request)
        self.calls.append(call)
        status: int
        result: Any
        try:
            held = next((h for h in self._holds if not h.released.is_set() and h.match(call)), None)
            injected = next((e for e in self._errors if e.times > 0 and e.match(call)), None)
            if held is not None:
                held.calls.append(call)
                held.arrived.set()
                await held.released.wait()
                if held.reached:
                    status, result = await self._route(call)
                else:
                    status, result = 503, {"code": 0, "message": "503: held, never delivered"}
            elif injected is not None:
                injected.times -= 1
                status, result = injected.status, injected.body
            else:
                status, result = await self._route(call)
        except _HTTPError as exc:
            status, result = exc.status, exc.body
        except Exception as exc:  # a bug in the fake: answer 500 and keep it visible
            self.errors.append(exc)
            status, result = 500, {"code": 0, "message": f"fake error: {exc!r}"}
        call.status, call.response = status, result
        self._call_event.set()
        if status == 204 or result is None:
            return web.Response(status=204)
        return _json_response(result, status)

    def _check_files(self, files: list[FileTuple], limit: int) -> None:
        for _, _, data, _ in files:
            if len(data) > limit:
                raise _HTTPError(413, 40005, "Request entity too large")
        if self.request_limit is not None and sum(len(f[2]) for f in files) > self.request_limit:
            raise _HTTPError(413, 40005, "Request entity too large")

    _ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", r"/applications/(?P<app>\d+)/skus", "_r_skus"),
        ("GET", r"/applications/(?P<app>\d+)/entitlements", "_r_entitlements"),
        ("GET", r"/applications/(?P<app>\d+)/entitlements/(?P<eid>\d+)", "_r_entitlement"),
        (
            "POST",
            r"/applications/(?P<app>\d+)/entitlements/(?P<eid>\d+)/consume",
            "_r_consume",
        ),
        ("GET", r"/users/@me", "_r_me"),
        ("GET", r"/oauth2/applications/@me", "_r_appinfo"),
        ("GET", r"/applications/@me", "_r_appinfo"),
        ("GET", r"/gateway", "_r_gateway"),
        ("GET", r"/gateway/bot", "_r_gateway_bot"),
        ("PUT", r"/applications/(?P<app>\d+)/commands", "_r_put_commands"),
        ("GET", r"/applications/(?P<app>\d+)/commands", "_r_get_commands"),
        ("PUT", r"/applications/(?P<app>\d+)/guilds/(?P<g>\d+)/commands", "_r_put_commands"),
        ("GET", r"/applications/(?P<app>\d+)/guilds/(?P<g>\d+)/commands", "_r_get_commands"),
        ("POST", r"/interactions/(?P<iid>\d+)/(?P<tok>[^/]+)/callback", "_r_callback"),
        (
            "GET",
            r"/webhooks/(?P<app>\d+)/(?P<tok>[^/]+)/messages/(?P<mid>@original|\d+)",
            "_r_wh_get",
        ),
        (
            "PATCH",
            r"/webhooks/(?P<app>\d+)/(?P<tok>[^/]+)/messages/(?P<mid>@original|\d+)",
            "_r_wh_edit",
        ),
        (
            "DELETE",
            r"/webhooks/(?P<app>\d+)/(?P<tok>[^/]+)/messages/(?P<mid>@original|\d+)",
            "_r_wh_delete",
        ),
        ("POST", r"/webhooks/(?P<app>\d+)/(?P<tok>[^/]+)", "_r_followup"),
        ("GET", r"/channels/(?P<cid>\d+)", "_r_get_channel"),
        ("POST", r"/channels/(?P<cid>\d+)/messages", "_r_send"),
        ("GET", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "_r_get_message"),
        ("PATCH", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "_r_edit_message"),
        ("DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "_r_delete_message"),
        ("POST", r"/channels/(?P<cid>\d+)/typing", "_r_typing"),
        ("POST", r"/users/@me/channels", "_r_create_dm"),
        (
            "PUT",
            r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<e>[^/]+)/@me",
            "_r_204",
        ),
        (
            "DELETE",
            r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<e>[^/]+)/@me",
            "_r_204",
        ),
    )

    async def _route(self, call: Call) -> tuple[int, Any]:
        for method, pattern, handler in self._ROUTES:
            if call.method != method:
                continue
            m = re.fullmatch(pattern, call.path)
            if m:
                result: tuple[int, Any] = await getattr(self, handler)(call, **m.groupdict())
                return result
        self.unhandled.append(call)
        return 404, {"code": 0, "message": "404: Not Found"}

    # ------------------------------------------------------------------ message objects
    def _build_attachments(
        self,
        payload: JsonDict,
        files: list[FileTuple],
        existing: list[JsonDict],
        channel_id: int,
        *,
        replace: bool,
    ) -> list[JsonDict]:
        by_index: dict[int, FileTuple] = {}
        for f in files:
            m = re.fullmatch(r"files\[(\d+)\]", f[0])
            by_index[int(m.group(1)) if m else len(by_index)] = f
        meta = payload.get("attachments")
        result: list[JsonDict] = []
        if meta is None:
            result = [] if replace else list(existing)
            used: set[int] = set()
        else:
            used = set()
            old = {a["id"]: a for a in existing}
            for a in meta:
                aid = str(a.get("id"))
                if aid in old:
                    result.append(old[aid])
                elif aid.isdigit() and int(aid) in by_index:
                    idx = int(aid)
                    used.add(idx)
                    _, fname, data, ctype = by_index[idx]
                    result.append(
                        self.attachment(
                            data,
                            a.get("filename") or fname,
                            ctype,
                            channel_id=channel_id,
                            description=a.get("description"),
                        )
                    )
        for idx in sorted(by_index):
            if idx in used:
                continue
            _, fname, data, ctype = by_index[idx]
            result.append(self.attachment(data, fname, ctype, channel_id=channel_id))
        return result

    def _new_bot_message(
        self,
        channel_id: int,
        payload: JsonDict,
        files: list[FileTuple],
        *,
        msg_type: int = 0,
        webhook: bool = False,
        interaction: _InteractionState | None = None,
        flags: int = 0,
    ) -> JsonDict:
        mid = self.snowflake()
        in_guild = channel_id not in self.dm_channels
        msg: JsonDict = {
            "id": str(mid),
            "type": msg_type,
            "channel_id": str(channel_id),
            "author": self.bot_user,
            "content": payload.get("content") or "",
            "timestamp": _iso(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._build_attachments(payload, files, [], channel_id, replace=True),
            "embeds": list(payload.get("embeds") or []),
            "components": list(payload.get("components") or []),
            "pinned": False,
            "flags": int(payload.get("flags") or 0) | flags,
        }
        if in_guild:
            msg["guild_id"] = str(self.guild_id)
        if webhook:
            msg["webhook_id"] = str(self.app_id)
            msg["application_id"] = str(self.app_id)
        if interaction is not None:
            user = interaction.user
            msg["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user,
                "authorizing_integration_owners": {"0": str(self.guild_id)},
            }
        ref = payload.get("message_reference")
        if ref and ref.get("message_id"):
            msg["type"] = 19
            msg["message_reference"] = {
                "type": ref.get("type", 0),
                "message_id": str(ref["message_id"]),
                "channel_id": str(ref.get("channel_id") or channel_id),
            }
            if in_guild:
                msg["message_reference"]["guild_id"] = str(self.guild_id)
            referenced = self.messages.get(int(ref["message_id"]))
            if referenced is None and ref.get("fail_if_not_exists", True):
                raise _HTTPError(400, 50035, "Invalid Form Body: Unknown message")
            msg["referenced_message"] = referenced
        self.messages[mid] = msg
        return msg

    def _apply_edit(self, msg: JsonDict, payload: JsonDict, files: list[FileTuple]) -> JsonDict:
        for key in ("content", "embeds", "components"):
            if key in payload:
                msg[key] = (
                    payload[key] if payload[key] is not None else ([] if key != "content" else "")
                )
        if "flags" in payload and payload["flags"] is not None:
            msg["flags"] = int(payload["flags"])
        if "attachments" in payload or files:
            msg["attachments"] = self._build_attachments(
                payload, files, msg.get("attachments", []), int(msg["channel_id"]), replace=False
            )
        msg["flags"] = int(msg.get("flags", 0)) & ~LOADING_FLAG
        msg["edited_timestamp"] = _iso()
        return msg

    # ------------------------------------------------------------------ route handlers
    # ------------------------------------------------------------------ monetization
    def add_sku(self, name: str, *, consumable: bool = True) -> JsonDict:
        """A SKU made in the developer portal: type 3 is consumable, 2 durable."""
        sku = {
            "id": str(self.snowflake()),
            "type": 3 if consumable else 2,
            "application_id": str(self.app_id),
            "name": name,
            "slug": name.lower().replace(" ", "-"),
            "flags": 1 << 2,  # available
        }
        self.skus.append(sku)
        return sku

    def entitlement(self, user_id: int, sku_id: int | str) -> JsonDict:
        """A one-time purchase (type 1) of ``sku_id`` by ``user_id``, not yet consumed."""
        ent = {
            "id": str(self.snowflake()),
            "sku_id": str(sku_id),
            "application_id": str(self.app_id),
            "user_id": str(user_id),
            "type": 1,
            "deleted": False,
            "consumed": False,
        }
        self.entitlements[int(ent["id"])] = ent
        return ent

    async def create_entitlement(self, user_id: int, sku_id: int | str) -> JsonDict:
        """A purchase as Discord reports it: recorded, then ``ENTITLEMENT_CREATE``."""
        ent = self.entitlement(user_id, sku_id)
        await self.dispatch("ENTITLEMENT_CREATE", ent)
        return ent

    async def delete_entitlement(self, entitlement_id: int | str) -> JsonDict:
        """Discord refunded (or removed) it: marked deleted, then ``ENTITLEMENT_DELETE``."""
        ent = self.entitlements[int(entitlement_id)]
        ent["deleted"] = True
        await self.dispatch("ENTITLEMENT_DELETE", ent)
        return ent

    async def _r_skus(self, call: Call, app: str) -> tuple[int, Any]:
        return 200, list(self.skus)

    async def _r_entitlements(self, call: Call, app: str) -> tuple[int, Any]:
        q = call.query
        found = sorted(self.entitlements.values(), key=lambda e: int(e["id"]))
        if q.get("user_id"):
            found = [e for e in found if e["user_id"] == q["user_id"]]
        if q.get("sku_ids"):
            found = [e for e in found if e["sku_id"] in q["sku_ids"].split(",")]
        if q.get("exclude_deleted", "1") in ("1", "true"):
            found = [e for e in found if not e["deleted"]]
        if q.get("after"):
            found = [e for e in found if int(e["id"]) > int(q["after"])]
        limit = max(1, min(100, int(q.get("limit") or 100)))
        if q.get("before"):  # the newest page below it, still in ascending order
            found = [e for e in found if int(e["id"]) < int(q["before"])]
            return 200, [dict(e) for e in found[-limit:]]
        return 200, [dict(e) for e in found[:limit]]

    async def _r_entitlement(self, call: Call, app: str, eid: str) -> tuple[int, Any]:
        ent = self.entitlements.get(int(eid))
        if ent is None:
            return 404, {"code": 10070, "message": "Unknown Entitlement"}
        return 200, dict(ent)

    async def _r_consume(self, call: Call, app: str, eid: str) -> tuple[int, Any]:
        ent = self.entitlements.get(int(eid))
        if ent is None or ent["deleted"]:
            return 404, {"code": 10070, "message": "Unknown Entitlement"}
        if ent["consumed"]:
            # Discord refuses a second consume; its JSON code for it is not
            # documented, so the bot must not depend on one (it reads the
            # entitlement back instead).
            return 400, {"code": 0, "message": "Entitlement already consumed"}
        ent["consumed"] = True
        return 204, None

    async def _r_204(self, call: Call, **_: str) -> tuple[int, Any]:
        return 204, None

    async def _r_me(self, call: Call) -> tuple[int, Any]:
        return 200, self.bot_user

    async def _r_appinfo(self, call: Call) -> tuple[int, Any]:
        return 200, {
            "id": str(self.app_id),
            "name": self.bot_user["username"],
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner,
            "team": None,
            "flags": 0,
            "bot": self.bot_user,
            "redirect_uris": [],
            "interactions_endpoint_url": None,
        }

    async def _r_gateway(self, call: Call) -> tuple[int, Any]:
        return 200, {"url": str(self.gateway_url)}

    async def _r_gateway_bot(self, call: Call) -> tuple[int, Any]:
        return 200, {
            "url": str(self.gateway_url),
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 0,
                "max_concurrency": 1,
            },
        }

    async def _r_put_commands(self, call: Call, app: str, g: str | None = None) -> tuple[int, Any]:
        body = call.json if isinstance(call.json, list) else []
        old = self.guild_commands.get(int(g), []) if g else self.global_commands
        old_ids = {(c["name"], c.get("type", 1)): c["id"] for c in old}
        out: list[JsonDict] = []
        for cmd in body:
            c: JsonDict = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                **cmd,
            }
            c["id"] = old_ids.get((c["name"], c["type"])) or str(self.snowflake())
            c["application_id"] = app
            c["version"] = str(self.snowflake())
            if g:
                c["guild_id"] = g
            out.append(c)
        if g:
            self.guild_commands[int(g)] = out
        else:
            self.global_commands = out
        return 200, out

    async def _r_get_commands(self, call: Call, app: str, g: str | None = None) -> tuple[int, Any]:
        return 200, self.guild_commands.get(int(g), []) if g else self.global_commands

    def _state_for_token(self, tok: str) -> _InteractionState:
        st = self._tokens.get(tok)
        if st is None or st.acked_type is None:
            raise _HTTPError(404, 10015, "Unknown Webhook")
        return st

    async def _r_callback(self, call: Call, iid: str, tok: str) -> tuple[int, Any]:
        st = self._interactions.get(int(iid))
        if st is None or st.token != tok:
            raise _HTTPError(404, 10062, "Unknown interaction")
        if (
            self.callback_deadline is not None
            and time.monotonic() - st.created > self.callback_deadline
        ):
            raise _HTTPError(404, 10062, "Unknown interaction")
        if st.acked_type is not None:
            raise _HTTPError(400, 40060, "Interaction has already been acknowledged.")
        body = call.payload
        cb_type = int(body.get("type", 0))
        data: JsonDict = body.get("data") or {}
        if cb_type == 9 and st.type == 5:
            raise _HTTPError(400, 50035, "Invalid Form Body: a modal cannot answer a modal submit")
        if cb_type not in (1, 4, 5, 6, 7, 8, 9, 12):
            raise _HTTPError(400, 50035, f"Invalid Form Body: bad callback type {cb_type}")
        self._check_files(call.files, st.size_limit)
        st.acked_type = cb_type
        channel_id = st.channel_id
        resource: JsonDict = {"type": cb_type}
        message: JsonDict | None = None
        msg_type = 20 if st.type == 2 else 0
        if cb_type == 4:
            message = self._new_bot_message(
                channel_id, data, call.files, msg_type=msg_type, webhook=True, interaction=st
            )
            st.original_id = int(message["id"])
        elif cb_type == 5:
            message = self._new_bot_message(
                channel_id,
                {"flags": data.get("flags", 0)},
                [],
                msg_type=msg_type,
                webhook=True,
                interaction=st,
                flags=LOADING_FLAG,
            )
            st.original_id = int(message["id"])
        elif cb_type in (6, 7) and st.message_id is not None:
            st.original_id = st.message_id
            target = self.messages.get(st.message_id)
            if target is not None and cb_type == 7:
                message = self._apply_edit(target, data, call.files)
        if message is not None:
            resource["message"] = message
        result: JsonDict = {
            "interaction": {
                "id": str(st.id),
                "type": st.type,
                "response_message_loading": cb_type == 5,
                "response_message_ephemeral": bool(
                    int((message or {}).get("flags", 0)) & EPHEMERAL_FLAG
                ),
            }
        }
        if message is not None:
            result["interaction"]["response_message_id"] = message["id"]
        if cb_type in (4, 5, 7, 12):
            result["resource"] = resource
        if call.query.get("with_response", "").lower() in ("1", "true"):
            return 200, result
        return 204, None

    def _wh_message(self, st: _InteractionState, mid: str) -> JsonDict:
        msg_id = st.original_id if mid == "@original" else int(mid)
        msg = self.messages.get(msg_id) if msg_id is not None else None
        if msg is None:
            raise _HTTPError(404, 10008, "Unknown Message")
        return msg

    async def _r_wh_get(self, call: Call, app: str, tok: str, mid: str) -> tuple[int, Any]:
        st = self._state_for_token(tok)
        return 200, self._wh_message(st, mid)

    async def _r_wh_edit(self, call: Call, app: str, tok: str, mid: str) -> tuple[int, Any]:
        st = self._state_for_token(tok)
        self._check_files(call.files, st.size_limit)
        msg = self._wh_message(st, mid)
        return 200, self._apply_edit(msg, call.payload, call.files)

    async def _r_wh_delete(self, call: Call, app: str, tok: str, mid: str) -> tuple[int, Any]:
        st = self._state_for_token(tok)
        msg = self._wh_message(st, mid)
        self.messages.pop(int(msg["id"]), None)
        if mid == "@original":
            st.original_id = None
        return 204, None

    async def _r_followup(self, call: Call, app: str, tok: str) -> tuple[int, Any]:
        st = self._state_for_token(tok)
        self._check_files(call.files, st.size_limit)
        payload = call.payload
        original = self.messages.get(st.original_id) if st.original_id else None
        if (
            st.acked_type == 5
            and original is not None
            and int(original.get("flags", 0)) & LOADING_FLAG
        ):
            # Discord: the first follow-up after a thinking defer edits the loading message.
            keep = int(original["flags"]) & EPHEMERAL_FLAG
            msg = self._apply_edit(original, payload, call.files)
            msg["flags"] = int(msg.get("flags", 0)) | keep
            msg["edited_timestamp"] = None
        else:
            msg = self._new_bot_message(
                st.channel_id, payload, call.files, webhook=True, interaction=st
            )
        if call.query.get("wait", "").lower() in ("1", "true"):
            return 200, msg
        return 204, None

    def _channel_exists(self, cid: int) -> bool:
        return cid == self.channel_id or cid in self.dm_channels

    async def _r_get_channel(self, call: Call, cid: str) -> tuple[int, Any]:
        c = int(cid)
        if c == self.channel_id:
            return 200, self.channel()
        if c in self.dm_channels:
            return 200, self.dm_channels[c]
        raise _HTTPError(404, 10003, "Unknown Channel")

    async def _r_send(self, call: Call, cid: str) -> tuple[int, Any]:
        if not self._channel_exists(int(cid)):
            raise _HTTPError(404, 10003, "Unknown Channel")
        self._check_files(call.files, self.upload_limit)
        return 200, self._new_bot_message(int(cid), call.payload, call.files)

    def _channel_message(self, cid: str, mid: str) -> JsonDict:
        msg = self.messages.get(int(mid))
        if msg is None or msg["channel_id"] != cid:
            raise _HTTPError(404, 10008, "Unknown Message")
        return msg

    async def _r_get_message(self, call: Call, cid: str, mid: str) -> tuple[int, Any]:
        return 200, self._apply_content_intent(self._channel_message(cid, mid))

    async def _r_edit_message(self, call: Call, cid: str, mid: str) -> tuple[int, Any]:
        msg = self._channel_message(cid, mid)
        if msg["author"]["id"] != str(self.bot_user_id):
            raise _HTTPError(403, 50005, "Cannot edit a message authored by another user")
        self._check_files(call.files, self.upload_limit)
        return 200, self._apply_edit(msg, call.payload, call.files)

    async def _r_delete_message(self, call: Call, cid: str, mid: str) -> tuple[int, Any]:
        msg = self._channel_message(cid, mid)
        self.messages.pop(int(msg["id"]), None)
        return 204, None

    async def _r_typing(self, call: Call, cid: str) -> tuple[int, Any]:
        if not self._channel_exists(int(cid)):
            raise _HTTPError(404, 10003, "Unknown Channel")
        return 204, None

    async def _r_create_dm(self, call: Call) -> tuple[int, Any]:
        rid = call.payload.get("recipient_id")
        if rid is None:
            raise _HTTPError(400, 50035, "Invalid Form Body")
        return 200, self._dm_channel(int(rid))
