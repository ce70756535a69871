"""The Event Explorer for real: ``sqreen-otel serve`` (the venv's console script, uvicorn, SQLite) on loopback.

Everything goes over real sockets: our own pipeline (``configure()`` + ``track()``), OpenTelemetry's
official OTLP/HTTP log and span exporters, hand-made bodies (OTLP/JSON, gzip, bombs, garbage), several
processes exporting at once, the token mode, and the actions feed polled by an application.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from explorer_process import BIN, ENV, HOST, free_port, http, serve  # noqa: F401
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

import sqreen_otel
from sqreen_otel import context, runtime
from sqreen_otel.actions import parse_actions

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocesses and signals")

PROTOBUF = "application/x-protobuf"
API = {"X-Sqreen-Otel": "1"}  # what API writes need (a web page cannot send it cross-origin)


def events(url: str, **params: str) -> list[dict[str, Any]]:
    response = http.get(url + "/api/events", params={"limit": "500", **params}, timeout=10)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["events"]
    return result


def count(url: str, name: str) -> int:
    names = http.get(url + "/api/summary", timeout=10).json()["names"]
    return next((int(n["count"]) for n in names if n["name"] == name), 0)


def total(url: str) -> int:
    return sum(int(n["count"]) for n in http.get(url + "/api/summary", timeout=10).json()["names"])


def alive(url: str) -> None:
    response = http.get(url + "/api/summary", timeout=5)
    assert response.status_code == 200


def logs_body(name: str, n: int = 1, **attributes: str) -> bytes:
    """An OTLP protobuf logs request of ``n`` events named ``name``."""
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add()
    records.scope.name = "handmade"
    for i in range(n):
        record = LogRecord(event_name=name, time_unix_nano=1_700_000_000_000_000_000 + i)
        record.attributes.extend(KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items())
        records.log_records.append(record)
    return request.SerializeToString()


@pytest.fixture
def pipeline() -> Iterator[None]:
    """Leave the process's sqreen_otel as the other tests expect it."""
    previous = runtime.current
    sqreen_otel.block_list.clear()
    try:
        yield
    finally:
        sqreen_otel.shutdown()
        runtime.install(previous)
        context.set_user(None)
        sqreen_otel.block_list.clear()


# -- our pipeline --------------------------------------------------------------------------------------


def test_events_from_configure_track_flush_are_stored_and_filtered(explorer: str, pipeline: None) -> None:
    sqreen_otel.configure(endpoint=explorer + "/v1/logs", flush_interval=60, first_seen_delay=None)
    past = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    login = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/login",
        "REMOTE_ADDR": "203.0.113.9",
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(),
    }
    for i in range(3):
        assert sqreen_otel.track(
            "srv.login_failed",
            {
                "properties": {"attempt": i, "password": "hunter2", "plan": "pro" if i else "free"},
                "user_identifiers": {"email": "alice@example.com"},
                "request": login,
                "timestamp": past + dt.timedelta(seconds=i),
            },
        )
    assert sqreen_otel.track("srv.reset", {"user_identifiers": {"email": "bob@example.com", "id": 42}})
    assert sqreen_otel.flush(10)
    stats = sqreen_otel.stats()
    assert stats["exported"] == 4 and stats["queued"] == 0 and not any(stats["dropped"].values())

    failed = events(explorer, name="srv.login_failed")
    assert [e["time_ns"] for e in failed] == [1714564802123456000, 1714564801123456000, 1714564800123456000]
    first = failed[-1]
    assert first["user"] == {"email": "alice@example.com"}
    assert (first["client_address"], first["method"], first["path"]) == ("203.0.113.9", "POST", "/login")
    assert first["attributes"]["sqreen.properties.password"] == "[REDACTED]"
    assert "hunter2" not in json.dumps(failed)
    assert first["scope"] == "sqreen_otel"
    assert http.get(f"{explorer}/api/events/{first['id']}", timeout=5).json() == first

    assert [e["name"] for e in events(explorer, user="bob@example.com")] == ["srv.reset"]
    assert [e["name"] for e in events(explorer, user="42")] == ["srv.reset"]
    assert len(events(explorer, ip="203.0.113.9", name="srv.login_failed")) == 3
    assert [e["time_ns"] for e in events(explorer, name="srv.login_failed", prop="attempt=1")] == [1714564801123456000]
    assert len(events(explorer, name="srv.login_failed", prop="plan=pro")) == 2
    window = events(explorer, since=str(1714564801000000000), until=str(1714564802000000000))
    assert [e["time_ns"] for e in window] == [1714564801123456000]
    page = http.get(explorer + "/api/events", params={"name": "srv.login_failed", "limit": "2"}, timeout=5).json()
    assert len(page["events"]) == 2 and page["next"]
    rest = events(explorer, name="srv.login_failed", before=page["next"])
    assert [e["id"] for e in page["events"] + rest] == [e["id"] for e in failed]
    assert count(explorer, "srv.login_failed") == 3
    assert http.get(explorer + "/api/events/999999999", timeout=5).status_code == 404


