"""SQLite job table: one row per user request and its lifecycle state.

Owns the ``jobs`` SQL.  State changes are compare-and-swap (``UPDATE ... WHERE
state IN (...)``) so two actors (the job task and the sweeper, or two workers later)
can never both move a job out of the same state.  Column names in dynamic UPDATEs
come only from the ``JOB_MUTABLE_FIELDS`` whitelist, never from callers verbatim.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from storage.errors import IdempotencyConflict, StorageError
from storage.interfaces import (
    ACTIVE_STATES,
    JOB_KINDS,
    JOB_MUTABLE_FIELDS,
    JOB_STATES,
    TERMINAL_STATES,
    JobRecord,
    Tx,
)
from storage.sqlite.tx import Clock, sqlite_tx

JOB_COLS: Final = (
    "id, account_id, platform, chat, kind, params, estimate, hold_id, state, vendor_ref, "
    "attempts, result, cost, error, notified, created_at, updated_at"
)


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        account_id=int(row["account_id"]),
        platform=row["platform"],
        chat=row["chat"],
        kind=row["kind"],
        params=row["params"],
        estimate=int(row["estimate"]),
        state=row["state"],
        hold_id=row["hold_id"],
        vendor_ref=row["vendor_ref"],
        attempts=int(row["attempts"]),
        result=row["result"],
        cost=None if row["cost"] is None else int(row["cost"]),
        error=row["error"],
        notified=bool(row["notified"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


def _state(value: str) -> str:
    s = str(value)
    if s not in JOB_STATES:
        raise StorageError(f"unknown job state {value!r}; expected one of {JOB_STATES}")
    return s


def _states(values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        # A bare string is a Sequence[str] too; 'NEW' must not mean ('N','E','W').
        values = (values,)
    out = [_state(v) for v in values]
    if not out:
        raise StorageError("at least one job state is required")
    return out


def _set_clause(fields: dict[str, object]) -> tuple[str, dict[str, Any]]:
    unknown = set(fields) - JOB_MUTABLE_FIELDS
    if unknown:
        raise StorageError(
            f"cannot set job field(s) {sorted(unknown)}; allowed: {sorted(JOB_MUTABLE_FIELDS)}"
        )
    params: dict[str, Any] = {}
    parts: list[str] = []
    for name in sorted(fields):
        value = fields[name]
        if name == "notified":
            value = 1 if value else 0
        elif value is not None and name in ("attempts", "cost", "estimate"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise StorageError(f"job field {name} must be an int")
        elif value is not None and not isinstance(value, str):
            raise StorageError(f"job field {name} must be a str (JSON text) or None")
        parts.append(f"{name} = :f_{name}")
        params[f"f_{name}"] = value
    return ", ".join(parts), params


def _in_list(prefix: str, values: Sequence[str]) -> tuple[str, dict[str, Any]]:
    names = [f":{prefix}{i}" for i in range(len(values))]
    return "(" + ", ".join(names) + ")", {f"{prefix}{i}": v for i, v in enumerate(values)}


class SqliteJobs:
    """SQLite implementation of ``storage.interfaces.JobRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def insert(self, tx: Tx, job: JobRecord) -> JobRecord:
        """Insert a job.  Replaying the same id for the same account/kind/params
        returns the stored row (so a retried handler does not fail)."""
        t = sqlite_tx(tx, write=True)
        if job.kind not in JOB_KINDS:
            raise StorageError(f"unknown job kind {job.kind!r}; expected one of {JOB_KINDS}")
        _state(job.state)
        now = self._clock()
        created = job.created_at or now
        updated = job.updated_at or created
        row = await t.fetchone(
            "INSERT INTO jobs (id, account_id, platform, chat, kind, params, estimate, hold_id, "
            "state, vendor_ref, attempts, result, cost, error, notified, created_at, updated_at) "
            "VALUES (:id, :account_id, :platform, :chat, :kind, :params, :estimate, :hold_id, "
            ":state, :vendor_ref, :attempts, :result, :cost, :error, :notified, :created_at, "
            ":updated_at) ON CONFLICT (id) DO NOTHING RETURNING id",
            {
                "id": job.id,
                "account_id": job.account_id,
                "platform": job.platform,
                "chat": job.chat,
                "kind": job.kind,
                "params": job.params,
                "estimate": job.estimate,
                "hold_id": job.hold_id,
                "state": str(job.state),
                "vendor_ref": job.vendor_ref,
                "attempts": job.attempts,
                "result": job.result,
                "cost": job.cost,
                "error": job.error,
                "notified": 1 if job.notified else 0,
                "created_at": created,
                "updated_at": updated,
            },
        )
        if row is None:
            existing = await self.get(t, job.id)
            assert existing is not None
            if (existing.account_id, existing.kind, existing.params) != (
                job.account_id,
                job.kind,
                job.params,
            ):
                raise IdempotencyConflict(f"job id {job.id!r} already used for a different job")
            return existing
        return JobRecord(
            id=job.id,
            account_id=job.account_id,
            platform=job.platform,
            chat=job.chat,
            kind=job.kind,
            params=job.params,
            estimate=job.estimate,
            state=str(job.state),
            hold_id=job.hold_id,
            vendor_ref=job.vendor_ref,
            attempts=job.attempts,
            result=job.result,
            cost=job.cost,
            error=job.error,
            notified=job.notified,
            created_at=created,
            updated_at=updated,
        )

    async def get(self, tx: Tx, job_id: str) -> JobRecord | None:
        row = await sqlite_tx(tx).fetchone(f"SELECT {JOB_COLS} FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def transition(
        self, tx: Tx, job_id: str, from_states: Sequence[str], to_state: str, **fields: object
    ) -> bool:
        """Move ``job_id`` to ``to_state`` only if it is currently in ``from_states``.

        Returns False (and changes nothing) if the job is missing or in another state.
        """
        t = sqlite_tx(tx, write=True)
        to = _state(to_state)
        in_sql, params = _in_list("s", _states(from_states))
        set_sql, set_params = _set_clause(fields)
        params.update(set_params, id=job_id, to=to, now=self._clock())
        row = await t.fetchone(
            f"UPDATE jobs SET state = :to, updated_at = :now{', ' + set_sql if set_sql else ''} "
            f"WHERE id = :id AND state IN {in_sql} RETURNING id",
            params,
        )
        return row is not None

    async def update(self, tx: Tx, job_id: str, **fields: object) -> bool:
        """Set fields without a state change.  Returns False if the job is missing."""
        t = sqlite_tx(tx, write=True)
        set_sql, params = _set_clause(fields)
        params.update(id=job_id, now=self._clock())
        row = await t.fetchone(
            f"UPDATE jobs SET updated_at = :now{', ' + set_sql if set_sql else ''} "
            "WHERE id = :id RETURNING id",
            params,
        )
        return row is not None

    async def in_states(
        self, tx: Tx, states: Sequence[str], *, older_than: float | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs in ``states``, least recently updated first.

        ``older_than`` is an absolute unix timestamp: only jobs whose ``updated_at``
        is strictly before it (e.g. ``now - 300`` for "stuck for 5 minutes").
        """
        in_sql, params = _in_list("s", _states(states))
        params["limit"] = limit
        where = f"state IN {in_sql}"
        if older_than is not None:
            where += " AND updated_at < :older_than"
            params["older_than"] = older_than
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs WHERE {where} ORDER BY updated_at, id LIMIT :limit",
            params,
        )
        return [_job(r) for r in rows]

    async def recent(self, tx: Tx, limit: int = 20) -> list[JobRecord]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [_job(r) for r in rows]

    async def for_account(self, tx: Tx, account_id: int, limit: int = 20) -> list[JobRecord]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs WHERE account_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (account_id, limit),
        )
        return [_job(r) for r in rows]

    async def count_active(self, tx: Tx, account_id: int) -> int:
        in_sql, params = _in_list("s", ACTIVE_STATES)
        params["account_id"] = account_id
        row = await sqlite_tx(tx).fetchone(
            f"SELECT COUNT(*) FROM jobs WHERE account_id = :account_id AND state IN {in_sql}",
            params,
        )
        return int(row[0]) if row else 0

    async def count_since(self, tx: Tx, account_id: int, since: float) -> int:
        """Jobs created by ``account_id`` at or after the unix timestamp ``since``."""
        row = await sqlite_tx(tx).fetchone(
            "SELECT COUNT(*) FROM jobs WHERE account_id = ? AND created_at >= ?",
            (account_id, since),
        )
        return int(row[0]) if row else 0

    async def mark_notified(self, tx: Tx, job_id: str) -> bool:
        row = await sqlite_tx(tx, write=True).fetchone(
            "UPDATE jobs SET notified = 1, updated_at = ? WHERE id = ? AND notified = 0 "
            "RETURNING id",
            (self._clock(), job_id),
        )
        return row is not None

    async def unnotified_terminal(self, tx: Tx, limit: int = 100) -> list[JobRecord]:
        in_sql, params = _in_list("s", TERMINAL_STATES)
        params["limit"] = limit
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs WHERE state IN {in_sql} AND notified = 0 "
            "ORDER BY updated_at, id LIMIT :limit",
            params,
        )
        return [_job(r) for r in rows]

    async def claim_next(
        self, tx: Tx, states: Sequence[str], worker_id: str, *, stale_before: float | None = None
    ) -> JobRecord | None:
        """Claim the oldest unclaimed job in ``states`` for ``worker_id``.

        Shaped like the future PostgreSQL ``FOR UPDATE SKIP LOCKED`` query; on SQLite
        BEGIN IMMEDIATE already serialises claimers.  A claim older than
        ``stale_before`` (unix time) is considered abandoned and may be taken over.
        The claim does not change ``state``; callers follow up with ``transition``.
        """
        t = sqlite_tx(tx, write=True)
        in_sql, params = _in_list("s", _states(states))
        params.update(worker=worker_id, now=self._clock(), stale=stale_before)
        row = await t.fetchone(
            "UPDATE jobs SET claimed_by = :worker, claimed_at = :now, updated_at = :now "
            "WHERE id = (SELECT id FROM jobs "
            f"            WHERE state IN {in_sql} "
            "             AND (claimed_by IS NULL "
            "                  OR (:stale IS NOT NULL AND claimed_at < :stale)) "
            "            ORDER BY updated_at, id LIMIT 1) "
            f"RETURNING {JOB_COLS}",
            params,
        )
        return None if row is None else _job(row)
