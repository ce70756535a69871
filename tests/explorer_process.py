"""A real ``sqreen-otel serve`` process on loopback, shared by the explorer and CLI tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

BIN = Path(sys.executable).parent
CLI = str(BIN / "sqreen-otel")
HOST = "127.0.0.1"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))},
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PYTHONUNBUFFERED": "1",
}
MiB = 1024 * 1024
http = requests.Session()
http.trust_env = False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A running ``sqreen-otel serve``: its URL, process and log (stdout and stderr together)."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def serve(tmp: Path, *args: str, port: int | None = None, **popen: Any) -> Iterator[str]:
    """``sqreen-otel serve`` in a subprocess; yields its base URL once it answers HTTP (20 s deadline)."""
    with serve_process(tmp, *args, port=port, **popen) as served:
        yield served.url


@contextlib.contextmanager
def serve_process(
    tmp: Path, *args: str, port: int | None = None, db: Path | None = None, **popen: Any
) -> Iterator[Served]:
    """Like ``serve``, with the process (to signal it) and its log; ``db`` defaults to ``tmp/events.sqlite``."""
    port = port or free_port()
    log_path = tmp / f"serve-{port}.log"
    log = open(log_path, "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [CLI, "serve", "--db", str(db or tmp / "events.sqlite"), "--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        **{"env": ENV, **popen},
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"sqreen-otel serve exited with {proc.returncode}:\n{log.read()}")
            try:
                http.get(url + "/api/summary", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # serve binds before it starts answering
                if time.monotonic() > deadline:
                    pytest.fail("sqreen-otel serve did not answer within 20 s")
                time.sleep(0.05)
        yield Served(url, proc, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
