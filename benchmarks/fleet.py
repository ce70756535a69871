"""Fleet ingest: events/s stored by ``sqreen-otel serve`` on SQLite, on PostgreSQL, and by two replicas
sharing one PostgreSQL database, all measured in the same run.

    python benchmarks/fleet.py            # 60,000 events per setup, 3 rounds, median
    python benchmarks/fleet.py --quick    # 10,000 events, one round

Each setup gets fresh storage and real ``serve`` processes on loopback; 4 sender threads post
pre-encoded OTLP protobuf batches (500 events, each with its own ``log.record.uid``) round robin over
the replicas, until every batch is acknowledged (ingest answers after the commit). The count stored
is then checked. PostgreSQL is a private cluster of Debian's server (``synchronous_commit=off``,
as SQLite's ``synchronous=NORMAL`` also returns before the disk has it). Not a test: the machine
has 2 cores shared by senders, servers and database, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_server import Server  # the tests' private PostgreSQL cluster

CLI = str(Path(sys.executable).parent / "sqreen-otel")
TOKEN = "bench-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
BATCH = 500
SENDERS = 4
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _text(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def batches(events: int) -> list[bytes]:
    """OTLP requests of ``BATCH`` login events like sqreen_otel's, each event with a fresh uid."""
    run = uuid.uuid4().hex
    out = []
    for start in range(0, events, BATCH):
        records = []
        for i in range(start, min(start + BATCH, events)):
            records.append(
                LogRecord(
                    time_unix_nano=1_800_000_000_000_000_000 + i,
                    event_name="sq.sdk.users.login",
                    attributes=[
                        _text("sqreen.user.email", f"user{i % 1000}@example.com"),
                        _text("client.address", f"203.0.113.{i % 250}"),
                        _text("url.path", "/login"),
                        _text("http.request.method", "POST"),
                        KeyValue(key="sqreen.properties.success", value=AnyValue(bool_value=i % 3 == 0)),
                        _text("log.record.uid", f"{run}-{i}"),
                    ],
                )
            )
        request = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=Resource(attributes=[_text("service.name", "shop")]),
                    scope_logs=[ScopeLogs(log_records=records)],
                )
            ]
        )
        out.append(request.SerializeToString())
    return out


@contextlib.contextmanager
def serving(db: str, workdir: Path) -> Iterator[str]:
    port = _free_port()
    log = open(workdir / f"serve-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [CLI, "serve", "--db", db, "--port", str(port), "--token", TOKEN], stdout=log, stderr=subprocess.STDOUT, env=ENV
    )
    url = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}:\n{Path(log.name).read_text()[-3000:]}")
            try:
                session.get(url + "/api/summary", headers=HEADERS, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("serve did not answer within 30 s") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def send_all(urls: list[str], bodies: list[bytes]) -> float:
    """Seconds until every body is acknowledged (2xx); a 503 is retried after its Retry-After."""
    work: queue.Queue[tuple[int, bytes]] = queue.Queue()
    for index, body in enumerate(bodies):
        work.put((index, body))
    failures: list[str] = []
    resent: list[int] = []

    def sender() -> None:
        session = requests.Session()
        session.trust_env = False
        while True:
            try:
                index, body = work.get_nowait()
            except queue.Empty:
                return
            target = urls[index % len(urls)] + "/v1/logs"  # round robin, as a load balancer would
            for _ in range(100):
                try:
                    answer = session.post(target, data=body, headers=HEADERS, timeout=60)
                except requests.ConnectionError:  # a closed keep-alive connection: send again (uids dedupe)
                    resent.append(index)
                    continue
                if answer.status_code == 200:
                    break
                if answer.status_code != 503:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")
                    return
                time.sleep(float(answer.headers.get("Retry-After", "1")))

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if resent:
        print(f"  ({len(resent)} request(s) sent again after a closed connection)", file=sys.stderr)
    if failures:
        raise RuntimeError(f"ingest failed: {failures[0]}")
    return elapsed


def stored(url: str) -> int:
    names = requests.get(url + "/api/summary", headers=HEADERS, timeout=30).json()["names"]
    return sum(int(n["count"]) for n in names)


def measure(setup: str, events: int, pg: Server, workdir: Path) -> float:
    bodies = batches(events)
    with contextlib.ExitStack() as stack:
        if setup == "sqlite":
            dbs = [str(workdir / f"{uuid.uuid4().hex}.sqlite")]
        else:
            url = pg.new_url()
            dbs = [url] * (2 if setup == "postgres x2" else 1)
        urls = [stack.enter_context(serving(db, workdir)) for db in dbs]
        seconds = send_all(urls, bodies)
        count = stored(urls[0])
        if count != events:
            raise RuntimeError(f"{setup}: {count} events stored, {events} sent")
    return events / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 events, one round")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stop still shuts down serve and PostgreSQL
    events, rounds = (10_000, 1) if args.quick else (60_000, 3)
    setups = ("sqlite", "postgres", "postgres x2")
    results: dict[str, list[float]] = {setup: [] for setup in setups}
    workdir = Path(tempfile.mkdtemp(prefix="sqreen_otel_fleet_"))
    try:
        with Server() as pg:
            for _ in range(rounds):  # alternate the setups, so that the machine's noise hits them alike
                for setup in setups:
                    results[setup].append(measure(setup, events, pg, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base = statistics.median(results["sqlite"])
    print(f"ingest, {events:,} events per setup, {SENDERS} senders, batches of {BATCH}, median of {rounds}")
    print(f"{'setup':<28} {'events/s':>10} {'vs SQLite':>10}")
    labels = {
        "sqlite": "SQLite, 1 serve",
        "postgres": "PostgreSQL, 1 serve",
        "postgres x2": "PostgreSQL, 2 serve replicas",
    }
    for setup in setups:
        rate = statistics.median(results[setup])
        print(f"{labels[setup]:<28} {rate:>10,.0f} {rate / base:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
