"""SQLite job table: one row per user request and its lifecycle state.

Owns the ``jobs`` SQL.  State changes are compare-and-swap (``UPDATE ... WHERE
state IN (...)``) so two actors (the job task and the sweeper, or two workers later)
can never both move a job out of the same state.  Column names in dynamic UPDATEs
come only from the ``JOB_MUTABLE_FIELDS`` whitelist, never from callers verbatim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.errors import IdempotencyConflict, StorageError
from storage.interfaces import (
    ACTIVE_STATES,
    JOB_KINDS,
    JOB_MUTABLE_FIELDS,
    TERMINAL_STATES,
    VENDOR_LIMIT,
    JobRecord,
    Tx,
)
from storage.rows import (
    CLAIMED_SQL,
    FAIR_ORDER,
    JOB_COLS,
    JOB_COLS_J,
    TERMINAL_SQL,
    check_state,
    check_states,
    job_from_row,
    tier_of,
)
from storage.sqlite.tx import Clock, sqlite_tx


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
        check_state(job.state)
        now = self._clock()
        created = job.created_at or now
        updated = job.updated_at or created
        row = await t.fetchone(
            "INSERT INTO jobs (id, account_id, platform, chat, kind, params, estimate, hold_id, "
            "state, vendor_ref, attempts, result, cost, error, notified, created_at, updated_at, "
            "queue, tier) "
            "VALUES (:id, :account_id, :platform, :chat, :kind, :params, :estimate, :hold_id, "
            ":state, :vendor_ref, :attempts, :result, :cost, :error, :notified, :created_at, "
            ":updated_at, :queue, :tier) ON CONFLICT (id) DO NOTHING RETURNING id",
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
                "queue": job.queue or job.platform,
                "tier": tier_of(job.params),
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
            queue=job.queue or job.platform,
        )

    async def get(self, tx: Tx, job_id: str) -> JobRecord | None:
        row = await sqlite_tx(tx).fetchone(f"SELECT {JOB_COLS} FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else job_from_row(row)

    async def transition(
        self,
        tx: Tx,
        job_id: str,
        from_states: Sequence[str],
        to_state: str,
        *,
        owner: str | None = None,
        **fields: object,
    ) -> bool:
        """Move ``job_id`` to ``to_state`` only if it is currently in ``from_states``
        (and, with ``owner``, still claimed by it). A terminal state drops the claim.

        Returns False (and changes nothing) if the job is missing or in another state.
        """
        t = sqlite_tx(tx, write=True)
        to = check_state(to_state)
        in_sql, params = _in_list("s", check_states(from_states))
        set_sql, set_params = _set_clause(fields)
        params.update(set_params, id=job_id, to=to, now=self._clock(), owner=owner)
        if to in TERMINAL_STATES:
            set_sql = (set_sql + ", " if set_sql else "") + "claimed_by = NULL, lease_until = NULL"
        where = f"id = :id AND state IN {in_sql}"
        if owner is not None:
            where += " AND claimed_by = :owner"
        row = await t.fetchone(
            f"UPDATE jobs SET state = :to, updated_at = :now{', ' + set_sql if set_sql else ''} "
            f"WHERE {where} RETURNING id",
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
        in_sql, params = _in_list("s", check_states(states))
        params["limit"] = limit
        where = f"state IN {in_sql}"
        if older_than is not None:
            where += " AND updated_at < :older_than"
            params["older_than"] = older_than
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs WHERE {where} ORDER BY updated_at, id LIMIT :limit",
            params,
        )
        return [job_from_row(r) for r in rows]

    async def recent(self, tx: Tx, limit: int = 20) -> list[JobRecord]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [job_from_row(r) for r in rows]

    async def for_account(self, tx: Tx, account_id: int, limit: int = 20) -> list[JobRecord]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs WHERE account_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (account_id, limit),
        )
        return [job_from_row(r) for r in rows]

    async def with_prefix(
        self, tx: Tx, prefix: str, *, account_id: int | None = None, limit: int = 2
    ) -> list[JobRecord]:
        # A range on the primary key, not LIKE: the index serves it whatever the
        # prefix holds; the exact check below keeps only true prefixes.
        where = "id >= :lo AND id < :hi"
        if account_id is not None:
            where += " AND account_id = :account"
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs WHERE {where} ORDER BY id LIMIT :limit",
            {"lo": prefix, "hi": prefix + "\U0010ffff", "account": account_id, "limit": limit},
        )
        return [j for j in map(job_from_row, rows) if j.id.startswith(prefix)]

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
        return [job_from_row(r) for r in rows]

    # --- the queue -------------------------------------------------------------------

    async def claim(
        self,
        tx: Tx,
        queues: Sequence[str],
        worker_id: str,
        *,
        lease_until: float,
        limit: str | None = VENDOR_LIMIT,
    ) -> JobRecord | None:
        claimed = await self.claim_many(
            tx, queues, worker_id, lease_until=lease_until, limit=limit, count=1
        )
        return claimed[0] if claimed else None

    async def claim_many(
        self,
        tx: Tx,
        queues: Sequence[str],
        worker_id: str,
        *,
        lease_until: float,
        limit: str | None = VENDOR_LIMIT,
        count: int = 1,
    ) -> list[JobRecord]:
        """See ``JobRepo.claim_many``. BEGIN IMMEDIATE already serialises every
        claimer in every process, so counting the live claims here is exact."""
        t = sqlite_tx(tx, write=True)
        if not queues or count < 1:
            return []
        now = self._clock()
        if limit is not None:
            row = await t.fetchone("SELECT value, not_before FROM limits WHERE name = ?", (limit,))
            if row is not None:
                if float(row["not_before"]) > now:
                    return []
                count = min(count, int(row["value"]) - await self.in_flight(t, now))
                if count < 1:
                    return []
        q_sql, params = _in_list("q", list(queues))
        params.update(worker=worker_id, now=now, lease=lease_until, count=count)
        rows = await t.fetchall(
            "UPDATE jobs SET claimed_by = :worker, claimed_at = :now, lease_until = :lease "
            "WHERE id IN (SELECT j.id FROM jobs j "
            f"            WHERE j.state = 'RESERVED' AND j.claimed_by IS NULL "
            f"            AND j.queue IN {q_sql}"
            f"            {FAIR_ORDER} LIMIT :count) "
            "AND claimed_by IS NULL "
            f"RETURNING {JOB_COLS}",
            params,
        )
        return sorted((job_from_row(r) for r in rows), key=lambda j: (j.created_at, j.id))

    async def renew(
        self, tx: Tx, worker_id: str, job_ids: Sequence[str], lease_until: float
    ) -> list[str]:
        if not job_ids:
            return []
        t = sqlite_tx(tx, write=True)
        in_sql, params = _in_list("j", list(job_ids))
        params.update(worker=worker_id, lease=lease_until)
        rows = await t.fetchall(
            f"UPDATE jobs SET lease_until = :lease WHERE id IN {in_sql} "
            f"AND claimed_by = :worker AND state NOT IN {TERMINAL_SQL} RETURNING id",
            params,
        )
        return [r["id"] for r in rows]

    async def release(self, tx: Tx, job_id: str, worker_id: str) -> bool:
        row = await sqlite_tx(tx, write=True).fetchone(
            "UPDATE jobs SET claimed_by = NULL, claimed_at = NULL, lease_until = NULL "
            "WHERE id = ? AND claimed_by = ? AND state = 'RESERVED' RETURNING id",
            (job_id, worker_id),
        )
        return row is not None

    async def expired_claims(self, tx: Tx, now: float, limit: int = 100) -> list[JobRecord]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS} FROM jobs WHERE claimed_by IS NOT NULL "
            f"AND state NOT IN {TERMINAL_SQL} AND lease_until < ? ORDER BY lease_until LIMIT ?",
            (now, limit),
        )
        return [job_from_row(r) for r in rows]

    async def take_over(
        self, tx: Tx, job_id: str, worker_id: str, *, now: float, lease_until: float
    ) -> JobRecord | None:
        row = await sqlite_tx(tx, write=True).fetchone(
            "UPDATE jobs SET claimed_by = :worker, claimed_at = :now, lease_until = :lease "
            f"WHERE id = :id AND state NOT IN {TERMINAL_SQL} "
            "AND (claimed_by IS NULL OR lease_until < :now) "
            f"RETURNING {JOB_COLS}",
            {"worker": worker_id, "now": now, "lease": lease_until, "id": job_id},
        )
        return None if row is None else job_from_row(row)

    async def queued(
        self, tx: Tx, queues: Sequence[str] | None = None, limit: int = 500
    ) -> list[JobRecord]:
        params: dict[str, Any] = {"limit": limit}
        where = "j.state = 'RESERVED' AND j.claimed_by IS NULL"
        if queues is not None:
            if not queues:
                return []
            q_sql, q_params = _in_list("q", list(queues))
            params.update(q_params)
            where += f" AND j.queue IN {q_sql}"
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {JOB_COLS_J} FROM jobs j WHERE {where} {FAIR_ORDER} LIMIT :limit",
            params,
        )
        return [job_from_row(r) for r in rows]

    async def in_flight(self, tx: Tx, now: float) -> int:
        row = await sqlite_tx(tx).fetchone(
            "SELECT COUNT(*) FROM jobs WHERE claimed_by IS NOT NULL "
            f"AND state IN {CLAIMED_SQL} AND lease_until >= ?",
            (now,),
        )
        return int(row[0]) if row else 0
