"""Drive a real discord.py ``commands.Bot`` against :class:`FakeDiscord`.

Checks the fake end to end: login, gateway READY/GUILD_CREATE, command sync, slash
command defer + follow-up with a file, attachment options downloaded from the fake
CDN, a persistent button, context menu -> modal -> deferred edit with a file,
MESSAGE_CREATE -> on_message (message-content intent rules), the 413 upload limit
and the single-acknowledgement rule.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from PIL import Image

from .discord_api import MIB, FakeDiscord

APP_ID = 1_100_000_000_000_000_001
GUILD_ID = 1_200_000_000_000_000_002
CHANNEL_ID = 1_300_000_000_000_000_003
USER_ID = 1_400_000_000_000_000_004

pytestmark = pytest.mark.timeout(30)


def png_bytes(size: tuple[int, int] = (8, 6), colour: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Events:
    items: list[tuple[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, value: Any = None) -> None:
        self.items.append((name, value))
        self.changed.set()

    def named(self, name: str) -> list[Any]:
        return [v for n, v in self.items if n == name]

    async def wait(self, name: str, timeout: float = 5) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                found = self.named(name)
                if found:
                    return found[-1]
                self.changed.clear()
                await self.changed.wait()


class AgainView(discord.ui.View):
    def __init__(self, events: Events) -> None:
        super().__init__(timeout=None)
        self.events = events

    @discord.ui.button(label="Again", custom_id="imagine:again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.events.add("button", interaction.user.id)
        await interaction.response.send_message("again!", ephemeral=True)


class EditView(discord.ui.View):
    def __init__(self, events: Events) -> None:
        super().__init__(timeout=60)
        self.events = events

    @discord.ui.button(label="Edit", custom_id="imagine:edit")
    async def edit(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.edit_message(content="edited", view=None)
        self.events.add("edited", interaction.message)


class EditModal(discord.ui.Modal, title="Edit image"):
    prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Prompt", custom_id="prompt")

    def __init__(self, events: Events, target: discord.Message) -> None:
        super().__init__(custom_id="imagine:edit-modal", timeout=60)
        self.events = events
        self.target = target

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.events.add("modal", self.prompt.value)
        await interaction.response.defer(thinking=True)
        data = await self.target.attachments[0].read()
        await interaction.edit_original_response(
            content=f"edited: {self.prompt.value} ({len(data)} bytes in)",
            attachments=[discord.File(io.BytesIO(png_bytes(colour="blue")), "edit.png")],
        )


def make_bot(events: Events) -> commands.Bot:
    bot = commands.Bot(
        command_prefix="!",
        intents=discord.Intents.default(),
        guild_ready_timeout=0.05,
    )

    @bot.tree.command(name="ping", description="Ping with an image")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(
            "pong",
            file=discord.File(io.BytesIO(png_bytes()), "pong.png"),
            view=AgainView(events),
        )

    @bot.tree.command(name="describe", description="Describe an image")
    @app_commands.describe(image="The image")
    async def describe(
        interaction: discord.Interaction, image: discord.Attachment, detail: str = "low"
    ) -> None:
        data = await image.read()
        events.add("describe", (image.filename, len(data), image.width, detail))
        await interaction.response.send_message(f"{image.filename}: {len(data)} bytes")

    @bot.tree.command(name="big", description="Upload too much")
    async def big(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        try:
            await interaction.followup.send(
                file=discord.File(io.BytesIO(b"x" * (interaction.filesize_limit + 1)), "big.bin")
            )
        except discord.HTTPException as exc:
            events.add("big_error", (exc.status, exc.code))
            await interaction.followup.send("too big")

    @bot.tree.command(name="dm", description="DM me")
    async def dm(interaction: discord.Interaction) -> None:
        sent = await interaction.user.send(
            "dm!", file=discord.File(io.BytesIO(png_bytes()), "dm.png")
        )
        events.add("dm", sent)
        await interaction.response.send_message("sent", view=EditView(events))

    @bot.tree.context_menu(name="Edit image")
    async def edit_image(interaction: discord.Interaction, message: discord.Message) -> None:
        events.add("context_menu", message.id)
        await interaction.response.send_modal(EditModal(events, message))

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author.bot:
            return
        events.add("message", message)
        if bot.user is not None and bot.user in message.mentions:
            async with message.channel.typing():
                await message.reply(f"hi {message.author.name}")

    async def setup_hook() -> None:
        bot.add_view(AgainView(events))
        synced = await bot.tree.sync()
        events.add("synced", [c.id for c in synced])

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@dataclass
class Harness:
    fake: FakeDiscord
    bot: commands.Bot
    events: Events


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    fake = FakeDiscord(app_id=APP_ID, guild_id=GUILD_ID, channel_id=CHANNEL_ID)
    await fake.start()
    undo = fake.install()
    events = Events()
    bot = make_bot(events)
    task: asyncio.Task[None] | None = None
    try:
        await bot.login("fake-token")
        task = asyncio.create_task(bot.connect())
        await fake.wait_ready()
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        yield Harness(fake, bot, events)
    finally:
        await bot.close()
        if task is not None:
            await asyncio.wait_for(task, 5)
        await fake.stop()
        undo()
    assert not fake.errors, fake.errors
    assert not fake.unhandled, [f"{c.method} {c.path}" for c in fake.unhandled]


async def test_login_ready_and_sync(harness: Harness) -> None:
    fake, bot = harness.fake, harness.bot
    assert fake.calls_to("/users/@me", "GET")
    assert fake.calls_to("/oauth2/applications/@me", "GET")
    assert bot.user is not None and bot.user.id == fake.bot_user_id
    assert bot.application_id == APP_ID
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.get_channel(CHANNEL_ID) is not None
    assert guild.me is not None
    put = fake.calls_to(f"/applications/{APP_ID}/commands", "PUT")[0]
    assert {c["name"] for c in put.json} == {"ping", "describe", "big", "dm", "Edit image"}
    synced = harness.events.named("synced")[0]
    assert sorted(synced) == sorted(int(c["id"]) for c in fake.global_commands)
    assert fake.identify is not None and fake.identify["token"] == "fake-token"


async def test_slash_defer_then_followup_with_file_and_button(harness: Harness) -> None:
    fake, events = harness.fake, harness.events
    payload = fake.slash_interaction("ping", [], user_id=USER_ID)
    await fake.send_interaction(payload)
    follow = await fake.wait_for_call(f"/webhooks/{APP_ID}/{payload['token']}", method="POST")

    responses = fake.interaction_responses(payload["id"])
    assert [c.method for c in responses] == ["POST", "POST"]
    callback = responses[0]
    assert callback.path == f"/interactions/{payload['id']}/{payload['token']}/callback"
    assert callback.json["type"] == 5
    assert callback.query.get("with_response") in ("1", "true")
    assert follow.query.get("wait") in ("1", "true")
    assert follow.json["content"] == "pong"
    assert follow.json["components"][0]["components"][0]["custom_id"] == "imagine:again"
    (name, filename, data, _ctype) = follow.files[0]
    assert (name, filename) == ("files[0]", "pong.png")
    assert data == png_bytes()

    # the first follow-up after a thinking defer replaces the loading message
    original = fake.original_response(payload["id"])
    assert original is not None and original["content"] == "pong"
    assert original["flags"] & 128 == 0
    att = original["attachments"][0]
    assert (att["width"], att["height"], att["content_type"]) == (8, 6, "image/png")
    assert fake.attachment_bytes(att) == data

    # press the persistent button on that message
    click = fake.component_interaction("imagine:again", user_id=USER_ID, message=original)
    await fake.send_interaction(click)
    assert await events.wait("button") == USER_ID
    cb = await fake.wait_for_call(f"/interactions/{click['id']}/", method="POST")
    assert cb.json["type"] == 4
    assert cb.json["data"]["content"] == "again!"
    assert cb.json["data"]["flags"] == 64


async def test_attachment_option_is_downloaded(harness: Harness) -> None:
    fake, events = harness.fake, harness.events
    image = fake.attachment(png_bytes((20, 10)), "cat.png", "image/png")
    payload = fake.slash_interaction(
        "describe", {"image": image, "detail": "high"}, user_id=USER_ID
    )
    assert payload["data"]["options"][0]["type"] == 11
    await fake.send_interaction(payload)
    assert await events.wait("describe") == ("cat.png", len(png_bytes((20, 10))), 20, "high")
    cb = await fake.wait_for_call(f"/interactions/{payload['id']}/")
    assert cb.json["type"] == 4
    assert any("cat.png" in u for u in fake.cdn_requests)


async def test_context_menu_modal_flow(harness: Harness) -> None:
    fake, events = harness.fake, harness.events
    image = fake.attachment(png_bytes(), "source.png", "image/png")
    target = fake.message("", author_id=USER_ID, attachments=[image])
    menu = fake.context_menu_interaction("Edit image", target, user_id=USER_ID)
    await fake.send_interaction(menu)
    cb = await fake.wait_for_call(f"/interactions/{menu['id']}/")
    assert await events.wait("context_menu") == int(target["id"])
    assert cb.json["type"] == 9
    assert cb.json["data"]["custom_id"] == "imagine:edit-modal"
    assert cb.json["data"]["title"] == "Edit image"

    submit = fake.modal_submit_interaction(
        "imagine:edit-modal", {"prompt": "make it blue"}, user_id=USER_ID
    )
    await fake.send_interaction(submit)
    edit = await fake.wait_for_call(
        f"/webhooks/{APP_ID}/{submit['token']}/messages/@original", method="PATCH"
    )
    assert await events.wait("modal") == "make it blue"
    kinds = [
        (c.method, c.json.get("type") if c.method == "POST" else None)
        for c in fake.interaction_responses(submit["id"])
    ]
    assert kinds == [("POST", 5), ("PATCH", None)]
    assert edit.json["content"] == f"edited: make it blue ({len(png_bytes())} bytes in)"
    assert edit.files[0][1] == "edit.png"
    original = fake.original_response(submit["id"])
    assert original is not None and original["attachments"][0]["filename"] == "edit.png"


async def test_modal_submit_with_labels_layout(harness: Harness) -> None:
    fake, events = harness.fake, harness.events
    target = fake.message(
        "", author_id=USER_ID, attachments=[fake.attachment(b"abc", "a.png", "image/png")]
    )
    menu = fake.context_menu_interaction("Edit image", target, user_id=USER_ID)
    await fake.send_interaction(menu)
    await fake.wait_for_call(f"/interactions/{menu['id']}/")
    submit = fake.modal_submit_interaction(
        "imagine:edit-modal", {"prompt": "labels"}, user_id=USER_ID, labels=True
    )
    await fake.send_interaction(submit)
    assert await events.wait("modal") == "labels"


async def test_message_create_reaches_on_message(harness: Harness) -> None:
    fake, bot, events = harness.fake, harness.bot, harness.events
    # Intents.default() lacks message_content: a plain guild message arrives without text
    plain = fake.message("secret text", author_id=USER_ID)
    await fake.send_message(plain)
    msg = await events.wait("message")
    assert msg.id == int(plain["id"]) and msg.content == ""

    start = len(fake.calls)
    mention = fake.message(
        f"<@{fake.bot_user_id}> hello", author_id=USER_ID, mentions=[fake.bot_user_id]
    )
    await fake.dispatch("MESSAGE_CREATE", mention)
    reply = await fake.wait_for_call(f"/channels/{CHANNEL_ID}/messages", method="POST", start=start)
    msg = events.named("message")[-1]
    assert msg.content == f"<@{fake.bot_user_id}> hello"
    assert bot.user in msg.mentions
    assert reply.json["content"] == "hi user" + str(USER_ID)
    assert str(reply.json["message_reference"]["message_id"]) == mention["id"]
    assert fake.calls_to(f"/channels/{CHANNEL_ID}/typing", "POST")
    sent = reply.response
    assert sent["referenced_message"]["id"] == mention["id"] and sent["type"] == 19


async def test_upload_limit_and_single_ack(harness: Harness) -> None:
    fake, events = harness.fake, harness.events
    payload = fake.slash_interaction("big", [], user_id=USER_ID)
    assert payload["attachment_size_limit"] == 10 * MIB
    await fake.send_interaction(payload)
    assert await events.wait("big_error") == (413, 40005)
    await fake.wait_for_call(lambda c: c.payload.get("content") == "too big")
    rejected = [c for c in fake.interaction_responses(payload["id"]) if c.status == 413]
    assert rejected and rejected[0].response == {
        "code": 40005,
        "message": "Request entity too large",
    }

    # a second acknowledgement of the same interaction is refused like Discord does
    session = harness.bot.http._HTTPClient__session  # type: ignore[attr-defined]
    url = f"{fake.rest_base}/interactions/{payload['id']}/{payload['token']}/callback"
    async with session.post(url, json={"type": 4, "data": {"content": "x"}}) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "application/json"
        assert (await resp.json())["code"] == 40060


async def test_dm_send_and_edit_message_component(harness: Harness) -> None:
    fake, events = harness.fake, harness.events
    payload = fake.slash_interaction("dm", [], user_id=USER_ID)
    await fake.send_interaction(payload)
    cb = await fake.wait_for_call(f"/interactions/{payload['id']}/")
    dm_msg: discord.Message = await events.wait("dm")
    create = fake.calls_to("/users/@me/channels", "POST")[0]
    assert str(create.json["recipient_id"]) == str(USER_ID)
    dm_channel_id = int(create.response["id"])
    assert dm_msg.channel.id == dm_channel_id and dm_msg.guild is None
    assert await dm_msg.attachments[0].read() == png_bytes()
    assert cb.json["type"] == 4 and cb.json["data"]["components"]

    original = fake.original_response(payload["id"])
    assert original is not None and original["content"] == "sent"
    click = fake.component_interaction("imagine:edit", user_id=USER_ID, message=original)
    await fake.send_interaction(click)
    edited = await events.wait("edited")
    assert edited is not None
    cb = await fake.wait_for_call(f"/interactions/{click['id']}/")
    assert cb.json["type"] == 7
    assert fake.messages[int(original["id"])]["content"] == "edited"
    assert fake.messages[int(original["id"])]["components"] == []


async def test_late_callback_and_injected_errors(harness: Harness) -> None:
    fake = harness.fake
    fake.callback_deadline = 0.0
    payload = fake.slash_interaction("ping", [], user_id=USER_ID)
    await fake.send_interaction(payload)
    cb = await fake.wait_for_call(f"/interactions/{payload['id']}/")
    assert cb.status == 404 and cb.response["code"] == 10062
    assert not fake.calls_to(f"/webhooks/{APP_ID}/{payload['token']}")

    fake.inject_error(
        "/channels/", status=403, body={"code": 50013, "message": "Missing Permissions"}
    )
    channel = harness.bot.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.Forbidden):
        await channel.send("nope")
    sent = await channel.send("ok", file=discord.File(io.BytesIO(b"hello"), "a.txt"))
    fetched = await channel.fetch_message(sent.id)
    assert fetched.content == "ok"
    assert await fetched.attachments[0].read() == b"hello"
    assert fetched.attachments[0].content_type == "text/plain"


async def test_reply_to_image_without_content_intent(harness: Harness) -> None:
    fake, events = harness.fake, harness.events
    image_msg = fake.message(
        "", author_id=USER_ID, attachments=[fake.attachment(png_bytes(), "x.png", "image/png")]
    )
    mention = fake.message(
        f"<@{fake.bot_user_id}> edit",
        author_id=USER_ID,
        mentions=[fake.bot_user_id],
        referenced_message=image_msg,
    )
    await fake.send_message(mention)
    await fake.wait_for_call(f"/channels/{CHANNEL_ID}/messages", method="POST")
    msg: discord.Message = events.named("message")[-1]
    assert msg.reference is not None and msg.reference.message_id == int(image_msg["id"])
    resolved = msg.reference.resolved
    assert isinstance(resolved, discord.Message)
    assert resolved.attachments == []  # stripped: no message content intent
    fetched = await msg.channel.fetch_message(int(image_msg["id"]))
    assert fetched.attachments == []
    fake.enforce_content_intent = False
    fetched = await msg.channel.fetch_message(int(image_msg["id"]))
    assert fetched.attachments[0].filename == "x.png"