def test_official_otlp_log_exporter_is_accepted(explorer: str) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": "official-app"}), shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=explorer + "/v1/logs")))
    logger = provider.get_logger("official.scope")
    for i in range(5):
        logger.emit(
            event_name="official.login",
            timestamp=1_700_000_000_000_000_000 + i,
            severity_number=SeverityNumber.INFO,
            attributes={"sqreen.user.email": "eve@example.com", "client.address": "198.51.100.7", "n": i},
        )
    assert provider.force_flush(10_000)
    provider.shutdown()
    stored = events(explorer, name="official.login")
    assert [e["time_ns"] for e in stored] == [1_700_000_000_000_000_000 + i for i in (4, 3, 2, 1, 0)]
    assert {e["user"]["email"] for e in stored} == {"eve@example.com"}
    assert {e["client_address"] for e in stored} == {"198.51.100.7"}
    assert {e["resource"]["service.name"] for e in stored} == {"official-app"}
    assert {e["scope"] for e in stored} == {"official.scope"}
    assert sorted(e["attributes"]["n"] for e in stored) == [0, 1, 2, 3, 4]


def test_official_span_exporter_and_metrics_are_accepted_and_not_stored(explorer: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    before = total(explorer)
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("spans")
    with tracer.start_as_current_span("GET /login") as span:
        span.set_attribute("http.request.method", "GET")
        span.add_event("sqreen-like event", {"k": "v"})
    exporter = OTLPSpanExporter(endpoint=explorer + "/v1/traces")
    assert exporter.export([span]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
    exporter.shutdown()
    metrics = ExportMetricsServiceRequest()
    metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="requests")
    response = http.post(
        explorer + "/v1/metrics", data=metrics.SerializeToString(), headers={"Content-Type": PROTOBUF}, timeout=5
    )
    assert response.status_code == 200
    assert total(explorer) == before


# -- what goes over the wire: encodings, limits, garbage ------------------------------------------------


def test_otlp_json_and_gzip_bodies_are_stored(explorer: str) -> None:
    document = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "json.scope"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000000",
                                "eventName": "wire.json",
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "attributes": [
                                    {"key": "sqreen.user.email", "value": {"stringValue": "json@example.com"}},
                                    {"key": "sqreen.properties.count", "value": {"intValue": "7"}},
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    response = http.post(
        explorer + "/v1/logs",
        data=json.dumps(document),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    (stored,) = events(explorer, name="wire.json")
    assert stored["trace_id"] == "5b8efff798038103d269b633813fc60c" and stored["span_id"] == "eee19b7ec3c1b174"
    assert stored["user"] == {"email": "json@example.com"}
    assert stored["attributes"]["sqreen.properties.count"] == 7
    assert stored["resource"] == {"service.name": "json-app"}

    body = gzip.compress(logs_body("wire.gzip", 3, **{"sqreen.user.id": "g1"}))
    response = http.post(
        explorer + "/v1/logs", data=body, headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}, timeout=5
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == PROTOBUF
    assert count(explorer, "wire.gzip") == 3


def _zeros_gzip(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*parts, compressor.flush()])


def test_gzip_bomb_and_oversized_bodies_are_413_and_the_server_stays_up(explorer: str) -> None:
    before = total(explorer)
    bomb = _zeros_gzip(100 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024  # about 100 KB on the wire
    response = http.post(
        explorer + "/v1/logs", data=bomb, headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}, timeout=30
    )
    assert response.status_code == 413
    assert "too large" in response.text
    alive(explorer)

    big = os.urandom(9 * 1024 * 1024)  # over the 8 MiB cap on what is received
    response = http.post(explorer + "/v1/logs", data=big, headers={"Content-Type": PROTOBUF}, timeout=30)
    assert response.status_code == 413
    assert "limit" in response.text

    def chunked() -> Iterator[bytes]:  # no Content-Length: the cap must hold while streaming
        for _ in range(9):
            yield bytes(1024 * 1024)

    response = http.post(explorer + "/v1/logs", data=chunked(), headers={"Content-Type": PROTOBUF}, timeout=30)
    assert response.status_code == 413
    alive(explorer)
    assert total(explorer) == before


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"\xff\xff\xff not protobuf", PROTOBUF, 400, "malformed protobuf"),
        (b'{"resourceLogs": [', "application/json", 400, "invalid JSON"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
            "application/json",
            400,
            "traceId",
        ),
        (b"name=x", "text/plain", 415, "Content-Type"),
        (b"<logs/>", "application/xml", 415, "Content-Type"),
    ],
)
def test_bad_bodies_get_a_status_and_a_message(
    explorer: str, body: bytes, content_type: str, status: int, message: str
) -> None:
    before = total(explorer)
    response = http.post(explorer + "/v1/logs", data=body, headers={"Content-Type": content_type}, timeout=5)
    assert response.status_code == status
    assert message in response.text
    assert total(explorer) == before
    alive(explorer)


