"""The receiver decides what exporter tests believe went over the wire, so it must be trustworthy itself."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from sqreen_otel.receiver import GARBAGE, Receiver, format_event

PB = {"Content-Type": "application/x-protobuf"}
GZ = {**PB, "Content-Encoding": "gzip"}
T0 = 1_795_000_000_123_000_000  # 2026-11-18T11:06:40.123Z
TRACE = bytes(range(16))
SPAN = bytes(range(8))


def make_request(*names: str) -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name", value=AnyValue(string_value="shop"))
    sl = rl.scope_logs.add()
    sl.scope.name = "sqreen_otel"
    for name in names:
        rec = sl.log_records.add(
            event_name=name,
            time_unix_nano=T0,
            observed_time_unix_nano=T0 + 1,
            severity_number=9,
            severity_text="INFO",
            trace_id=TRACE,
            span_id=SPAN,
        )
        rec.attributes.add(key="user.email", value=AnyValue(string_value="a@b.c"))
    return req.SerializeToString()


def post(rx: Receiver, body: bytes, headers: dict[str, str] = PB, timeout: float = 2) -> requests.Response:
    return requests.post(rx.endpoint, data=body, headers=headers, timeout=timeout)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def test_endpoint_and_port(rx: Receiver) -> None:
    assert rx.port > 0
    assert rx.endpoint == f"http://127.0.0.1:{rx.port}/v1/logs"
    assert rx.running


def test_decodes_every_field(rx: Receiver) -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name", value=AnyValue(string_value="shop"))
    sl = rl.scope_logs.add()
    sl.scope.name = "sqreen_otel"
    rec = sl.log_records.add(
        event_name="password_reset",
        time_unix_nano=T0,
        observed_time_unix_nano=T0 + 5,
        severity_number=13,
        severity_text="WARN",
        trace_id=TRACE,
        span_id=SPAN,
    )
    nested = KeyValueList(
        values=[
            KeyValue(key="b", value=AnyValue(bool_value=True)),
            KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\x01")),
        ]
    )
    array = ArrayValue(values=[AnyValue(int_value=-3), AnyValue(double_value=2.5), AnyValue()])
    rec.attributes.add(key="s", value=AnyValue(string_value="x"))
    rec.attributes.add(key="arr", value=AnyValue(array_value=array))
    rec.attributes.add(key="kv", value=AnyValue(kvlist_value=nested))
    rec.body.CopyFrom(AnyValue(string_value="hello"))
    sl.log_records.add(event_name="bare")  # no ids, no body, no attributes
    body = req.SerializeToString()

    resp = post(rx, body)

    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/x-protobuf"
    parsed = ExportLogsServiceResponse.FromString(resp.content)
    assert not parsed.HasField("partial_success")
    assert rx.events() == [
        {
            "name": "password_reset",
            "time_unix_nano": T0,
            "observed_time_unix_nano": T0 + 5,
            "severity_number": 13,
            "severity_text": "WARN",
            "trace_id": TRACE.hex(),
            "span_id": SPAN.hex(),
            "attributes": {"s": "x", "arr": [-3, 2.5, None], "kv": {"b": True, "raw": b"\x00\x01"}},
            "body": "hello",
            "resource": {"service.name": "shop"},
            "scope": "sqreen_otel",
            "scope_version": "",
            "scope_attributes": {},
        },
        {
            "name": "bare",
            "time_unix_nano": 0,
            "observed_time_unix_nano": 0,
            "severity_number": 0,
            "severity_text": "",
            "trace_id": "",
            "span_id": "",
            "attributes": {},
            "body": None,
            "resource": {"service.name": "shop"},
            "scope": "sqreen_otel",
            "scope_version": "",
            "scope_attributes": {},
        },
    ]
    assert rx.bodies() == [body]
    [info] = rx.requests()
    assert info["status"] == 200
    assert info["records"] == 2
    assert info["headers"]["content-type"] == "application/x-protobuf"
    assert info["headers"]["content-length"] == str(len(body))


def test_gzip_body_is_decompressed(rx: Receiver) -> None:
    body = make_request("a", "b")
    resp = post(rx, gzip.compress(body), GZ)
    assert resp.status_code == 200
    assert [e["name"] for e in rx.events()] == ["a", "b"]
    assert rx.bodies() == [body]
    assert rx.requests()[0]["headers"]["content-encoding"] == "gzip"


def test_recordings_are_copies(rx: Receiver) -> None:
    post(rx, make_request("a"))
    rx.events()[0]["attributes"]["user.email"] = "changed"
    rx.requests()[0]["headers"].clear()
    assert rx.events()[0]["attributes"]["user.email"] == "a@b.c"
    assert rx.requests()[0]["headers"] != {}


def test_malformed_body_is_400_and_server_stays_up(rx: Receiver) -> None:
    bad = post(rx, b"\xff\xff\xff junk")
    assert bad.status_code == 400
    assert bad.text
    assert post(rx, gzip.compress(b"x")[:-4], GZ).status_code == 400  # truncated gzip
    assert post(rx, make_request("a")).status_code == 200
    assert [(r["status"], r["records"]) for r in rx.requests()] == [(400, 0), (400, 0), (200, 1)]
    assert [e["name"] for e in rx.events()] == ["a"]


def test_wrong_content_type_is_415(rx: Receiver) -> None:
    resp = post(rx, make_request("a"), {"Content-Type": "application/json"})
    assert resp.status_code == 415
    assert rx.events() == []


def test_body_over_limit_is_413() -> None:
    with Receiver(max_body_bytes=1000) as rx, requests.Session() as session:
        resp = session.post(rx.endpoint, data=b"x" * 1001, headers=PB, timeout=2)
        assert resp.status_code == 413
        assert session.post(rx.endpoint, data=make_request("ok"), headers=PB, timeout=2).status_code == 200
        assert [r["status"] for r in rx.requests()] == [413, 200]
        assert [e["name"] for e in rx.events()] == ["ok"]


def test_gzip_bomb_is_413() -> None:
    bomb = gzip.compress(b"\0" * (4 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    with Receiver(max_body_bytes=64 * 1024) as rx:
        assert post(rx, bomb, GZ).status_code == 413
        assert rx.events() == []
        assert rx.bodies() == []
        assert rx.requests()[0]["status"] == 413
    with Receiver(max_body_bytes=64 * 1024, max_decompressed_bytes=8 * 1024 * 1024) as rx:
        assert post(rx, bomb, GZ).status_code == 400  # decompressed fine, but zeros are not a request


def test_other_paths(rx: Receiver) -> None:
    base = rx.endpoint.removesuffix("/v1/logs")
    for path in ("/v1/traces", "/v1/metrics"):
        resp = requests.post(base + path, data=b"anything", headers=PB, timeout=2)
        assert resp.status_code == 200
        assert resp.content == b""
    assert requests.post(base + "/v1/other", data=b"x", timeout=2).status_code == 404
    assert requests.get(base + "/", timeout=2).status_code == 404
    assert rx.requests() == []
    assert rx.events() == []


def test_fail_next_with_retry_after(rx: Receiver) -> None:
    rx.fail_next(503, times=2, retry_after="7", body=b"busy")
    for _ in range(2):
        resp = post(rx, make_request("a"))
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "7"
        assert resp.content == b"busy"
    resp = post(rx, make_request("a"))
    assert resp.status_code == 200
    assert "Retry-After" not in resp.headers
    assert [(r["status"], r["records"]) for r in rx.requests()] == [(503, 1), (503, 1), (200, 1)]
    assert len(rx.events()) == 1
    assert len(rx.bodies()) == 3


def test_fail_next_without_retry_after(rx: Receiver) -> None:
    rx.fail_next(400)
    resp = post(rx, make_request("a"))
    assert resp.status_code == 400
    assert "Retry-After" not in resp.headers
    assert rx.events() == []


def test_delay_next(rx: Receiver) -> None:
    rx.delay_next(0.3)
    start = time.monotonic()
    assert post(rx, make_request("slow")).status_code == 200
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    assert post(rx, make_request("fast")).status_code == 200
    assert time.monotonic() - start < 0.25
    assert [e["name"] for e in rx.events()] == ["slow", "fast"]


def test_delay_makes_client_time_out(rx: Receiver) -> None:
    rx.delay_next(0.5)
    with pytest.raises(requests.Timeout):
        post(rx, make_request("late"), timeout=0.1)
    assert [e["name"] for e in rx.wait_for(1, timeout=1)] == ["late"]  # the server still processed it


def test_garbage_next(rx: Receiver) -> None:
    rx.garbage_next()
    resp = post(rx, make_request("a"))
    assert resp.status_code == 200
    assert resp.content == GARBAGE
    with pytest.raises(DecodeError):
        ExportLogsServiceResponse.FromString(resp.content)
    assert len(rx.events()) == 1


def test_partial_success_next(rx: Receiver) -> None:
    rx.partial_success_next(1, "one too many")
    resp = post(rx, make_request("a", "b", "c"))
    assert resp.status_code == 200
    parsed = ExportLogsServiceResponse.FromString(resp.content)
    assert parsed.partial_success.rejected_log_records == 1
    assert parsed.partial_success.error_message == "one too many"
    assert [e["name"] for e in rx.events()] == ["a", "b"]
    assert rx.requests()[0]["records"] == 3


def test_faults_are_fifo_one_per_request(rx: Receiver) -> None:
    rx.fail_next(500)
    rx.garbage_next()
    rx.partial_success_next(5)
    rx.fail_next(429, retry_after="1")
    results = [post(rx, make_request("a")) for _ in range(5)]
    assert [r.status_code for r in results] == [500, 200, 200, 429, 200]
    assert results[1].content == GARBAGE
    assert ExportLogsServiceResponse.FromString(results[2].content).partial_success.rejected_log_records == 5
    assert results[4].content == b""
    assert len(rx.events()) == 2  # garbage one and the last one; partial rejected its only record


def test_reset_faults_and_clear(rx: Receiver) -> None:
    rx.fail_next(500, times=3)
    assert rx.pending_faults() == 3
    rx.reset_faults()
    assert rx.pending_faults() == 0
    assert post(rx, make_request("a")).status_code == 200
    rx.fail_next(500)
    rx.clear()
    assert rx.events() == [] and rx.bodies() == [] and rx.requests() == []
    assert post(rx, make_request("a")).status_code == 500  # clear() keeps faults


def test_bad_fault_arguments(rx: Receiver) -> None:
    with pytest.raises(ValueError):
        rx.fail_next(42)
    with pytest.raises(ValueError):
        rx.fail_next(100)
    with pytest.raises(ValueError):
        rx.garbage_next(times=0)


def test_wait_for(rx: Receiver) -> None:
    post(rx, make_request("a"))
    threading.Timer(0.1, post, (rx, make_request("b"))).start()
    assert [e["name"] for e in rx.wait_for(2, timeout=2)] == ["a", "b"]
    with pytest.raises(TimeoutError, match="2 arrived"):
        rx.wait_for(3, timeout=0.1)


def test_stop_then_start_on_same_port(rx: Receiver) -> None:
    port = rx.port
    with requests.Session() as session:
        assert session.post(rx.endpoint, data=make_request("a"), headers=PB, timeout=2).status_code == 200
        rx.stop()
        assert not rx.running
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with pytest.raises(requests.ConnectionError):  # the pooled keep-alive connection was cut too
            session.post(rx.endpoint, data=make_request("b"), headers=PB, timeout=2)
        rx.start()
        assert rx.port == port
        assert session.post(rx.endpoint, data=make_request("c"), headers=PB, timeout=2).status_code == 200
    assert [e["name"] for e in rx.events()] == ["a", "c"]


def test_stop_cuts_delayed_request_quickly(rx: Receiver) -> None:
    rx.delay_next(5)
    errors: list[BaseException] = []

    def client() -> None:
        try:
            post(rx, make_request("a"), timeout=3)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 1
    while rx.pending_faults() and time.monotonic() < deadline:  # the request is now sleeping
        time.sleep(0.01)
    start = time.monotonic()
    rx.stop()
    thread.join(2)
    assert time.monotonic() - start < 1
    assert len(errors) == 1 and isinstance(errors[0], requests.ConnectionError)
    assert rx.requests()[0]["status"] == 0
    assert rx.events() == []


def test_echo(capsys: pytest.CaptureFixture[str]) -> None:
    with Receiver() as quiet:
        post(quiet, make_request("x"))
    assert capsys.readouterr().out == ""
    with Receiver(echo=True) as loud:
        post(loud, make_request("password_reset", "login"))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"2026-11-18T11:06:40.123Z  password_reset  user.email=a@b.c  trace={TRACE.hex()}",
        f"2026-11-18T11:06:40.123Z  login  user.email=a@b.c  trace={TRACE.hex()}",
    ]


def test_format_event_stays_on_one_line() -> None:
    event = {
        "name": "",
        "time_unix_nano": 0,
        "observed_time_unix_nano": T0,
        "trace_id": "",
        "attributes": {"msg": "a\nb", "n": 3, "ok": False, "nested": {"l": [1, b"\x01"]}},
        "body": {"k": "v"},
    }
    assert format_event(event) == (
        '2026-11-18T11:06:40.123Z  -  msg="a\\nb"  n=3  ok=false  nested={"l":[1,"01"]}  body={"k":"v"}'
    )


def test_cli_runs_until_interrupted() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "sqreen_otel.receiver", "--port", "0"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            assert first.startswith("listening on http://127.0.0.1:") and first.endswith("/v1/logs")
            endpoint = first.removeprefix("listening on ")
            assert requests.post(endpoint, data=make_request("cli"), headers=PB, timeout=10).status_code == 200
            echoed = proc.stdout.readline().strip()
            assert echoed == f"2026-11-18T11:06:40.123Z  cli  user.email=a@b.c  trace={TRACE.hex()}"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0  # a deadline, not a measure: the machine may be busy
        finally:
            if proc.poll() is None:
                proc.kill()


# The race of the test above, made deterministic: a real SIGINT raised in the CLI process at the
# worst moments, right after the bind and right after the banner, before the wait loop is reached.
_INTERRUPT_AT = """
import builtins, signal, sys
import sqreen_otel.receiver as receiver

real_start, real_stop = receiver.Receiver.start, receiver.Receiver.stop

def start(self):
    real_start(self)
    if sys.argv[1] == "bind":
        signal.raise_signal(signal.SIGINT)
    return self

def banner(*args, **kwargs):
    builtins.print(*args, **kwargs)
    if sys.argv[1] == "banner":
        signal.raise_signal(signal.SIGINT)

def stop(self):
    real_stop(self)
    print("stopped", file=sys.stderr)

receiver.Receiver.start, receiver.Receiver.stop, receiver.print = start, stop, banner
sys.exit(receiver.main(["--port", "0"]))
"""


@pytest.mark.parametrize("moment", ["bind", "banner"])
def test_cli_interrupted_just_after_start_up_stops_cleanly(moment: str) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-c", _INTERRUPT_AT, moment]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    assert (result.returncode, result.stderr) == (0, "stopped\n")  # no traceback, the socket closed
    assert result.stdout.startswith("listening on http://127.0.0.1:") if moment == "banner" else result.stdout == ""
