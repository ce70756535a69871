"""configure / atexit / shutdown in real interpreter processes exporting to a Receiver in this test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

import sqreen_otel
from sqreen_otel import pipeline
from sqreen_otel.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


def run(code: str, timeout: float = 20, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def indexes(receiver: Receiver) -> list[int]:
    return sorted(e["attributes"]["sqreen.properties.i"] for e in receiver.events())


def test_atexit_delivers_what_was_never_flushed(receiver: Receiver) -> None:
    # A 60 s heartbeat and no first-seen export: only the exit hook can deliver these.
    proc = run(
        f"""
        import sqreen_otel
        sqreen_otel.configure(endpoint={receiver.endpoint!r}, flush_interval=60, first_seen_delay=None,
                              shutdown_timeout=5)
        for i in range(3):
            sqreen_otel.track("exit_evt", {{"properties": {{"i": i}}}})
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")
    assert indexes(receiver) == [0, 1, 2]
    assert len(receiver.requests()) == 1


def test_atexit_delivers_with_an_application_provider_not_shut_down_at_exit(receiver: Receiver) -> None:
    # The application's own LoggerProvider does not shut down at exit: sqreen_otel's atexit hook must.
    proc = run(
        f"""
        from opentelemetry import _logs
        from opentelemetry.sdk._logs import LoggerProvider
        import sqreen_otel
        _logs.set_logger_provider(LoggerProvider(shutdown_on_exit=False))
        sqreen_otel.configure(endpoint={receiver.endpoint!r}, flush_interval=60, first_seen_delay=None)
        for i in range(3):
            sqreen_otel.track("exit_evt", {{"properties": {{"i": i}}}})
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert indexes(receiver) == [0, 1, 2]


def test_exit_with_the_backend_down_is_bounded_by_shutdown_timeout(receiver: Receiver) -> None:
    receiver.stop()  # connection refused on that port from now on
    start = time.monotonic()
    proc = run(
        f"""
        import sqreen_otel
        sqreen_otel.configure(endpoint={receiver.endpoint!r}, flush_interval=60, shutdown_timeout=0.5)
        for i in range(3):
            sqreen_otel.track("exit_evt", {{"properties": {{"i": i}}}})
        """
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert took < 3.0, took


def test_exit_with_a_hanging_backend_is_bounded_by_shutdown_timeout(receiver: Receiver) -> None:
    # The backend accepts the connection and never answers (within the 30 s exporter timeout).
    receiver.delay_next(10, times=5)
    start = time.monotonic()
    proc = run(
        f"""
        import sqreen_otel
        sqreen_otel.configure(endpoint={receiver.endpoint!r}, flush_interval=60, first_seen_delay=None,
                              shutdown_timeout=0.5, timeout=30)
        for i in range(3):
            sqreen_otel.track("exit_evt", {{"properties": {{"i": i}}}})
        """
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert receiver.pending_faults() == 4  # the exit hook really did try
    assert took < 4.0, took


# -- configure() ---------------------------------------------------------------------------------


def test_configure_validation_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SQREEN_OTEL_")]:
        monkeypatch.delenv(name)
    before = pipeline.current()
    dead = "http://127.0.0.1:9/v1/logs"
    with pytest.raises(ValueError, match=r"^flush_interval must be > 0, got -1$"):
        sqreen_otel.configure(endpoint=dead, flush_interval=-1)
    with pytest.raises(ValueError, match=r"^max_queue_size must be an integer, got 'lots'$"):
        sqreen_otel.configure(endpoint=dead, max_queue_size="lots")
    with pytest.raises(TypeError, match=r"unknown setting\(s\): flush_intervall"):
        sqreen_otel.configure(endpoint=dead, flush_intervall=1)

    monkeypatch.setenv("SQREEN_OTEL_FLUSH_INTERVAL", "-1")
    with pytest.raises(ValueError, match=r"^SQREEN_OTEL_FLUSH_INTERVAL must be > 0, got -1$"):
        sqreen_otel.configure(endpoint=dead)
    assert pipeline.current() is before  # a refused configuration changes nothing


def test_configure_twice_does_not_duplicate_events(receiver: Receiver) -> None:
    proc = run(
        f"""
        import json
        import sqreen_otel
        settings = dict(endpoint={receiver.endpoint!r}, flush_interval=60, first_seen_delay=None)
        first = sqreen_otel.configure(**settings)
        sqreen_otel.track("evt", {{"properties": {{"i": 0}}}})
        second = sqreen_otel.configure(**settings)
        third = sqreen_otel.configure(**settings)
        sqreen_otel.track("evt", {{"properties": {{"i": 1}}}})
        sqreen_otel.track("evt", {{"properties": {{"i": 2}}}})
        ok = sqreen_otel.flush(timeout=5)
        print(json.dumps([ok, first.stats(), second.stats(), third.stats()]))
        """
    )
    assert proc.returncode == 0, proc.stderr
    ok, first, second, third = json.loads(proc.stdout)
    assert ok is True
    assert indexes(receiver) == [0, 1, 2]  # each event once
    assert (first["tracked"], first["exported"]) == (1, 1)  # delivered when it was replaced
    assert (second["tracked"], second["exported"]) == (0, 0)
    assert (third["tracked"], third["exported"], third["queued"]) == (2, 2, 0)


def test_disabled_sends_nothing(receiver: Receiver) -> None:
    proc = run(
        f"""
        import json
        import sqreen_otel
        sqreen_otel.configure(endpoint={receiver.endpoint!r}, flush_interval=0.1, first_seen_delay=0)
        results = [sqreen_otel.track("evt", {{"properties": {{"i": i}}}}) for i in range(3)]
        sqreen_otel.auth_track(True, email="a@b.c")
        ok = sqreen_otel.flush(timeout=2)
        import time; time.sleep(0.3)
        print(json.dumps([results, ok, sqreen_otel.stats()["tracked"]]))
        """,
        SQREEN_OTEL_DISABLED="true",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[True, True, True], True, 0]
    assert receiver.requests() == []


def test_a_normal_run_prints_nothing(receiver: Receiver) -> None:
    proc = run(
        f"""
        import sqreen_otel
        sqreen_otel.configure(endpoint={receiver.endpoint!r}, flush_interval=0.2, first_seen_delay=0.05)
        sqreen_otel.track("password_reset", {{"properties": {{"i": 0, "password": "hunter2"}}}})
        sqreen_otel.auth_track(False, email="alice@example.com")
        sqreen_otel.auth_track(True, email="alice@example.com")
        sqreen_otel.signup_track(email="bob@example.com")
        sqreen_otel.identify({{"user_id": 1}})
        sqreen_otel.track("after_identify", {{"properties": {{"i": 1}}}})
        assert sqreen_otel.flush(timeout=5)
        sqreen_otel.stats()
        sqreen_otel.shutdown()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""
    events = receiver.events()
    assert [e["name"] for e in events] == [
        "password_reset",
        "sq.sdk.users.login",
        "sq.sdk.users.login",
        "sq.sdk.users.signup",
        "after_identify",
    ]
    assert events[0]["attributes"]["sqreen.properties.password"] != "hunter2"


# -- visible failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("127.0.0.1:4318/v1/logs", "endpoint must be an http:// or https:// URL ending in /v1/logs"),
        ("http://127.0.0.1:4318/v1/traces", "endpoint must be the OTLP/HTTP logs URL, its path ending in /v1/logs"),
        ("http://:4318/v1/logs", "endpoint has no host"),
    ],
)
def test_configure_refuses_an_endpoint_it_could_never_use(endpoint: str, message: str) -> None:
    before = pipeline.current()
    with pytest.raises(ValueError, match="^" + message):
        sqreen_otel.configure(endpoint=endpoint)
    assert pipeline.current() is before


