"""Benchmarks: sqreen_otel against bare OpenTelemetry and its peers, all measured in one run, one table.

    python benchmarks/bench.py            # full run (a few minutes)
    python benchmarks/bench.py --quick    # smaller counts, one round each, for a smoke check

Peers come with ``pip install -e '.[bench]'`` (ddtrace, segment-analytics-python); a missing one is
skipped and said so. Web rows need ``wrk`` (Debian package) and fall back to a Python load generator.
Not a test: this machine is shared and noisy, so read the ratios, measured side by side (alternating
rounds, median), rather than absolute numbers.

- per call: the application thread's time for one event, 8 string properties, inside a recording
  span; both OTel sides queue into the same discarding exporter and export nothing while timed.
- whole cost: the process's CPU time (every thread: track, building, encoding, HTTP) per event, for
  N events until all are delivered to a real receiver in another process.
- web: requests/s through real servers and wrk, the same OpenTelemetry-instrumented app on both
  sides; bare OTel does one ``logger.emit`` per request, ours our integration and one ``track()``.
- ingest: events/s stored by ``sqreen-otel serve`` from one exporter process, against the same
  rows inserted into the same schema with one ``executemany`` per transaction (the SQLite floor).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PROPERTIES = {  # 8 strings, as in the measurements
    "email_domain": "example.com",
    "plan": "pro",
    "channel": "email",
    "step": "confirm",
    "country": "FR",
    "locale": "fr-FR",
    "reason": "password reset requested from settings page",
    "referrer": "https://example.com/account",
}
ATTRIBUTES = {f"sqreen.properties.{key}": value for key, value in PROPERTIES.items()}
QUEUE = 1_000_000  # per-call rounds: everything stays queued while timed, then is discarded
CHUNK = 20  # events per span (a request with a few events); the span itself is not timed
NAME = "password_reset"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- per call --------------------------------------------------------------------------------------


def _timed(call: Callable[[], Any], n: int, span: Callable[[], Any]) -> float:
    """Mean µs of ``call()`` over ``n`` calls, ``CHUNK`` per span; gc off, as timeit does."""
    total, done = 0.0, 0
    gc.collect()
    gc.disable()
    try:
        while done < n:
            with span():
                start = time.perf_counter()
                for _ in range(CHUNK):
                    call()
                total += time.perf_counter() - start
            done += CHUNK
    finally:
        gc.enable()
    return total / done * 1e6


class _Discard:
    """The same discarding exporter for both OTel sides."""

    def export(self, batch: Any) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _install_ours(exporter: Any, *, queue: int = QUEUE, batch: int = QUEUE, **settings: Any) -> Any:
    """Our pipeline as ``configure()`` wires it (slot on a provider), with ``exporter``; returns the processor."""
    from opentelemetry.sdk._logs import LoggerProvider

    from sqreen_otel import pipeline, runtime
    from sqreen_otel.processor import EventBatchProcessor
    from sqreen_otel.settings import Settings

    provider = LoggerProvider(shutdown_on_exit=False)
    processor = EventBatchProcessor(
        exporter, flush_interval=3600, max_queue_size=queue, max_export_batch_size=batch, first_seen_delay=None,
        prescrubbed_scopes=frozenset({runtime.LOGGER_NAME}),
    )  # fmt: skip
    slot = pipeline._Slot(provider)
    slot.target = processor
    provider.add_log_record_processor(slot)
    logger = provider.get_logger(runtime.LOGGER_NAME)
    runtime.install(runtime.Runtime(settings=Settings(**settings), logger=logger, configured=True, slot=slot))
    _installed[id(processor)] = runtime.current
    return processor


def per_call(n: int, rounds: int) -> dict[str, float | None]:
    """Median µs per event of each side, over ``rounds`` alternating rounds."""
    from opentelemetry import trace
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider

    import sqreen_otel

    tracer_provider = TracerProvider()
    trace.set_tracer_provider(tracer_provider)  # as an instrumented app has it
    tracer = tracer_provider.get_tracer("bench")

    def otel_span() -> Any:
        return tracer.start_as_current_span("request")

    bare_provider = LoggerProvider(shutdown_on_exit=False)
    bare_processor = BatchLogRecordProcessor(
        _Discard(), schedule_delay_millis=3_600_000, max_queue_size=QUEUE, max_export_batch_size=QUEUE
    )  # type: ignore[arg-type]
    bare_provider.add_log_record_processor(bare_processor)
    bare_logger = bare_provider.get_logger("bare")

    def bare() -> None:
        now = time.time_ns()
        bare_logger.emit(
            event_name=NAME, timestamp=now, observed_timestamp=now, severity_number=SeverityNumber.INFO,
            severity_text="INFO", attributes=ATTRIBUTES,
        )  # fmt: skip
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(NAME, ATTRIBUTES, now)

    options = {"properties": PROPERTIES}

    def ours() -> None:
        sqreen_otel.track(NAME, options)

    sides: dict[str, tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any]]] = {}
    slim_processor = _install_ours(_Discard())
    full_processor = _install_ours(_Discard(), span_event_attributes="full")
    sides["bare"] = (lambda: None, bare, otel_span)
    sides["ours"] = (lambda: _reinstall(slim_processor), ours, otel_span)
    sides["ours_full"] = (lambda: _reinstall(full_processor), ours, otel_span)
    peers = _peers()
    sides.update(peers)
    results: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, (prepare, call, span) in sides.items():
            prepare()
            results[name].append(_timed(call, n, span))
            bare_processor.force_flush()
            slim_processor.flush(60)
            full_processor.flush(60)
    out: dict[str, float | None] = {name: _median(values) for name, values in results.items()}
    for peer in ("ddtrace", "segment"):
        out.setdefault(peer, None)
    return out


_installed: dict[int, Any] = {}


def _reinstall(processor: Any) -> None:
    """Make ``processor``'s runtime current again (each was installed once by ``_install_ours``)."""
    from sqreen_otel import runtime

    runtime.install(_installed[id(processor)])


