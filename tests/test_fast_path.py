"""track()'s fast path: drafts built in the export thread, encoded with the official protobuf classes.

When our processor is the only one on the provider, ``track()`` hands it a draft; otherwise every
processor gets a proper SDK log record. Both paths must deliver the same event to a real receiver.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

import sqreen_otel
from sqreen_otel import context, encoding, pipeline, runtime
from sqreen_otel.context import User
from sqreen_otel.draft import EventDraft
from sqreen_otel.exporter import OTLPEventExporter
from sqreen_otel.ids import UID
from sqreen_otel.processor import EventBatchProcessor
from sqreen_otel.receiver import Receiver
from sqreen_otel.scrub import DEFAULT_MASK, Scrubber
from sqreen_otel.settings import Settings

P = "sqreen.properties."


class Color(enum.Enum):
    RED = "red"


PROPERTIES: dict[str, Any] = {
    "plan": "pro",
    "count": 3,
    "big": 2**70,
    "ratio": 0.5,
    "ok": True,
    "missing": None,
    "raw": b"\xffab",
    "tags": ["a", "b"],
    "nested": {"city": "Paris", "password": "hunter2", "codes": [1, 2]},
    "when": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
    "color": Color.RED,
    "api_token": "abc",
    "note": "card 4111 1111 1111 1111 used",
    "accent": "café",
}


@dataclasses.dataclass
class Pipeline:
    provider: LoggerProvider
    processor: EventBatchProcessor
    receiver: Receiver


@pytest.fixture(autouse=True)
def no_user() -> Iterator[None]:
    context.set_user(None)
    yield
    context.set_user(None)


@pytest.fixture
def ours() -> Iterator[Pipeline]:
    """Our processor on its own provider, wired as configure() wires it, exporting to a real receiver."""
    saved = runtime.current
    with Receiver() as rx:
        provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False)
        processor = EventBatchProcessor(
            OTLPEventExporter(rx.endpoint), first_seen_delay=None, prescrubbed_scopes=frozenset({runtime.LOGGER_NAME})
        )
        slot = pipeline._Slot(provider)
        slot.target = processor
        provider.add_log_record_processor(slot)
        logger = provider.get_logger(runtime.LOGGER_NAME, "1.2.3")
        runtime.install(runtime.Runtime(logger=logger, configured=True, slot=slot))
        try:
            yield Pipeline(provider, processor, rx)
        finally:
            runtime.install(saved)
            processor.shutdown(1.0)


def received(pipe: Pipeline, count: int) -> list[dict[str, Any]]:
    assert pipe.processor.flush(10)
    return pipe.receiver.wait_for(count)


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """What must be equal whichever path the event took (the id and times differ per event)."""
    attributes = dict(event["attributes"])
    assert len(attributes.pop(UID)) == 36
    return {"name": event["name"], "attributes": attributes, "resource": event["resource"], "scope": event["scope"]}


def test_fast_and_sdk_paths_deliver_the_same_event(ours: Pipeline) -> None:
    slot = runtime.current.slot
    assert slot is not None and slot.direct(runtime.current.logger) is not None  # alone: fast path
    context.set_user(User({"email": "a@example.com"}, {"age": 42, "password": "x"}))
    sqreen_otel.track("evt", {"properties": PROPERTIES})

    other = InMemoryLogRecordExporter()
    ours.provider.add_log_record_processor(SimpleLogRecordProcessor(other))
    assert slot.direct(runtime.current.logger) is None  # another processor: every record through the SDK
    sqreen_otel.track("evt", {"properties": PROPERTIES})

    fast, sdk = received(ours, 2)
    assert comparable(fast) == comparable(sdk)
    attributes = comparable(fast)["attributes"]
    assert attributes[P + "nested"] == {"city": "Paris", "password": DEFAULT_MASK, "codes": [1, 2]}
    assert attributes[P + "api_token"] == DEFAULT_MASK
    assert attributes[P + "note"] == f"card {DEFAULT_MASK} used"
    assert attributes[P + "big"] == str(2**70)
    assert attributes[P + "when"] == "2024-05-01T12:00:00+00:00"
    assert attributes[P + "color"] == "red"
    assert attributes["sqreen.user.email"] == "a@example.com"
    assert attributes["sqreen.user.traits.password"] == DEFAULT_MASK
    assert fast["resource"]["service.name"] == "shop" and fast["scope"] == runtime.LOGGER_NAME

    # The other processor got a proper SDK record, scrubbed like ours.
    (record,) = other.get_finished_logs()
    assert record.log_record.event_name == "evt"
    assert record.log_record.attributes is not None
    assert record.log_record.attributes[P + "api_token"] == DEFAULT_MASK
    assert record.log_record.attributes[UID] == sdk["attributes"][UID]
    assert record.instrumentation_scope is not None and record.instrumentation_scope.name == runtime.LOGGER_NAME


def test_the_application_can_change_its_values_after_track(ours: Pipeline) -> None:
    properties: dict[str, Any] = {"plan": "pro", "items": ["a"], "meta": {"k": "v"}}
    sqreen_otel.track("evt", {"properties": properties})
    properties["plan"] = "free"
    properties["items"].append("b")
    properties["meta"]["k"] = "changed"
    (event,) = received(ours, 1)
    assert event["attributes"][P + "plan"] == "pro"
    assert event["attributes"][P + "items"] == ["a"]
    assert event["attributes"][P + "meta"] == {"k": "v"}


def test_fast_path_keeps_the_trace_context_and_accounts_for_every_event(ours: Pipeline) -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("request") as span:
        for _ in range(5):
            assert sqreen_otel.track("evt", {"properties": {"i": 1}})
    events = received(ours, 5)
    ids = span.get_span_context()
    assert {(e["trace_id"], e["span_id"]) for e in events} == {(f"{ids.trace_id:032x}", f"{ids.span_id:016x}")}
    stats = ours.processor.stats()
    assert stats["tracked"] == stats["exported"] + sum(stats["dropped"].values()) + stats["queued"] == 5


def test_a_disabled_logger_records_nothing(ours: Pipeline) -> None:
    logger = runtime.current.logger
    logger._logger_config = dataclasses.replace(logger._logger_config, is_enabled=False)  # type: ignore[attr-defined]
    assert runtime.current.slot is not None and runtime.current.slot.direct(logger) is None
    sqreen_otel.track("evt")
    assert ours.processor.flush(5)
    assert ours.processor.stats()["tracked"] == 0


@pytest.fixture
def spans() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("t"), exporter
    provider.shutdown()


class Request:
    """A RequestContext that gives the same attributes mapping each time, as a finished request does."""

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self._attributes = attributes

    def attributes(self) -> Mapping[str, Any]:
        return self._attributes

    def body(self) -> Any:
        return None


def test_slim_span_event_has_who_where_and_the_id_of_the_log_record(
    ours: Pipeline, spans: tuple[trace.Tracer, InMemorySpanExporter]
) -> None:
    tracer, exporter = spans
    request = Request({"client.address": "192.0.2.1", "url.path": "/login", "sqreen.request.params.token": "t0k"})
    with tracer.start_as_current_span("request"), context.request_scope(request):
        context.set_user(User({"user_id": "u1"}))
        sqreen_otel.track("evt", {"properties": {"plan": "pro", "password": "x"}})
    (event,) = exporter.get_finished_spans()[0].events
    (log,) = received(ours, 1)
    assert event.name == "evt"
    assert dict(event.attributes or {}) == {
        UID: log["attributes"][UID],
        "sqreen.user.user_id": "u1",
        "client.address": "192.0.2.1",
    }
    assert log["attributes"]["sqreen.request.params.token"] == DEFAULT_MASK


def test_full_span_event_carries_every_attribute(ours: Pipeline, spans: tuple[trace.Tracer, Any]) -> None:
    tracer, exporter = spans
    runtime.install(dataclasses.replace(runtime.current, settings=Settings(span_event_attributes="full")))
    with tracer.start_as_current_span("request"):
        sqreen_otel.track("evt", {"properties": {"plan": "pro", "password": "x", "nested": {"a": 1}}})
    (event,) = exporter.get_finished_spans()[0].events
    (log,) = received(ours, 1)
    assert dict(event.attributes or {}) == {
        P + "plan": "pro",
        P + "password": DEFAULT_MASK,
        P + "nested": '{"a":1}',
        UID: log["attributes"][UID],
    }


def test_span_event_attributes_setting_is_checked() -> None:
    assert Settings.load(span_event_attributes="Full").span_event_attributes == "full"
    with pytest.raises(ValueError, match="span_event_attributes must be 'slim' or 'full'"):
        Settings.load(span_event_attributes="all")


def test_request_attributes_are_scrubbed_once_per_request(ours: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    track_module = sys.modules["sqreen_otel.track"]
    calls: list[Mapping[str, Any]] = []
    real = track_module.scrub_attributes  # type: ignore[attr-defined]

    def counting(attributes: Mapping[str, Any], scrubber: Scrubber, max_len: int) -> dict[str, Any]:
        calls.append(attributes)
        return real(attributes, scrubber, max_len)

    monkeypatch.setattr(track_module, "scrub_attributes", counting)
    finished = Request({"url.path": "/a", "sqreen.request.params.password": "p"})
    with context.request_scope(finished):
        for _ in range(3):
            sqreen_otel.track("evt")
    assert len(calls) == 1

    class Growing(Request):
        """Attributes that can still change (an ASGI form still arriving): a new mapping each time."""

        def attributes(self) -> Mapping[str, Any]:
            return dict(self._attributes)

    with context.request_scope(Growing({"url.path": "/b"})):
        sqreen_otel.track("evt")
        sqreen_otel.track("evt")
    assert len(calls) == 3
    events = received(ours, 5)
    assert [e["attributes"]["url.path"] for e in events] == ["/a"] * 3 + ["/b"] * 2
    assert events[0]["attributes"]["sqreen.request.params.password"] == DEFAULT_MASK


# -- encoding --------------------------------------------------------------------------------------


def draft(name: str, properties: Mapping[str, Any], **kwargs: Any) -> EventDraft:
    made = EventDraft(name, 5, 6, properties, kwargs.pop("user", None), None, None, Scrubber(), 4096, **kwargs)
    made.origin = (Resource.create({"service.name": "s"}), InstrumentationScope("sqreen_otel", "1.0"))
    return made


def test_encoding_matches_the_sdk_encoder_value_for_value() -> None:
    values = {**PROPERTIES, "deep": {"a": [{"b": None}, 1.5, b"x"]}, "empty_list": [], "empty_map": {}}
    values = {k: v for k, v in values.items() if not isinstance(v, (dt.datetime, enum.Enum))}  # cleaned at track()
    drafts = [
        draft("evt", values, user=User({"email": "a@b", "id": 7}, {"age": 3}), trace_id=12, span_id=34, trace_flags=1),
        draft("evt2", {}, uid="01a233bb-c7c7-7535-8ebc-89ad4573bc4f"),
        draft("evt", {"plan": "pro"}),  # cached attribute fragments must encode the same again
        draft("evt", {"plan": "pro", "flag": True, "one": 1}),
    ]
    ours = ExportLogsServiceRequest.FromString(encoding.encode(drafts))
    assert ours == encode_logs([d.to_readable() for d in drafts])
    # True and 1 hash alike: cached fragments must not mix them up.
    decoded = ExportLogsServiceRequest.FromString(encoding.encode(drafts[3:]))
    (record,) = decoded.resource_logs[0].scope_logs[0].log_records
    kinds = {kv.key: kv.value.WhichOneof("value") for kv in record.attributes}
    assert kinds == {P + "plan": "string_value", P + "flag": "bool_value", P + "one": "int_value"}


def test_a_batch_may_mix_drafts_and_sdk_records() -> None:
    sdk_record = draft("from_sdk", {"a": "b"}).to_readable()
    mixed = [draft("ours", {"x": "y"}), sdk_record]
    decoded = ExportLogsServiceRequest.FromString(encoding.encode(mixed))
    names = [r.event_name for rl in decoded.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert sorted(names) == ["from_sdk", "ours"]
