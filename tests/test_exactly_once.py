"""Exactly once end to end: the agent in a real process, a real Event Explorer, and between them a proxy
that answers later than the exporter's timeout after the explorer stored the batch (the case that stored
copies and counted delivered events as dropped). The agent resends with the same ``log.record.uid``s;
the explorer keeps one of each; the agent counts every event exported, none dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocesses")

N = 2000
NAME = "exactly_once_evt"


class SlowProxy(ThreadingHTTPServer):
    """Forwards each POST to the explorer, then holds the first ``slow`` answers for ``delay`` seconds."""

    daemon_threads = True

    def __init__(self, upstream: str, slow: int, delay: float) -> None:
        self.upstream, self.slow, self.delay = upstream, slow, delay
        self.forwarded = 0  # requests the explorer answered
        self.lock = threading.Lock()
        self.session = requests.Session()
        self.session.trust_env = False
        super().__init__(("127.0.0.1", 0), _Forward)


class _Forward(BaseHTTPRequestHandler):
    server: SlowProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
        answer = self.server.session.post(self.server.upstream + self.path, data=body, headers=headers, timeout=30)
        with self.server.lock:
            self.server.forwarded += 1
            late = self.server.forwarded <= self.server.slow
        if late:
            time.sleep(self.server.delay)  # stored upstream, answered too late for the exporter
        with contextlib.suppress(OSError):  # the exporter may have hung up meanwhile
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "application/x-protobuf"))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)


@pytest.fixture
def proxy(explorer: str) -> Iterator[SlowProxy]:
    server = SlowProxy(explorer, slow=2, delay=1.0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stored(explorer: str) -> int:
    session = requests.Session()
    session.trust_env = False
    names = session.get(explorer + "/api/summary", timeout=10).json()["names"]
    return next((int(n["count"]) for n in names if n["name"] == NAME), 0)


def test_timed_out_resends_are_stored_once_and_counted_exported(explorer: str, proxy: SlowProxy) -> None:
    endpoint = f"http://127.0.0.1:{proxy.server_address[1]}/v1/logs"
    code = f"""
        import json, time, sqreen_otel
        sqreen_otel.configure(endpoint={endpoint!r}, timeout=0.5, flush_interval=60, first_seen_delay=None,
                              max_export_batch_size=500)
        for i in range({N}):
            sqreen_otel.track({NAME!r}, {{"properties": {{"i": i}}}})
        deadline = time.monotonic() + 30
        while not sqreen_otel.flush(5) and time.monotonic() < deadline:
            time.sleep(0.2)
        print(json.dumps(sqreen_otel.stats()))
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))}
    env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    time.sleep(1.5)  # the late answers finish
    assert proxy.forwarded > N // 500  # the explorer did receive resends
    assert stored(explorer) == N  # ...and kept each event once, by log.record.uid
    assert (stats["exported"], stats["uncertain"], sum(stats["dropped"].values()), stats["queued"]) == (N, 0, 0, 0)
    assert stats["resent"] >= 500  # the batches whose first answer came too late
