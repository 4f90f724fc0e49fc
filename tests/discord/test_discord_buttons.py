"""Reroll / Variations / Edit under a result, also pressed on a bot that restarted.

A button queues a new job through core (``app.reroll``/``app.variation``); the
result arrives later from the worker, so each test waits for the fake Discord to
see it. Only the image's owner (or an admin) may press them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from core.ports import UserRef

from .conftest import ADMIN_ID, OTHER_ID, Harness


async def make_result(harness: Harness, prompt: str = "a red fox") -> tuple[dict[str, Any], str]:
    payload = await harness.slash("imagine", {"prompt": prompt})
    await harness.result(payload)
    message = harness.fake.original_response(payload["id"])
    assert message is not None
    job_id = message["components"][0]["components"][0]["custom_id"].split(":")[2]
    return message, job_id


async def test_reroll_runs_the_same_request_again(harness: Harness) -> None:
    message, job_id = await make_result(harness)
    click = await harness.click(f"imagine:reroll:{job_id}", message)
    result = await harness.result(click)
    assert "a red fox" in result.payload["embeds"][0]["description"]
    new_id = result.payload["components"][0]["components"][0]["custom_id"]
    assert new_id.startswith("imagine:reroll:") and new_id != f"imagine:reroll:{job_id}"
    assert await harness.balance() == 100 - 2 - 2  # the owner pays again


async def test_an_admin_may_reroll_anyones_image_and_pays(harness: Harness) -> None:
    message, job_id = await make_result(harness)
    click = await harness.click(f"imagine:reroll:{job_id}", message, user_id=ADMIN_ID)
    result = await harness.result(click)
    assert "a red fox" in result.payload["embeds"][0]["description"]
    assert await harness.balance(ADMIN_ID) == 100 - 2
    assert await harness.balance() == 100 - 2


async def jobs_of(harness: Harness) -> list[str]:
    return [j.job_id for j in await harness.app.admin_jobs(UserRef("discord", str(ADMIN_ID)))]


@pytest.mark.parametrize("action", ["reroll", "vary"])
async def test_non_owner_gets_one_sentence_and_no_job(harness: Harness, action: str) -> None:
    message, job_id = await make_result(harness)
    before = await jobs_of(harness)
    click = await harness.click(f"imagine:{action}:{job_id}", message, user_id=OTHER_ID)
    text = await harness.ephemeral(click)
    assert text == "Only the person who made this image can use its buttons."
    assert harness.fake.original_response(click["id"]) is None  # "thinking" removed
    await asyncio.sleep(0.3)
    assert await jobs_of(harness) == before
    assert await harness.balance(OTHER_ID) == 100
    assert not harness.fake.calls_to(harness.webhook_path(click), "PATCH")


async def test_non_owner_edit_button_gets_the_sentence_not_a_modal(harness: Harness) -> None:
    message, job_id = await make_result(harness)
    before = await jobs_of(harness)
    click = await harness.click(f"imagine:edit:{job_id}", message, user_id=OTHER_ID)
    cb = await harness.callback(click)
    assert cb.json["type"] == 4 and cb.json["data"]["flags"] == 64
    assert cb.json["data"]["content"] == "Only the person who made this image can use its buttons."
    assert await jobs_of(harness) == before


async def test_variations_edit_the_first_result(harness: Harness) -> None:
    message, job_id = await make_result(harness)
    click = await harness.click(f"imagine:vary:{job_id}", message)
    await harness.result(click)
    jobs = await harness.app.admin_jobs(UserRef("discord", str(ADMIN_ID)))
    assert jobs[0].kind == "edit"
    request = await harness.app.job_request(jobs[0].job_id)
    assert request.prompt == "a red fox" and len(request.refs) == 1
    assert request.refs[0].kind == "stored"  # the earlier job's result, kept by core


async def test_edit_button_opens_modal_and_edits_the_result(harness: Harness) -> None:
    message, job_id = await make_result(harness)
    click = await harness.click(f"imagine:edit:{job_id}", message)
    cb = await harness.callback(click)
    assert cb.json["type"] == 9
    submit = await harness.submit(cb.json["data"]["custom_id"], {"instruction": "add snow"})
    result = await harness.result(submit)
    assert "add snow" in result.payload["embeds"][0]["description"]
    jobs = await harness.app.admin_jobs(UserRef("discord", str(ADMIN_ID)))
    request = await harness.app.job_request(jobs[0].job_id)
    assert request.prompt == "add snow" and len(request.refs) == 1


async def test_buttons_work_after_a_restart(harness: Harness) -> None:
    message, job_id = await make_result(harness)
    await harness.bot.close()
    async with harness.start_bot() as fresh:
        assert fresh is not harness.bot
        click = await harness.click(f"imagine:reroll:{job_id}", message)
        result = await harness.result(click)
        assert "a red fox" in result.payload["embeds"][0]["description"]
        click = await harness.click(f"imagine:edit:{job_id}", message)
        cb = await harness.callback(click)
        assert cb.json["type"] == 9
        submit = await harness.submit(cb.json["data"]["custom_id"], {"instruction": "at dusk"})
        result = await harness.result(submit)
        assert "at dusk" in result.payload["embeds"][0]["description"]


async def test_unknown_job_is_a_friendly_error(harness: Harness) -> None:
    message, job_id = await make_result(harness)
    # a result whose job is gone (e.g. another database): same buttons, unknown id
    stale = json.loads(json.dumps(message).replace(job_id, "0123456789abcdef"))
    click = await harness.click("imagine:reroll:0123456789abcdef", stale)
    text = await harness.ephemeral(click)
    assert "can't find that image" in text and "0123456789abcdef" not in text
    assert harness.fake.original_response(click["id"]) is None  # "thinking" removed
    assert await harness.balance() == 100 - 2
