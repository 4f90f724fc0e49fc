"""SQLite schema migrations.

The scripts are plain SQL files in ``storage/sqlite/sql/``, applied in name order:
``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1`` (tracked in
``PRAGMA user_version``).  Append new files; never edit a released one.  Each
script is applied in its own ``BEGIN IMMEDIATE`` transaction together with the
``user_version`` bump, so a crash mid-migration leaves the previous version intact
and two processes starting at once cannot both apply it.
"""

from __future__ import annotations

import sqlite3
from importlib import resources


def _load() -> list[str]:
    folder = resources.files("storage.sqlite") / "sql"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(folder / name).read_text(encoding="utf-8") for name in names]


MIGRATIONS: list[str] = _load()
"""Ordered migration scripts (``sql/NNNN_*.sql``); the schema version equals the
number applied."""

SCHEMA_VERSION = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements.

    ``executescript`` would COMMIT our surrounding transaction first, so migrations
    are executed statement by statement; ``sqlite3.complete_statement`` knows about
    ``;`` inside trigger bodies.
    """
    statements: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            if stmt.strip(";").strip() and not _only_comments(stmt):
                statements.append(stmt)
            buf = ""
    if buf.strip(";").strip() and not _only_comments(buf):
        raise ValueError(f"incomplete SQL statement in migration: {buf[:80]!r}")
    return statements


def _only_comments(stmt: str) -> bool:
    lines = [ln.strip() for ln in stmt.splitlines()]
    return all(not ln or ln.startswith("--") or ln == ";" for ln in lines)
