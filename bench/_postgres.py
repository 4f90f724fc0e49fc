"""A throwaway PostgreSQL server for one bench run (bench's own; not the test suite's).

``initdb`` into a temporary folder, ``pg_ctl start`` on 127.0.0.1 at a free port,
one database created, and at the end ``pg_ctl stop`` and the folder removed. The
server keeps PostgreSQL's DEFAULT durability settings (fsync, synchronous_commit,
full_page_writes, shared_buffers, max_connections all untouched): a benchmark of a
durable queue must pay for durability. Only where it listens changes: 127.0.0.1, a
free port, its socket in the temporary folder; local connections are trusted.

Binaries are looked up on PATH, then in ``/usr/lib/postgresql/*/bin``. ``initdb``
refuses to run as root: as root the folder is given to the ``postgres`` user and
every command runs through ``runuser -u postgres --``. A watchdog shell stops the
server and removes the folder if the bench process dies without ``stop()``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

SUPERUSER = "postgres"
DATABASE = "imagine_bench"


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    if found:
        folder = Path(os.path.realpath(found)).parent
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.parent.name)
        except ValueError:
            return 0.0

    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """``with PostgresServer() as pg: pg.url`` — a running server with one database."""

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError(
                "PostgreSQL binaries (initdb, pg_ctl, postgres) not found on PATH or in "
                "/usr/lib/postgresql/*/bin: install PostgreSQL (e.g. apt-get install postgresql)"
            )
        self.bindir = found
        self.root = Path(tempfile.mkdtemp(prefix="imagine-bench-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self._started = False
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", SUPERUSER, "--", *cmd] if self.as_root else cmd

    def _run(self, *args: str) -> str:
        cmd = self._cmd(*args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{tail}"
            )
        return proc.stdout

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, user=SUPERUSER, group=None)
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        # Where it listens, nothing else: durability and sizing stay the defaults.
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
            )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self._started = True
        self._watch()
        self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {DATABASE}",
        )  # fmt: skip
        return self

    def settings(self, *names: str) -> dict[str, str]:
        """``SHOW`` values of the running server (to print what the bench ran on)."""
        out: dict[str, str] = {}
        for name in names:
            out[name] = self._run(
                "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                "-d", DATABASE, "-tAc", f"SHOW {name}",
            ).strip()  # fmt: skip
        return out

    def _watch(self) -> None:
        """Stop the server and remove its files if this process dies without ``stop()``."""
        stop = " ".join(self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"))
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"{stop} >/dev/null 2>&1; rm -rf {self.root}"
        )
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # survives a Ctrl-C of the bench's process group
        )

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
                self._started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
