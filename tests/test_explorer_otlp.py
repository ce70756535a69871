"""Event Explorer ingest: OTLP/HTTP logs bodies (protobuf, OTLP/JSON, gzip, deflate) into event dicts."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import sqreen_otel
from sqreen_otel import context, runtime
from sqreen_otel.explorer import otlp
from sqreen_otel.receiver import decode_events
from sqreen_otel.request import from_wsgi

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


# -- real SDK records ------------------------------------------------------------------------------


@pytest.fixture
def sdk_logs() -> Iterator[Callable[[], list[ReadableLogRecord]]]:
    """track() and friends wired to a real SDK LoggerProvider; returns the finished records."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    previous = runtime.current
    runtime.install(runtime.Runtime(logger=provider.get_logger(runtime.LOGGER_NAME), configured=True))
    context.set_user(None)
    try:
        yield lambda: list(exporter.get_finished_logs())
    finally:
        context.set_user(None)
        runtime.install(previous)
        provider.shutdown()


def emit_events() -> tuple[int, int]:
    """A custom event inside a traced request of an identified user, then a failed login outside any request."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/login",
        "QUERY_STRING": "next=/home",
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_USER_AGENT": "curl/8.5",
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "shop.example",
        "SERVER_PORT": "80",
    }
    tracer = TracerProvider().get_tracer("test_explorer_otlp")
    with tracer.start_as_current_span("POST /login") as span:
        sqreen_otel.identify({"email": "alice@example.com", "id": 7}, traits={"plan": "pro"})
        props = {"email_domain": "example.com", "attempt": 3, "remember": True, "ratio": 0.5}
        assert sqreen_otel.track("password_reset", {"properties": props, "request": from_wsgi(environ)})
    context.set_user(None)
    sqreen_otel.auth_track(False, email="mallory@example.com")
    ctx = span.get_span_context()
    return ctx.trace_id, ctx.span_id


def request_of(records: list[ReadableLogRecord]) -> ExportLogsServiceRequest:
    request = encode_logs(records)  # the official exporter's encoder
    assert len(request.resource_logs[0].scope_logs[0].log_records) == len(records)
    return request


def otlp_json(request: ExportLogsServiceRequest, *, snake_case: bool = False) -> bytes:
    """OTLP/JSON as the spec writes it: protobuf JSON mapping, but trace and span ids in hex."""
    document = json.loads(json_format.MessageToJson(request, preserving_proto_field_name=snake_case))
    names = (
        ("resource_logs", "scope_logs", "log_records") if snake_case else ("resourceLogs", "scopeLogs", "logRecords")
    )
    for rl in document[names[0]]:
        for sl in rl[names[1]]:
            for record in sl[names[2]]:
                for field in ("trace_id", "span_id") if snake_case else ("traceId", "spanId"):
                    if field in record:
                        record[field] = base64.b64decode(record[field]).hex().upper()  # hex is case-insensitive
    return json.dumps(document).encode()


# -- protobuf --------------------------------------------------------------------------------------


def test_protobuf_round_trip_from_sdk_records(sdk_logs: Callable[[], list[ReadableLogRecord]]) -> None:
    trace_id, span_id = emit_events()
    request = request_of(sdk_logs())
    events = otlp.decode(request.SerializeToString(), PROTOBUF)
    assert events == decode_events(request)
    reset, login = events
    assert reset["name"] == "password_reset"
    assert reset["trace_id"] == f"{trace_id:032x}"
    assert reset["span_id"] == f"{span_id:016x}"
    assert reset["scope"] == "sqreen_otel"
    assert reset["resource"]["service.name"] == "shop"
    assert reset["severity_number"] == 9
    assert reset["time_unix_nano"] > 0
    attrs = reset["attributes"]
    assert {k: v for k, v in attrs.items() if k.startswith("sqreen.properties.")} == {
        "sqreen.properties.email_domain": "example.com",
        "sqreen.properties.attempt": 3,
        "sqreen.properties.remember": True,
        "sqreen.properties.ratio": 0.5,
    }
    assert attrs["sqreen.user.email"] == "alice@example.com"
    assert attrs["sqreen.user.id"] == 7
    assert attrs["sqreen.user.traits.plan"] == "pro"
    assert attrs["client.address"] == "203.0.113.9"
    assert attrs["url.path"] == "/login"
    assert attrs["http.request.method"] == "POST"
    assert attrs["user_agent.original"] == "curl/8.5"
    assert attrs["sqreen.request.params.next"] == "/home"
    assert login["name"] == "sq.sdk.users.login"
    assert login["trace_id"] == login["span_id"] == ""
    shown = {k: v for k, v in login["attributes"].items() if k != "log.record.uid"}  # the agent's event id, if set
    assert shown == {"sqreen.properties.success": False, "sqreen.user.email": "mallory@example.com"}


@pytest.mark.parametrize(
    "content_type", ["application/x-protobuf", "Application/X-Protobuf", "application/x-protobuf; charset=binary"]
)
def test_protobuf_content_type_parameters_and_case(
    sdk_logs: Callable[[], list[ReadableLogRecord]], content_type: str
) -> None:
    emit_events()
    request = request_of(sdk_logs())
    assert otlp.decode(request.SerializeToString(), content_type) == decode_events(request)


def test_empty_bodies_are_empty_requests() -> None:
    assert otlp.decode(b"", PROTOBUF) == []
    assert otlp.decode(b"{}", JSON) == []
    assert otlp.decode(b'{"resourceLogs": []}', JSON) == []


def test_malformed_protobuf_is_a_400_value_error() -> None:
    with pytest.raises(otlp.DecodeError, match="malformed protobuf") as info:
        otlp.decode(b"\xff\xff\xff not protobuf", PROTOBUF)
    assert isinstance(info.value, ValueError)
    assert info.value.status == 400


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_any_bytes_decode_or_raise_decode_error(body: bytes) -> None:
    try:
        events = otlp.decode(body, PROTOBUF)
    except otlp.DecodeError:
        return
    assert isinstance(events, list)


# -- OTLP/JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_round_trip_from_sdk_records(sdk_logs: Callable[[], list[ReadableLogRecord]], content_type: str) -> None:
    trace_id, span_id = emit_events()
    request = request_of(sdk_logs())
    body = otlp_json(request)
    assert f"{trace_id:032x}".upper().encode() in body  # the ids really travel in hex
    events = otlp.decode(body, content_type)
    assert events == otlp.decode(request.SerializeToString(), PROTOBUF)
    assert events[0]["trace_id"] == f"{trace_id:032x}"
    assert events[0]["span_id"] == f"{span_id:016x}"


def test_json_with_proto_field_names(sdk_logs: Callable[[], list[ReadableLogRecord]]) -> None:
    emit_events()
    request = request_of(sdk_logs())
    body = otlp_json(request, snake_case=True)
    assert b'"resource_logs"' in body and b'"trace_id"' in body
    assert otlp.decode(body, JSON) == decode_events(request)


SPEC_EXAMPLE = """
{
  "resourceLogs": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeLogs": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "logRecords": [{
        "timeUnixNano": "1544712660300000000",
        "observedTimeUnixNano": "1544712660300000000",
        "severityNumber": 10,
        "severityText": "Information",
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "eventName": "sq.sdk.users.login",
        "body": {"stringValue": "Example log record"},
        "attributes": [
          {"key": "string.attribute", "value": {"stringValue": "some string"}},
          {"key": "boolean.attribute", "value": {"boolValue": true}},
          {"key": "int.attribute", "value": {"intValue": "10"}},
          {"key": "double.attribute", "value": {"doubleValue": 637.704}},
          {"key": "bytes.attribute", "value": {"bytesValue": "AQID"}},
          {"key": "array.attribute", "value": {"arrayValue": {"values": [
            {"stringValue": "many"}, {"stringValue": "values"}]}}},
          {"key": "map.attribute", "value": {"kvlistValue": {"values": [
            {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}},
          {"key": "sqreen.user.email", "value": {"stringValue": "alice@example.com"}}
        ],
        "aFieldFromTheFuture": {"ignored": true}
      }, {
        "observedTimeUnixNano": 1544712660400000000,
        "traceId": "",
        "spanId": ""
      }]
    }]
  }]
}
"""


def test_hand_written_otlp_json_like_the_spec() -> None:
    events = otlp.decode(SPEC_EXAMPLE.encode(), "application/json")
    assert events == [
        {
            "name": "sq.sdk.users.login",
            "time_unix_nano": 1544712660300000000,
            "observed_time_unix_nano": 1544712660300000000,
            "severity_number": 10,
            "severity_text": "Information",
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "span_id": "eee19b7ec3c1b174",
            "attributes": {
                "string.attribute": "some string",
                "boolean.attribute": True,
                "int.attribute": 10,
                "double.attribute": 637.704,
                "bytes.attribute": b"\x01\x02\x03",
                "array.attribute": ["many", "values"],
                "map.attribute": {"some.map.key": "some value"},
                "sqreen.user.email": "alice@example.com",
            },
            "body": "Example log record",
            "resource": {"service.name": "my.service"},
            "scope": "my.library",
            "scope_version": "1.0.0",
            "scope_attributes": {"my.scope.attribute": "some scope attribute"},
        },
        {
            "name": "",
            "time_unix_nano": 0,
            "observed_time_unix_nano": 1544712660400000000,
            "severity_number": 0,
            "severity_text": "",
            "trace_id": "",
            "span_id": "",
            "attributes": {},
            "body": None,
            "resource": {"service.name": "my.service"},
            "scope": "my.library",
            "scope_version": "1.0.0",
            "scope_attributes": {"my.scope.attribute": "some scope attribute"},
        },
    ]


def test_unknown_enum_names_are_ignored_like_unknown_fields() -> None:
    """OTLP/JSON receivers ignore what a newer sender may add; an unknown severity name reads as unset."""
    (first, _) = otlp.decode(spec_with(severityNumber="SEVERITY_NUMBER_FROM_THE_FUTURE"), JSON)
    assert first["severity_number"] == 0
    assert first["name"] == "sq.sdk.users.login"


def spec_with(**record_changes: Any) -> bytes:
    document = json.loads(SPEC_EXAMPLE)
    document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0].update(record_changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"traceId": "W47/95gDgQPSabYzgT/GDA=="}, r"logRecords\[0\]\.traceId must be 32 hex digits"),  # base64
        ({"traceId": "5B8EFFF798038103D269B633813FC6"}, r"traceId must be 32 hex digits"),
        ({"spanId": "EEE19B7EC3C1B17"}, r"logRecords\[0\]\.spanId must be 16 hex digits"),
        ({"spanId": "EEE19B7E C3C1B17"}, r"spanId must be 16 hex digits"),
        ({"spanId": 12}, r"invalid OTLP/JSON"),
        ({"timeUnixNano": "yesterday"}, r"invalid OTLP/JSON"),
        ({"attributes": {"key": "x"}}, r"invalid OTLP/JSON"),
    ],
)
def test_bad_otlp_json_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(otlp.DecodeError, match=message):
        otlp.decode(spec_with(**changes), JSON)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "invalid JSON"),
        (b'{"resourceLogs": [', "invalid JSON"),
        (b"\xff\xfe\xfa", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b'{"resourceLogs": 5}', "invalid OTLP/JSON"),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [7]}]}]}', "invalid OTLP/JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    ],
)
def test_malformed_json_is_a_400_value_error(body: bytes, message: str) -> None:
    with pytest.raises(otlp.DecodeError, match=message) as info:
        otlp.decode(body, JSON)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) <= 200


def nested_attribute(depth: int) -> bytes:
    opening = b'{"key": "k", "value": {"kvlistValue": {"values": [' * depth
    closing = b"]}}}" * depth
    record = b'{"eventName": "deep", "attributes": [' + opening + closing + b"]}"
    return b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [' + record + b"]}]}]}"


def test_deep_but_sane_nesting_decodes_and_absurd_nesting_is_400() -> None:
    (event,) = otlp.decode(nested_attribute(30), JSON)
    value = event["attributes"]["k"]
    for _ in range(29):
        value = value["k"]
    assert value == {}
    message = r"^invalid OTLP/JSON at resourceLogs\.scopeLogs\.logRecords\.\(\.\.\.\)\.value\.values: Message too deep"
    with pytest.raises(otlp.DecodeError, match=message):
        otlp.decode(nested_attribute(40), JSON)
    # Deeper than any recursion limit in use (cel-python, loaded with playbooks, raises it to 2500).
    with pytest.raises(otlp.DecodeError, match="invalid JSON: nested too deeply"):
        otlp.decode(nested_attribute(1000), JSON)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
otlp_keys = st.sampled_from(
    ["resourceLogs", "scopeLogs", "logRecords", "traceId", "spanId", "attributes", "key", "value", "stringValue"]
)
shaped = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(otlp_keys, inner, max_size=4),
    max_leaves=30,
)


@given(shaped)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_decodes_or_raises_decode_error(document: Any) -> None:
    original = copy.deepcopy(document)
    try:
        events = otlp.decode(json.dumps(document).encode(), JSON)
    except otlp.DecodeError as exc:
        assert str(exc)
        return
    assert isinstance(events, list)
    assert json.dumps(original)  # still serialisable: nothing of ours leaked into the input


def test_unsupported_content_type_is_distinct() -> None:
    for content_type in ("text/plain", "", "application/grpc", "application/protobuf" + "x" * 500):
        with pytest.raises(otlp.UnsupportedContentType, match="Content-Type must be") as info:
            otlp.decode(b"{}", content_type)
        assert not isinstance(info.value, ValueError)  # the server answers 415, not 400
        assert info.value.status == 415
        assert len(str(info.value)) < 150


# -- Content-Encoding ------------------------------------------------------------------------------


def test_inflate_identity() -> None:
    assert otlp.inflate(b"abc", None, 3) == b"abc"
    assert otlp.inflate(b"abc", "", 3) == b"abc"
    assert otlp.inflate(b"abc", " Identity ", 10) == b"abc"
    with pytest.raises(otlp.TooLarge):
        otlp.inflate(b"abcd", None, 3)


def test_inflate_gzip_and_deflate(sdk_logs: Callable[[], list[ReadableLogRecord]]) -> None:
    emit_events()
    body = request_of(sdk_logs()).SerializeToString()
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for compressed, coding in [
        (gzip.compress(body), "gzip"),
        (gzip.compress(body), "GZIP "),
        (gzip.compress(body), "x-gzip"),
        (zlib.compress(body), "deflate"),
        (raw_deflate.compress(body) + raw_deflate.flush(), "deflate"),
    ]:
        inflated = otlp.inflate(compressed, coding, len(body))
        assert inflated == body
        assert otlp.decode(inflated, PROTOBUF) == otlp.decode(body, PROTOBUF)


def test_inflate_concatenated_gzip_members() -> None:
    assert otlp.inflate(gzip.compress(b"hello ") + gzip.compress(b"world"), "gzip", 11) == b"hello world"
    with pytest.raises(otlp.TooLarge):
        otlp.inflate(gzip.compress(b"hello ") + gzip.compress(b"world"), "gzip", 10)


def test_inflate_refuses_a_swarm_of_gzip_members() -> None:
    assert otlp.inflate(gzip.compress(b"x") * otlp.MAX_GZIP_MEMBERS, "gzip", 1000) == b"x" * otlp.MAX_GZIP_MEMBERS
    with pytest.raises(otlp.DecodeError, match="more than 64 members"):
        otlp.inflate(gzip.compress(b"") * 100_000, "gzip", 1000)


def test_inflate_caps_the_output_of_a_bomb() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(otlp.TooLarge) as info:
        otlp.inflate(bomb, "gzip", 1024 * 1024)
    assert info.value.status == 413
    assert not isinstance(info.value, ValueError)
    with pytest.raises(otlp.TooLarge):
        otlp.inflate(zlib.compress(b"\0" * (16 * 1024 * 1024)), "deflate", 1024 * 1024)


def test_inflate_exactly_at_the_cap() -> None:
    data = bytes(range(256)) * 40
    assert otlp.inflate(gzip.compress(data), "gzip", len(data)) == data
    assert otlp.inflate(zlib.compress(data), "deflate", len(data)) == data
    with pytest.raises(otlp.TooLarge):
        otlp.inflate(gzip.compress(data), "gzip", len(data) - 1)
    assert otlp.inflate(gzip.compress(b""), "gzip", 0) == b""


@pytest.mark.parametrize(
    ("body", "coding", "message"),
    [
        (b"\x1f\x8b garbage, not gzip", "gzip", "bad gzip body"),
        (b"plain text", "gzip", "bad gzip body"),
        (gzip.compress(b"x" * 1000)[:-12], "gzip", "truncated"),
        (gzip.compress(b"abc") + b"trailing junk", "gzip", "bad gzip body"),
        (b"\x78\x9c garbage", "deflate", "bad deflate body"),
        (zlib.compress(b"abc") + b"junk", "deflate", "data after the end"),
        (zlib.compress(b"x" * 1000)[:-6], "deflate", "truncated"),
    ],
)
def test_garbage_compressed_bodies_are_400(body: bytes, coding: str, message: str) -> None:
    with pytest.raises(otlp.DecodeError, match=message) as info:
        otlp.inflate(body, coding, 1 << 20)
    assert isinstance(info.value, ValueError)


def test_unknown_content_encoding_is_415() -> None:
    for coding in ("br", "zstd", "gzip, deflate", "compress"):
        with pytest.raises(otlp.UnsupportedContentType, match="Content-Encoding") as info:
            otlp.inflate(b"x", coding, 100)
        assert info.value.status == 415


def test_inflate_rejects_a_negative_cap() -> None:
    with pytest.raises(ValueError, match="max_size"):
        otlp.inflate(b"", None, -1)


# -- decode_capped: ingest's one-pass decode and cap -----------------------------------------------

_TEXTS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "é" * 20_000, "x" * (otlp.MAX_VALUE_BYTES + 10), "\U0001f600" * 5_000]),
)
_SCALARS = st.one_of(_TEXTS, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(allow_nan=False), st.none())
_VALUES = st.one_of(
    _SCALARS,
    st.binary(max_size=8),
    st.just(b"\x01" * (otlp.MAX_VALUE_BYTES // 2 + 1)),
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=4), _SCALARS, max_size=3),
)
_KEYS = st.one_of(
    st.sampled_from(["a", "b", "log.record.uid", "sqreen.user.id", "k" * 300, "K" * 2000]), st.text(max_size=6)
)
_ATTRIBUTES = st.lists(st.tuples(_KEYS, _VALUES), max_size=6)  # a list: OTLP allows a key twice


def _any(target: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        array = target.array_value
        array.SetInParent()
        for item in value:
            _any(array.values.add(), item)
    else:
        kvlist = target.kvlist_value
        kvlist.SetInParent()
        for key, item in value.items():
            kv = kvlist.values.add(key=key)
            _any(kv.value, item)


def _fill(kvs: Any, pairs: list[tuple[str, Any]]) -> None:
    for key, value in pairs:
        _any(kvs.add(key=key).value, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.lists(  # resources, each with its scopes, each with its records (attributes, maybe a body)
        st.tuples(
            _ATTRIBUTES,
            st.lists(
                st.tuples(_ATTRIBUTES, st.lists(st.tuples(_ATTRIBUTES, st.one_of(st.none(), _VALUES)), max_size=4)),
                max_size=2,
            ),
        ),
        max_size=2,
    ),
    st.integers(0, 30),
)
def test_decode_capped_is_decode_then_cap(resources: list[Any], copies: int) -> None:
    """Ingest's one pass gives exactly what decode() then cap() give: the same events, cut the same way, and
    the same size, even when one event of a shared resource must be cut (the others keep theirs)."""
    request = ExportLogsServiceRequest()
    for resource_pairs, scopes in resources:
        rl = request.resource_logs.add()
        _fill(rl.resource.attributes, resource_pairs)
        for scope_pairs, records in scopes:
            sl = rl.scope_logs.add()
            sl.scope.name = "scope"
            _fill(sl.scope.attributes, scope_pairs)
            for pairs, body in records:
                record = sl.log_records.add(event_name="e", time_unix_nano=1, severity_number=9)
                _fill(record.attributes, pairs)
                if body is not None:
                    _any(record.body, body)
                    record.body.SetInParent()
            if records:  # one event heavy enough to be cut to MAX_EVENT_BYTES: it goes through cap()'s own code
                heavy = sl.log_records.add(event_name="heavy")
                _fill(heavy.attributes, [(f"k{i}", "v" * otlp.MAX_VALUE_BYTES) for i in range(copies)])
    body = request.SerializeToString()
    expected = otlp.decode(body, PROTOBUF)
    size = otlp.cap(expected)
    events, capped_size = otlp.decode_capped(body, PROTOBUF)
    assert events == expected
    assert capped_size == size


def test_decode_capped_reads_json_too(sdk_logs: Callable[[], list[ReadableLogRecord]]) -> None:
    emit_events()
    request = request_of(sdk_logs())
    body = otlp_json(request)
    expected = otlp.decode(body, JSON)
    assert otlp.decode_capped(body, JSON) == (expected, otlp.cap(expected))
    assert otlp.decode_capped(request.SerializeToString(), PROTOBUF) == (expected, otlp.cap(copy.deepcopy(expected)))
    with pytest.raises(otlp.DecodeError, match="malformed protobuf"):
        otlp.decode_capped(b"\xff\xff\xff not protobuf", PROTOBUF)
    twice = ExportLogsServiceRequest()  # a key given twice: the last value, counted once, as decode() + cap()
    record = twice.resource_logs.add().scope_logs.add().log_records.add(event_name="e")
    for value in ("x", "y"):
        record.attributes.add(key="a").value.string_value = value
    events = otlp.decode(twice.SerializeToString(), PROTOBUF)
    assert otlp.decode_capped(twice.SerializeToString(), PROTOBUF) == (events, otlp.cap(events)) == (events, 3)
