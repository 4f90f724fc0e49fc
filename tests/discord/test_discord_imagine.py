"""/imagine end to end: options, progress, result with embed and buttons, upload limits."""

from __future__ import annotations

import pytest

from core.ports import UserRef
from tests.fakes.discord_api import Call

from .conftest import ADMIN_ID, APP_ID, GUILD_ID, USER_ID, Harness, image_size, png


async def test_commands_are_synced_with_preset_choices(harness: Harness) -> None:
    fake = harness.fake
    put = fake.calls_to(f"/applications/{APP_ID}/commands", "PUT")[-1]
    by_name = {c["name"]: c for c in put.json}
    assert {
        "imagine",
        "Edit image",
        "balance",
        "history",
        "price",
        "help",
        "settings",
        "credits",
    } <= set(by_name)
    options = {o["name"]: o for o in by_name["imagine"]["options"]}
    assert options["prompt"]["required"] is True
    assert [c["value"] for c in options["aspect"]["choices"]] == list(harness.app.preset.aspects())
    assert [c["value"] for c in options["count"]["choices"]] == [1, 2, 3, 4]
    assert {"image", "image2", "image3", "image4"} <= set(options)
    assert str(by_name["credits"]["default_member_permissions"]) == "8"
    assert fake.identify is not None and fake.identify["intents"] == 1  # guilds only
    assert not fake.guild_commands.get(GUILD_ID)


async def test_imagine_with_options_defers_then_delivers(harness: Harness) -> None:
    fake = harness.fake
    payload = await harness.slash(
        "imagine", {"prompt": "a red fox", "aspect": "16:9", "quality": "high", "count": 2}
    )
    result = await harness.result(payload)
    calls = fake.interaction_responses(payload["id"])
    assert calls[0].json["type"] == 5  # deferred at once
    assert result.method == "PATCH"
    embed = result.payload["embeds"][0]
    assert "a red fox" in embed["description"]
    assert len(result.files) == 2
    assert image_size(result.files[0][2]) == (1536, 864)
    buttons = result.payload["components"][0]["components"]
    ids = [b["custom_id"] for b in buttons]
    assert [i.split(":")[1] for i in ids] == ["reroll", "vary", "edit"]
    original = fake.original_response(payload["id"])
    assert original is not None and len(original["attachments"]) == 2
    assert await harness.balance() == 100 - 2 * 4


async def test_progress_preview_then_result_on_the_same_message(harness: Harness) -> None:
    fake = harness.fake
    payload = await harness.slash("imagine", {"prompt": "a lighthouse"})
    result = await harness.result(payload)
    edits = [c for c in fake.interaction_responses(payload["id"]) if c.method == "PATCH"]
    previews = [c for c in edits if c.files and c.files[0][1].startswith("preview")]
    assert previews, [c.payload for c in edits]
    assert "Preview" in previews[0].payload["content"]
    assert edits[-1] is result and result.payload["content"] is None
    # the result replaced the preview: only the result file is left on the message
    original = fake.original_response(payload["id"])
    assert original is not None
    assert [a["filename"].split("-")[0] for a in original["attachments"]] == ["imagine"]


async def test_oversize_result_is_reencoded_to_fit(harness: Harness) -> None:
    fake = harness.fake
    limit = 16 * 1024  # the mock renders a ~21 KB PNG
    payload = harness.fake.slash_interaction(
        "imagine",
        {"prompt": "a very detailed city"},
        user_id=USER_ID,
        attachment_size_limit=limit,
    )
    await fake.send_interaction(payload)
    result = await harness.result(payload)
    (_, filename, data, _) = result.files[0]
    assert len(data) <= limit
    assert filename.endswith((".jpg", ".webp"))
    assert image_size(data) == (1024, 1024)  # same pixels, smaller format
    assert not [c for c in fake.calls if c.status == 413]


async def test_insufficient_credits_is_one_ephemeral_sentence(
    harness: Harness,
) -> None:
    admin = UserRef("discord", str(ADMIN_ID))
    await harness.app.admin_set(admin, UserRef("discord", str(USER_ID)), 1)
    payload = await harness.slash("imagine", {"prompt": "a castle", "quality": "high"})
    text = await harness.ephemeral(payload)
    assert "costs 4 credits" in text and "balance is 1" in text
    assert harness.fake.original_response(payload["id"]) is None  # "thinking" removed
    assert await harness.balance() == 1


async def test_non_image_attachment_is_refused_before_deferring(harness: Harness) -> None:
    fake = harness.fake
    doc = fake.attachment(b"just some text", "notes.txt", "text/plain")
    payload = await harness.slash("imagine", {"prompt": "edit this", "image": doc})
    cb = await harness.callback(payload)
    assert cb.json["type"] == 4 and cb.json["data"]["flags"] == 64
    assert "not an image" in cb.json["data"]["content"]
    assert not fake.cdn_requests


async def test_attachment_option_edits_instead_of_generating(harness: Harness) -> None:
    fake = harness.fake
    source = fake.attachment(png(80, 60, "green"), "cat.png", "image/png")
    payload = await harness.slash("imagine", {"prompt": "make it night", "image": source})
    result = await harness.result(payload)
    assert "make it night" in result.payload["embeds"][0]["description"]
    assert any("cat.png" in url for url in fake.cdn_requests)
    jobs = await harness.app.admin_jobs(UserRef("discord", str(ADMIN_ID)))
    assert jobs[0].kind == "edit"
    request = await harness.app.job_request(jobs[0].job_id)
    ref = request.refs[0]  # a reference: the worker fetched it, the intake did not
    assert (ref.kind, ref.ref, ref.size) == ("discord", source["url"], source["size"])
    assert ref.public_url == source["url"]  # Discord CDN URL kept for vendors


async def test_failed_delivery_is_not_charged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = harness.fake

    def result_upload(c: Call) -> bool:
        return "/webhooks/" in c.path and c.method == "PATCH" and bool(c.payload.get("embeds"))

    fake.inject_error(result_upload, status=400, body={"code": 50035, "message": "Invalid Form"})
    payload = await harness.slash("imagine", {"prompt": "a bridge"})
    text = await harness.ephemeral(payload)
    assert "not charged" in text
    assert await harness.balance() == 100
    assert "delivery" in caplog.text or "failed" in caplog.text
    assert payload["token"] not in caplog.text


async def test_broke_user_with_attachment_downloads_nothing(harness: Harness) -> None:
    fake = harness.fake
    admin = UserRef("discord", str(ADMIN_ID))
    await harness.app.admin_set(admin, UserRef("discord", str(USER_ID)), 1)
    source = fake.attachment(png(80, 60, "green"), "broke.png", "image/png")
    payload = await harness.slash(
        "imagine", {"prompt": "make it night", "quality": "high", "image": source}
    )
    text = await harness.ephemeral(payload)
    assert "costs 4 credits" in text and "balance is 1" in text
    assert not [url for url in fake.cdn_requests if "broke.png" in url]
    assert await harness.balance() == 1
    assert not await harness.app.admin_jobs(admin)  # nothing queued
