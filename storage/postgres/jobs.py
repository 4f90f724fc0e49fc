"""PostgreSQL job table and queue: one row per user request, its lifecycle state,
and the claim (worker + lease) under which a worker runs it.

Owns the ``jobs`` SQL for PostgreSQL; semantics are ``storage.sqlite.jobs``'s.
State changes are compare-and-swap (``UPDATE ... WHERE state = ANY(...)``).  Claims
pick a row with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers in any number of
processes never take the same job and never wait on each other's candidate; a
claim under a limit first locks the limit's row, which serialises those claimers
so counting the live claims is exact.  Column names in dynamic UPDATEs come only
from the ``JOB_MUTABLE_FIELDS`` whitelist.
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
from storage.postgres.store import Clock, pg_tx
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


class _Args:
    """Positional parameters for a statement built piece by piece."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _set_clause(fields: dict[str, object], args: _Args) -> str:
    unknown = set(fields) - JOB_MUTABLE_FIELDS
    if unknown:
        raise StorageError(
            f"cannot set job field(s) {sorted(unknown)}; allowed: {sorted(JOB_MUTABLE_FIELDS)}"
        )
    parts: list[str] = []
    for name in sorted(fields):
        value = fields[name]
        if name == "notified":
            value = bool(value)
        elif value is not None and name in ("attempts", "cost", "estimate"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise StorageError(f"job field {name} must be an int")
        elif value is not None and not isinstance(value, str):
            raise StorageError(f"job field {name} must be a str (JSON text) or None")
        parts.append(f"{name} = {args(value)}")
    return "".join(", " + p for p in parts)


class PgJobs:
    """PostgreSQL implementation of ``storage.interfaces.JobRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def insert(self, tx: Tx, job: JobRecord) -> JobRecord:
        """Insert a job.  Replaying the same id for the same account/kind/params
        returns the stored row (so a retried handler does not fail)."""
        t = pg_tx(tx, write=True)
        if job.kind not in JOB_KINDS:
            raise StorageError(f"unknown job kind {job.kind!r}; expected one of {JOB_KINDS}")
        check_state(job.state)
        now = self._clock()
        created = job.created_at or now
        updated = job.updated_at or created
        queue = job.queue or job.platform
        inserted = await t.fetchval(
            "INSERT INTO jobs (id, account_id, platform, chat, kind, params, estimate, hold_id, "
            "state, vendor_ref, attempts, result, cost, error, notified, created_at, updated_at, "
            "queue, tier) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
            "$15, $16, $17, $18, $19) ON CONFLICT (id) DO NOTHING RETURNING id",
            job.id,
            job.account_id,
            job.platform,
            job.chat,
            job.kind,
            job.params,
            job.estimate,
            job.hold_id,
            str(job.state),
            job.vendor_ref,
            job.attempts,
            job.result,
            job.cost,
            job.error,
            bool(job.notified),
            created,
            updated,
            queue,
            tier_of(job.params),
        )
        if inserted is None:
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
            queue=queue,
        )

    async def get(self, tx: Tx, job_id: str) -> JobRecord | None:
        row = await pg_tx(tx).fetchrow(f"SELECT {JOB_COLS} FROM jobs WHERE id = $1", job_id)
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
        t = pg_tx(tx, write=True)
        to = check_state(to_state)
        states = check_states(from_states)
        args = _Args()
        set_sql = f"state = {args(to)}, updated_at = {args(self._clock())}"
        set_sql += _set_clause(fields, args)
        if to in TERMINAL_STATES:
            set_sql += ", claimed_by = NULL, lease_until = NULL"
        where = f"id = {args(job_id)} AND state = ANY({args(states)}::text[])"
        if owner is not None:
            where += f" AND claimed_by = {args(owner)}"
        found = await t.fetchval(
            f"UPDATE jobs SET {set_sql} WHERE {where} RETURNING id", *args.values
        )
        return found is not None

    async def update(self, tx: Tx, job_id: str, **fields: object) -> bool:
        """Set fields without a state change.  Returns False if the job is missing."""
        t = pg_tx(tx, write=True)
        args = _Args()
        set_sql = f"updated_at = {args(self._clock())}" + _set_clause(fields, args)
        found = await t.fetchval(
            f"UPDATE jobs SET {set_sql} WHERE id = {args(job_id)} RETURNING id", *args.values
        )
        return found is not None

    async def in_states(
        self, tx: Tx, states: Sequence[str], *, older_than: float | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs in ``states``, least recently updated first (``older_than``: only
        those whose ``updated_at`` is strictly before that unix time)."""
        args = _Args()
        where = f"state = ANY({args(check_states(states))}::text[])"
        if older_than is not None:
            where += f" AND updated_at < {args(older_than)}"
        rows = await pg_tx(tx).fetch(
            f"SELECT {JOB_COLS} FROM jobs WHERE {where} ORDER BY updated_at, id "
            f"LIMIT {args(limit)}",
            *args.values,
        )
        return [job_from_row(r) for r in rows]

    async def recent(self, tx: Tx, limit: int = 20) -> list[JobRecord]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {JOB_COLS} FROM jobs ORDER BY created_at DESC, seq DESC LIMIT $1", limit
        )
        return [job_from_row(r) for r in rows]

    async def for_account(self, tx: Tx, account_id: int, limit: int = 20) -> list[JobRecord]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {JOB_COLS} FROM jobs WHERE account_id = $1 "
            "ORDER BY created_at DESC, seq DESC LIMIT $2",
            account_id,
            limit,
        )
        return [job_from_row(r) for r in rows]

    async def with_prefix(
        self, tx: Tx, prefix: str, *, account_id: int | None = None, limit: int = 2
    ) -> list[JobRecord]:
        # ``starts_with`` is exact under any collation; the primary key's order is
        # only a hint here, so the account filter does the narrowing.
        rows = await pg_tx(tx).fetch(
            f"SELECT {JOB_COLS} FROM jobs WHERE starts_with(id, $1) "
            "AND ($2::bigint IS NULL OR account_id = $2) ORDER BY id LIMIT $3",
            prefix,
            account_id,
            limit,
        )
        return [job_from_row(r) for r in rows]

    async def count_active(self, tx: Tx, account_id: int) -> int:
        n = await pg_tx(tx).fetchval(
            "SELECT COUNT(*) FROM jobs WHERE account_id = $1 AND state = ANY($2::text[])",
            account_id,
            list(ACTIVE_STATES),
        )
        return int(n or 0)

    async def count_since(self, tx: Tx, account_id: int, since: float) -> int:
        """Jobs created by ``account_id`` at or after the unix timestamp ``since``."""
        n = await pg_tx(tx).fetchval(
            "SELECT COUNT(*) FROM jobs WHERE account_id = $1 AND created_at >= $2",
            account_id,
            since,
        )
        return int(n or 0)

    async def mark_notified(self, tx: Tx, job_id: str) -> bool:
        found = await pg_tx(tx, write=True).fetchval(
            "UPDATE jobs SET notified = TRUE, updated_at = $1 WHERE id = $2 AND NOT notified "
            "RETURNING id",
            self._clock(),
            job_id,
        )
        return found is not None

    async def unnotified_terminal(self, tx: Tx, limit: int = 100) -> list[JobRecord]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {JOB_COLS} FROM jobs WHERE state IN {TERMINAL_SQL} AND NOT notified "
            "ORDER BY updated_at, id LIMIT $1",
            limit,
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
        """See ``JobRepo.claim_many``.  With ``limit``, the limit's row is locked
        first (until commit): every claimer in every process queues there, so the
        count of live claims read after the lock is exact."""
        t = pg_tx(tx, write=True)
        if not queues or count < 1:
            return []
        now = self._clock()
        if limit is not None:
            row = await t.fetchrow(
                "SELECT value, not_before FROM limits WHERE name = $1 FOR UPDATE", limit
            )
            if row is not None:
                if float(row["not_before"]) > now:
                    return []
                count = min(count, int(row["value"]) - await self.in_flight(t, now))
                if count < 1:
                    return []
        # SKIP LOCKED: a candidate another claimer is taking right now is passed
        # over instead of waited for; FOR UPDATE re-checks claimed_by on the newest
        # row version, so a job claimed and committed meanwhile is passed over too.
        rows = await t.fetch(
            "UPDATE jobs SET claimed_by = $1, claimed_at = $2, lease_until = $3 "
            # ARRAY(...): the candidates are picked (and locked) once, before the
            # update; an IN (...) semi-join may be planned to re-run the pick.
            "WHERE id = ANY(ARRAY(SELECT j.id FROM jobs j "
            "            WHERE j.state = 'RESERVED' AND j.claimed_by IS NULL "
            f"           AND j.queue = ANY($4::text[]) {FAIR_ORDER} "
            "            LIMIT $5 FOR UPDATE SKIP LOCKED)) "
            f"AND claimed_by IS NULL RETURNING {JOB_COLS}",
            worker_id,
            now,
            lease_until,
            list(queues),
            count,
        )
        return sorted((job_from_row(r) for r in rows), key=lambda j: (j.created_at, j.id))

    async def renew(
        self, tx: Tx, worker_id: str, job_ids: Sequence[str], lease_until: float
    ) -> list[str]:
        if not job_ids:
            return []
        rows = await pg_tx(tx, write=True).fetch(
            "UPDATE jobs SET lease_until = $1 WHERE id = ANY($2::text[]) "
            f"AND claimed_by = $3 AND state NOT IN {TERMINAL_SQL} RETURNING id",
            lease_until,
            list(job_ids),
            worker_id,
        )
        return [r["id"] for r in rows]

    async def release(self, tx: Tx, job_id: str, worker_id: str) -> bool:
        found = await pg_tx(tx, write=True).fetchval(
            "UPDATE jobs SET claimed_by = NULL, claimed_at = NULL, lease_until = NULL "
            "WHERE id = $1 AND claimed_by = $2 AND state = 'RESERVED' RETURNING id",
            job_id,
            worker_id,
        )
        return found is not None

    async def expired_claims(self, tx: Tx, now: float, limit: int = 100) -> list[JobRecord]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {JOB_COLS} FROM jobs WHERE claimed_by IS NOT NULL "
            f"AND state NOT IN {TERMINAL_SQL} AND lease_until < $1 ORDER BY lease_until LIMIT $2",
            now,
            limit,
        )
        return [job_from_row(r) for r in rows]

    async def take_over(
        self, tx: Tx, job_id: str, worker_id: str, *, now: float, lease_until: float
    ) -> JobRecord | None:
        row = await pg_tx(tx, write=True).fetchrow(
            "UPDATE jobs SET claimed_by = $1, claimed_at = $2, lease_until = $3 "
            f"WHERE id = $4 AND state NOT IN {TERMINAL_SQL} "
            "AND (claimed_by IS NULL OR lease_until < $2) "
            f"RETURNING {JOB_COLS}",
            worker_id,
            now,
            lease_until,
            job_id,
        )
        return None if row is None else job_from_row(row)

    async def queued(
        self, tx: Tx, queues: Sequence[str] | None = None, limit: int = 500
    ) -> list[JobRecord]:
        args = _Args()
        where = "j.state = 'RESERVED' AND j.claimed_by IS NULL"
        if queues is not None:
            if not queues:
                return []
            where += f" AND j.queue = ANY({args(list(queues))}::text[])"
        rows = await pg_tx(tx).fetch(
            f"SELECT {JOB_COLS_J} FROM jobs j WHERE {where} {FAIR_ORDER} LIMIT {args(limit)}",
            *args.values,
        )
        return [job_from_row(r) for r in rows]

    async def in_flight(self, tx: Tx, now: float) -> int:
        n = await pg_tx(tx).fetchval(
            "SELECT COUNT(*) FROM jobs WHERE claimed_by IS NOT NULL "
            f"AND state IN {CLAIMED_SQL} AND lease_until >= $1",
            now,
        )
        return int(n or 0)