def test_unknown_content_encoding_is_415(explorer: str) -> None:
    response = http.post(
        explorer + "/v1/logs",
        data=logs_body("x"),
        headers={"Content-Type": PROTOBUF, "Content-Encoding": "br"},
        timeout=5,
    )
    assert response.status_code == 415


def test_filters_that_look_like_sql_injection_are_just_values(explorer: str) -> None:
    response = http.post(
        explorer + "/v1/logs",
        data=logs_body("sqli.canary", 2, **{"sqreen.properties.k": "v"}),
        headers={"Content-Type": PROTOBUF},
        timeout=5,
    )
    assert response.status_code == 200
    before = total(explorer)
    attacks = ["x' OR '1'='1", "'; DROP TABLE events; --", '" OR 1=1 --', "1) UNION SELECT * FROM actions --"]
    for attack in attacks:
        for key in ("name", "user", "ip"):
            assert events(explorer, **{key: attack}) == [], (key, attack)
        assert events(explorer, name="sqli.canary", prop=f"k={attack}") == []
    response = http.get(explorer + "/api/events", params={"prop": "k') OR 1=1 --=v"}, timeout=5)
    assert response.status_code == 400  # property keys are checked, never spliced into SQL
    response = http.get(explorer + "/api/events", params={"since": "0 OR 1=1"}, timeout=5)
    assert response.status_code == 400
    assert total(explorer) == before
    assert len(events(explorer, name="sqli.canary", prop="k=v")) == 2


# -- several processes at once -------------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import json, sys, sqreen_otel
    endpoint, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sqreen_otel.configure(endpoint=endpoint, flush_interval=60, first_seen_delay=None, max_queue_size=n)
    for i in range(n):
        sqreen_otel.track("concurrent.event", {"properties": {"worker": worker, "i": i}})
    ok = sqreen_otel.flush(30)
    print(json.dumps({"flushed": ok, **sqreen_otel.stats()}))
