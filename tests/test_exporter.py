"""OTLPEventExporter over real HTTP to the Receiver: endpoint/env resolution, headers, gzip, outcomes, interop."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from email.utils import format_datetime

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource

from sqreen_otel.exporter import DEFAULT_ENDPOINT, OTLPEventExporter, Outcome, Status, parse_retry_after
from sqreen_otel.receiver import Receiver

OTEL_VARS = [
    f"OTEL_EXPORTER_OTLP_{kind}{what}"
    for kind in ("", "LOGS_")
    for what in ("ENDPOINT", "HEADERS", "TIMEOUT", "COMPRESSION")
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


class _Collect(LogRecordProcessor):
    def __init__(self) -> None:
        self.records: list[ReadableLogRecord] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.records.append(
            ReadableLogRecord(
                log_record=log_record.log_record,
                resource=log_record.resource,
                instrumentation_scope=log_record.instrumentation_scope,
                limits=log_record.limits,
            )
        )

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def records(n: int, name: str = "evt") -> list[ReadableLogRecord]:
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False)
    collect = _Collect()
    provider.add_log_record_processor(collect)
    logger = provider.get_logger("sqreen_otel")
    for i in range(n):
        logger.emit(event_name=name, body=f"body {i}", attributes={"i": i, "user.email": "a@b.c", "ok": True})
    return collect.records


# -- endpoint, headers, timeout, compression -----------------------------------------------------


def test_endpoint_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:1/v1/logs")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:2")
    assert OTLPEventExporter("http://arg:3/custom/v1/logs").endpoint == "http://arg:3/custom/v1/logs"


def test_logs_endpoint_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:1/custom/v1/logs")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:2")
    assert OTLPEventExporter().endpoint == "http://logs:1/custom/v1/logs"


@pytest.mark.parametrize(
    ("source", "value", "match"),
    [
        ("arg", "127.0.0.1:4318/v1/logs", r"^endpoint must be an http:// or https:// URL .*did you mean 'http://127"),
        ("arg", "http://h:4318/v1/traces", r"^endpoint must be the OTLP/HTTP logs URL, its path ending in /v1/logs"),
        ("arg", "http://h:70000/v1/logs", r"^endpoint has an invalid port"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:1/custom/path", r"^OTEL_EXPORTER_OTLP_LOGS_ENDPOINT must"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", r"^OTEL_EXPORTER_OTLP_ENDPOINT must be an http"),
    ],
)
def test_unusable_endpoint_is_refused_naming_its_source(
    monkeypatch: pytest.MonkeyPatch, source: str, value: str, match: str
) -> None:
    if source == "arg":
        with pytest.raises(ValueError, match=match):
            OTLPEventExporter(value)
    else:
        monkeypatch.setenv(source, value)
        with pytest.raises(ValueError, match=match):
            OTLPEventExporter()


def test_base_url_argument_gets_the_logs_path_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sqreen_otel"):
        assert OTLPEventExporter("http://collector:4318").endpoint == "http://collector:4318/v1/logs"
    assert any("is a base URL; sending to /v1/logs" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://base:2", "http://base:2/v1/logs"),
        ("http://base:2/", "http://base:2/v1/logs"),
        ("http://base:2/otlp", "http://base:2/otlp/v1/logs"),
        ("http://base:2/otlp/", "http://base:2/otlp/v1/logs"),
    ],
)
def test_base_endpoint_gets_the_logs_path(monkeypatch: pytest.MonkeyPatch, base: str, expected: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    assert OTLPEventExporter().endpoint == expected


def test_default_endpoint() -> None:
    assert OTLPEventExporter().endpoint == DEFAULT_ENDPOINT == "http://localhost:4318/v1/logs"


def test_base_endpoint_from_env_reaches_the_receiver(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}/")
    outcome = OTLPEventExporter(timeout=2).send(records(2))
    assert outcome == Outcome(Status.SUCCESS)
    assert [e["attributes"]["i"] for e in receiver.events()] == [0, 1]


def test_headers_from_env_arrive_url_decoded(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr%3Dt%20x , tenant=acme")
    exporter = OTLPEventExporter(receiver.endpoint, timeout=2)
    assert exporter.headers == {"api-key": "s3cr=t x", "tenant": "acme"}
    assert exporter.send(records(1)).status is Status.SUCCESS
    headers = receiver.requests()[0]["headers"]
    assert headers["api-key"] == "s3cr=t x"
    assert headers["tenant"] == "acme"
    assert headers["content-type"] == "application/x-protobuf"


def test_logs_headers_env_wins_and_argument_wins_over_env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=base")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "a=logs")
    assert OTLPEventExporter(receiver.endpoint, timeout=2).send(records(1)).status is Status.SUCCESS
    assert OTLPEventExporter(receiver.endpoint, timeout=2, headers={"b": "arg"}).send(records(1)).status is (
        Status.SUCCESS
    )
    first, second = (r["headers"] for r in receiver.requests())
    assert first["a"] == "logs"
    assert second["b"] == "arg" and "a" not in second


def test_malformed_headers_env_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=b,novalue")
    with pytest.raises(ValueError, match=r"OTEL_EXPORTER_OTLP_HEADERS.*novalue"):
        OTLPEventExporter("http://127.0.0.1:1/v1/logs")


def test_timeout_from_env_is_applied(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "0.4")
    assert OTLPEventExporter(receiver.endpoint, timeout=7).timeout == 7
    exporter = OTLPEventExporter(receiver.endpoint)
    assert exporter.timeout == 0.4
    receiver.delay_next(1.5)
    start = time.monotonic()
    outcome = exporter.send(records(1))
    assert time.monotonic() - start < 1.2
    assert outcome.status is Status.RETRY
    assert outcome.error is not None and "Timeout" in outcome.error


@pytest.mark.parametrize(("env", "match"), [("0", "> 0"), ("-1", "> 0"), ("nan", "> 0"), ("soon", "TIMEOUT.*'soon'")])
def test_unusable_timeout_from_env_is_refused_up_front(monkeypatch: pytest.MonkeyPatch, env: str, match: str) -> None:
    # requests refuses a timeout <= 0 with a ValueError at every send(): refuse it once, at construction.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", env)
    with pytest.raises(ValueError, match=match):
        OTLPEventExporter("http://127.0.0.1:1/v1/logs")


def test_default_timeout_is_ten_seconds() -> None:
    assert OTLPEventExporter("http://127.0.0.1:1/v1/logs").timeout == 10.0


@pytest.mark.parametrize("via_env", [False, True])
def test_gzip_compression(monkeypatch: pytest.MonkeyPatch, receiver: Receiver, via_env: bool) -> None:
    if via_env:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        exporter = OTLPEventExporter(receiver.endpoint, timeout=2)
    else:
        exporter = OTLPEventExporter(receiver.endpoint, timeout=2, compression="gzip")
    # The receiver answers 400 to a body that claims gzip but is not: SUCCESS proves real gzip.
    assert exporter.send(records(3)).status is Status.SUCCESS
    assert receiver.requests()[0]["headers"]["content-encoding"] == "gzip"
    decoded = ExportLogsServiceRequest.FromString(receiver.bodies()[0])
    assert [r.body.string_value for r in decoded.resource_logs[0].scope_logs[0].log_records] == [
        "body 0",
        "body 1",
        "body 2",
    ]
    assert [e["attributes"]["i"] for e in receiver.events()] == [0, 1, 2]


def test_no_compression_by_default(receiver: Receiver) -> None:
    assert OTLPEventExporter(receiver.endpoint, timeout=2).send(records(1)).status is Status.SUCCESS
    assert "content-encoding" not in receiver.requests()[0]["headers"]


def test_unknown_compression_is_an_error() -> None:
    with pytest.raises(ValueError, match="compression"):
        OTLPEventExporter("http://127.0.0.1:1/v1/logs", compression="brotli")


# -- outcomes ------------------------------------------------------------------------------------


def test_success_decodes_every_field(receiver: Receiver) -> None:
    outcome = OTLPEventExporter(receiver.endpoint, timeout=2).send(records(2, name="password_reset"))
    assert outcome == Outcome(Status.SUCCESS)
    first = receiver.events()[0]
    assert first["name"] == "password_reset"
    assert first["attributes"] == {"i": 0, "user.email": "a@b.c", "ok": True}
    assert first["body"] == "body 0"
    assert first["resource"]["service.name"] == "shop"
    assert first["scope"] == "sqreen_otel"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (408, Status.RETRY),
        (429, Status.RETRY),
        (500, Status.RETRY),
        (502, Status.RETRY),
        (503, Status.RETRY),
        (504, Status.RETRY),
        (400, Status.PERMANENT),
        (401, Status.PERMANENT),
        (403, Status.PERMANENT),
        (404, Status.PERMANENT),
        (413, Status.TOO_LARGE),
    ],
)
def test_outcome_by_status(receiver: Receiver, status: int, expected: Status) -> None:
    receiver.fail_next(status, body=b"nope")
    outcome = OTLPEventExporter(receiver.endpoint, timeout=2).send(records(2))
    assert outcome.status is expected
    assert outcome.error is not None and f"HTTP {status}" in outcome.error and "nope" in outcome.error
    assert outcome.retry_after is None
    assert receiver.events() == []
    assert receiver.pending_faults() == 0


def test_retry_after_seconds_on_the_wire(receiver: Receiver) -> None:
    receiver.fail_next(429, retry_after="7")
    outcome = OTLPEventExporter(receiver.endpoint, timeout=2).send(records(1))
    assert (outcome.status, outcome.retry_after) == (Status.RETRY, 7.0)


def test_retry_after_http_date_on_the_wire(receiver: Receiver) -> None:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)
    receiver.fail_next(503, retry_after=format_datetime(when, usegmt=True))
    outcome = OTLPEventExporter(receiver.endpoint, timeout=2).send(records(1))
    assert outcome.status is Status.RETRY
    assert outcome.retry_after is not None and 28 <= outcome.retry_after <= 30


def test_garbage_200_is_a_success(receiver: Receiver) -> None:
    receiver.garbage_next()
    outcome = OTLPEventExporter(receiver.endpoint, timeout=2).send(records(2))
    assert outcome == Outcome(Status.SUCCESS)
    assert len(receiver.events()) == 2


def test_partial_success(receiver: Receiver) -> None:
    receiver.partial_success_next(rejected=2, message="too old")
    outcome = OTLPEventExporter(receiver.endpoint, timeout=2).send(records(5))
    assert outcome == Outcome(Status.SUCCESS, rejected=2, error="too old")
    assert len(receiver.events()) == 3


def test_partial_success_never_rejects_more_than_sent(receiver: Receiver) -> None:
    receiver.partial_success_next(rejected=50)
    outcome = OTLPEventExporter(receiver.endpoint, timeout=2).send(records(3))
    assert (outcome.status, outcome.rejected) == (Status.SUCCESS, 3)


def test_send_never_raises_on_connection_refused(receiver: Receiver) -> None:
    exporter = OTLPEventExporter(receiver.endpoint, timeout=2)
    receiver.stop()
    outcome = exporter.send(records(1))
    assert outcome.status is Status.RETRY
    assert outcome.error is not None and "ConnectionError" in outcome.error


def test_send_after_shutdown_is_refused_without_a_request(receiver: Receiver) -> None:
    exporter = OTLPEventExporter(receiver.endpoint, timeout=2)
    exporter.shutdown()
    assert exporter.send(records(1)).status is Status.PERMANENT
    assert receiver.requests() == []


def test_plain_otel_export_interface(receiver: Receiver) -> None:
    from opentelemetry.sdk._logs.export import LogRecordExportResult

    exporter = OTLPEventExporter(receiver.endpoint, timeout=2)
    assert exporter.export(records(1)) is LogRecordExportResult.SUCCESS
    receiver.fail_next(503)
    assert exporter.export(records(1)) is LogRecordExportResult.FAILURE


# -- Retry-After parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("999999", 3600.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=90)
    seconds = parse_retry_after(format_datetime(when, usegmt=True))
    assert seconds is not None and 88 <= seconds <= 90


# -- interop -------------------------------------------------------------------------------------


def test_official_otlp_exporter_is_decoded_like_ours(receiver: Receiver) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs.export import LogRecordExportResult

    batch = records(3, name="login")
    official = OTLPLogExporter(endpoint=receiver.endpoint, timeout=2)
    try:
        assert official.export(batch) is LogRecordExportResult.SUCCESS
    finally:
        official.shutdown()
    theirs = receiver.events()
    receiver.clear()
    assert OTLPEventExporter(receiver.endpoint, timeout=2).send(batch).status is Status.SUCCESS
    ours = receiver.events()

    assert [e["attributes"]["i"] for e in theirs] == [0, 1, 2]
    assert theirs[0]["name"] == "login"
    assert theirs[0]["attributes"] == {"i": 0, "user.email": "a@b.c", "ok": True}
    assert theirs == ours  # same records, same wire content whichever exporter sent them