def _peers() -> dict[str, tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any]]]:
    """ddtrace's and Segment's calls for a custom business event, each in its own kind of span/context."""
    peers: dict[str, tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any]]] = {}
    # ddtrace's side of "a discarding exporter": spans kept in process, never sent; no telemetry threads.
    for name, value in (("DD_TRACE_ENABLED", "false"), ("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false"),
                        ("DD_REMOTE_CONFIGURATION_ENABLED", "false"), ("DD_TRACE_STARTUP_LOGS", "false")):  # fmt: skip
        os.environ.setdefault(name, value)
    try:
        from ddtrace.appsec import track_user_sdk
        from ddtrace.trace import tracer as dd_tracer
    except ImportError as exc:
        print(f"note: ddtrace skipped ({exc}); pip install -e '.[bench]'", file=sys.stderr)
    else:

        def dd_call() -> None:
            track_user_sdk.track_custom_event(NAME, PROPERTIES)

        with dd_tracer.trace("check", span_type="web") as span:
            dd_call()
            tags = span.get_tags()
        if not any(NAME in key for key in tags):
            print("note: ddtrace's track_custom_event set no tag: its row is not comparable", file=sys.stderr)
        peers["ddtrace"] = (lambda: None, dd_call, lambda: dd_tracer.trace("request", span_type="web"))
    try:
        from segment.analytics import Client
    except ImportError as exc:
        print(f"note: Segment skipped ({exc}); pip install -e '.[bench]'", file=sys.stderr)
    else:
        client = Client(write_key="bench", send=False)

        def segment_call() -> None:
            client.track(user_id="user-1", event=NAME, properties=PROPERTIES)

        peers["segment"] = (lambda: None, segment_call, contextlib.nullcontext)
    return peers


# -- whole cost per event ----------------------------------------------------------------------------


