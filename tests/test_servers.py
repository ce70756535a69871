"""End to end against real server processes on loopback: what a real Receiver in this process decoded.

- gunicorn, 2 forked sync workers, serving ``examples/flask_app.py``. The module is also the gunicorn
  config (``-c python:examples.flask_app``): its ``post_fork`` hook calls ``configure()`` in each worker,
  with ``SQREEN_OTEL_*`` from the environment. Configuring after the fork (not at import in the master)
  gives each worker its own pipeline and its own resource (``service.instance.id``, and ``process.pid``
  with the SDK's ``process`` detector), and the master never exports anything.
- uvicorn serving ``examples/fastapi_app.py`` (``configure()`` in the app's lifespan).
- ``examples/django_app/app.py`` served by its own ``__main__`` (wsgiref).
- ``opentelemetry-instrument`` with our distro and configurator, on an app that never imports our
  integrations; and with only ``OTEL_LOGS_EXPORTER=sqreen_otel``, whose outcome depends on which
  configurator entry point OpenTelemetry finds first: both orders are forced and pinned here.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from sqreen_otel.receiver import Receiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX servers and signals")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
MASK = "[REDACTED]"
UA = "sqreen-e2e/1.0"
SECRETS = (b"hunter2", b"wonderland", b"trustno1", b"not-the-password")
ALICE = {"email": "alice@example.com", "password": "wonderland"}
WRONG = {"email": "alice@example.com", "password": "not-the-password"}
MALLORY = {"email": "mallory@example.com", "password": "trustno1"}  # right password, blocked user
RESET = {"email": "alice@example.com", "password": "hunter2"}  # a secret in a custom event's body
Event = dict[str, Any]


# -- helpers ------------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_", "GUNICORN_"))}
    env.update(
        SQREEN_OTEL_ENDPOINT=receiver.endpoint,
        SQREEN_OTEL_FLUSH_INTERVAL="0.3",
        NO_PROXY="127.0.0.1,localhost",  # the exporter (requests) must not go through a proxy
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(cmd: list[str], env: dict[str, str], port: int, log: Path, cwd: Path = REPO) -> Iterator[subprocess.Popen]:
    """Start a server, wait until ``port`` accepts connections, always kill it afterwards."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"server not listening on {port} within 20 s:\n{log.read_text()}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: gunicorn's workers too
            proc.wait(timeout=10)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=timeout)


