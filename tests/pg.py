"""A throwaway PostgreSQL server for the test session, and a fresh database per test.

``pg_server`` (session scope) runs ``initdb`` into a temporary folder and starts
``postgres`` on 127.0.0.1 at a free port, with durability turned off for speed,
then migrates one template database.  ``pg_url`` (function scope) hands out a
clone of that template (``CREATE DATABASE ... TEMPLATE``: a copy, no migrations;
a background thread keeps a few ready) and drops it after the test.

Binaries are looked up on PATH, then in ``/usr/lib/postgresql/*/bin``.  Without
them the PostgreSQL tests are skipped locally but FAIL when ``CI`` is set: a CI
machine that cannot start PostgreSQL must not turn the suite green.  As root
(``initdb`` refuses to run as root) the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import queue
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

SUPERUSER = "postgres"
TEMPLATE = "imagine_template"
SPARE_DATABASES = 3
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    # Throwaway data: nothing needs to survive a crash.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Stores open pools of up to 20 connections, several stores per test.
    "max_connections": "200",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "autovacuum": "off",
}


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    if found:
        folder = Path(os.path.realpath(found)).parent
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.parent.name)
        except ValueError:
            return 0.0

    for initdb in sorted(candidates, key=version, reverse=True):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A running server; ``stop()`` shuts it down and removes its files."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="imagine-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0 if hasattr(os, "geteuid") else False
        self._started = False
        # CREATE DATABASE takes ~0.2 s however small the template: a thread keeps a
        # few ready while tests run, so a test rarely waits for its database.
        self._spares: queue.Queue[str] = queue.Queue(maxsize=SPARE_DATABASES)
        self._stopping = threading.Event()
        self._maker: threading.Thread | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{tail}"
            )

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.root, user=SUPERUSER, group=None)
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        conf = "".join(f"{k} = {v}\n" for k, v in SERVER_SETTINGS.items())
        conf += f"port = {self.port}\nunix_socket_directories = '{self.root}'\n"
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(conf)
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self._started = True
        self._watch()
        asyncio.run(self._make_template())
        self._maker = threading.Thread(target=self._make_spares, name="pg-spares", daemon=True)
        self._maker.start()

    def _watch(self) -> None:
        """Stop the server and remove its files if this process dies without
        ``stop()`` (a killed or timed-out test run): nothing is left running."""
        pg_ctl = f"{self.bindir / 'pg_ctl'} -D {self.data} -m immediate stop"
        if self.as_root:
            pg_ctl = f"runuser -u {SUPERUSER} -- {pg_ctl}"
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"{pg_ctl} >/dev/null 2>&1; rm -rf {self.root}"
        )
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed with our process group
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
        if self._maker is not None:
            self._maker.join(timeout=10)
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url("postgres"))

    async def _make_template(self) -> None:
        from storage import open_store

        conn = await self._admin()
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        store = await open_store(self.url(TEMPLATE))
        await store.close()

    async def _clone_template(self, conn: asyncpg.Connection) -> str:
        name = "t_" + secrets.token_hex(6)
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def _make_spares(self) -> None:
        """Thread: keep up to ``SPARE_DATABASES`` fresh clones ready."""

        async def run() -> None:
            conn = await self._admin()
            try:
                while not self._stopping.is_set():
                    name = await self._clone_template(conn)
                    while not self._stopping.is_set():
                        try:
                            self._spares.put(name, timeout=0.1)
                            break
                        except queue.Full:
                            continue
            finally:
                await conn.close()

        try:
            asyncio.run(run())
        except Exception:  # the server is going away; create_database falls back
            self._stopping.set()

    async def create_database(self) -> str:
        """A fresh, migrated database; returns its URL."""
        try:
            return self.url(self._spares.get_nowait())
        except queue.Empty:
            pass
        if self._maker is not None and self._maker.is_alive():
            with contextlib.suppress(queue.Empty):
                return self.url(await asyncio.to_thread(self._spares.get, timeout=30))
        conn = await self._admin()
        try:
            return self.url(await self._clone_template(conn))
        finally:
            await conn.close()

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        conn = await self._admin()
        try:
            # FORCE: a test that failed may have left connections open.
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL binaries (initdb, pg_ctl, postgres) not found"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(message)
    server = PgServer(bindir)
    try:
        server.start()
    except Exception as e:
        server.stop()
        if os.environ.get("CI"):
            pytest.fail(f"could not start PostgreSQL: {e}", pytrace=False)
        pytest.skip(f"could not start PostgreSQL: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_url(pg_server: PgServer) -> AsyncIterator[str]:
    """URL of a fresh, migrated database, dropped after the test."""
    url = await pg_server.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            await pg_server.drop_database(url)
