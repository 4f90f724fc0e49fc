"""Admin credit commands: allowlist, audit trail, idempotent re-deliveries."""

from __future__ import annotations

import pytest

from core.app import Imagine
from core.errors import InvalidRequest, NotAdmin, UnknownUser
from core.ports import UserRef
from tests.core.helpers import ADMIN, assert_books_balance

ALICE = UserRef("test", "alice", "alice")
MALLORY = UserRef("test", "mallory")


async def test_a_redelivered_command_moves_credits_once(app: Imagine) -> None:
    assert await app.admin_topup(ADMIN, ALICE, 5, "gift", "update:41") == 5
    assert await app.admin_topup(ADMIN, ALICE, 5, "gift", "update:41") == 5
    assert await app.admin_topup(ADMIN, ALICE, 5, "gift", "update:42") == 10
    assert await app.admin_deduct(ADMIN, ALICE, 3, "refund", "update:43") == 7
    assert await app.admin_set(ADMIN, ALICE, 20, None, "update:44") == 20
    assert await app.admin_set(ADMIN, ALICE, 20, None, "update:44") == 20
    report = await app.admin_show(ADMIN, ALICE)
    assert report.balance == 20
    assert [e.amount for e in report.history] == [13, -3, 5, 5]
    await assert_books_balance(app)


async def test_non_admins_are_refused_and_audited(app: Imagine) -> None:
    for call in (
        app.admin_topup(MALLORY, MALLORY, 100),
        app.admin_set(MALLORY, ALICE, 0),
        app.admin_show(MALLORY, ALICE),
        app.admin_jobs(MALLORY),
        app.admin_resume(MALLORY),
    ):
        with pytest.raises(NotAdmin):
            await call
    assert await app.balance(MALLORY) == 0
    async with app.store.read() as tx:
        audit = await app.store.audit.recent(tx, 10)
    assert {(a.actor, a.allowed) for a in audit} == {("test:mallory", False)}
    assert len(audit) == 5


async def test_bad_amounts_and_unknown_users(app: Imagine) -> None:
    with pytest.raises(InvalidRequest):
        await app.admin_topup(ADMIN, ALICE, 0)
    with pytest.raises(InvalidRequest):
        await app.admin_set(ADMIN, ALICE, -5)
    with pytest.raises(UnknownUser):
        await app.admin_show(ADMIN, UserRef("test", "nobody"))
    await app.profile(ALICE)
    assert await app.find_user("test", "@alice") == UserRef("test", "alice", "alice")
    assert await app.find_user("test", "@nobody") is None


async def test_a_balance_set_without_a_reason_shows_no_english_note(app: Imagine) -> None:
    await app.admin_set(ADMIN, ALICE, 20, None, "update:51")
    (entry,) = (await app.history(ALICE))[:1]
    assert entry.kind == "correction" and entry.note == ""
    assert app.text.history("ru", [entry]).count("·") == 0