class Client(requests.Session):
    """Our user agent, no proxy from the environment (loopback only), a timeout on every request."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.headers["User-Agent"] = UA

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return super().request(*args, **kwargs)


client = Client


def by_tag(events: list[Event]) -> dict[str, list[Event]]:
    """Events by the ``n`` query parameter each test request carries, unique per request."""
    tagged: dict[str, list[Event]] = {}
    for event in events:
        tagged.setdefault(str(event["attributes"].get("sqreen.request.params.n")), []).append(event)
    return tagged


def settle(receiver: Receiver, count: int, timeout: float = 15) -> dict[str, Event]:
    """Wait for ``count`` events, give duplicates a chance to show up, check there are none."""
    receiver.wait_for(count, timeout)
    time.sleep(0.5)  # more than a flush interval
    events = receiver.events()
    tagged = by_tag(events)
    assert len(events) == count, Counter(e["name"] for e in events)
    assert {tag: len(group) for tag, group in tagged.items() if len(group) != 1} == {}
    return {tag: group[0] for tag, group in tagged.items()}


def assert_request(event: Event, path: str, method: str = "POST", client_address: str = HOST) -> None:
    attributes = event["attributes"]
    assert attributes["client.address"] == client_address
    assert attributes["url.path"] == path
    assert attributes["http.request.method"] == method
    assert attributes["user_agent.original"] == UA


def assert_no_secret_on_the_wire(receiver: Receiver) -> None:
    for body in receiver.bodies():
        for secret in SECRETS:
            assert secret not in body


def reference(page: str) -> str:
    found = re.search(r"Reference: ([0-9a-f]{32})", page)
    assert found is not None, page
    return found.group(1)


# -- gunicorn + Flask ---------------------------------------------------------------------------------


def gunicorn(port: int, *args: str) -> list[str]:
    import gunicorn.config

    no_control = any("--no-control-socket" in (s.cli or ()) for s in gunicorn.config.KNOWN_SETTINGS)
    return [
        str(BIN / "gunicorn"),
        *("-c", "python:examples.flask_app"),  # its post_fork hook configures each worker
        *("--workers", "2", "--bind", f"{HOST}:{port}", "--graceful-timeout", "10"),
        *(["--no-control-socket"] if no_control else []),  # gunicorn >= 24 would write under ~
        *args,
        "examples.flask_app:create_app()",
    ]


def booted_workers(log: Path) -> set[int]:
    return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log.read_text())}


def test_gunicorn_forked_workers(receiver: Receiver, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "gunicorn.log"
    env = server_env(receiver, OTEL_SERVICE_NAME="shop-gunicorn", OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process")
    url = f"http://{HOST}:{port}"
    with serve(gunicorn(port), env, port, log) as proc:
        anonymous, alice = client(), client()
        bad = anonymous.post(f"{url}/login?n=fail", data=WRONG)
        assert bad.status_code == 401
        ok = alice.post(f"{url}/login?n=ok", data=ALICE, allow_redirects=False)
        assert ok.status_code == 302
        reset = alice.post(f"{url}/reset-password?n=reset", data=RESET)
        assert reset.status_code == 200
        blocked = anonymous.post(f"{url}/login?n=blocked", data=MALLORY)
        assert blocked.status_code == 403
        assert "This account is blocked" in blocked.text
        sent = 4

        # Concurrent requests until both workers have answered some (bounded).
        def burst(tag: str) -> int:
            with client() as session:
                return session.post(f"{url}/reset-password?n={tag}", data={"email": "bob@example.org"}).status_code

        pids: set[int] = set()
        with ThreadPoolExecutor(8) as pool:
            for round_ in range(6):
                statuses = list(pool.map(burst, [f"burst-{round_}-{i}" for i in range(16)]))
                assert statuses == [200] * 16
                sent += 16
                receiver.wait_for(sent, 15)
                pids = {e["resource"]["process.pid"] for e in receiver.events()}
                if len(pids) >= 2:
                    break
        events = settle(receiver, sent)

        workers = booted_workers(log)
        assert len(pids) == 2 and pids <= workers and proc.pid not in pids, (pids, workers, proc.pid)
        instances: dict[int, set[str]] = {}
        for event in events.values():
            instances.setdefault(event["resource"]["process.pid"], set()).add(event["resource"]["service.instance.id"])
            assert event["resource"]["service.name"] == "shop-gunicorn"
        assert all(len(ids) == 1 for ids in instances.values())
        assert len(set().union(*instances.values())) == 2  # one instance id per worker, none shared

        failed, succeeded = events["fail"]["attributes"], events["ok"]["attributes"]
        assert events["fail"]["name"] == events["ok"]["name"] == "sq.sdk.users.login"
        assert (failed["sqreen.properties.success"], succeeded["sqreen.properties.success"]) == (False, True)
        assert failed["sqreen.user.email"] == succeeded["sqreen.user.email"] == "alice@example.com"
        assert failed["sqreen.request.params.password"] == succeeded["sqreen.request.params.password"] == MASK
        for tag in ("fail", "ok", "blocked"):
            assert_request(events[tag], "/login")
        assert_request(events["reset"], "/reset-password")
        custom = events["reset"]["attributes"]
        assert events["reset"]["name"] == "password_reset"
        assert custom["sqreen.properties.email_domain"] == "example.com"
        assert custom["sqreen.user.email"] == "alice@example.com"  # identified from the session cookie
        assert custom["sqreen.request.body"] == {"email": "alice@example.com", "password": MASK}
        assert custom["sqreen.request.params.password"] == MASK
        denied = events["blocked"]["attributes"]
        assert events["blocked"]["name"] == "sq.action.block_user"
        assert denied["sqreen.user.email"] == "mallory@example.com"
        assert denied["sqreen.action.id"] == reference(blocked.text)  # the worker that refused, in both
        assert "sqreen.user.email" not in events["burst-0-0"]["attributes"]  # no user leaks between requests

        # Tracked right before SIGTERM: the workers deliver them on their way out.
        for i in range(4):
            assert burst(f"last-{i}") == 200
        assert stop(proc) == 0
    events = settle(receiver, sent + 4)
    assert {f"last-{i}" for i in range(4)} <= set(events)
    assert "Worker exiting" in log.read_text()
    assert_no_secret_on_the_wire(receiver)


def test_gunicorn_sigterm_delivers_what_only_the_exit_flush_can(receiver: Receiver, tmp_path: Path) -> None:
    # No heartbeat within the test and no first-seen export: only the workers' exit path can deliver.
    port, log = free_port(), tmp_path / "gunicorn.log"
    env = server_env(receiver, SQREEN_OTEL_FLUSH_INTERVAL="60", SQREEN_OTEL_FIRST_SEEN_DELAY="off")
    with serve(gunicorn(port), env, port, log) as proc, ThreadPoolExecutor(4) as pool:

        def reset(tag: str) -> int:
            with client() as session:
                return session.post(f"http://{HOST}:{port}/reset-password?n={tag}", data={"email": "a@b.c"}).status_code

        assert list(pool.map(reset, [f"exit-{i}" for i in range(12)])) == [200] * 12
        time.sleep(0.5)
        assert receiver.events() == []
        start = time.monotonic()
        assert stop(proc) == 0
        assert time.monotonic() - start < 10
    events = settle(receiver, 12)
    assert set(events) == {f"exit-{i}" for i in range(12)}
    assert len({e["resource"]["service.instance.id"] for e in events.values()}) <= 2


# -- uvicorn + FastAPI --------------------------------------------------------------------------------


def test_uvicorn_fastapi(receiver: Receiver, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "uvicorn.log"
    cmd = [str(BIN / "uvicorn"), "examples.fastapi_app:app", "--host", HOST, "--port", str(port), "--no-access-log"]
    url = f"http://{HOST}:{port}"
    with serve(cmd, server_env(receiver, OTEL_SERVICE_NAME="shop-fastapi"), port, log) as proc:
        anonymous, alice = client(), client()
        bad = anonymous.post(f"{url}/login?n=fail", data=WRONG)
        assert bad.status_code == 401
        ok = alice.post(f"{url}/login?n=ok", data=ALICE, allow_redirects=False)
        assert ok.status_code == 303
        reset = alice.post(f"{url}/api/reset-password?n=reset", json=RESET)
        assert reset.status_code == 200
        blocked = anonymous.post(
            f"{url}/login?n=blocked",
            data=MALLORY,
            headers={"Accept": "application/json"},
        )
        assert blocked.status_code == 403
        assert blocked.headers["content-type"] == "application/json"
        refusal = blocked.json()
        assert (refusal["error"], refusal["reason"]) == ("forbidden", "This account is blocked")
        events = settle(receiver, 4)
        last = anonymous.post(f"{url}/api/reset-password?n=last", json={"email": "eve@example.net"})
        assert last.status_code == 200
        # uvicorn shuts the app down (lifespan: sqreen_otel.shutdown() flushes), then re-raises the signal.
        assert stop(proc) == -signal.SIGTERM
    assert "Application shutdown complete" in log.read_text()
    assert settle(receiver, 5)["last"]["attributes"]["sqreen.properties.email_domain"] == "example.net"

    assert {tag: e["name"] for tag, e in events.items()} == {
        "fail": "sq.sdk.users.login",
        "ok": "sq.sdk.users.login",
        "reset": "password_reset",
        "blocked": "sq.action.block_user",
    }
    for tag in ("fail", "ok", "blocked"):
        assert_request(events[tag], "/login")
        assert events[tag]["attributes"]["sqreen.request.params.password"] == MASK
    assert events["fail"]["attributes"]["sqreen.properties.success"] is False
    assert events["ok"]["attributes"]["sqreen.properties.success"] is True
    assert_request(events["reset"], "/api/reset-password")
    custom = events["reset"]["attributes"]
    assert custom["sqreen.user.email"] == "alice@example.com"  # identified from the session
    assert custom["sqreen.properties.email_domain"] == "example.com"
    assert custom["sqreen.request.body"] == {"email": "alice@example.com", "password": MASK}
    assert events["blocked"]["attributes"]["sqreen.action.id"] == refusal["action_id"]
    assert events["ok"]["resource"]["service.name"] == "shop-fastapi"
    assert_no_secret_on_the_wire(receiver)


# -- Django -------------------------------------------------------------------------------------------


def test_django_wsgiref(receiver: Receiver, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "django.log"
    cmd = [sys.executable, "examples/django_app/app.py", str(port)]
    url = f"http://{HOST}:{port}"
    with serve(cmd, server_env(receiver), port, log) as proc:
        alice = client()
        ok = alice.post(f"{url}/login?n=ok", data=ALICE, allow_redirects=False)
        assert ok.status_code == 302
        reset = alice.post(f"{url}/reset-password?n=reset", data=RESET)
        assert reset.status_code == 200
        blocked = client().post(f"{url}/login?n=blocked", data=MALLORY)
        assert blocked.status_code == 403
        assert "This account is blocked" in blocked.text
        events = settle(receiver, 3)
        stop(proc)

    assert events["ok"]["name"] == "sq.sdk.users.login"
    assert events["ok"]["attributes"]["sqreen.properties.success"] is True
    assert events["ok"]["attributes"]["sqreen.request.params.password"] == MASK
    assert_request(events["ok"], "/login")
    custom = events["reset"]["attributes"]
    assert events["reset"]["name"] == "password_reset"
    assert_request(events["reset"], "/reset-password")
    assert custom["sqreen.user.email"] == "alice@example.com"  # identified from the signed-cookie session
    assert custom["sqreen.request.body"] == {"email": "alice@example.com", "password": MASK}
    assert events["blocked"]["attributes"]["sqreen.action.id"] == reference(blocked.text)
    assert_no_secret_on_the_wire(receiver)


# -- opentelemetry-instrument -------------------------------------------------------------------------

AUTO_APP = """
import sys

