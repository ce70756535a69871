"""A small OTLP/HTTP logs receiver for the tests, the demo and ``python -m sqreen_otel.receiver``.

It decodes requests with the official protobuf classes, records every accepted event so that tests
can assert on what really went over the wire, and plays scripted faults (error statuses, delays,
garbage or partial-success answers) so that exporter retry logic is exercised against a real socket.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import logging
import socket
import sys
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

logger = logging.getLogger("sqreen_otel.receiver")
UID = "log.record.uid"  # each event's id (semantic conventions); resends carry the same one

LOGS_PATH = "/v1/logs"
IGNORED_PATHS = frozenset({"/v1/traces", "/v1/metrics"})
GARBAGE = b"\xff\xff\xff not protobuf"
PROTOBUF = "application/x-protobuf"
MiB = 1024 * 1024


def any_value(value: AnyValue) -> Any:
    """Turn an OTLP AnyValue into plain Python so that tests can compare with ``==``."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def decode_events(request: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    """Flatten the resource / scope / record nesting into one self-contained dict per event."""
    events = []
    for rl in request.resource_logs:
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            scope_attributes = attributes(sl.scope.attributes)
            for rec in sl.log_records:
                events.append(
                    {
                        "name": rec.event_name,
                        "time_unix_nano": rec.time_unix_nano,
                        "observed_time_unix_nano": rec.observed_time_unix_nano,
                        "severity_number": int(rec.severity_number),
                        "severity_text": rec.severity_text,
                        "trace_id": rec.trace_id.hex(),
                        "span_id": rec.span_id.hex(),
                        "attributes": attributes(rec.attributes),
                        "body": any_value(rec.body),
                        "resource": dict(resource),
                        "scope": sl.scope.name,
                        "scope_version": sl.scope.version,
                        "scope_attributes": scope_attributes,
                    }
                )
    return events


class _TooLarge(Exception):
    """The body, once decompressed, would exceed the cap."""


def gunzip(data: bytes, cap: int) -> bytes:
    """Decompress without ever holding more than ``cap + 1`` bytes, so a gzip bomb costs nothing."""
    out = bytearray()
    while data:  # several gzip members may follow each other
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += dec.decompress(data, cap + 1 - len(out))
        if len(out) > cap:
            raise _TooLarge
        if not dec.eof:
            raise ValueError("truncated gzip body")
        data = dec.unused_data
    return bytes(out)


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value if value.isprintable() else json.dumps(value)
    if isinstance(value, bytes):
        return value.hex()
    return json.dumps(value, separators=(",", ":"), default=lambda b: b.hex())


def format_event(event: dict[str, Any]) -> str:
    """One readable line per event, for the demo's console."""
    ns = event["time_unix_nano"] or event["observed_time_unix_nano"]
    when = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    parts = [f"{when:%Y-%m-%dT%H:%M:%S}.{ns // 10**6 % 1000:03d}Z", event["name"] or "-"]
    parts += [f"{key}={_fmt(value)}" for key, value in event["attributes"].items()]
    if event["body"] is not None:
        parts.append(f"body={_fmt(event['body'])}")
    if event["trace_id"]:
        parts.append(f"trace={event['trace_id']}")
    return "  ".join(parts)


@dataclass(frozen=True)
class _Fault:
    kind: str  # "status" | "delay" | "hold" | "garbage" | "partial"
    status: int = 200
    retry_after: str | None = None
    body: bytes = b""
    seconds: float = 0.0
    rejected: int = 0
    message: str = ""


@dataclass
class _Outcome:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    records: int = 0
    raw: bytes | None = None  # request body after decompression, when we got that far
    events: tuple[dict[str, Any], ...] = ()  # events to store (only for 2xx answers)


