"""The job tests run on both backends: SQLite files, and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, load_settings
from tests.conftest import base_env


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path}/db.sqlite3"


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def make(**extra: Any) -> Settings:
        env = base_env(tmp_path, DATABASE_URL=database_url)
        env.update({k: str(v) for k, v in extra.items()})
        return load_settings(env, env_file=None)

    return make
