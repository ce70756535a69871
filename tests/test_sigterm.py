"""SIGTERM in real interpreter processes (and a real gunicorn), exporting to a real Receiver here.

Each script tracks events with a 60 s heartbeat and no first-seen export, so only the SIGTERM path
can deliver them before the process goes; the test counts exactly what arrived, by ``log.record.uid``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sqreen_otel import signals
from sqreen_otel.receiver import Receiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

BIN = Path(sys.executable).parent
N = 300


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_", "GUNICORN_"))}
    clean.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", PYTHONUNBUFFERED="1", **extra)
    return clean


PRELUDE = """
import logging, os, signal, sys, time
import sqreen_otel
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
"""

TRACK = """
for i in range(N):
    sqreen_otel.track("term_evt", {"properties": {"i": i}})
print("ready", flush=True)
time.sleep(60)
print("not stopped", flush=True)
"""


def start(body: str, receiver: Receiver, *, tail: str = "", **settings: object) -> subprocess.Popen[str]:
    options = {"flush_interval": 60, "first_seen_delay": None, "shutdown_timeout": 5, **settings}
    configure = f"sqreen_otel.configure(endpoint={receiver.endpoint!r}, **{options!r})"
    code = PRELUDE + f"N = {N}\n" + (textwrap.dedent(body) + tail).replace("CONFIGURE", configure)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "ready\n", (line, proc.communicate(timeout=10))
    return proc


def terminate(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out, err


def arrived(receiver: Receiver) -> list[int]:
    uids = receiver.uids()
    assert all(n == 1 for n in uids.values()), "an event arrived twice"
    return sorted(e["attributes"]["sqreen.properties.i"] for e in receiver.events())


def test_plain_script_flushes_on_sigterm_and_still_dies_of_it(receiver: Receiver) -> None:
    proc = start("CONFIGURE\n" + TRACK, receiver)
    assert receiver.events() == []  # nothing was due yet
    status, out, err = terminate(proc)
    assert status == -signal.SIGTERM, (out, err)  # the default action, re-raised after the flush
    assert arrived(receiver) == list(range(N))
    assert err == ""


def test_own_handler_installed_before_configure_is_chained(receiver: Receiver) -> None:
    # The application's handler ends the process hard (no atexit): only our flush before it delivers.
    proc = start(
        """
        def on_term(signum, frame):
            print("app handler", flush=True)
            os._exit(3)
        signal.signal(signal.SIGTERM, on_term)
        CONFIGURE
        """,
        receiver,
        tail=TRACK,
    )
    status, out, _ = terminate(proc)
    assert (status, out) == (3, "app handler\n")  # their handler ran and decided the exit status
    assert arrived(receiver) == list(range(N))


def test_own_handler_that_exits_normally_is_chained(receiver: Receiver) -> None:
    proc = start(
        """
        stop = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
        CONFIGURE
        for i in range(N):
            sqreen_otel.track("term_evt", {"properties": {"i": i}})
        print("ready", flush=True)
        while not stop:
            time.sleep(0.01)
        sqreen_otel.track("term_evt", {"properties": {"i": N}})  # after the signal: the exit hook sends it
        print("graceful", flush=True)
        """,
        receiver,
    )
    status, out, err = terminate(proc)
    assert (status, out) == (0, "graceful\n"), err
    assert arrived(receiver) == list(range(N + 1))


def test_handler_installed_after_configure_that_calls_the_previous_one(receiver: Receiver) -> None:
    # signal.signal() returns our handler; calling it, as well-behaved handlers do, delivers and
    # keeps the default outcome (death by SIGTERM).
    proc = start(
        """
        CONFIGURE
        previous = signal.getsignal(signal.SIGTERM)
        def on_term(signum, frame):
            print("app handler", flush=True)
            previous(signum, frame)
        signal.signal(signal.SIGTERM, on_term)
        """,
        receiver,
        tail=TRACK,
    )
    status, out, _ = terminate(proc)
    assert (status, out) == (-signal.SIGTERM, "app handler\n")
    assert arrived(receiver) == list(range(N))


def test_sigterm_while_the_main_thread_holds_the_queue_lock(receiver: Receiver) -> None:
    # stats() runs under the processor's lock, so the signal most likely lands while it is held: the
    # handler must not wait for a flush that needs that lock (it would wait shutdown_timeout, then lose all).
    proc = start(
        "CONFIGURE\n",
        receiver,
        tail=TRACK.replace("time.sleep(60)", "while True:\n    sqreen_otel.stats()"),
    )
    time.sleep(0.2)
    status, out, err = terminate(proc)
    assert status == -signal.SIGTERM, (out, err)
    assert arrived(receiver) == list(range(N))  # a handler waiting on that lock delivered nothing


def test_backend_down_at_sigterm_counts_the_rest_as_shutdown(receiver: Receiver) -> None:
    receiver.stop()  # refused from now on
    proc = start("CONFIGURE\n" + TRACK, receiver, shutdown_timeout=0.5)
    status, _, err = terminate(proc)  # within its 20 s: bounded by shutdown_timeout, not the 60 s sleep
    assert status == -signal.SIGTERM
    assert f"shutdown: {N} event(s) could not be delivered and were dropped" in err


def test_sigterm_ignored_by_the_application_stays_ignored(receiver: Receiver) -> None:
    proc = start(
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        CONFIGURE
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        """,
        receiver,
        tail=TRACK.replace("time.sleep(60)", "time.sleep(1.5)"),
    )
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out  # it slept on and exited normally: SIGTERM stayed ignored
    assert arrived(receiver) == list(range(N))  # delivered at the normal exit