""")


def test_concurrent_ingest_from_four_processes_stores_every_event_once(explorer: str) -> None:
    n = 8000
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, explorer + "/v1/logs", str(w), str(n // 4)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for w in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["flushed"] and stats["exported"] == n // 4 and not any(stats["dropped"].values()), stats
    assert count(explorer, "concurrent.event") == n
    seen: set[tuple[str, int]] = set()
    after = 0
    while True:
        page = http.get(
            explorer + "/api/tail", params={"after": str(after), "name": "concurrent.event"}, timeout=10
        ).json()["events"]
        if not page:
            break
        for event in page:
            seen.add((event["attributes"]["sqreen.properties.worker"], event["attributes"]["sqreen.properties.i"]))
        after = page[-1]["id"]
    assert seen == {(str(w), i) for w in range(4) for i in range(n // 4)}


# -- the actions feed ----------------------------------------------------------------------------------


def test_actions_feed_has_etags_and_parses_as_an_actions_document(explorer: str) -> None:
    created = http.post(
        explorer + "/api/actions",
        json={"action": "block_user", "user": {"email": "feed@example.com"}, "duration": 3600},
        headers=API,
        timeout=5,
    )
    assert created.status_code == 201
    action_id = created.json()["id"]
    first = http.get(explorer + "/v1/actions", timeout=5)
    assert first.status_code == 200 and first.headers["content-type"].startswith("application/json")
    etag = first.headers["etag"]
    entries = {e.action_id: e for e in parse_actions(first.content, "url")}
    entry = entries[action_id]
    assert (entry.kind, entry.user) == ("user", {"email": "feed@example.com"})
    assert entry.expires_at is not None and 3590 < entry.expires_at - time.time() <= 3600

    again = http.get(explorer + "/v1/actions", headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag

    ip = http.post(
        explorer + "/api/actions", json={"action": "block_ip", "ip": "203.0.113.0/24"}, headers=API, timeout=5
    )
    changed = http.get(explorer + "/v1/actions", headers={"If-None-Match": etag}, timeout=5)
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    entries = {e.action_id: e for e in parse_actions(changed.content, "url")}
    assert str(entries[ip.json()["id"]].network) == "203.0.113.0/24" and entries[ip.json()["id"]].expires_at is None

    for action in (action_id, ip.json()["id"]):
        assert http.delete(f"{explorer}/api/actions/{action}", headers=API, timeout=5).status_code == 200
    assert http.delete(f"{explorer}/api/actions/{action_id}", headers=API, timeout=5).status_code == 404
    assert json.loads(http.get(explorer + "/v1/actions", timeout=5).content)["actions"] == []


@pytest.mark.parametrize(
    "data",
    [
        {"action": "block_user", "user": "alice"},
        {"action": "block_user", "user": {"email": ["a"]}},
        {"action": "block_user", "user": {}},
        {"action": "block_ip", "ip": "not an address"},
        {"action": "block_ip", "ip": "10.0.0.1", "duration": "long"},
        {"action": "block_ip", "ip": "10.0.0.1", "duration": -1},
        {"action": "shutdown"},
        ["block_user"],
    ],
)
def test_bad_action_requests_are_400(explorer: str, data: Any) -> None:
    response = http.post(explorer + "/api/actions", json=data, headers=API, timeout=5)
    assert response.status_code == 400, response.text
    assert http.get(explorer + "/api/actions", timeout=5).json()["actions"] == []


def test_an_app_polling_the_feed_blocks_a_user_blocked_with_the_cli(explorer: str, pipeline: None) -> None:
    sqreen_otel.configure(
        endpoint=explorer + "/v1/logs",
        actions_url=explorer + "/v1/actions",
        flush_interval=0.5,
        first_seen_delay=None,
        actions_poll_interval=0.5,
    )
    mallory = {"email": "mallory@example.com"}
    sqreen_otel.identify(mallory)  # not blocked yet
    command = [str(BIN / "sqreen-otel"), "block-user", "--id", "email=mallory@example.com", "--url", explorer]
    cli = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=30)
    assert cli.returncode == 0, cli.stderr
    action_id = cli.stdout.split("(action ")[1].rstrip(")\n")
    start = time.monotonic()
    with pytest.raises(sqreen_otel.UserBlocked):
        while time.monotonic() - start < 5:
            sqreen_otel.identify(mallory)
            time.sleep(0.05)
    assert time.monotonic() - start < 2.5  # one poll (0.5 s at most) and a request
    sqreen_otel.identify({"email": "alice@example.com"})  # others still pass
    assert sqreen_otel.flush(10)
    (blocked,) = events(explorer, name="sq.action.block_user", user="mallory@example.com")
    assert blocked["attributes"]["sqreen.action.id"] == action_id

    cli = subprocess.run(
        [str(BIN / "sqreen-otel"), "unblock-user", "--id", "email=mallory@example.com", "--url", explorer],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert cli.returncode == 0, cli.stderr
    deadline = time.monotonic() + 5
    while True:
        try:
            sqreen_otel.identify(mallory)
            break
        except sqreen_otel.UserBlocked:
            assert time.monotonic() < deadline, "still blocked 5 s after unblock-user"
            time.sleep(0.05)


# -- token mode and binding ----------------------------------------------------------------------------


def test_token_mode_guards_ingest_ui_api_and_feed(tmp_path: Path) -> None:
    token = "s3cret-token"
    with serve(tmp_path, "--token", token) as url:
        auth = {"Authorization": f"Bearer {token}"}
        wrong = {"Authorization": "Bearer nope"}
        body = logs_body("token.event")
        for headers in ({}, wrong):
            response = http.post(url + "/v1/logs", data=body, headers={"Content-Type": PROTOBUF, **headers}, timeout=5)
            assert response.status_code == 401
            for path in ("/", "/summary", "/actions", "/api/events", "/api/summary", "/api/tail", "/v1/actions"):
                assert http.get(url + path, headers=headers, timeout=5).status_code == 401, path
            assert (
                http.post(
                    url + "/api/actions", json={"action": "block_ip", "ip": "10.0.0.1"}, headers=headers, timeout=5
                ).status_code
                == 401
            )
        response = http.post(url + "/v1/logs", data=body, headers={"Content-Type": PROTOBUF, **auth}, timeout=5)
        assert response.status_code == 200
        for path in ("/", "/summary", "/actions", "/api/events", "/api/summary", "/api/tail", "/v1/actions"):
            assert http.get(url + path, headers=auth, timeout=5).status_code == 200, path
        assert [e["name"] for e in http.get(url + "/api/events", headers=auth, timeout=5).json()["events"]] == [
            "token.event"
        ]


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    command = [str(BIN / "sqreen-otel"), "serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")]
    result = subprocess.run([*command, "--port", str(free_port())], capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without --token" in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before opening anything
