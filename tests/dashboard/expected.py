"""What the dashboard must show for a window, worked out from the source rows (the
ledger's transfers and the job rows), not from the rollups the page reads: the
figures a test compares the page with."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from core.app import Imagine
from core.job_params import load_request
from core.stats import DAY, vendor_cost
from storage.interfaces import SYSTEM_REVENUE, SYSTEM_SALES, JobState

# More rows than any seeded database holds: every one is read.
ALL = 1_000_000


@dataclass(frozen=True, slots=True)
class Expected:
    since: float
    until: float
    jobs: int
    succeeded: int
    failed: int
    charged: int
    loss: int
    vendor_cost: int
    purchases: int
    purchased: int
    queued: int
    running: int
    top_users: list[tuple[str, int]]
    """(name, credits charged), most first."""
    failures: dict[str, int]
    timed: set[tuple[str, str]]
    """(vendor, tier) of the succeeded jobs that ended in the window."""
    job_bars: int
    """Days × outcomes (succeeded, failed, running) with at least one job."""

    @property
    def margin(self) -> int:
        return self.charged - self.vendor_cost


async def expected(app: Imagine, now: float, days: int) -> Expected:
    """The figures of the last ``days`` UTC days up to ``now`` (today included)."""
    since = (int(now // DAY) - days + 1) * DAY
    until = (int(now // DAY) + 1) * DAY
    store = app.store
    async with store.read() as tx:
        revenue = await store.ledger.system_account(tx, SYSTEM_REVENUE)
        sales = await store.ledger.system_account(tx, SYSTEM_SALES)
        moves = [
            t
            for account in (revenue.id, sales.id)
            for t in await store.ledger.history(tx, account, ALL)
            if since <= t.created_at < until
        ]
        jobs = await store.jobs.recent(tx, ALL)
        charged_by: Counter[int] = Counter()
        charges_of: Counter[int] = Counter()
        for t in moves:
            if t.kind == "charge":
                charged_by[t.debit_account_id] += t.amount
                charges_of[t.debit_account_id] += 1
        accounts = [await store.ledger.get_account(tx, i) for i in charged_by]
    # The page names a user by platform and @username, else platform and id; ties
    # in credits go to the user with more jobs, then the older account.
    accounts.sort(key=lambda a: (-charged_by[a.id], -charges_of[a.id], a.id))
    top_users = [
        (f"{a.platform}:@{a.username}" if a.username else a.name, charged_by[a.id])
        for a in accounts
    ]
    charged = sum(t.amount for t in moves if t.kind == "charge")
    loss = sum(t.amount for t in moves if t.kind == "vendor_loss")
    bought = [t for t in moves if t.kind == "purchase"]
    asked = [j for j in jobs if since <= j.created_at < until]
    ended = [j for j in jobs if j.terminal and since <= j.updated_at < until]
    markup = app.preset.price.markup_percent
    outcome = {JobState.SUCCEEDED: "succeeded", JobState.FAILED: "failed"}
    bars = {(int(j.created_at // DAY), outcome.get(JobState(j.state), "running")) for j in asked}
    return Expected(
        since=since,
        until=until,
        jobs=len(asked),
        succeeded=sum(j.state == JobState.SUCCEEDED for j in asked),
        failed=sum(j.state == JobState.FAILED for j in asked),
        charged=charged,
        loss=loss,
        vendor_cost=vendor_cost(charged, loss, markup),
        purchases=len(bought),
        purchased=sum(t.amount for t in bought),
        queued=sum(j.state == JobState.RESERVED and j.claimed_by is None for j in jobs),
        running=sum(not j.terminal and j.claimed_by is not None for j in jobs),
        top_users=top_users,
        failures=dict(Counter(j.error or "" for j in ended if j.state == JobState.FAILED)),
        timed={
            (j.vendor or "", load_request(j.params).resolution)
            for j in ended
            if j.state == JobState.SUCCEEDED
        },
        job_bars=len(bars),
    )
