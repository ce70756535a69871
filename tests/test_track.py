"""The public API: track(), identify(), auth_track(), signup_track(), their argument rules and the event schema."""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import datetime as dt
import logging
import threading
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sqreen_otel
from sqreen_otel import context, runtime
from sqreen_otel.ids import UID
from sqreen_otel.receiver import Receiver
from sqreen_otel.scrub import DEFAULT_MASK
from sqreen_otel.settings import Settings

M = DEFAULT_MASK
P = "sqreen.properties."
U = "sqreen.user."
T = "sqreen.user.traits."


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_user() -> Iterator[None]:
    """identify() lives in the thread's context, which pytest shares between tests: start and end clean."""
    context.set_user(None)
    yield
    context.set_user(None)


def attrs(record: Any) -> dict[str, Any]:
    """A log record's or span event's attributes but ``log.record.uid`` (test_ids.py checks that one)."""
    return {k: v for k, v in (record.attributes or {}).items() if k != UID}


class Logs:
    """The log records track() emitted, through a real SDK LoggerProvider and in-memory exporter."""

    def __init__(self, exporter: InMemoryLogRecordExporter) -> None:
        self.exporter = exporter

    def records(self) -> list[Any]:
        return [r.log_record for r in self.exporter.get_finished_logs()]

    def one(self) -> Any:
        (record,) = self.records()
        return record

    def attributes(self) -> dict[str, Any]:
        """The record's attributes but its ``log.record.uid`` (test_ids.py checks that one)."""
        return {k: v for k, v in self.one().attributes.items() if k != UID}


@pytest.fixture
def logs() -> Iterator[Logs]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    previous = runtime.current
    runtime.install(runtime.Runtime(logger=provider.get_logger(runtime.LOGGER_NAME), configured=True))
    try:
        yield Logs(exporter)
    finally:
        runtime.install(previous)
        provider.shutdown()


@pytest.fixture
def tracer() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test_track"), exporter
    provider.shutdown()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def pipeline(rx: Receiver) -> Iterator[Receiver]:
    """configure() wired to a real receiver; shut down and the previous runtime restored afterwards."""
    previous = runtime.current
    try:
        yield rx
    finally:
        sqreen_otel.shutdown()
        runtime.install(previous)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sqreen_otel" and r.levelno == logging.WARNING]


def ns(moment: dt.datetime) -> int:
    """Independent reference: nanoseconds since the epoch of an aware datetime, exact to the microsecond."""
    utc = moment.astimezone(dt.timezone.utc)
    return calendar.timegm(utc.utctimetuple()) * 10**9 + utc.microsecond * 1000


# -- event name ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, 1, b"login", ["login"], 1.5])
def test_event_name_must_be_str(logs: Logs, name: Any) -> None:
    with pytest.raises(TypeError, match="event name"):
        sqreen_otel.track(name)
    assert logs.records() == []


def test_event_name_must_not_be_empty(logs: Logs) -> None:
    with pytest.raises(ValueError, match="empty"):
        sqreen_otel.track("")
    assert logs.records() == []