def test_handle_sigterm_off_leaves_the_default(receiver: Receiver) -> None:
    proc = start("CONFIGURE\n" + TRACK, receiver, handle_sigterm=False)
    status, _, _ = terminate(proc)
    assert status == -signal.SIGTERM
    assert receiver.events() == []  # what the setting trades away


def test_configure_outside_the_main_thread_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    before = signal.getsignal(signal.SIGTERM)
    results: list[str] = []

    def configure_here() -> None:
        results.append(signals.install(lambda: None, lambda: None, lambda: 1.0))
        results.append(signals.install(lambda: None, lambda: None, lambda: 1.0))

    signals._warned_thread = False
    with caplog.at_level("WARNING", logger="sqreen_otel"):
        thread = threading.Thread(target=configure_here)
        thread.start()
        thread.join(5)
    assert results == ["not-main-thread", "not-main-thread"]
    warnings = [r.getMessage() for r in caplog.records if "outside the main thread" in r.getMessage()]
    assert len(warnings) == 1
    assert signal.getsignal(signal.SIGTERM) is before


def test_configure_from_a_thread_in_a_real_process(receiver: Receiver) -> None:
    proc = start(
        """
        import threading
        thread = threading.Thread(target=lambda: CONFIGURE)
        thread.start(); thread.join()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        """,
        receiver,
        tail=TRACK.replace("time.sleep(60)", "pass"),
    )
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, (out, err)
    assert "configure() ran outside the main thread" in err
    assert arrived(receiver) == list(range(N))  # the normal exit still delivers


# -- gunicorn --------------------------------------------------------------------------------------

APP = """
import signal
import sqreen_otel

sqreen_otel.configure()  # at import, in the worker: gunicorn has set its own handlers by then


def app(environ, start_response):
    handler = signal.getsignal(signal.SIGTERM)
    sqreen_otel.track("gunicorn_evt", {"properties": {"i": int(environ["QUERY_STRING"] or 0)}})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{getattr(handler, '__module__', handler)}".encode()]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gunicorn_worker_keeps_its_handler_and_delivers_at_graceful_exit(receiver: Receiver, tmp_path: Path) -> None:
    import gunicorn.config

    (tmp_path / "termapp.py").write_text(APP)
    port = free_port()
    no_control = any("--no-control-socket" in (s.cli or ()) for s in gunicorn.config.KNOWN_SETTINGS)
    cmd = [
        str(BIN / "gunicorn"), "--workers", "1", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10",
        *(["--no-control-socket"] if no_control else []), "termapp:app",
    ]  # fmt: skip
    settings = env(
        SQREEN_OTEL_ENDPOINT=receiver.endpoint, SQREEN_OTEL_FLUSH_INTERVAL="60", SQREEN_OTEL_FIRST_SEEN_DELAY="off"
    )
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=settings, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        session = requests.Session()
        session.trust_env = False
        answers = {session.get(f"http://127.0.0.1:{port}/?{i}", timeout=10).text for i in range(20)}
        assert answers == {"gunicorn.workers.base"}  # the worker's own handler: we left it alone
        assert receiver.events() == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert arrived(receiver) == list(range(20))


# -- uvicorn ---------------------------------------------------------------------------------------

ASGI_APP = """
import signal
import sqreen_otel

sqreen_otel.configure()  # at import


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{done}.complete"})
            if done == "shutdown":
                return
    handler = signal.getsignal(signal.SIGTERM)
    sqreen_otel.track("uvicorn_evt", {"properties": {"i": int(scope["query_string"] or 0)}})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": getattr(handler, "__module__", repr(handler)).encode()})
"""


def test_uvicorn_serves_with_its_handler_and_delivers_on_sigterm(receiver: Receiver, tmp_path: Path) -> None:
    # uvicorn installs its handler for the graceful shutdown, then restores the one it found (ours,
    # set at import) and raises the signal again: ours then delivers and the status stays SIGTERM's.
    (tmp_path / "termasgi.py").write_text(ASGI_APP)
    port = free_port()
    settings = env(
        SQREEN_OTEL_ENDPOINT=receiver.endpoint, SQREEN_OTEL_FLUSH_INTERVAL="60", SQREEN_OTEL_FIRST_SEEN_DELAY="off"
    )
    cmd = [str(BIN / "uvicorn"), "termasgi:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    log = tmp_path / "uvicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=settings, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        session = requests.Session()
        session.trust_env = False
        answers = {session.get(f"http://127.0.0.1:{port}/?{i}", timeout=10).text for i in range(20)}
        assert answers == {"uvicorn.server"}  # while serving, the server's handler is in place
        assert receiver.events() == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert arrived(receiver) == list(range(20))