from flask import Flask, request
from werkzeug.serving import make_server

import sqreen_otel  # the public calls only: no integration, no configure()

sqreen_otel.block_user({"email": "mallory@example.com"})
sqreen_otel.block_ip("127.0.0.2")
app = Flask(__name__)


@app.post("/login")
def login():
    sqreen_otel.identify({"email": request.form["email"]})  # a blocked user: UserBlocked
    sqreen_otel.track("signed_in", {"properties": {"via": "form"}, "collect_body": True})
    return "welcome"


@app.get("/")
def home():
    sqreen_otel.track("visit", {"properties": {"page": "home"}})
    return "hello"


make_server("127.0.0.1", int(sys.argv[1]), app).serve_forever()
"""

OURS, OTELS = "sqreen_otel", "opentelemetry-distro"


def entry_points_first(tmp_path: Path, dist: str) -> Path:
    """A directory that, put on PYTHONPATH, makes ``dist``'s entry points come first.

    OpenTelemetry takes the first distro and configurator it finds unless one is named, and the
    order follows ``sys.path`` (then the file system): a copy of the distribution's metadata in a
    PYTHONPATH directory shadows the installed one, so both orders can be tested on any machine.
    """
    meta = importlib.metadata.distribution(dist)
    folder = tmp_path / "first" / f"{dist.replace('-', '_')}-{meta.version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {meta.version}\n")
    (folder / "entry_points.txt").write_text(meta.read_text("entry_points.txt") or "")
    return folder.parent


def request_from(port: int, source: str, method: str, path: str, body: str = "") -> tuple[int, str]:
    """An HTTP request from a chosen loopback source address (127.0.0.2 is a blocked IP)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10, source_address=(source, 0))
    headers = {"User-Agent": UA, "Content-Type": "application/x-www-form-urlencoded"}
    try:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def run_auto(
    tmp_path: Path, receiver: Receiver, first: str, wait_on: Receiver | None = None, **selection: str
) -> tuple[dict[str, Any], str]:
    """Serve AUTO_APP under opentelemetry-instrument; send a visit, a login, a blocked user, a blocked IP.

    ``first``: the distribution whose distro and configurator OpenTelemetry finds first.
    """
    script = tmp_path / "auto_app.py"
    script.write_text(textwrap.dedent(AUTO_APP))
    port, log = free_port(), tmp_path / "auto.log"
    env = server_env(
        receiver,
        SQREEN_OTEL_FLUSH_INTERVAL="0.5",
        OTEL_SERVICE_NAME="auto-test",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        PYTHONPATH=str(entry_points_first(tmp_path, first)),
        **selection,
    )
    cmd = [str(BIN / "opentelemetry-instrument"), sys.executable, str(script), str(port)]
    statuses: dict[str, Any] = {}
    # The script's folder is sys.path[0], ahead of PYTHONPATH: not the repository, whose
    # sqreen_otel.egg-info would put our entry points first whatever the test asks for.
    with serve(cmd, env, port, log, cwd=tmp_path) as proc:
        statuses["visit"] = request_from(port, HOST, "GET", "/?n=visit")
        statuses["login"] = request_from(port, HOST, "POST", "/login?n=login", urlencode(RESET))
        statuses["blocked_user"] = request_from(port, HOST, "POST", "/login?n=blocked_user", urlencode(MALLORY))
        try:
            statuses["blocked_ip"] = request_from(port, "127.0.0.2", "GET", "/?n=blocked_ip")
        except OSError as exc:  # 127.0.0.2 is loopback on Linux, not everywhere
            pytest.skip(f"cannot send from 127.0.0.2: {exc}")
        statuses["after"] = request_from(port, HOST, "GET", "/?n=after")
        (wait_on or receiver).wait_for(5, 15)  # one event per request
        stop(proc, signal.SIGINT)
    return statuses, log.read_text()