@pytest.mark.parametrize("name", ["sq.custom", "sq.sdk.users.login", "sq."])
def test_reserved_names_ignored_with_warning(
    logs: Logs, tracer: Any, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    tr, spans = tracer
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"), tr.start_as_current_span("req"):
        assert sqreen_otel.track(name) is False
    assert logs.records() == []
    assert spans.get_finished_spans()[0].events == ()
    (message,) = warnings_of(caplog)
    assert "reserved" in message
    assert repr(name) in message


@pytest.mark.parametrize("name", ["sqx.event", "sq", "SQ.event", "user.sq.event"])
def test_names_merely_resembling_the_prefix_are_fine(logs: Logs, name: str) -> None:
    assert sqreen_otel.track(name) is True
    assert logs.one().event_name == name


# -- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [[], "properties", 1, [("properties", {})], {"properties"}])
def test_options_must_be_a_mapping(logs: Logs, options: Any) -> None:
    with pytest.raises(TypeError, match="options must be a mapping"):
        sqreen_otel.track("evt", options)
    assert logs.records() == []


def test_options_may_be_any_mapping(logs: Logs) -> None:
    assert sqreen_otel.track("evt", types.MappingProxyType({"properties": {"a": 1}})) is True
    assert logs.attributes() == {P + "a": 1}


def test_unknown_option_warned_ignored_event_recorded(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        assert sqreen_otel.track("evt", {"propertys": {"x": 1}, "properties": {"a": 1}}) is True
    (message,) = warnings_of(caplog)
    assert "'propertys'" in message
    assert logs.attributes() == {P + "a": 1}


@pytest.mark.parametrize("properties", [[("a", 1)], "a=1", 3, [], "", 0, ()])
def test_properties_must_be_a_mapping(logs: Logs, properties: Any) -> None:
    with pytest.raises(TypeError, match="properties must be a mapping"):
        sqreen_otel.track("evt", {"properties": properties})
    assert logs.records() == []


@pytest.mark.parametrize("key", [1, None, b"a", ("a",)])
def test_property_keys_must_be_str(logs: Logs, key: Any) -> None:
    with pytest.raises(TypeError, match="properties keys must be str"):
        sqreen_otel.track("evt", {"properties": {"ok": 1, key: 2}})
    assert logs.records() == []


def test_none_properties_means_no_properties(logs: Logs) -> None:
    assert sqreen_otel.track("evt", {"properties": None}) is True
    assert sqreen_otel.track("evt2", None) is True
    assert [attrs(r) for r in logs.records()] == [{}, {}]


def test_more_than_16_properties_keeps_first_16_by_sorted_key(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    keys = [f"k{i:02d}" for i in range(20)]
    properties = {k: i for i, k in reversed(list(enumerate(keys)))}  # inserted in reverse order
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        assert sqreen_otel.track("evt", {"properties": properties}) is True
    (message,) = warnings_of(caplog)
    assert "20 properties" in message
    assert logs.attributes() == {P + k: i for i, k in enumerate(keys[:16])}


def test_exactly_16_properties_no_warning(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    properties = {f"p{i}": i for i in range(16)}
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        assert sqreen_otel.track("evt", {"properties": properties}) is True
    assert warnings_of(caplog) == []
    assert len(logs.attributes()) == 16


# -- timestamp -------------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", [1_700_000_000, 1.7e9, "2024-05-06T07:08:09Z", dt.date(2024, 5, 6)])
def test_timestamp_must_be_a_datetime(logs: Logs, timestamp: Any) -> None:
    with pytest.raises(TypeError, match="timestamp must be a datetime"):
        sqreen_otel.track("evt", {"timestamp": timestamp})
    assert logs.records() == []


def test_naive_timestamp_taken_as_utc(logs: Logs) -> None:
    before = time.time_ns()
    assert sqreen_otel.track("evt", {"timestamp": dt.datetime(2024, 5, 6, 7, 8, 9, 123456)}) is True
    after = time.time_ns()
    record = logs.one()
    assert record.timestamp == ns(dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc))
    assert record.timestamp == 1714979289123456000
    assert before <= record.observed_timestamp <= after


def test_aware_timestamp_converted(logs: Logs) -> None:
    paris_summer = dt.timezone(dt.timedelta(hours=2))
    new_york = dt.timezone(dt.timedelta(hours=-5, minutes=-30))
    for moment in (
        dt.datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=paris_summer),
        dt.datetime(2024, 5, 6, 1, 38, 9, 123456, tzinfo=new_york),
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
    ):
        assert sqreen_otel.track("evt", {"timestamp": moment}) is True
    stamps = [r.timestamp for r in logs.records()]
    assert stamps == [1714979289123456000] * 3


def test_timestamp_exact_to_the_microsecond_far_from_epoch(logs: Logs) -> None:
    # Float seconds would lose the microseconds here; the conversion must not.
    moment = dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=dt.timezone.utc)
    assert sqreen_otel.track("evt", {"timestamp": moment}) is True
    assert logs.one().timestamp == ns(moment) == 9223372036854775000


def test_timestamp_before_the_epoch_is_an_argument_error(logs: Logs) -> None:
    # OTLP carries unsigned nanoseconds: such a record cannot be encoded and would poison its whole batch.
    with pytest.raises(ValueError, match="timestamp"):
        sqreen_otel.track("evt", {"timestamp": dt.datetime(1969, 12, 31, 23, 59, 59)})
    assert logs.records() == []


def test_without_timestamp_both_are_now(logs: Logs) -> None:
    before = time.time_ns()
    sqreen_otel.track("evt")
    after = time.time_ns()
    record = logs.one()
    assert before <= record.timestamp <= after
    assert record.timestamp == record.observed_timestamp


# -- users -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ids",
    [["alice"], "alice", {"email": None}, {"email": 1.5}, {"email": True}, {"email": ["a"]}, {1: "a"}, {"": "a"}],
)
def test_user_identifiers_validated(logs: Logs, ids: Any) -> None:
    with pytest.raises(TypeError, match="user_identifiers"):
        sqreen_otel.track("evt", {"user_identifiers": ids})
    with pytest.raises(TypeError, match="user_identifiers"):
        sqreen_otel.identify(ids)
    assert logs.records() == []
    assert context.current_user() is None


