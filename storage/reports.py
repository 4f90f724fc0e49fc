"""The dashboard's report queries (``storage.interfaces.ReportRepo``), written once
for both backends.

Every windowed figure is read from the daily rollups of the ``0006_rollups``
migrations (kept by triggers in the writing transaction), so a page reads a few
thousand rows whatever the number of jobs; windows are whole UTC days. Job-time
percentiles are nearest-rank over a log-spaced histogram (within ~5 %).

The SQL is plain and the same in both dialects, with ``?`` placeholders; a backend
says only how to run a statement (``_rows``) and which index hint, if any, the
queue query needs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from storage.interfaces import (
    ACTIVE_STATES,
    DayJobs,
    DayMoney,
    FailureCount,
    JobTimes,
    QueueNow,
    TopUser,
    Tx,
)
from storage.report_rows import account_label, day_jobs, day_money, day_range, job_times

JOBS_PER_DAY = (
    "SELECT day, jobs, succeeded, failed FROM job_created_days "
    "WHERE day >= ? AND day < ? AND jobs > 0 ORDER BY day"
)
MONEY_PER_DAY = "SELECT day, kind, transfers, amount FROM money_days WHERE day >= ? AND day < ?"
JOB_TIMES = (
    "SELECT vendor, tier, bucket, SUM(jobs) FROM job_days "
    "WHERE day >= ? AND day < ? AND state = 'SUCCEEDED' GROUP BY vendor, tier, bucket"
)
TOP_USERS = (
    "WITH c AS ("
    "  SELECT account_id AS id, SUM(jobs) AS jobs, SUM(charged) AS charged"
    "  FROM user_days WHERE day >= ? AND day < ?"
    "  GROUP BY account_id ORDER BY charged DESC, jobs DESC, id LIMIT ?) "
    "SELECT c.id, a.platform, a.external_id, a.username, c.jobs, c.charged "
    "FROM c JOIN accounts a ON a.id = c.id ORDER BY c.charged DESC, c.jobs DESC, c.id"
)
FAILURES = (
    "SELECT error, SUM(jobs) AS n FROM job_days "
    "WHERE day >= ? AND day < ? AND state = 'FAILED' "
    "GROUP BY error ORDER BY n DESC, error"
)
_ACTIVE = ", ".join(f"'{s}'" for s in ACTIVE_STATES)


def queue_now_sql(index_hint: str = "") -> str:
    """The jobs not ended, by queue; ``index_hint`` goes after the table name."""
    return (
        "SELECT queue,"
        " SUM(CASE WHEN state = 'RESERVED' AND claimed_by IS NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN claimed_by IS NOT NULL THEN 1 ELSE 0 END),"
        " MIN(CASE WHEN state = 'RESERVED' AND claimed_by IS NULL THEN created_at END) "
        f"FROM jobs {index_hint} WHERE state IN ({_ACTIVE}) GROUP BY queue ORDER BY queue"
    )


class RollupReports(ABC):
    """``ReportRepo`` over the rollups; a backend implements ``_rows``."""

    queue_index_hint = ""

    @abstractmethod
    async def _rows(self, tx: Tx, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        """Run one ``?``-placeholder query in ``tx``; its rows."""

    async def jobs_per_day(self, tx: Tx, since: float, until: float) -> list[DayJobs]:
        return day_jobs(
            tuple(r) for r in await self._rows(tx, JOBS_PER_DAY, *day_range(since, until))
        )

    async def money_per_day(self, tx: Tx, since: float, until: float) -> list[DayMoney]:
        rows = await self._rows(tx, MONEY_PER_DAY, *day_range(since, until))
        return day_money(tuple(r) for r in rows)

    async def job_times(self, tx: Tx, since: float, until: float) -> list[JobTimes]:
        rows = await self._rows(tx, JOB_TIMES, *day_range(since, until))
        return job_times(tuple(r) for r in rows)

    async def top_users(self, tx: Tx, since: float, until: float, limit: int = 10) -> list[TopUser]:
        rows = await self._rows(tx, TOP_USERS, *day_range(since, until), limit)
        return [
            TopUser(int(i), account_label(p, e, u), int(j), int(c)) for i, p, e, u, j, c in rows
        ]

    async def failures(self, tx: Tx, since: float, until: float) -> list[FailureCount]:
        rows = await self._rows(tx, FAILURES, *day_range(since, until))
        return [FailureCount(str(e), int(n)) for e, n in rows]

    async def queue_now(self, tx: Tx) -> list[QueueNow]:
        rows = await self._rows(tx, queue_now_sql(self.queue_index_hint))
        return [
            QueueNow(str(q), int(w), int(r), None if o is None else float(o)) for q, w, r, o in rows
        ]
