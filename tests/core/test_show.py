"""``/show``: an earlier result posted again from the stored files, free, to its
owner or an admin only, with a sentence for every way it cannot be."""

from __future__ import annotations

import pytest

from core.app import Imagine
from core.errors import DeliveryFailed, InvalidRequest, ResultGone
from core.job_ids import short_id
from core.ports import ChatRef, UserRef
from tests.conftest import RecordingFrontend
from tests.core.helpers import ADMIN, assert_books_balance, fund, request

ALICE = UserRef("test", "alice", "alice")
BOB = UserRef("test", "bob", "bob")
CHAT = ChatRef("test", {"chat_id": 1})
ELSEWHERE = ChatRef("test", {"chat_id": 2})


async def test_own_result_is_posted_again_with_its_caption_and_free(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 10)
    done = await app.run_job(ALICE, request(app, "a blue bird", n=2), CHAT)
    (original,) = frontend.deliveries
    balance = await app.balance(ALICE)

    shown = await app.show(ALICE, short_id(done.job_id), ELSEWHERE)

    assert frontend.deliveries[1] is shown
    assert shown.chat == ELSEWHERE and shown.job_id == done.job_id
    assert shown.caption == original.caption  # the balance it was delivered with
    assert [i.data for i in shown.images] == [i.data for i in original.images]
    assert shown.request.prompt == "a blue bird" and shown.user == ALICE
    assert await app.balance(ALICE) == balance  # showing is free
    # The full id and "#id" as /history prints it work too.
    await app.show(ALICE, done.job_id, CHAT)
    await app.show(ALICE, f"#{short_id(done.job_id).upper()}", CHAT)
    assert len(frontend.deliveries) == 4
    await assert_books_balance(app)


async def test_someone_elses_job_reads_as_not_found_unless_admin(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 10)
    await fund(app, BOB, 10)
    done = await app.run_job(ALICE, request(app), CHAT)
    with pytest.raises(InvalidRequest) as theirs:
        await app.show(BOB, short_id(done.job_id), CHAT)
    with pytest.raises(InvalidRequest) as unknown:
        await app.show(BOB, "0123abcd", CHAT)
    # The same sentence for both: nobody learns which ids exist.
    assert app.text.error(theirs.value, "en").replace(short_id(done.job_id), "X") == (
        app.text.error(unknown.value, "en").replace("0123abcd", "X")
    )
    assert "found no image of yours" in app.text.error(theirs.value, "en")
    assert len(frontend.deliveries) == 1

    shown = await app.show(ADMIN, short_id(done.job_id), CHAT)
    assert shown.user == ALICE and len(frontend.deliveries) == 2
    async with app.store.read() as tx:
        audit = await app.store.audit.recent(tx)
    assert any(a.action == "show_job" and a.target == ALICE.key for a in audit)


async def test_a_job_without_an_image_says_so(app: Imagine, frontend: RecordingFrontend) -> None:
    await fund(app, ALICE, 10)
    frontend.fail = True
    with pytest.raises(DeliveryFailed) as failed:
        await app.run_job(ALICE, request(app), CHAT)
    frontend.fail = False
    job_id = failed.value.job_id
    assert job_id is not None
    with pytest.raises(InvalidRequest) as err:
        await app.show(ALICE, short_id(job_id), CHAT)
    assert "never delivered an image" in app.text.error(err.value, "en")
    assert frontend.deliveries == []


async def test_after_the_retention_sweep_a_sentence_says_the_files_are_gone(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 10)
    done = await app.run_job(ALICE, request(app), CHAT)
    assert app.sweeper is not None
    later = app.sweeper.clock() + 31 * 86_400
    app.sweeper.clock = lambda: later
    app.sweeper._retained_at = None  # the hourly look is due
    report = await app.sweep()
    assert report is not None and report.removed == 1
    with pytest.raises(ResultGone) as err:
        await app.show(ALICE, short_id(done.job_id), CHAT)
    assert "removed" in app.text.error(err.value, "en")
    assert "删除" in app.text.error(err.value, "zh")
    assert len(frontend.deliveries) == 1


@pytest.mark.parametrize("typed", ["", "hello", "12ab", "../../etc", "1a2b3c4d5e" * 4])
async def test_a_bad_id_gets_a_clear_sentence(
    app: Imagine, frontend: RecordingFrontend, typed: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        await app.show(ALICE, typed, CHAT)
    assert "not an image id" in app.text.error(err.value, "en")


async def test_history_lists_the_ids_show_takes(app: Imagine, frontend: RecordingFrontend) -> None:
    await fund(app, ALICE, 10)
    done = await app.run_job(ALICE, request(app, "a red fox"), CHAT)
    entries = await app.history(ALICE)
    charge = next(e for e in entries if e.kind == "charge")
    assert charge.job_id == done.job_id and charge.shows_image
    text = app.text.history("en", entries)
    assert f"#{short_id(done.job_id)}" in text and "/show" in text
    assert "/show" in app.text.help("en", app.preset, platform="telegram")