def test_identify_traits_validated() -> None:
    with pytest.raises(TypeError, match="traits"):
        sqreen_otel.identify({"email": "a@example.com"}, traits=["plan"])
    with pytest.raises(TypeError, match="traits keys"):
        sqreen_otel.identify({"email": "a@example.com"}, traits={1: "x"})
    assert context.current_user() is None


def test_user_identifiers_option_str_and_int(logs: Logs) -> None:
    assert sqreen_otel.track("evt", {"user_identifiers": {"email": "a@example.com", "id": 42}}) is True
    assert logs.attributes() == {U + "email": "a@example.com", U + "id": 42}


def test_identify_then_track_carries_user_and_scrubbed_traits(logs: Logs) -> None:
    sqreen_otel.identify(
        {"email": "alice@example.com", "session_id": "sess-123"},
        traits={"plan": "pro", "password": "hunter2", "session_id": "trait-sess", "address": {"zip": "75001"}},
    )
    assert sqreen_otel.track("evt", {"properties": {"a": 1}}) is True
    assert logs.attributes() == {
        P + "a": 1,
        U + "email": "alice@example.com",
        U + "session_id": "sess-123",  # identifiers are never masked
        T + "plan": "pro",
        T + "password": M,
        T + "session_id": M,
        T + "address": {"zip": "75001"},
    }


def test_user_identifiers_override_identify_for_one_event(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    sqreen_otel.identify({"email": "alice@example.com"}, traits={"plan": "pro"})
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        sqreen_otel.track("evt", {"user_identifiers": {"email": "bob@example.com"}})
    (message,) = warnings_of(caplog)
    assert "differ" in message
    sqreen_otel.track("evt2")
    first, second = (attrs(r) for r in logs.records())
    assert first == {U + "email": "bob@example.com"}
    assert second == {U + "email": "alice@example.com", T + "plan": "pro"}


def test_same_user_identifiers_no_warning(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    sqreen_otel.identify({"email": "alice@example.com"})
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        sqreen_otel.track("evt", {"user_identifiers": {"email": "alice@example.com"}})
    assert warnings_of(caplog) == []
    assert logs.attributes() == {U + "email": "alice@example.com"}


def test_identify_is_per_thread(logs: Logs) -> None:
    barrier = threading.Barrier(2, timeout=5)
    errors: list[BaseException] = []

    def request(email: str) -> None:
        try:
            sqreen_otel.identify({"email": email})
            barrier.wait()  # both users identified before either tracks
            assert sqreen_otel.track("evt", {"properties": {"who": email}})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(e,)) for e in ("a@example.com", "b@example.com")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert errors == []
    records = [attrs(r) for r in logs.records()]
    assert len(records) == 2
    for found in records:
        assert found[U + "email"] == found[P + "who"]
    assert context.current_user() is None  # the main thread was not touched


def test_identify_is_per_asyncio_task(logs: Logs) -> None:
    async def request(email: str, ready: asyncio.Event, go: asyncio.Event) -> None:
        sqreen_otel.identify({"email": email})
        ready.set()
        await go.wait()  # both tasks identified before either tracks
        assert sqreen_otel.track("evt", {"properties": {"who": email}})

    async def main() -> None:
        ready_a, ready_b, go = asyncio.Event(), asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(request("a@example.com", ready_a, go)),
            asyncio.create_task(request("b@example.com", ready_b, go)),
        ]
        await ready_a.wait()
        await ready_b.wait()
        go.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    records = [attrs(r) for r in logs.records()]
    assert sorted(a[U + "email"] for a in records) == ["a@example.com", "b@example.com"]
    for found in records:
        assert found[U + "email"] == found[P + "who"]


# -- auth_track / signup_track ---------------------------------------------------------------------