def test_endpoint_from_the_environment_is_checked_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQREEN_OTEL_ENDPOINT", "localhost:4318")
    with pytest.raises(ValueError, match=r"^SQREEN_OTEL_ENDPOINT must be an http:// .*did you mean 'http://localhost"):
        sqreen_otel.configure()


def test_a_base_url_gets_the_logs_path_and_delivers(receiver: Receiver) -> None:
    proc = run(
        f"""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
        import sqreen_otel
        sqreen_otel.configure(endpoint="http://127.0.0.1:{receiver.port}", first_seen_delay=None)
        sqreen_otel.track("evt", {{"properties": {{"i": 0}}}})
        assert sqreen_otel.flush(5)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert indexes(receiver) == [0]
    assert f"INFO sqreen_otel: endpoint 'http://127.0.0.1:{receiver.port}' is a base URL; sending to /v1/logs" in (
        proc.stderr
    )


def test_track_before_configure_returns_false_and_warns_once() -> None:
    proc = run(
        """
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
        import sqreen_otel
        print(sqreen_otel.track("early", {"properties": {"i": 0}}), sqreen_otel.track("early"))
        sqreen_otel.auth_track(False, email="a@example.com")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "False False\n"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("WARNING sqreen_otel: event 'early' not recorded: no pipeline yet; call sqreen_otel")


def test_track_with_the_applications_own_sdk_provider_needs_no_configure(receiver: Receiver) -> None:
    # "In your own OpenTelemetry pipeline": the application wires our processor itself.
    proc = run(
        f"""
        from opentelemetry import _logs
        from opentelemetry.sdk._logs import LoggerProvider
        import sqreen_otel
        provider = LoggerProvider()
        processor = sqreen_otel.EventBatchProcessor(sqreen_otel.OTLPEventExporter({receiver.endpoint!r}))
        provider.add_log_record_processor(processor)
        _logs.set_logger_provider(provider)
        print(sqreen_otel.track("own", {{"properties": {{"i": 0}}}}))
        assert processor.flush(5)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True\n"
    assert indexes(receiver) == [0]
