"""``/show job:<id>`` and the Show buttons under ``/history`` against the fake
Discord: an earlier result posted again with working buttons, for its owner or an
admin, and one ephemeral sentence for everything else."""

from __future__ import annotations

from typing import Any

from core.job_ids import short_id

from .conftest import ADMIN_ID, OTHER_ID, Harness
from .test_discord_buttons import make_result


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


async def test_own_result_is_posted_again_with_working_buttons(harness: Harness) -> None:
    message, job_id = await make_result(harness, "a paper boat")
    await harness.settled()
    payload = await harness.slash("show", {"job": short_id(job_id)})
    shown = await harness.result(payload)
    assert shown.payload["embeds"][0]["description"] == message["embeds"][0]["description"]
    assert custom_ids(shown.payload) == custom_ids(message)
    assert await harness.balance() == 100 - 2  # free

    reposted = harness.fake.original_response(payload["id"])
    assert reposted is not None
    click = await harness.click(f"imagine:reroll:{job_id}", reposted)
    again = await harness.result(click)
    assert "a paper boat" in again.payload["embeds"][0]["description"]
    assert await harness.balance() == 100 - 4


async def test_admin_shows_anyones_and_others_get_not_found(harness: Harness) -> None:
    _, job_id = await make_result(harness)
    await harness.settled()
    refused = await harness.slash("show", {"job": short_id(job_id)}, user_id=OTHER_ID)
    text = await harness.ephemeral(refused)
    assert "found no image of yours" in text
    assert harness.fake.original_response(refused["id"]) is None  # "thinking" removed

    payload = await harness.slash("show", {"job": short_id(job_id)}, user_id=ADMIN_ID)
    shown = await harness.result(payload)
    assert "a red fox" in shown.payload["embeds"][0]["description"]


async def test_bad_ids_and_removed_files_get_a_sentence(harness: Harness) -> None:
    _, job_id = await make_result(harness)
    await harness.settled()
    bad = await harness.slash("show", {"job": "nonsense"})
    assert "not an image id" in await harness.ephemeral(bad)
    sweeper = harness.app.sweeper
    assert sweeper is not None
    later = sweeper.clock() + 31 * 86_400
    sweeper.clock = lambda: later
    sweeper._retained_at = None  # the hourly look is due
    await harness.app.sweep()
    gone = await harness.slash("show", {"job": short_id(job_id)})
    assert "were removed" in await harness.ephemeral(gone)


async def test_history_show_button_works_after_a_restart(harness: Harness) -> None:
    _, job_id = await make_result(harness, "a lantern")
    await harness.settled()
    payload = await harness.slash("history")
    cb = await harness.callback(payload)
    data = cb.json["data"]
    assert data["flags"] == 64 and f"#{short_id(job_id)}" in data["content"]
    assert custom_ids(data) == [f"imagine:show:{job_id}"]
    history = harness.fake.original_response(payload["id"])
    assert history is not None

    await harness.bot.close()
    async with harness.start_bot():
        refused = await harness.click(f"imagine:show:{job_id}", history, user_id=OTHER_ID)
        assert "found no image of yours" in await harness.ephemeral(refused)
        click = await harness.click(f"imagine:show:{job_id}", history)
        shown = await harness.result(click)
        assert "a lantern" in shown.payload["embeds"][0]["description"]
        assert custom_ids(shown.payload)[0] == f"imagine:reroll:{job_id}"