@pytest.mark.parametrize("first", [OURS, OTELS])
def test_auto_instrumentation_named(receiver: Receiver, tmp_path: Path, first: str) -> None:
    statuses, log = run_auto(
        tmp_path,
        receiver,
        first,
        OTEL_PYTHON_DISTRO="sqreen_otel",
        OTEL_PYTHON_CONFIGURATOR="sqreen_otel",
        OTEL_LOGS_EXPORTER="none",
    )
    assert_auto_full(receiver, statuses)
    assert "Configuration of configurator not loaded" in log  # named: whatever the order


@pytest.mark.parametrize("first", [OURS, OTELS])
def test_auto_instrumentation_logs_exporter_only(receiver: Receiver, tmp_path: Path, first: str) -> None:
    # Only OTEL_LOGS_EXPORTER names us: OpenTelemetry runs the first configurator and distro it finds.
    with Receiver() as otel_rx:
        statuses, log = run_auto(
            tmp_path,
            receiver,
            first,
            wait_on=receiver if first == OURS else otel_rx,
            OTEL_LOGS_EXPORTER="sqreen_otel",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=otel_rx.endpoint,
        )
        if first == OURS:
            # Ours first: selected by the logs exporter name, same result as naming distro and configurator.
            assert "Configuration of configurator not loaded, sqreen_otel already loaded" in log
            assert_auto_full(receiver, statuses)
            assert otel_rx.events() == []
            return
        # OpenTelemetry's first: its configurator puts our OTLPEventExporter behind its own batch
        # processor (OTEL_EXPORTER_OTLP_* settings, SQREEN_OTEL_* ignored), and its distro adds no
        # middleware: events still flow, but nothing refuses a blocked user (500) or IP (200).
        assert "Configuration of sqreen_otel not loaded, configurator already loaded" in log
        events = by_tag(otel_rx.wait_for(5, 15))
        assert receiver.events() == []
        assert (statuses["blocked_user"][0], statuses["blocked_ip"][0]) == (500, 200)
        assert {tag: [e["name"] for e in group] for tag, group in events.items()} == {
            "visit": ["visit"],
            "login": ["signed_in"],
            "blocked_user": ["sq.action.block_user"],
            "blocked_ip": ["visit"],
            "after": ["visit"],
        }
        for (event,) in events.values():
            assert event["resource"]["service.name"] == "auto-test"
            assert event["trace_id"].strip("0")
            assert event["attributes"]["url.path"] in ("/", "/login")  # from the server span only
        assert "sqreen.request.body" not in events["login"][0]["attributes"]  # no middleware, no body


