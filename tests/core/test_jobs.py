"""The job use case on the mock vendor: charging after delivery, refusals before any
hold, per-user limits, and the books balancing after every path."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from core.app import Imagine
from core.errors import (
    DeliveryFailed,
    InsufficientCredits,
    InvalidRequest,
    TooManyActiveJobs,
    Unsupported,
    UserRateLimited,
)
from core.ports import ChatRef, UserRef
from core.types import Progress
from tests.conftest import RecordingFrontend
from tests.core.helpers import ADMIN, assert_books_balance, fund, job_states, request, wait_done

ALICE = UserRef("test", "alice", "alice")
BOB = UserRef("test", "bob", "bob")
CHAT = ChatRef("test", {"chat_id": 1})


async def test_job_is_charged_after_delivery(app: Imagine, frontend: RecordingFrontend) -> None:
    await fund(app, ALICE, 10)
    req = request(app, n=2, quality="high")
    price = (await app.quote(ALICE, req)).price
    seen: list[Progress] = []

    async def progress(p: Progress) -> None:
        seen.append(p)

    receipt = await app.run_job(ALICE, req, CHAT, progress)
    assert receipt.cost == price == 8
    assert receipt.balance_after == 2 == await app.balance(ALICE)
    (delivery,) = frontend.deliveries
    assert len(delivery.images) == 2 and delivery.images[0].format == "png"
    assert "8" in delivery.caption and "2" in delivery.caption
    assert seen[0].stage == "submitted"
    assert await job_states(app) == ["SUCCEEDED"]
    await assert_books_balance(app)


async def test_insufficient_credits_reserves_nothing(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 3)
    with pytest.raises(InsufficientCredits) as err:
        await app.run_job(ALICE, request(app, quality="high"), CHAT)
    assert (err.value.price, err.value.balance) == (4, 3)
    text = app.text.error(err.value, "en")
    assert "4" in text and "3" in text
    assert frontend.deliveries == []
    async with app.store.read() as tx:
        assert await app.store.ledger.open_holds(tx) == []
    assert await app.balance(ALICE) == 3
    await assert_books_balance(app)


async def test_unsupported_option_refused_before_anything(app: Imagine) -> None:
    with pytest.raises(Unsupported) as err:
        app.build_request(
            "x", app.parse_prompt("x --ar 5:1", (await app.profile(ALICE)).defaults).defaults
        )
    assert "16:9" in app.text.error(err.value, "en")
    assert await job_states(app) == []


async def test_failed_delivery_is_not_charged_and_booked_as_loss(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 10)
    frontend.fail = True
    with pytest.raises(DeliveryFailed) as caught:
        await app.run_job(ALICE, request(app), CHAT)
    assert "couldn't post it" in app.text.error(caught.value, "en")
    assert await app.balance(ALICE) == 10
    async with app.store.read() as tx:
        totals = await app.store.ledger.totals(tx)
        (job,) = await app.store.jobs.recent(tx)
    assert job.state == "FAILED" and job.error == "delivery_failed"
    assert totals["system:vendor_loss"] == -2
    latest = (await app.history(ALICE))[0]
    assert (latest.kind, latest.amount, latest.note) == ("failed", 0, "a red fox")
    assert "not charged" in app.text.history("en", [latest])
    await assert_books_balance(app)


async def test_concurrent_jobs_never_overspend(
    make_app: Any,
) -> None:
    async with make_app(USER_MAX_ACTIVE_JOBS=50, USER_JOBS_PER_MINUTE=50) as app:
        frontend = RecordingFrontend()
        app.add_frontend(frontend)
        await fund(app, ALICE, 10)  # five medium images at 2 credits
        results = await asyncio.gather(
            *(app.run_job(ALICE, request(app), CHAT) for _ in range(20)), return_exceptions=True
        )
        ok = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, InsufficientCredits)]
        assert len(ok) == 5 and len(refused) == 15
        assert await app.balance(ALICE) == 0
        assert len(frontend.deliveries) == 5
        await assert_books_balance(app)


async def test_per_user_limits(make_app: Any) -> None:
    async with make_app(USER_MAX_ACTIVE_JOBS=1, USER_JOBS_PER_MINUTE=2) as app:
        frontend = RecordingFrontend()
        app.add_frontend(frontend)
        await fund(app, ALICE, 100)
        frontend.block = asyncio.Event()
        first = asyncio.create_task(app.run_job(ALICE, request(app), CHAT))
        await asyncio.sleep(0.2)
        with pytest.raises(TooManyActiveJobs):
            await app.run_job(ALICE, request(app), CHAT)
        frontend.block.set()
        await first
        await app.run_job(ALICE, request(app), CHAT)
        with pytest.raises(UserRateLimited):
            await app.run_job(ALICE, request(app), CHAT)
        await assert_books_balance(app)


async def test_reroll_and_variation_reuse_the_stored_request(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 50)
    first = await app.run_job(ALICE, request(app, "a blue bird", aspect="16:9"), CHAT)
    again = await app.reroll(ALICE, first.job_id, CHAT)
    assert again.job_id != first.job_id
    assert await wait_done(app, again.job_id) == "SUCCEEDED"
    assert frontend.deliveries[1].request.prompt == "a blue bird"
    assert frontend.deliveries[1].request.aspect == "16:9"
    variation = await app.variation_request(ALICE, first.job_id)
    # Queued by reference: the worker reads the first result back.
    assert variation.is_edit and variation.sources == () and variation.refs[0].kind == "stored"
    await app.run_job(ALICE, variation, CHAT)
    assert frontend.deliveries[2].request.sources[0].width == 1536
    assert await app.balance(ALICE) == 50 - 3 * 2
    await assert_books_balance(app)


async def test_only_the_owner_or_an_admin_may_reroll(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 50)
    await fund(app, BOB, 50)
    first = await app.run_job(ALICE, request(app, "a blue bird"), CHAT)
    for attempt in (app.reroll(BOB, first.job_id, CHAT), app.variation(BOB, first.job_id, CHAT)):
        with pytest.raises(InvalidRequest) as err:
            await attempt
        assert "Only the person" in app.text.error(err.value, "en")
    assert await app.balance(BOB) == 50
    await fund(app, ADMIN, 10)  # who presses pays
    # The admin is a cli: user (ADMIN_USER_IDS takes only real platforms): serve that queue.
    app.add_frontend(RecordingFrontend("cli"))
    submitted = await app.reroll(ADMIN, first.job_id, CHAT)
    assert await wait_done(app, submitted.job_id) == "SUCCEEDED"


async def test_prompt_limits_and_inline_options(app: Imagine) -> None:
    defaults = (await app.profile(ALICE)).defaults
    parsed = app.parse_prompt('a sign that says "open" --ar 16:9 --q high --n 2', defaults)
    assert parsed.prompt == 'a sign that says "open"'
    assert (parsed.defaults.aspect, parsed.defaults.quality, parsed.defaults.n) == (
        "16:9",
        "high",
        2,
    )
    with pytest.raises(Exception) as err:
        app.build_request("x" * 40_000, defaults)
    assert "40000" in app.text.error(err.value, "en")
    with pytest.raises(Exception) as err:
        app.build_request("   ", defaults)
    assert "/imagine" in app.text.error(err.value, "en")


async def test_saved_defaults_and_locale(app: Imagine) -> None:
    # An alias is stored as the language it names: zh is Simplified Chinese.
    saved = await app.save_defaults(ALICE, aspect="9:16", quality="low", locale="zh")
    assert saved.locale == "zh-Hans"
    profile = await app.profile(ALICE)
    assert (profile.defaults.aspect, profile.defaults.quality, profile.locale) == (
        "9:16",
        "low",
        "zh-Hans",
    )
    assert (await app.save_defaults(ALICE, locale="zh-TW")).locale == "zh-Hant"
    zh_user = UserRef("test", "li", locale="zh-hans")
    assert (await app.profile(zh_user)).locale == "zh-Hans"
    assert (await app.profile(UserRef("test", "mo", locale="es-419"))).locale == "es"
    # A choice stored before there were two Chinese scripts.
    assert app.locale_for(UserRef("test", "old", locale="ja"), "zh") == "zh-Hans"


async def test_a_job_waits_its_turn_behind_the_vendor_limit(make_app: Any) -> None:
    async with make_app(VENDOR_CONCURRENCY_MAX=1, MOCK_LATENCY=0.5) as app:
        app.add_frontend(RecordingFrontend())
        await fund(app, ALICE, 10)
        positions: list[int | None] = []

        async def progress(p: Progress) -> None:
            positions.append(p.queue_position)

        sending = asyncio.create_task(app.run_job(ALICE, request(app), CHAT))
        await asyncio.sleep(0.2)
        queued = asyncio.create_task(app.run_job(ALICE, request(app), CHAT, progress))
        await asyncio.sleep(0.1)
        assert positions == [1]
        # Waiting in this process is not the job: it stays queued and runs.
        queued.cancel()
        await sending
        async with app.store.read() as tx:
            (second,) = await app.store.jobs.queued(tx)
        assert await wait_done(app, second.id) == "SUCCEEDED"
        assert await app.balance(ALICE) == 10 - 2 * 2
        await assert_books_balance(app)


async def test_a_failure_nobody_could_be_told_is_told_by_the_sweeper(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 10)
    frontend.fail = True
    with pytest.raises(DeliveryFailed):
        await app.run_job(ALICE, request(app), CHAT)
    assert [text for _, text in frontend.notices] == [app.text.t("delivery_failed", "en")]
    frontend.unreachable = True
    with pytest.raises(DeliveryFailed):
        await app.run_job(ALICE, request(app), CHAT)  # this one nobody heard of
    frontend.unreachable = False
    assert app.sweeper is not None
    await app.sweep()
    assert len(frontend.notices) == 1  # a live failure gets time to be shown first
    later = app.sweeper.clock() + 61
    app.sweeper.clock = lambda: later
    await app.sweep("discord")  # another platform coming up leaves this one alone
    assert len(frontend.notices) == 1
    await app.sweep("test")
    assert [text for _, text in frontend.notices][1:] == [
        "Your image job could not be finished. You were not charged."
    ]
    await app.sweep()
    assert len(frontend.notices) == 2


async def test_a_delivered_job_whose_charge_failed_is_charged_never_resent(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    """What a worker leaves when its settle fails (disk full, locked database) and it
    dies: the delivery is recorded, the hold still open. The sweeper charges it and
    sends nothing again, however often it runs."""
    await fund(app, ALICE, 10)
    assert app.worker is not None
    app.worker.stop()
    await asyncio.sleep(0.05)
    submitted = await app.submit(ALICE, request(app), CHAT)
    store = app.store
    async with store.transaction() as tx:
        job = await store.jobs.claim(tx, ["test"], "dead-worker", lease_until=time.time() - 1)
        assert job is not None and job.id == submitted.job_id
        await store.jobs.transition(
            tx, job.id, ("RESERVED",), "SUBMITTING", owner="dead-worker", attempts=1
        )
        await store.jobs.transition(
            tx,
            job.id,
            ("SUBMITTING",),
            "DELIVERING",
            owner="dead-worker",
            cost=submitted.price,
            result=json.dumps({"files": ["jobs/x/result-0.png"], "delivered": 1}),
        )
    assert app.sweeper is not None
    for _ in range(3):
        await app.sweep()
    assert frontend.deliveries == []
    assert await job_states(app) == ["SUCCEEDED"]
    assert await app.balance(ALICE) == 10 - submitted.price
    await assert_books_balance(app)


async def test_an_ended_job_keeps_no_interaction_token(
    app: Imagine, frontend: RecordingFrontend
) -> None:
    await fund(app, ALICE, 10)
    chat = ChatRef("test", {"chat_id": 1, "token": "aW50ZXJhY3Rpb24tdG9rZW4", "kind": "x"})
    receipt = await app.run_job(ALICE, request(app), chat)
    frontend.fail = True
    with pytest.raises(DeliveryFailed):
        await app.run_job(ALICE, request(app), chat)
    async with app.store.read() as tx:
        jobs = await app.store.jobs.recent(tx)
    assert {j.state for j in jobs} == {"SUCCEEDED", "FAILED"} and receipt.job_id in {
        j.id for j in jobs
    }
    for job in jobs:
        assert "aW50ZXJhY3Rpb24tdG9rZW4" not in job.chat
        assert json.loads(job.chat)["chat"]["kind"] == "x"  # the rest is kept


async def test_old_job_files_are_removed_and_their_buttons_say_so(
    app: Imagine, frontend: RecordingFrontend, tmp_path: Any
) -> None:
    await fund(app, ALICE, 10)
    done = await app.run_job(ALICE, request(app), CHAT)
    folder = app.files.root / "jobs" / done.job_id
    assert folder.is_dir()
    assert app.sweeper is not None
    await app.sweep()
    assert folder.is_dir()  # within FILE_RETENTION_DAYS
    later = app.sweeper.clock() + 31 * 86_400
    app.sweeper.clock = lambda: later
    app.sweeper._retained_at = None  # the hourly look is due
    report = await app.sweep()
    assert report is not None and report.removed == 1 and not folder.exists()
    with pytest.raises(InvalidRequest) as err:
        await app.variation(ALICE, done.job_id, CHAT)  # it needs the removed image
    assert "can't find" in app.text.error(err.value, "en")
    assert await app.balance(ALICE) == 10 - done.cost  # nothing held for it
    again = await app.reroll(ALICE, done.job_id, CHAT)  # a prompt needs no files
    assert await wait_done(app, again.job_id) == "SUCCEEDED"


async def test_one_call_turns_chat_input_into_a_checked_request(app: Imagine) -> None:
    await app.save_defaults(ALICE, aspect="9:16", quality="low")
    plain = await app.request(ALICE, "a fox")
    assert (plain.prompt, plain.aspect, plain.quality.value) == ("a fox", "9:16", "low")
    chosen = await app.request(ALICE, "a fox --q high", overrides={"quality": "medium", "n": 2})
    assert (chosen.quality.value, chosen.n) == ("high", 2)  # inline flags win over choices
    literal = await app.request(ALICE, "a sign: --q", inline_flags=False)
    assert literal.prompt == "a sign: --q"
    with pytest.raises(InvalidRequest):
        await app.request(ALICE, "a fox --q")  # an incomplete flag is refused, not charged
