"""A private PostgreSQL server on loopback for the tests and benchmarks (Debian's ``postgresql`` package).

``Server.start()`` installs the package when it is missing (as root, through apt-get), creates a
cluster in a fresh temporary folder with ``initdb`` and starts it with ``pg_ctl`` on a free port. As
root, the cluster belongs to the ``postgres`` user (PostgreSQL refuses to run as root). Each test
gets a schema of its own (``Server.url(schema)``), which is much faster than a database of its own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

HOST = "127.0.0.1"


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_installed() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``; installs Debian's ``postgresql`` when missing and we are root."""
    bindir = _bindir()
    if bindir is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env, capture_output=True, timeout=900
        )
        bindir = _bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return bindir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """One PostgreSQL cluster; ``stop()`` (or the context manager) shuts it down and removes its files."""

    def __init__(self) -> None:
        self.bindir = ensure_installed()
        self.root = Path(tempfile.mkdtemp(prefix="sqreen_otel_pg_"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER") or "postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self) -> Server:
        initdb, pg_ctl = str(self.bindir / "initdb"), str(self.bindir / "pg_ctl")
        self._run(initdb, "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync")
        log = str(self.root / "server.log")
        self._run(pg_ctl, "-D", str(self.data), "-l", log, "-o", self._options(), "-w", "start")
        return self

    def _options(self) -> str:
        return (
            f"-h {HOST} -p {self.port} -k {self.root}"  # loopback and a socket folder of our own
            " -c synchronous_commit=off -c max_connections=200 -c shared_buffers=128MB"
        )

    def restart(self) -> None:
        """Stop (closing every connection) and start again on the same port and data."""
        log = str(self.root / "server.log")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", log, "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, schema: str | None = None) -> str:
        """A libpq URL; with ``schema``, its tables go to that schema (created here if needed)."""
        base = f"postgresql://{self.user}@{HOST}:{self.port}/postgres"
        if schema is None:
            return base
        import psycopg

        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')  # our own generated name, never input
        return base + "?" + urllib.parse.urlencode({"options": f"-csearch_path={schema}"})

    def new_url(self) -> str:
        """A URL on a brand-new empty schema."""
        return self.url("t_" + uuid.uuid4().hex[:16])


def wait_until(predicate: object, timeout: float = 10.0) -> bool:
    """Poll ``predicate()`` until it is true (for replicas converging); ``False`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False