def test_successful_login_recorded_and_identifies(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        assert sqreen_otel.auth_track(True, email="alice@example.com", id=7) is None
        sqreen_otel.track("after")
    assert warnings_of(caplog) == []
    login, after = logs.records()
    assert login.event_name == "sq.sdk.users.login"
    assert attrs(login) == {P + "success": True, U + "email": "alice@example.com", U + "id": 7}
    assert type(login.attributes[P + "success"]) is bool
    assert attrs(after) == {U + "email": "alice@example.com", U + "id": 7}


def test_failed_login_recorded_and_does_not_identify(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        sqreen_otel.auth_track(False, email="mallory@example.com")
        sqreen_otel.track("after")
    assert warnings_of(caplog) == []
    login, after = logs.records()
    assert login.event_name == "sq.sdk.users.login"
    assert attrs(login) == {P + "success": False, U + "email": "mallory@example.com"}
    assert attrs(after) == {}
    assert context.current_user() is None


def test_failed_login_keeps_the_identified_user_without_warning(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    sqreen_otel.identify({"email": "alice@example.com"})
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        sqreen_otel.auth_track(False, email="mallory@example.com")
        sqreen_otel.track("after")
    assert warnings_of(caplog) == []
    login, after = (attrs(r) for r in logs.records())
    assert login[U + "email"] == "mallory@example.com"
    assert after == {U + "email": "alice@example.com"}


@pytest.mark.parametrize("success", [1, 0, "true", None])
def test_auth_track_success_must_be_bool(logs: Logs, success: Any) -> None:
    with pytest.raises(TypeError, match="success must be a bool"):
        sqreen_otel.auth_track(success, email="a@example.com")
    assert logs.records() == []


def test_auth_track_needs_identifiers(logs: Logs) -> None:
    with pytest.raises(ValueError, match="at least one"):
        sqreen_otel.auth_track(True)
    with pytest.raises(TypeError):
        sqreen_otel.auth_track(True, email=None)
    assert logs.records() == []
    assert context.current_user() is None


def test_signup_track_records_and_identifies(logs: Logs) -> None:
    assert sqreen_otel.signup_track(email="new@example.com") is None
    sqreen_otel.track("after")
    signup, after = logs.records()
    assert signup.event_name == "sq.sdk.users.signup"
    assert attrs(signup) == {U + "email": "new@example.com"}
    assert attrs(after) == {U + "email": "new@example.com"}
    with pytest.raises(ValueError, match="at least one"):
        sqreen_otel.signup_track()


# -- schema ----------------------------------------------------------------------------------------


def test_log_record_schema(logs: Logs, tracer: Any) -> None:
    tr, _ = tracer
    with tr.start_as_current_span("request") as span:
        assert sqreen_otel.track("password_reset", {"properties": {"email_domain": "example.com"}})
    record = logs.one()
    assert record.event_name == "password_reset"
    assert record.severity_number is SeverityNumber.INFO
    assert record.severity_number.value == 9
    assert record.severity_text == "INFO"
    assert record.body is None
    assert record.trace_id == span.get_span_context().trace_id != 0
    assert record.span_id == span.get_span_context().span_id != 0
    assert logs.exporter.get_finished_logs()[0].instrumentation_scope.name == "sqreen_otel"


def test_span_event_same_name_and_attributes(logs: Logs, tracer: Any) -> None:
    # span_event_attributes="full" (the default "slim" event carries the name and log.record.uid: test_fast_path.py)
    runtime.install(dataclasses.replace(runtime.current, settings=Settings(span_event_attributes="full")))
    tr, spans = tracer
    properties = {
        "plan": "pro",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "tags": ["a", "b"],
        "mixed": [1, "a"],
        "nested": {"city": "Paris", "zip": None, "codes": [1, 2]},
        "missing": None,
        "raw": b"\xffab",
        "password": "hunter2",
    }
    with tr.start_as_current_span("request"):
        assert sqreen_otel.track("evt", {"properties": properties})
    log_attrs = logs.attributes()
    assert log_attrs == {
        P + "plan": "pro",
        P + "count": 3,
        P + "ratio": 0.5,
        P + "ok": True,
        P + "tags": ("a", "b"),
        P + "mixed": (1, "a"),
        P + "nested": {"city": "Paris", "zip": None, "codes": (1, 2)},  # a map on the log record
        P + "missing": None,
        P + "raw": b"\xffab",
        P + "password": M,
    }
    (span,) = spans.get_finished_spans()
    (event,) = span.events
    assert event.name == "evt"
    assert attrs(event) == {
        P + "plan": "pro",
        P + "count": 3,
        P + "ratio": 0.5,
        P + "ok": True,
        P + "tags": ("a", "b"),
        P + "mixed": '[1,"a"]',
        P + "nested": '{"city":"Paris","zip":null,"codes":[1,2]}',  # JSON text on the span event
        P + "raw": "\\xffab",
        P + "password": M,
    }  # None omitted
    assert event.timestamp == logs.one().observed_timestamp


def test_span_event_uses_now_even_with_timestamp_option(logs: Logs, tracer: Any) -> None:
    tr, spans = tracer
    with tr.start_as_current_span("request"):
        sqreen_otel.track("evt", {"timestamp": dt.datetime(2020, 1, 1)})
    (event,) = spans.get_finished_spans()[0].events
    record = logs.one()
    assert record.timestamp == ns(dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    assert event.timestamp == record.observed_timestamp


def test_no_span_still_emits_log_record(logs: Logs) -> None:
    assert not trace.get_current_span().is_recording()
    assert sqreen_otel.track("evt", {"properties": {"a": 1}}) is True
    record = logs.one()
    assert attrs(record) == {P + "a": 1}
    assert record.trace_id == 0
    assert record.span_id == 0


def test_ended_span_gets_no_event_but_log_is_correlated(logs: Logs, tracer: Any) -> None:
    tr, spans = tracer
    span = tr.start_span("request")
    span.end()
    with trace.use_span(span, end_on_exit=False):
        assert not span.is_recording()
        assert sqreen_otel.track("evt") is True
    assert logs.one().trace_id == span.get_span_context().trace_id
    assert spans.get_finished_spans()[0].events == ()


def test_sampled_out_span_gets_no_event_but_log_is_emitted(logs: Logs) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("request") as span:
        assert not span.is_recording()
        assert sqreen_otel.track("evt") is True
    assert logs.one().event_name == "evt"
    assert logs.one().trace_id == span.get_span_context().trace_id
    assert exporter.get_finished_spans() == ()


# -- runtime failures ------------------------------------------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot print")


def test_property_whose_str_raises_is_dropped(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    failures = sqreen_otel.stats()["track_failures"]
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        assert sqreen_otel.track("evt", {"properties": {"bad": Unprintable(), "good": 1, "also": "ok"}}) is True
    assert logs.attributes() == {P + "good": 1, P + "also": "ok"}
    (message,) = warnings_of(caplog)
    assert "'bad'" in message and "dropped" in message
    assert sqreen_otel.stats()["track_failures"] == failures


def test_trait_whose_str_raises_is_dropped_events_still_recorded(logs: Logs, caplog: pytest.LogCaptureFixture) -> None:
    failures = sqreen_otel.stats()["track_failures"]
    sqreen_otel.identify({"email": "a@example.com"}, traits={"bad": Unprintable(), "plan": "pro"})
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        assert sqreen_otel.track("evt1") is True
        assert sqreen_otel.track("evt2") is True
    for record in logs.records():
        assert attrs(record) == {U + "email": "a@example.com", T + "plan": "pro"}
    assert len(logs.records()) == 2
    assert any("'bad'" in m for m in warnings_of(caplog))
    assert sqreen_otel.stats()["track_failures"] == failures


class ExplodingProcessor(LogRecordProcessor):
    def __init__(self) -> None:
        self.calls = 0

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.calls += 1
        raise RuntimeError("processor bug")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_processor_raising_is_contained_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    processor = ExplodingProcessor()
    provider = LoggerProvider()
    provider.add_log_record_processor(processor)
    previous = runtime.current
    runtime.install(runtime.Runtime(logger=provider.get_logger(runtime.LOGGER_NAME), configured=True))
    try:
        failures = sqreen_otel.stats()["track_failures"]
        with caplog.at_level(logging.ERROR, logger="sqreen_otel"):
            assert sqreen_otel.track("evt", {"properties": {"a": 1}}) is False  # not recorded: False, no raise
            sqreen_otel.auth_track(True, email="a@example.com")  # returns None, must not raise either
        assert processor.calls == 2
        assert sqreen_otel.stats()["track_failures"] == failures + 2
        errors = [r for r in caplog.records if r.name == "sqreen_otel" and r.levelno == logging.ERROR]
        assert len(errors) == 2
        assert errors[0].exc_info is not None and "processor bug" in str(errors[0].exc_info[1])
    finally:
        runtime.install(previous)


# -- disabled --------------------------------------------------------------------------------------


def _assert_disabled(rx: Receiver, tracer: Any) -> None:
    tr, spans = tracer
    assert runtime.current.disabled
    with tr.start_as_current_span("request"):
        assert sqreen_otel.track("evt", {"properties": {"a": 1}}) is True
        sqreen_otel.auth_track(True, email="a@example.com")
        sqreen_otel.signup_track(email="b@example.com")
    assert sqreen_otel.flush(2) is True
    time.sleep(0.2)
    assert rx.events() == []
    assert rx.requests() == []
    assert spans.get_finished_spans()[0].events == ()
    assert sqreen_otel.stats()["tracked"] == 0


def test_configure_disabled(pipeline: Receiver, tracer: Any) -> None:
    sqreen_otel.configure(endpoint=pipeline.endpoint, first_seen_delay=0, disabled=True)
    _assert_disabled(pipeline, tracer)


def test_env_disabled(pipeline: Receiver, tracer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQREEN_OTEL_DISABLED", "true")
    sqreen_otel.configure(endpoint=pipeline.endpoint, first_seen_delay=0)
    _assert_disabled(pipeline, tracer)


def test_disabled_runtime_emits_nothing(tracer: Any) -> None:
    from sqreen_otel.settings import Settings

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    previous = runtime.current
    runtime.install(
        runtime.Runtime(
            settings=Settings(disabled=True), logger=provider.get_logger(runtime.LOGGER_NAME), configured=True
        )
    )
    try:
        assert sqreen_otel.track("evt") is True
        sqreen_otel.auth_track(False, email="a@example.com")
        assert exporter.get_finished_logs() == ()
    finally:
        runtime.install(previous)


# -- end to end ------------------------------------------------------------------------------------


def test_end_to_end_through_the_real_receiver(pipeline: Receiver, tracer: Any) -> None:
    tr, _ = tracer
    sqreen_otel.configure(endpoint=pipeline.endpoint, flush_interval=30, first_seen_delay=None)
    tracked_before = sqreen_otel.stats()["tracked"]
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)
    before = time.time_ns()
    with tr.start_as_current_span("request") as span:
        sqreen_otel.identify({"email": "alice@example.com"}, traits={"plan": "pro", "api_key": "k-123"})
        assert sqreen_otel.track(
            "password_reset",
            {
                "properties": {
                    "email_domain": "example.com",
                    "attempts": 3,
                    "nested": {"a": [1, 2], "token": "t"},
                    "note": "card 4111 1111 1111 1111",
                },
                "timestamp": when,
            },
        )
        sqreen_otel.auth_track(False, email="mallory@example.com")
    after = time.time_ns()
    assert sqreen_otel.flush(5) is True
    reset, login = pipeline.wait_for(2)
    ctx = span.get_span_context()
    for event in (reset, login):
        assert event["severity_number"] == 9
        assert event["severity_text"] == "INFO"
        assert event["scope"] == "sqreen_otel"
        assert event["trace_id"] == f"{ctx.trace_id:032x}"
        assert event["span_id"] == f"{ctx.span_id:016x}"
        assert before <= event["observed_time_unix_nano"] <= after
        assert event["body"] is None
    assert reset["name"] == "password_reset"
    assert reset["time_unix_nano"] == ns(when)
    assert uuid.UUID(reset["attributes"].pop(UID)).version == 7
    assert uuid.UUID(login["attributes"].pop(UID)).version == 7
    assert reset["attributes"] == {
        P + "email_domain": "example.com",
        P + "attempts": 3,
        P + "nested": {"a": [1, 2], "token": M},
        P + "note": f"card {M}",
        U + "email": "alice@example.com",
        T + "plan": "pro",
        T + "api_key": M,
    }
    assert login["name"] == "sq.sdk.users.login"
    assert login["attributes"] == {P + "success": False, U + "email": "mallory@example.com"}
    stats = sqreen_otel.stats()
    assert stats["tracked"] - tracked_before == 2
    assert stats["exported"] == stats["tracked"]
    assert stats["queued"] == 0
    for body in pipeline.bodies():
        assert b"4111" not in body and b"k-123" not in body
