"""The operator's figures (both backends): after real jobs on the mock vendor the
report's numbers are the ledger's, and ``/stats`` is for admins only."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.app import Imagine
from core.errors import DeliveryFailed, NotAdmin
from core.ports import ChatRef, UserRef
from core.stats import vendor_cost
from tests.conftest import RecordingFrontend
from tests.core.helpers import ADMIN, assert_books_balance, fund, request

ALICE = UserRef("test", "alice", "alice")
MALLORY = UserRef("test", "mallory")
CHAT = ChatRef("test", {"chat_id": 1})


def test_vendor_cost_takes_the_markup_off() -> None:
    assert vendor_cost(120, 0, 20) == 100
    assert vendor_cost(100, 20, 20) == 100
    assert vendor_cost(7, 0, 0) == 7
    assert vendor_cost(10, 0, 50) == 7  # 6.67 to the nearest credit


async def test_the_report_matches_the_ledger(app: Imagine, frontend: RecordingFrontend) -> None:
    await fund(app, ALICE, 100)
    first = await app.run_job(ALICE, request(app), CHAT)
    second = await app.run_job(ALICE, request(app, n=2), CHAT)
    frontend.fail = True
    with pytest.raises(DeliveryFailed):
        await app.run_job(ALICE, request(app), CHAT)
    await assert_books_balance(app)

    report = await app.stats.report(7)
    async with app.store.read() as tx:
        totals = await app.store.ledger.totals(tx)
    charged = first.cost + second.cost
    assert totals["system:revenue"] == charged - totals["system:vendor_loss"]
    loss = -totals["system:vendor_loss"]
    assert (report.totals.charged, report.totals.loss) == (charged, loss)
    assert report.totals.vendor_cost == vendor_cost(charged, loss, report.markup_percent)
    assert report.totals.margin == charged - report.totals.vendor_cost
    assert (report.totals.jobs, report.totals.succeeded, report.totals.failed) == (3, 2, 1)
    assert len(report.jobs) == len(report.money) == 7
    assert report.jobs[-1].total == 3  # all today
    assert [(f.error, f.count) for f in report.failures] == [("delivery_failed", 1)]
    assert [(u.name, u.jobs, u.charged) for u in report.top_users] == [("test:@alice", 2, charged)]
    (times,) = report.times
    assert (times.vendor, times.count) == (app.preset.name, 2)
    assert 0 <= times.p50 <= times.p95
    assert [(v.name, v.state) for v in report.vendors] == [(app.preset.name, "healthy")]
    assert report.queue == []
    assert (report.totals.purchases, report.totals.purchased) == (0, 0)

    card = await app.admin_stats(ADMIN)
    assert (card.today.jobs, card.today.charged) == (3, charged)
    assert card.today.vendor_cost == report.totals.vendor_cost
    with Image.open(io.BytesIO(card.png)) as chart:
        assert chart.format == "PNG" and chart.size[0] > 100
        # Drawn: more than the white background.
        assert len(chart.convert("RGB").getcolors(1_000_000) or []) > 10


async def test_stats_are_for_admins_only(app: Imagine) -> None:
    with pytest.raises(NotAdmin):
        await app.admin_stats(MALLORY)
    await app.admin_stats(ADMIN)
    async with app.store.read() as tx:
        audit = await app.store.audit.recent(tx, 10)
    assert [(a.actor, a.action, a.allowed) for a in reversed(audit)] == [
        ("test:mallory", "stats", False),
        ("cli:admin", "stats", True),
    ]


async def test_a_vendor_pause_shows(app: Imagine) -> None:
    from core.errors import VendorOutOfCredits

    await app.jobs.health.after_error(VendorOutOfCredits("402"))
    report = await app.stats.report()
    (vendor,) = report.vendors
    assert (vendor.name, vendor.state, vendor.why) == (
        app.preset.name,
        "paused",
        "vendor_out_of_credits",
    )
    assert vendor.since is not None and vendor.probe_at is not None
    await app.admin_resume(ADMIN)
    assert (await app.stats.report()).vendors[0].state == "healthy"