@contextlib.contextmanager
def _receiver() -> Iterator[str]:
    """A real OTLP/HTTP receiver in another process; yields its logs endpoint."""
    server = subprocess.Popen(
        [sys.executable, "-m", "sqreen_otel.receiver", "--port", "0", "--quiet", "--print-port"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{int(server.stdout.readline().strip())}/v1/logs"
    finally:
        server.terminate()
        server.wait(10)


def _whole_child(side: str, n: int, endpoint: str) -> dict[str, Any]:
    """In a fresh process: CPU seconds of the whole process for ``n`` events, until delivered."""
    from opentelemetry import trace
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider

    import sqreen_otel

    tracer = TracerProvider().get_tracer("bench")
    delivered = [0]
    if side == "bare":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        class Counting(OTLPLogExporter):
            def export(self, batch: Any) -> Any:
                result = super().export(batch)
                if result is LogRecordExportResult.SUCCESS:
                    delivered[0] += len(batch)
                return result

        provider = LoggerProvider(shutdown_on_exit=False)
        processor = BatchLogRecordProcessor(Counting(endpoint), max_queue_size=n)  # else it drops what waits
        provider.add_log_record_processor(processor)
        logger = provider.get_logger("bare")

        def call() -> None:
            now = time.time_ns()
            logger.emit(
                event_name=NAME, timestamp=now, observed_timestamp=now, severity_number=SeverityNumber.INFO,
                severity_text="INFO", attributes=ATTRIBUTES,
            )  # fmt: skip
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(NAME, ATTRIBUTES, now)

        def flush() -> None:
            processor.force_flush(300_000)
    else:
        sqreen_otel.configure(endpoint=endpoint, max_queue_size=n)  # default settings otherwise
        options = {"properties": PROPERTIES}

        def call() -> None:
            sqreen_otel.track(NAME, options)

        def flush() -> None:
            sqreen_otel.flush(300)
            delivered[0] = sqreen_otel.stats()["exported"]

    for _ in range(200):  # warm-up: imports, first connection
        call()
    flush()
    warm = delivered[0]
    start_cpu, start = time.process_time(), time.perf_counter()
    for _ in range(n // CHUNK):
        with tracer.start_as_current_span("request"):
            for _ in range(CHUNK):
                call()
    flush()
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    return {"cpu_us": cpu / n * 1e6, "wall_s": wall, "delivered": delivered[0] - warm, "n": n // CHUNK * CHUNK}


def whole_cost(n: int, rounds: int) -> dict[str, float]:
    results: dict[str, list[float]] = {"bare": [], "ours": []}
    with _receiver() as endpoint:
        for _ in range(rounds):
            for side in results:
                command = [sys.executable, __file__, "--child", "whole", "--side", side, "--n", str(n)]
                out = subprocess.run(
                    [*command, "--endpoint", endpoint], capture_output=True, text=True, check=True, timeout=900
                )
                data = json.loads(out.stdout.strip().splitlines()[-1])
                if data["delivered"] != data["n"]:
                    raise RuntimeError(f"whole cost, {side}: delivered {data['delivered']} of {data['n']} events")
                results[side].append(data["cpu_us"])
    return {side: _median(values) for side, values in results.items()}


# -- web -------------------------------------------------------------------------------------------


def _wait_port(port: int, process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def _load(url: str, seconds: float, connections: int = 8) -> tuple[float, int]:
    """(requests/s, requests) against ``url``: wrk if installed, else a Python load generator (said in the table)."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", url], capture_output=True, text=True, check=True,
            timeout=seconds + 60,
        ).stdout  # fmt: skip
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        if not rate or not total or "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError(f"wrk failed or saw errors:\n{out}")
        return float(rate.group(1)), int(total.group(1))
    return _python_load(url, seconds, connections)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (gunicorn's workers), from /proc."""
    pids = [pid]
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/children") as f:
        pids += [int(child) for child in f.read().split()]
    total = 0
    for each in pids:
        with contextlib.suppress(OSError), open(f"/proc/{each}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _python_load(url: str, seconds: float, connections: int) -> tuple[float, int]:
    """Fallback: ``connections`` keep-alive HTTP/1.1 clients in threads (weaker than wrk: Python's GIL)."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    counts = [0] * connections
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < deadline:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            counts[index] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - start), sum(counts)


def _server(framework: str, side: str, port: int, endpoint: str) -> subprocess.Popen[Any]:
    env = {**os.environ, "BENCH_SIDE": side, "BENCH_ENDPOINT": endpoint, "PYTHONPATH": HERE}
    bindir = os.path.dirname(sys.executable)
    if framework == "Flask":
        command = [os.path.join(bindir, "gunicorn"), "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}",
                   "--log-level", "warning", "web_apps:flask()"]  # fmt: skip
    else:
        command = [sys.executable, "-m", "uvicorn", "web_apps:starlette", "--factory", "--port", str(port),
                   "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=HERE, stdout=subprocess.DEVNULL)


def web(seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    """Per framework and side: median requests/s, and median requests per CPU-second of the server
    processes (what the app costs, whatever else the shared machine runs meanwhile)."""
    results: dict[str, dict[str, float]] = {}
    with _receiver() as endpoint:
        for framework in ("Flask", "Starlette"):
            rates: dict[str, list[float]] = {"bare": [], "ours": []}
            per_cpu: dict[str, list[float]] = {"bare": [], "ours": []}
            for _ in range(rounds):
                for side in rates:
                    port = _free_port()
                    server = _server(framework, side, port, endpoint)
                    try:
                        _wait_port(port, server)
                        url = f"http://127.0.0.1:{port}/reset?email=a%40example.com&step=2"
                        _load(url, 1.0)  # warm-up: imports, first connections, first export
                        cpu = _cpu_seconds(server.pid)
                        rate, count = _load(url, seconds)
                        time.sleep(1.2)  # the last batches' export (both sides flush within a second)
                        rates[side].append(rate)
                        per_cpu[side].append(count / max(_cpu_seconds(server.pid) - cpu, 1e-3))
                    finally:
                        server.terminate()
                        server.wait(30)
            results[framework] = {
                **{side: _median(v) for side, v in rates.items()},
                **{f"{side}_cpu": _median(v) for side, v in per_cpu.items()},
            }
    return results


# -- ingest ----------------------------------------------------------------------------------------


def _ingest_child(n: int, endpoint: str) -> dict[str, Any]:
    """One exporter process: ``n`` events queued, then timed from the first export to the last acknowledgement."""
    import sqreen_otel

    processor = _install_ours(_exporter(endpoint), queue=n, batch=512)
    options = {"properties": PROPERTIES}
    for _ in range(n):
        sqreen_otel.track(NAME, options)
    start = time.perf_counter()
    ok = processor.flush(600)
    elapsed = time.perf_counter() - start
    stats = processor.stats()
    return {"ok": ok, "rate": n / elapsed, "exported": stats["exported"]}


def _exporter(endpoint: str) -> Any:
    from sqreen_otel.exporter import OTLPEventExporter

    return OTLPEventExporter(endpoint)


def ingest(n: int) -> tuple[float, float, str]:
    """(explorer events/s, SQLite floor events/s, what the floor inserted)."""
    import requests

    from sqreen_otel.explorer.store import Store

    http = requests.Session()
    http.trust_env = False  # loopback: never through a proxy
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.sqlite")
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "sqreen_otel.cli", "serve", "--db", db, "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_port(port, server)
            base = f"http://127.0.0.1:{port}"
            out = subprocess.run(
                [sys.executable, __file__, "--child", "ingest", "--n", str(n), "--endpoint", base + "/v1/logs"],
                capture_output=True, text=True, check=True, timeout=900,
            )  # fmt: skip
            data = json.loads(out.stdout.strip().splitlines()[-1])
            stored = sum(row["count"] for row in http.get(base + "/api/summary", timeout=60).json()["names"])
            if not data["ok"] or stored != n:
                raise RuntimeError(f"the explorer stored {stored} of {n} events (exporter: {data})")
        finally:
            server.terminate()
            server.wait(30)
        floor, what = _sqlite_floor(db, os.path.join(tmp, "floor.sqlite"), Store)
    return data["rate"], floor, what


def _sqlite_floor(source: str, target: str, store_class: Any, batch: int = 512) -> tuple[float, str]:
    """Rows/s inserting the explorer's own rows (events and their user rows) into a fresh database of the
    same schema and settings (made by the explorer's Store), one ``executemany`` per table per transaction."""
    with contextlib.closing(sqlite3.connect(source)) as src:
        tables = [name for (name,) in src.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        data = {
            table: src.execute(f"SELECT * FROM {table}").fetchall()  # two fixed names, found in sqlite_master
            for table in ("events", "event_users")
            if table in tables
        }
    store = store_class(target)
    events, users = data["events"], data.get("event_users", [])
    users_by_event: dict[int, list[Any]] = {}
    for row in users:
        users_by_event.setdefault(row[0], []).append(row)
    insert_event = f"INSERT INTO events VALUES ({', '.join('?' * len(events[0]))})"
    insert_user = f"INSERT INTO event_users VALUES ({', '.join('?' * len(users[0]))})" if users else ""
    start = time.perf_counter()
    for offset in range(0, len(events), batch):
        chunk = events[offset : offset + batch]
        with store._write() as conn:  # the store's own connection settings and transaction
            conn.executemany(insert_event, chunk)
            if users:
                conn.executemany(insert_user, [u for row in chunk for u in users_by_event.get(row[0], ())])
    elapsed = time.perf_counter() - start
    store.close()
    return len(events) / elapsed, f"{len(events):,} rows, batches of {batch}"


def ingest_breakdown(n: int) -> dict[str, float]:
    """µs per event of each step of one ingest, in this process, on the same kind of batches (512 events):
    the exporter's build + encode, the explorer's decode (with the caps), and its store.add (rows, JSON, one
    transaction)."""
    import sqreen_otel
    from sqreen_otel import encoding
    from sqreen_otel.explorer import otlp
    from sqreen_otel.explorer.store import Store
    from sqreen_otel.exporter import Outcome, Status

    bodies: list[bytes] = []

    class Capture(_Discard):
        accepts_drafts = True

        def send(self, batch: Any) -> Any:
            bodies.append(encoding.encode(batch))
            return Outcome(Status.SUCCESS)

    processor = _install_ours(Capture(), queue=n, batch=512)
    options = {"properties": PROPERTIES}
    for _ in range(n):
        sqreen_otel.track(NAME, options)
    start = time.process_time()
    processor.flush(300)
    encode = time.process_time() - start
    start = time.process_time()
    decoded = [otlp.decode_capped(body, otlp.PROTOBUF)[0] for body in bodies]  # as ingest does: decode + caps
    decode = time.process_time() - start
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "breakdown.sqlite"))
        start = time.process_time()
        for events in decoded:
            store.add(events)
        add = time.process_time() - start
        store.close()
    return {"encode": encode / n * 1e6, "decode": decode / n * 1e6, "store": add / n * 1e6}


# -- memory ----------------------------------------------------------------------------------------


def memory(n: int, endpoint: str) -> dict[str, Any]:
    """In a fresh process with default settings: RSS growth and per-call time of ``n`` track() calls."""
    code = f"""
import json, time, sqreen_otel
def kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
sqreen_otel.configure(endpoint={endpoint!r})
opts = {{"properties": dict({PROPERTIES!r})}}
for _ in range(10):
    sqreen_otel.track("warmup", opts)
base = kib("VmRSS:")
start = time.perf_counter()
for i in range({n}):
    opts["properties"]["step"] = str(i)  # one value differs per event, as user ids and counters do
    sqreen_otel.track("login_failed", opts)
elapsed = time.perf_counter() - start
peak = kib("VmHWM:")
print(json.dumps({{"growth_mib": (peak - base) / 1024, "us_per_call": elapsed / {n} * 1e6, **sqreen_otel.stats()}}))
sqreen_otel.shutdown(0.1)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- table -----------------------------------------------------------------------------------------


def _ratio(ours: float | None, base: float | None) -> str:
    return "-" if not ours or not base else f"{ours / base:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, one round, for a smoke check")
    parser.add_argument("--child", choices=("whole", "ingest"), help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "whole":
        print(json.dumps(_whole_child(args.side, args.n, args.endpoint)))
        return 0
    if args.child == "ingest":
        print(json.dumps(_ingest_child(args.n, args.endpoint)))
        return 0

    quick = args.quick
    rounds = 1 if quick else 5
    calls = per_call(20_000 if quick else 100_000, rounds)
    whole = whole_cost(10_000 if quick else 50_000, rounds)
    rates = web(2.0 if quick else 4.0, 1 if quick else 5)
    ingest_rate, floor, floor_what = ingest(20_000 if quick else 100_000)
    steps = ingest_breakdown(20_480)
    n_memory = 100_000 if quick else 1_000_000
    down = memory(n_memory, f"http://127.0.0.1:{_free_port()}/v1/logs")
    from sqreen_otel.receiver import Receiver

    with Receiver() as receiver:
        up = memory(n_memory, receiver.endpoint)

    bare = calls["bare"]
    dd, seg = calls.get("ddtrace"), calls.get("segment")
    load = "wrk, 8 connections" if shutil.which("wrk") else "Python load generator (no wrk), 8 connections"
    rows = [
        ("track() per call, 8 string properties, recording span (µs)", f"{calls['ours']:.1f}",
         f"{bare:.1f} (OTel emit + add_event)", _ratio(calls["ours"], bare), "<= 0.60, and < ddtrace"),
        ("  same, span_event_attributes=\"full\" (µs)", f"{calls['ours_full']:.1f}", f"{bare:.1f}",
         _ratio(calls["ours_full"], bare), "-"),
        ("  Datadog ddtrace track_user_sdk.track_custom_event (µs)", "-" if dd is None else f"{dd:.1f}",
         f"{bare:.1f}", _ratio(dd, bare), f"ours/ddtrace = {_ratio(calls['ours'], dd)}"),
        ("  Segment analytics.track, send=False (µs)", "-" if seg is None else f"{seg:.1f}", f"{bare:.1f}",
         _ratio(seg, bare), f"ours/Segment = {_ratio(calls['ours'], seg)}"),
        ("whole cost per event, app process CPU, to a real receiver (µs)", f"{whole['ours']:.1f}",
         f"{whole['bare']:.1f} (+ BatchLogRecordProcessor + OTLPLogExporter)", _ratio(whole["ours"], whole["bare"]),
         "<= 0.60"),
    ]  # fmt: skip
    for framework, server in (("Flask", "gunicorn, 2 sync workers"), ("Starlette", "uvicorn")):
        r = rates[framework]
        label = f"web: {framework} ({server}; {load}), requests/s"
        rows.append((label, f"{r['ours']:,.0f}", f"{r['bare']:,.0f} (OTel-instrumented, one emit)",
                     _ratio(r["ours"], r["bare"]), ">= 0.95"))  # fmt: skip
        rows.append((f"  same, requests per CPU-second of the {framework} server", f"{r['ours_cpu']:,.0f}",
                     f"{r['bare_cpu']:,.0f}", _ratio(r["ours_cpu"], r["bare_cpu"]), "-"))  # fmt: skip
    rows += [
        ("explorer ingest, one exporter process, ack after commit (events/s)", f"{ingest_rate:,.0f}",
         f"{floor:,.0f} (SQLite floor: {floor_what})", _ratio(ingest_rate, floor), ">= 0.60"),
        (f"backend down, {n_memory:,} track() calls: RSS growth (MiB)", f"{down['growth_mib']:.1f}",
         f"{up['growth_mib']:.1f} (backend up)", "-", "<= 64 MiB"),
        ("track() backend down vs up, no span (µs)", f"{down['us_per_call']:.2f}",
         f"{up['us_per_call']:.2f} (backend up)", _ratio(down["us_per_call"], up["us_per_call"]), "~1.0"),
    ]  # fmt: skip
    mode = "quick: 1 round" if quick else f"median of {rounds} alternating rounds"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; {mode}; every baseline measured in this run\n")
    print("| measure | sqreen_otel | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nbackend-down run: queued={down['queued']}, dropped={down['dropped']}, retries={down['retries']}")
    print(
        f"ingest, CPU per event of each step, one after the other: exporter build + encode {steps['encode']:.1f} µs, "
        f"explorer decode {steps['decode']:.1f} µs, explorer store.add {steps['store']:.1f} µs; "
        f"the SQLite floor is {1e6 / floor:.1f} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
