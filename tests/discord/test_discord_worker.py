"""Delivery from a process without a gateway connection (``imagine-bot worker``):
``discord_delivery`` logs in over HTTP only and registers a ``DiscordFrontend`` that
runs queued Discord jobs from their ``ChatRef`` alone: status edits, source
downloads from the CDN, the result and failure notices."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.discord import DiscordFrontend, discord_delivery
from core.app import Imagine
from core.bootstrap import build_app
from core.errors import InvalidRequest
from core.ports import ChatRef, UserRef
from core.settings import load_settings
from core.sources import SourceRef
from tests.fakes.discord_api import Call, FakeDiscord

from .conftest import APP_ID, CHANNEL_ID, GUILD_ID, USER_ID, base_env, png


@pytest.fixture
async def app(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[Imagine]:
    settings = load_settings(base_env(tmp_path, MAX_IMAGE_MB=1), env_file=None)
    async with build_app(settings, sweep=False) as built:
        yield built


async def deferred(fake: FakeDiscord) -> tuple[dict[str, Any], int]:
    """An interaction some other process (the gateway bot) deferred: its payload
    and the id of the "thinking" message."""
    payload = fake.slash_interaction("imagine", {"prompt": "x"}, user_id=USER_ID)
    url = f"{fake.rest_base}/interactions/{payload['id']}/{payload['token']}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, params={"with_response": "true"}, json={"type": 5}) as resp,
    ):
        body = await resp.json()
    return payload, int(body["interaction"]["response_message_id"])


def chat_of(payload: dict[str, Any], message_id: int) -> ChatRef:
    """What ``_jobs.interaction_chat`` stores for this interaction."""
    return ChatRef(
        "discord",
        {
            "kind": "interaction",
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "user_id": USER_ID,
            "application_id": payload["application_id"],
            "token": payload["token"],
            "message_id": message_id,
            "created": time.time(),
            "upload_limit": 10 * 1024 * 1024,
        },
    )


async def test_http_only_frontend_delivers_a_queued_job(fake: FakeDiscord, app: Imagine) -> None:
    async with discord_delivery(app) as frontend:
        assert app.frontends.get("discord") is frontend
        payload, message_id = await deferred(fake)
        source = fake.attachment(png(60, 40, "teal"), "src.png", "image/png")
        user = UserRef("discord", str(USER_ID), "someone")
        ref = SourceRef("discord", source["url"], size=source["size"], public_url=source["url"])
        request = app.build_request(
            "paint it gold", (await app.profile(user)).defaults, user=user, refs=(ref,)
        )
        submitted = await app.submit(user, request, chat_of(payload, message_id))
        prefix = f"/webhooks/{APP_ID}/{payload['token']}/messages/{message_id}"

        def delivered(c: Call) -> bool:
            return c.path == prefix and c.method == "PATCH" and bool(c.payload.get("embeds"))

        result = await fake.wait_for_call(delivered, 10)
    assert "paint it gold" in result.payload["embeds"][0]["description"]
    assert result.files
    buttons = result.payload["components"][0]["components"]
    assert buttons[0]["custom_id"] == f"imagine:reroll:{submitted.job_id}"
    assert any("src.png" in url for url in fake.cdn_requests)  # fetched by the worker
    assert fake.identify is None  # never connected to the gateway
    assert not fake.calls_to("/gateway")
    original = fake.original_response(payload["id"])
    assert original is not None and original["embeds"]


async def test_http_only_frontend_tells_a_failure(fake: FakeDiscord, app: Imagine) -> None:
    async with discord_delivery(app):
        payload, message_id = await deferred(fake)
        broken = fake.attachment(b"not an image at all", "broken.png", "image/png")
        user = UserRef("discord", str(USER_ID))
        ref = SourceRef("discord", broken["url"], size=broken["size"], public_url=broken["url"])
        request = app.build_request("fix it", (await app.profile(user)).defaults, refs=(ref,))
        await app.submit(user, request, chat_of(payload, message_id))
        prefix = f"/webhooks/{APP_ID}/{payload['token']}"

        def told(c: Call) -> bool:
            return (
                c.path == prefix and c.method == "POST" and int(c.payload.get("flags") or 0) == 64
            )

        notice = await fake.wait_for_call(told, 10)
    assert "not an image" in notice.payload["content"]
    assert fake.original_response(payload["id"]) is None  # the public "thinking" is gone
    assert await app.balance(user) == 100


async def test_discord_delivery_logs_in_over_http_and_closes(
    fake: FakeDiscord, app: Imagine
) -> None:
    async with discord_delivery(app) as frontend:
        assert isinstance(frontend, DiscordFrontend)
        assert frontend.client.user is not None  # logged in over HTTP
        assert not frontend.client.is_ready()  # no gateway session
    assert frontend.client.is_closed()
    assert fake.identify is None


async def test_fetch_source_caps_bytes_and_hides_the_reason(
    fake: FakeDiscord, app: Imagine
) -> None:
    async with discord_delivery(app) as frontend:
        big = fake.attachment(b"\0" * (2 * 1024 * 1024), "big.png", "image/png")
        # Discord said it was small; the bytes say otherwise: the cap still holds.
        with pytest.raises(InvalidRequest) as err:
            await frontend.fetch_source(SourceRef("discord", big["url"], size=10))
        assert err.value.params["kind"] == "bytes"
        # Discord said it was too big: not even requested.
        start = len(fake.cdn_requests)
        with pytest.raises(InvalidRequest):
            await frontend.fetch_source(SourceRef("discord", big["url"], size=2 * 1024 * 1024))
        assert len(fake.cdn_requests) == start
        gone = big["url"].replace("big.png", "gone.png")
        with pytest.raises(InvalidRequest) as err:
            await frontend.fetch_source(SourceRef("discord", gone))
        text = app.text.error(err.value, "en")
        assert "404" not in text and "gone.png" not in text and "127.0.0.1" not in text
        with pytest.raises(InvalidRequest):
            await frontend.fetch_source(SourceRef("discord", "http://127.0.0.1:9/x.png"))
        ok = fake.attachment(png(), "ok.png", "image/png")
        assert await frontend.fetch_source(SourceRef("discord", ok["url"])) == png()
