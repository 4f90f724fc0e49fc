"""What both backends share about the job, limit and audit tables: column lists,
SQL fragments valid in both dialects, state checks, and turning a row (an
``sqlite3.Row`` or an asyncpg ``Record``: both index by column name) into the
values of ``storage.interfaces``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from storage.errors import StorageError
from storage.interfaces import (
    CLAIMED_STATES,
    JOB_STATES,
    TERMINAL_STATES,
    AuditEntry,
    JobRecord,
    Limit,
)

JOB_COLS: Final = (
    "id, account_id, platform, chat, kind, params, estimate, hold_id, state, vendor_ref, "
    "attempts, result, cost, error, notified, created_at, updated_at, queue, claimed_by, "
    "lease_until, vendor"
)
# The same, for a query over ``jobs j`` (the fair order needs the alias).
JOB_COLS_J: Final = ", ".join("j." + c.strip() for c in JOB_COLS.split(","))
LIMIT_COLS: Final = "name, value, ceiling, not_before, cut_at"
AUDIT_COLS: Final = "id, at, actor, action, target, detail, allowed"


def tier_of(params: str) -> str | None:
    """The size tier (``resolution``) a job's params ask for, written into the
    ``tier`` column at intake so the dashboard's rollup never parses JSON."""
    try:
        value = json.loads(params).get("resolution")
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)


# Constant state lists inlined into SQL (they come from storage.interfaces, not callers).
CLAIMED_SQL: Final = "(" + ", ".join(f"'{s}'" for s in CLAIMED_STATES) + ")"
TERMINAL_SQL: Final = "(" + ", ".join(f"'{s}'" for s in TERMINAL_STATES) + ")"
# The claim order, for a query over ``jobs j``: the account with the fewest claimed
# jobs first, then the oldest job.
FAIR_ORDER: Final = (
    "ORDER BY (SELECT COUNT(*) FROM jobs r WHERE r.account_id = j.account_id"
    f"          AND r.claimed_by IS NOT NULL AND r.state IN {CLAIMED_SQL}),"
    "         j.created_at, j.id"
)


def job_from_row(row: Any) -> JobRecord:
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
        vendor=row["vendor"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        queue=row["queue"],
        claimed_by=row["claimed_by"],
        lease_until=None if row["lease_until"] is None else float(row["lease_until"]),
    )


def limit_from_row(row: Any) -> Limit | None:
    if row is None:
        return None
    return Limit(
        name=row["name"],
        value=int(row["value"]),
        ceiling=int(row["ceiling"]),
        not_before=float(row["not_before"]),
        cut_at=float(row["cut_at"]),
    )


def audit_from_row(row: Any) -> AuditEntry:
    return AuditEntry(
        id=int(row["id"]),
        at=float(row["at"]),
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=row["detail"],
        allowed=bool(row["allowed"]),
    )


def check_state(value: str) -> str:
    s = str(value)
    if s not in JOB_STATES:
        raise StorageError(f"unknown job state {value!r}; expected one of {JOB_STATES}")
    return s


def check_states(values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        # A bare string is a Sequence[str] too; 'NEW' must not mean ('N','E','W').
        values = (values,)
    out = [check_state(v) for v in values]
    if not out:
        raise StorageError("at least one job state is required")
    return out
