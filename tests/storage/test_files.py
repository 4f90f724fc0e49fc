"""FileStore: atomic writes into folders made on demand, keys kept inside the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.files import FileStore


async def test_writes_read_back_and_folders_appear_on_demand(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    await store.put_many([("jobs/a/result-0.png", b"one"), ("jobs/a/result-1.png", b"two")])
    await store.put_many([("jobs/b/source-0.png", b"three")])
    assert await store.get("jobs/a/result-1.png") == b"two"
    assert await store.exists("jobs/b/source-0.png")
    assert not await store.exists("jobs/c/result-0.png")
    # Atomic replace leaves no temp files behind.
    assert sorted(p.name for p in (tmp_path / "files" / "jobs" / "a").iterdir()) == [
        "result-0.png",
        "result-1.png",
    ]


async def test_a_deleted_folder_is_made_again(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.put_many([("jobs/a/x", b"1")])
    await store.delete_dir("jobs/a")
    assert not await store.exists("jobs/a/x")
    await store.put_many([("jobs/a/x", b"2")])
    assert await store.get("jobs/a/x") == b"2"


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../x", "jobs/../../x", "jobs//x", "jobs/./x", "jobs\\..\\x"]
)
async def test_keys_cannot_leave_the_store(tmp_path: Path, key: str) -> None:
    store = FileStore(tmp_path / "files")
    with pytest.raises(ValueError, match="escapes"):
        await store.put_many([(key, b"x")])
    with pytest.raises(ValueError, match="escapes"):
        await store.get(key)
    assert not (tmp_path / "x").exists()


async def test_job_files_and_the_database_are_private(tmp_path: Path) -> None:
    """Users' images and the ledger are the bot's own: 0600 files, 0700 folders,
    whatever the process umask."""
    import os
    import stat

    from storage import open_store

    old = os.umask(0o022)
    try:
        files = FileStore(tmp_path / "files")
        await files.put_many([("jobs/j1/source-0", b"PNG")])
        store = await open_store(f"sqlite:///{tmp_path}/db/imagine.sqlite3")
        await store.close()
    finally:
        os.umask(old)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(tmp_path / "files" / "jobs" / "j1" / "source-0") == 0o600
    assert mode(tmp_path / "files" / "jobs" / "j1") == 0o700
    assert mode(tmp_path / "db" / "imagine.sqlite3") == 0o600
    assert mode(tmp_path / "db") == 0o700
