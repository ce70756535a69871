"""The fleet path for real: applications -> the OpenTelemetry Collector -> the Event Explorer.

The Collector is the one ``collector/build.sh`` builds from ``collector/builder-config.yaml`` (built
once into a cache folder; the first build takes minutes), running ``examples/otel-collector.yaml``
unchanged, configured only through the environment variables that file documents. The explorer is a
real ``sqreen-otel serve`` with a token. Senders are real processes: sqreen_otel's own exporter,
OpenTelemetry Python's ``OTLPLogExporter`` and OpenTelemetry JS's (``tests/js``).

Run as a script, this file is also the Python sender: ``python test_collector.py ours|official ...``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "otel-collector.yaml"
BUILD = ROOT / "collector" / "build.sh"
JS = Path(__file__).resolve().parent / "js"
TOKEN = "fleet-token-0123456789"
RESOURCE = "deployment.environment=test,host.name=app-1"


# -- senders (child processes) ---------------------------------------------------------------------


def send_ours(endpoint: str, run: str, count: int, start: int = 0) -> int:
    """sqreen_otel.configure() at ``endpoint``: ``count`` events (``seq`` from ``start``), and application logs.

    The application ships its own logs through OpenTelemetry's exporter on the provider that
    configure() uses, skipping our records (our processor sends those): both reach the Collector.
    """
    import logging

    from opentelemetry._logs import get_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, LogRecordProcessor, ReadWriteLogRecord
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    import sqreen_otel

    class ApplicationLogs(LogRecordProcessor):
        def __init__(self, inner: LogRecordProcessor) -> None:
            self.inner = inner

        def on_emit(self, log_record: ReadWriteLogRecord) -> None:
            scope = log_record.instrumentation_scope
            if scope is None or scope.name != "sqreen_otel":
                self.inner.on_emit(log_record)

        def shutdown(self) -> None:
            self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return self.inner.force_flush(timeout_millis)

    sqreen_otel.configure(endpoint=endpoint, flush_interval=0.5, first_seen_delay="off")
    provider = get_logger_provider()
    assert isinstance(provider, LoggerProvider)
    app_logs = BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint))
    provider.add_log_record_processor(ApplicationLogs(app_logs))
    app = logging.getLogger("shop.http")
    app.addHandler(LoggingHandler(logger_provider=provider))
    app.propagate = False
    for seq in range(start, start + count):
        sqreen_otel.track(
            "password_reset",
            {"properties": {"seq": seq, "run": run, "email_domain": "example.com"},
             "user_identifiers": {"email": f"user{seq}@example.com"}},
        )  # fmt: skip
        app.warning("POST /password-reset 200 (%d)", seq, extra={"run": run})
    ok = sqreen_otel.flush(20) and app_logs.force_flush(20_000)
    stats = sqreen_otel.stats()
    sqreen_otel.shutdown()
    print(stats, flush=True)
    return 0 if ok and stats["exported"] == count else 1


def send_official(endpoint: str, run: str, count: int, repeat: int) -> int:
    """OpenTelemetry Python's own SDK and exporter: events under our scope, application logs under another.

    ``repeat`` > 1 sends the very same records again (same ``log.record.uid`` and times), as an
    exporter does when an answer was lost after the backend stored the batch.
    """
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    base = time.time_ns()
    ok = True
    for _ in range(repeat):
        provider = LoggerProvider(resource=Resource.create({"service.name": "py-shop"}), shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint)))
        events = provider.get_logger("sqreen_otel", "0.3.0")
        app = provider.get_logger("py-shop.http")
        for seq in range(count):
            events.emit(
                event_name="sq.sdk.users.login",
                timestamp=base + seq,
                severity_number=SeverityNumber.INFO,
                attributes={"sqreen.properties.success": False, "sqreen.properties.seq": seq,
                            "sqreen.properties.run": run, "sqreen.user.email": f"user{seq}@example.com",
                            "log.record.uid": f"{run}-{seq}"},
            )  # fmt: skip
            app.emit(body=f"GET /login 401 ({seq})", severity_number=SeverityNumber.WARN, attributes={"run": run})
        ok = provider.force_flush(20_000) and ok
        provider.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    mode, endpoint_arg, run_arg, count_arg, *rest = sys.argv[1:]
    if mode == "ours":
        sys.exit(send_ours(endpoint_arg, run_arg, int(count_arg), int(rest[0]) if rest else 0))
    sys.exit(send_official(endpoint_arg, run_arg, int(count_arg), int(rest[0]) if rest else 1))


# -- the tests -------------------------------------------------------------------------------------

import pytest  # noqa: E402 - the senders above run without pytest
from explorer_process import ENV, HOST, free_port, http, serve  # noqa: E402

pytestmark = pytest.mark.collector
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def otelcol() -> str:
    """The Collector binary: built by collector/build.sh on first use (minutes), then taken from its cache."""
    result = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=3000, env=ENV)
    if result.returncode != 0:
        pytest.fail(f"collector/build.sh failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/js's locked npm packages, installed by ``npm ci`` into a cache folder keyed by the lock file."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed for the OpenTelemetry JS test (Debian: apt-get install nodejs npm)")
    lock = (JS / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sqreen_otel"
    folder = cache / f"node-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (folder / "node_modules" / ".package-lock.json").exists():
        staging = Path(str(folder) + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(JS / name, staging / name)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=staging, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"npm ci failed:\n{result.stderr[-4000:]}")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return folder / "node_modules"


class Collector:
    """A running Collector process on loopback ports of its own, with its queue in ``queue``."""

    def __init__(self, binary: str, workdir: Path, explorer_url: str, queue: Path) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}/v1/logs"
        self.log_path = workdir / f"otelcol-{self.port}.log"
        env = {
            **ENV,
            "EXPLORER_URL": explorer_url,
            "EXPLORER_TOKEN": TOKEN,
            "SQREEN_OTEL_COLLECTOR_HTTP": f"{HOST}:{self.port}",
            "SQREEN_OTEL_COLLECTOR_GRPC": f"{HOST}:{free_port()}",
            "SQREEN_OTEL_COLLECTOR_QUEUE": str(queue),
            "SQREEN_OTEL_COLLECTOR_METRICS": str(self.metrics_port),
        }
        self._log = open(self.log_path, "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, "--config", str(CONFIG)], stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the Collector exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                break  # receivers start last: the pipeline behind them is ready
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the Collector did not listen within 30 s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text()[-6000:]

    def metric(self, name: str) -> float:
        """One of the Collector's own metrics for the explorer exporter (Prometheus text on its metrics port)."""
        text = http.get(f"http://{HOST}:{self.metrics_port}/metrics", timeout=5).text
        label = '{data_type="logs",exporter="otlp_http/explorer"}' if name.endswith("queue_size") else None
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            if key.startswith(name + "{") and "otlp_http/explorer" in key and (label is None or key.endswith(label)):
                return float(value)
        return 0.0

    def wait_metric(self, name: str, at_least: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while (value := self.metric(name)) < at_least and time.monotonic() < deadline:
            time.sleep(0.1)
        return value

    def stop(self) -> int:
        """SIGTERM, as systemd or Kubernetes stop it: the batch processor flushes into the queue on disk."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def collector(binary: str, workdir: Path, explorer_url: str, queue: Path) -> Iterator[Collector]:
    running = Collector(binary, workdir, explorer_url, queue)
    try:
        yield running
    finally:
        running.stop()


def run_sender(*args: str, env: dict[str, str] | None = None) -> None:
    """A sender process of this file; it must exit 0."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env or sender_env(), cwd=ROOT)
    assert result.returncode == 0, f"{args[:3]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def sender_env(**extra: str) -> dict[str, str]:
    return {**ENV, "OTEL_SERVICE_NAME": "shop", "OTEL_RESOURCE_ATTRIBUTES": RESOURCE, **extra}


def send_ours_via(endpoint: str, run: str, count: int, start: int = 0, **env: str) -> None:
    run_sender(sys.executable, __file__, "ours", endpoint, run, str(count), str(start), env=sender_env(**env))


def stored(explorer_url: str, run: str) -> list[dict[str, Any]]:
    """Every event of the explorer whose ``run`` property is ``run`` (its run of senders), all pages."""
    out: list[dict[str, Any]] = []
    params: dict[str, str] = {"prop": f"run={run}", "limit": "500"}
    while True:
        page = http.get(explorer_url + "/api/events", params=params, headers=AUTH, timeout=10)
        page.raise_for_status()
        body = page.json()
        out += body["events"]
        if not body["next"]:
            return out
        params["before"] = body["next"]


def app_logs(explorer_url: str, run: str) -> list[dict[str, Any]]:
    """The explorer's records of this run's application logs (attribute ``run``): those the filter let through."""
    page = http.get(explorer_url + "/api/events", params={"limit": "500"}, headers=AUTH, timeout=10).json()
    return [e for e in page["events"] if e["attributes"].get("run") == run]


def wait_for(explorer_url: str, run: str, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = stored(explorer_url, run)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.25)


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return sorted(e["attributes"]["sqreen.properties.seq"] for e in events)


def new_run() -> str:
    return uuid.uuid4().hex[:12]


def test_the_built_collector_validates_the_example_config(otelcol: str, tmp_path: Path) -> None:
    env = {**ENV, "EXPLORER_URL": "http://127.0.0.1:9", "EXPLORER_TOKEN": TOKEN,
           "SQREEN_OTEL_COLLECTOR_QUEUE": str(tmp_path)}  # fmt: skip
    result = subprocess.run([otelcol, "validate", "--config", str(CONFIG)], capture_output=True, text=True,
                            env=env, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(CONFIG.read_text().replace("memory_limiter:\n    check_interval", "memory_limiter:\n    bogus"))
    result = subprocess.run([otelcol, "validate", "--config", str(broken)], capture_output=True, text=True,
                            env=env, timeout=60)  # fmt: skip
    assert result.returncode != 0 and "bogus" in result.stderr  # validate does look at the options


def test_our_exporter_through_the_collector_delivers_each_event_once_intact(otelcol: str, tmp_path: Path) -> None:
    with serve(tmp_path, "--token", TOKEN) as explorer:
        run, direct_run, count = new_run(), new_run(), 120
        # The same events without the Collector, to compare with.
        send_ours_via(
            f"{explorer}/v1/logs", direct_run, 3, OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{TOKEN}"
        )
        with collector(otelcol, tmp_path, explorer, tmp_path / "queue") as otel:
            send_ours_via(otel.endpoint, run, count)
            events = wait_for(explorer, run, count)
            assert otel.wait_metric("otelcol_exporter_sent_log_records", count) == count  # no application log
            assert otel.stop() == 0
        assert seqs(stored(explorer, run)) == list(range(count))  # all, once, after the Collector stopped
        assert app_logs(explorer, run) == []  # the application's logs were filtered out...
        assert len(app_logs(explorer, direct_run)) == 3  # ...which the explorer itself would have stored
        direct = {e["attributes"]["sqreen.properties.seq"]: e for e in stored(explorer, direct_run)}
        for event in events:
            seq = event["attributes"]["sqreen.properties.seq"]
            assert event["name"] == "password_reset"
            assert event["scope"] == "sqreen_otel"
            assert event["user"] == {"email": f"user{seq}@example.com"}
            assert event["resource"]["service.name"] == "shop"
            assert event["resource"]["host.name"] == "app-1"
            assert event["resource"]["deployment.environment"] == "test"
            if seq in direct:  # the Collector changed nothing: same attributes and resource as sent directly
                twin = direct[seq]
                volatile = ("sqreen.properties.run", "log.record.uid")
                assert {k: v for k, v in event["attributes"].items() if k not in volatile} == {
                    k: v for k, v in twin["attributes"].items() if k not in volatile
                }
                per_process = ("service.instance.id",)  # each sender process has its own
                assert {k: v for k, v in event["resource"].items() if k not in per_process} == {
                    k: v for k, v in twin["resource"].items() if k not in per_process
                }


def test_the_queue_on_disk_delivers_across_an_explorer_outage_and_a_collector_restart(
    otelcol: str, tmp_path: Path
) -> None:
    port, queue, run = free_port(), tmp_path / "queue", new_run()
    explorer = f"http://{HOST}:{port}"
    first = Collector(otelcol, tmp_path, explorer, queue)
    try:
        with serve(tmp_path, "--token", TOKEN, port=port):
            send_ours_via(first.endpoint, run, 40)
            assert len(wait_for(explorer, run, 40)) == 40
        # The explorer is down: the Collector accepts, queues on disk and retries.
        send_ours_via(first.endpoint, run, 80, start=40)
        assert first.wait_metric("otelcol_exporter_queue_size", 1) >= 1  # batched, queued on disk, retrying
        assert first.stop() == 0
    finally:
        first.stop()  # a failed step above must not leave it running
    assert "connection refused" in first.log_path.read_text().lower()
    assert any(queue.iterdir()), "the queue directory is empty"
    second = Collector(otelcol, tmp_path, explorer, queue)  # the restarted Collector, same queue
    try:
        send_ours_via(second.endpoint, run, 40, start=120)
        assert second.wait_metric("otelcol_exporter_queue_size", 1) >= 1
        with serve(tmp_path, "--token", TOKEN, port=port):  # the explorer is back, same database
            events = wait_for(explorer, run, 160)
            assert second.stop() == 0
            final = stored(explorer, run)
    finally:
        second.stop()
    assert len(events) >= 160, second.log()
    # 0-39 before the outage, 40-119 queued by the first Collector, 120-159 by the second: each once.
    assert seqs(final) == list(range(160))


def test_official_python_exporter_through_the_collector_and_a_resend_is_stored_once(
    otelcol: str, tmp_path: Path
) -> None:
    with serve(tmp_path, "--token", TOKEN) as explorer, collector(otelcol, tmp_path, explorer, tmp_path / "q") as otel:
        run, count = new_run(), 50
        run_sender(sys.executable, __file__, "official", otel.endpoint, run, str(count), "2")
        # Both copies delivered (the explorer answers after its commit), the application logs filtered out.
        assert otel.wait_metric("otelcol_exporter_sent_log_records", 2 * count) == 2 * count
        assert otel.stop() == 0
        events = stored(explorer, run)
        assert app_logs(explorer, run) == []
        assert seqs(events) == list(range(count))  # sent twice, stored once (log.record.uid)
        assert {e["resource"]["service.name"] for e in events} == {"py-shop"}
        assert {e["name"] for e in events} == {"sq.sdk.users.login"}
        assert {e["attributes"]["log.record.uid"] for e in events} == {f"{run}-{i}" for i in range(count)}
        assert {e["user"]["email"] for e in events} == {f"user{i}@example.com" for i in range(count)}


def test_official_javascript_exporter_through_the_collector(otelcol: str, node_modules: Path, tmp_path: Path) -> None:
    with serve(tmp_path, "--token", TOKEN) as explorer, collector(otelcol, tmp_path, explorer, tmp_path / "q") as otel:
        run, count = new_run(), 60
        node = shutil.which("node") or "node"
        env = {**ENV, "NODE_PATH": str(node_modules)}
        result = subprocess.run([node, str(JS / "send_logs.js"), otel.endpoint, run, str(count)],
                                capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        wait_for(explorer, run, count)
        assert otel.wait_metric("otelcol_exporter_sent_log_records", count) == count
        assert otel.stop() == 0
        events = stored(explorer, run)
        assert app_logs(explorer, run) == []
        assert seqs(events) == list(range(count))
        assert {e["resource"]["service.name"] for e in events} == {"node-shop"}
        assert {e["resource"]["deployment.environment"] for e in events} == {"test"}
        assert {e["scope"] for e in events} == {"sqreen_otel"}
        assert {e["name"] for e in events} == {"sq.sdk.users.login"}
        assert {e["attributes"]["sqreen.properties.success"] for e in events} == {False}


def test_requests_to_a_wrong_token_are_not_stored(otelcol: str, tmp_path: Path) -> None:
    """The Collector sends the token from the environment: a wrong one is refused (401), nothing stored."""
    with (
        serve(tmp_path, "--token", "another-token-000000") as explorer,
        collector(otelcol, tmp_path, explorer, tmp_path / "q") as otel,
    ):
        run = new_run()
        run_sender(sys.executable, __file__, "official", otel.endpoint, run, "5", "1")
        deadline = time.monotonic() + 20
        while "401" not in otel.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "401" in otel.log_path.read_text(), otel.log()
        page = http.get(explorer + "/api/events", headers={"Authorization": "Bearer another-token-000000"})
        assert page.json()["events"] == []


def test_an_agent_collector_behind_a_gateway_collector_with_the_same_file(otelcol: str, tmp_path: Path) -> None:
    """The README's second topology: agent -> gateway -> explorer, both Collectors running the tested file."""
    with serve(tmp_path, "--token", TOKEN) as explorer:
        (tmp_path / "gateway").mkdir()
        (tmp_path / "agent").mkdir()
        with collector(otelcol, tmp_path / "gateway", explorer, tmp_path / "gateway" / "q") as gateway:
            gateway_url = gateway.endpoint.removesuffix("/v1/logs")
            with collector(otelcol, tmp_path / "agent", gateway_url, tmp_path / "agent" / "q") as agent:
                run, count = new_run(), 30
                send_ours_via(agent.endpoint, run, count)
                wait_for(explorer, run, count)
                assert agent.stop() == 0
            assert gateway.stop() == 0
        events = stored(explorer, run)
        assert seqs(events) == list(range(count))
        assert app_logs(explorer, run) == []
        assert {e["resource"]["host.name"] for e in events} == {"app-1"}  # the resource crossed both hops
        assert {e["scope"] for e in events} == {"sqreen_otel"}