def assert_auto_full(receiver: Receiver, statuses: dict[str, Any]) -> None:
    assert statuses["visit"][0] == statuses["login"][0] == statuses["after"][0] == 200
    assert statuses["blocked_user"][0] == 403 and "This account is blocked" in statuses["blocked_user"][1]
    assert statuses["blocked_ip"][0] == 403 and "Your IP address is blocked" in statuses["blocked_ip"][1]
    events = settle(receiver, 5)
    assert {tag: e["name"] for tag, e in events.items()} == {
        "visit": "visit",
        "login": "signed_in",
        "blocked_user": "sq.action.block_user",
        "blocked_ip": "sq.action.block_ip",
        "after": "visit",
    }
    for event in events.values():
        assert event["resource"]["service.name"] == "auto-test"
    traced = [events[tag] for tag in ("visit", "login", "blocked_user", "after")]
    assert all(e["trace_id"].strip("0") and e["span_id"].strip("0") for e in traced)  # the Flask instrumentor's
    assert len({e["trace_id"] for e in traced}) == 4
    # The distro puts our middleware around the instrumented Flask app: an IP is refused before
    # OpenTelemetry's server span starts, so that one event has no trace (and the request no span).
    assert (events["blocked_ip"]["trace_id"], events["blocked_ip"]["span_id"]) == ("", "")
    assert_request(events["visit"], "/", "GET")
    assert_request(events["login"], "/login")
    assert_request(events["blocked_ip"], "/", "GET", client_address="127.0.0.2")
    login = events["login"]["attributes"]
    assert login["sqreen.user.email"] == "alice@example.com"
    assert login["sqreen.request.body"] == {"email": "alice@example.com", "password": MASK}  # our middleware
    assert events["blocked_user"]["attributes"]["sqreen.action.id"] == reference(statuses["blocked_user"][1])
    assert events["blocked_ip"]["attributes"]["sqreen.action.id"] == reference(statuses["blocked_ip"][1])
    assert "sqreen.user.email" not in events["after"]["attributes"]  # each request starts anonymous
    assert_no_secret_on_the_wire(receiver)