class _Server(ThreadingHTTPServer):
    """Tracks open connections so that stop() can cut them like a dying backend would."""

    daemon_threads = True
    block_on_close = False  # stop() must not wait for handlers sleeping in a delay fault
    allow_reuse_address = True  # start() after stop() rebinds the same port

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like a real collector
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        known = path == LOGS_PATH or path in IGNORED_PATHS
        self._reply(_Outcome(405 if known else 404, b"use POST" if known else b"not found"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == LOGS_PATH:
            self._logs()
            return
        length = self._length()
        if length is None:  # cannot find the end of the body: do not reuse the connection
            self.close_connection = True
        self._discard(length or 0)
        if path in IGNORED_PATHS:
            self._reply(_Outcome(200, content_type=PROTOBUF))
        else:
            self._reply(_Outcome(404, b"not found"))

    def _length(self) -> int | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None
        return length if length >= 0 else None

    def _discard(self, length: int) -> None:
        """Read and drop a refused body so the connection stays usable and the client sees our answer."""
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _reply(self, out: _Outcome) -> None:
        self.send_response(out.status)
        if out.body or out.content_type == PROTOBUF:
            self.send_header("Content-Type", out.content_type)
        self.send_header("Content-Length", str(len(out.body)))
        for name, value in out.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(out.body)

    def _logs(self) -> None:
        rx = self.server.receiver
        headers = {name.lower(): value for name, value in self.headers.items()}
        with rx._lock:
            rx._in_flight += 1
            rx._max_in_flight = max(rx._max_in_flight, rx._in_flight)
        try:
            out = self._process(rx, headers)
            rx._record(headers, out)
            if out.status:
                self._reply(out)
            else:  # stopped while delaying: vanish without an answer
                self.close_connection = True
        finally:
            with rx._lock:
                rx._in_flight -= 1

    def _process(self, rx: Receiver, headers: dict[str, str]) -> _Outcome:
        length = self._length()
        if length is None:
            self.close_connection = True
            return _Outcome(411, b"valid Content-Length required")
        if length > rx.max_body_bytes:
            self._discard(length)
            return _Outcome(413, b"body too large")
        data = self.rfile.read(length)
        if len(data) < length:
            self.close_connection = True
            return _Outcome(400, b"truncated body")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            try:
                data = gunzip(data, rx.max_decompressed_bytes)
            except _TooLarge:
                return _Outcome(413, b"decompressed body too large")
            except (zlib.error, ValueError):
                return _Outcome(400, b"bad gzip body")
        elif encoding not in ("", "identity"):
            return _Outcome(415, b"unsupported Content-Encoding")
        if headers.get("content-type", "").split(";")[0].strip().lower() != PROTOBUF:
            return _Outcome(415, b"Content-Type must be " + PROTOBUF.encode(), raw=data)
        try:
            events = decode_events(ExportLogsServiceRequest.FromString(data))
        except DecodeError:
            return _Outcome(400, b"malformed ExportLogsServiceRequest", raw=data)

        n = len(events)
        ok = _Outcome(200, ExportLogsServiceResponse().SerializeToString(), PROTOBUF, records=n, raw=data)
        fault = rx._pop_fault()
        if fault is None:
            pass
        elif fault.kind == "delay":
            if self.server.stopping.wait(fault.seconds):
                return _Outcome(0, records=n, raw=data)
        elif fault.kind == "hold":
            while not rx._released.wait(0.05):
                if self.server.stopping.is_set():
                    return _Outcome(0, records=n, raw=data)
        elif fault.kind == "status":
            extra = (("Retry-After", fault.retry_after),) if fault.retry_after is not None else ()
            ok = _Outcome(fault.status, fault.body, PROTOBUF, extra, records=n, raw=data)
        elif fault.kind == "garbage":
            ok.body = GARBAGE
        elif fault.kind == "partial":
            resp = ExportLogsServiceResponse()
            resp.partial_success.rejected_log_records = fault.rejected
            resp.partial_success.error_message = fault.message
            ok.body = resp.SerializeToString()
            events = events[: max(0, n - fault.rejected)]
        if 200 <= ok.status < 300:
            ok.events = tuple(events)
        return ok


class Receiver:
    """OTLP/HTTP logs endpoint on loopback that records what it accepts and can misbehave on demand."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        echo: bool = False,
        max_body_bytes: int = 16 * MiB,
        max_decompressed_bytes: int | None = None,
        keep: int = 100_000,
    ) -> None:
        self.host = host
        self.echo = echo
        self.max_body_bytes = max_body_bytes
        if max_decompressed_bytes is None:
            max_decompressed_bytes = max_body_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self._port = port
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Bounded: a long-running receiver keeps only the most recent recordings.
        self._events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._bodies: deque[bytes] = deque(maxlen=max(keep // 100, 10))
        self._requests: deque[dict[str, Any]] = deque(maxlen=max(keep // 10, 10))
        self._accepted = 0  # events accepted since the last clear(), including those no longer kept
        self._faults: deque[_Fault] = deque()
        self._released = threading.Event()  # opens the requests held by hold_next()
        self._in_flight = 0  # requests being answered now (read, held, delayed or replying)
        self._max_in_flight = 0  # the most at once since the last clear()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Receiver:
        """Bind (the same port again after a stop()) and serve from a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._port), self)
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otlp-receiver-{self._port}",
            daemon=True,
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and cut open connections, as if the backend went down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self._port}{LOGS_PATH}"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- recordings --------------------------------------------------------------------------------
    def _record(self, headers: dict[str, str], out: _Outcome) -> None:
        with self._cond:
            self._requests.append({"headers": headers, "status": out.status, "records": out.records})
            if out.raw is not None:
                self._bodies.append(out.raw)
            self._events.extend(out.events)
            self._accepted += len(out.events)
            if self.echo:
                for event in out.events:
                    try:
                        print(format_event(event), flush=True)
                    except (OSError, ValueError):  # a broken console must not break the receiver
                        logger.debug("cannot echo event", exc_info=True)
            self._cond.notify_all()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._events))

    def bodies(self) -> list[bytes]:
        with self._lock:
            return list(self._bodies)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._requests))

    def uids(self) -> Counter[str]:
        """How many times each ``log.record.uid`` arrived (among the events kept); no uid counts as ``""``."""
        with self._lock:
            return Counter(str(e["attributes"].get(UID, "")) for e in self._events)

    def duplicates(self) -> int:
        """Copies beyond the first of every uid: what a backend that dedupes by uid would ignore."""
        return sum(n - 1 for uid, n in self.uids().items() if uid)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` events were accepted; TimeoutError says how many did arrive."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._accepted >= count, timeout):
                raise TimeoutError(f"expected {count} events within {timeout}s, {self._accepted} arrived")
            return copy.deepcopy(list(self._events))

    def clear(self) -> None:
        """Forget recorded events, bodies and requests (queued faults are kept)."""
        with self._lock:
            self._events.clear()
            self._accepted = 0
            self._bodies.clear()
            self._requests.clear()
            self._max_in_flight = self._in_flight

    # -- fault injection ---------------------------------------------------------------------------
    def _queue(self, fault: _Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._lock:
            self._faults.extend([fault] * times)

    def _pop_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        body: bytes = b"",
    ) -> None:
        if not 200 <= status <= 599:
            raise ValueError(f"not an HTTP status: {status}")
        self._queue(_Fault("status", status=status, retry_after=retry_after, body=body), times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        self._queue(_Fault("delay", seconds=seconds), times)

    def hold_next(self, times: int = 1) -> None:
        """The next ``times`` requests wait, unanswered, until ``release()`` (or ``stop()``)."""
        self._released.clear()
        self._queue(_Fault("hold"), times)

    def release(self) -> None:
        """Answer the held requests (and let later held ones through until the next ``hold_next()``)."""
        self._released.set()

    @property
    def in_flight(self) -> int:
        """Requests to ``/v1/logs`` being handled right now: a client's concurrency, seen from here."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests handled at once since the start or the last ``clear()``."""
        with self._lock:
            return self._max_in_flight

    def garbage_next(self, times: int = 1) -> None:
        self._queue(_Fault("garbage"), times)

    def partial_success_next(self, rejected: int, message: str = "rejected by test", times: int = 1) -> None:
        self._queue(_Fault("partial", rejected=rejected, message=message), times)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """Scripted faults not consumed yet, so a test can check the client really made its attempts."""
        with self._lock:
            return len(self._faults)


def main(argv: list[str] | None = None) -> int:
    """Run a printing receiver until Ctrl-C, for the demo."""
    parser = argparse.ArgumentParser(prog="python -m sqreen_otel.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=4318, help="port to bind, 0 for any (default: 4318)")
    parser.add_argument("--quiet", action="store_true", help="do not print events (for benchmarks)")
    parser.add_argument("--print-port", action="store_true", help="print only the bound port number, then serve")
    args = parser.parse_args(argv)
    receiver = Receiver(args.host, args.port, echo=not args.quiet, keep=0 if args.quiet else 1000)
    # One ``try`` from before the bind to the end: a Ctrl-C at any point after start-up (even between
    # the banner and the wait) is a clean stop, never a traceback or a socket left open.
    try:
        try:
            receiver.start()
        except OSError as exc:
            print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(receiver.port if args.print_port else f"listening on {receiver.endpoint}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        receiver.stop()


if __name__ == "__main__":
    sys.exit(main())
