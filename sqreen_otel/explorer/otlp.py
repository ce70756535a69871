"""OTLP/HTTP logs request bodies (protobuf or JSON, maybe compressed) into event dicts.

Each failure is its own exception with the HTTP status the server answers, so the server maps them
without knowing why they happen: ``DecodeError`` (400), ``TooLarge`` (413), ``UnsupportedContentType`` (415).
Messages are short, safe to echo to the client, and never quote more than a few characters of the input.

``cap()`` then bounds what one event may cost, whatever a few compressed kilobytes inflate to: each
attribute value (and the body) at most ``MAX_VALUE_BYTES`` (UTF-8 bytes; longer text is cut and ends with
``CUT_MARKER``), each event at most ``MAX_EVENT_BYTES`` of keys and values (attributes past the budget are
dropped, smallest kept first, and ``DROPPED_ATTRIBUTE`` says how many).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from ..receiver import any_value, attributes, decode_events

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_GZIP_MEMBERS = 64
MAX_VALUE_BYTES = 64 * 1024
MAX_EVENT_BYTES = 1024 * 1024
MAX_KEY_BYTES = 1024
CUT_MARKER = "\u2026[cut: {} more bytes]"
DROPPED_ATTRIBUTE = "sqreen_otel.explorer.dropped_attributes"
# Kept first when an event is over budget: what the explorer indexes, filters and dedupes on.
_FIRST = ("log.record.uid", "event.name", "client.address", "url.path", "http.request.method", "sqreen.user.")

_HEX = re.compile(r"[0-9a-fA-F]*")
_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_ID_BYTES = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8}


class OTLPError(Exception):
    """Base of the errors the server turns into an HTTP answer with ``status`` and ``str(error)``."""

    status = 400


class DecodeError(OTLPError, ValueError):
    """The body is not a valid ExportLogsServiceRequest in its declared encoding (400)."""

    status = 400


class TooLarge(OTLPError):
    """The body, once decompressed, would exceed the cap (413)."""

    status = 413


class UnsupportedContentType(OTLPError):
    """A Content-Type or Content-Encoding we do not read (415)."""

    status = 415


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """An OTLP/HTTP logs request body into one dict per event, as ``receiver.decode_events`` makes them."""
    kind = media_type(content_type)
    if kind == PROTOBUF:
        try:
            request = ExportLogsServiceRequest.FromString(body)
        except _ProtobufDecodeError:
            raise DecodeError("malformed protobuf ExportLogsServiceRequest") from None
    elif kind == JSON:
        request = _from_json(body)
    else:
        raise UnsupportedContentType(f"Content-Type must be {PROTOBUF} or {JSON}, got {_short(kind)}")
    return decode_events(request)


def decode_capped(body: bytes, content_type: str) -> tuple[list[dict[str, Any]], int]:
    """``decode()`` then ``cap()``: the same events and size, in one pass over the protobuf objects.

    This is ingest's hot path (a third of the explorer's CPU per event went into building the dicts
    twice over and measuring them again): each attribute's kind is read once, plain values (short text,
    numbers, booleans) are measured as they are copied, and the resource is one dict shared by the events
    of its ``ResourceLogs``. Only an event with something to measure for real (a body, nested or bytes
    values, long text) goes through ``cap()``'s own code.
    """
    if media_type(content_type) != PROTOBUF:
        decoded = decode(body, content_type)
        return decoded, cap(decoded)
    try:
        request = ExportLogsServiceRequest.FromString(body)
    except _ProtobufDecodeError:
        raise DecodeError("malformed protobuf ExportLogsServiceRequest") from None
    events: list[dict[str, Any]] = []
    total = 0
    for rl in request.resource_logs:
        resource, resource_size = _plain_attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            scope = sl.scope
            scope_name, scope_version = scope.name, scope.version
            scope_attributes = attributes(scope.attributes)
            for rec in sl.log_records:
                record_attributes, size = _plain_attributes(rec.attributes)
                event = {
                    "name": rec.event_name,
                    "time_unix_nano": rec.time_unix_nano,
                    "observed_time_unix_nano": rec.observed_time_unix_nano,
                    "severity_number": int(rec.severity_number),
                    "severity_text": rec.severity_text,
                    "trace_id": rec.trace_id.hex(),
                    "span_id": rec.span_id.hex(),
                    "attributes": record_attributes,
                    "body": any_value(rec.body) if rec.HasField("body") else None,
                    "resource": resource,
                    "scope": scope_name,
                    "scope_version": scope_version,
                    "scope_attributes": scope_attributes,
                }
                events.append(event)
                if size >= 0 and resource_size >= 0 and event["body"] is None:
                    size += resource_size + len(rec.event_name)
                    if size <= MAX_EVENT_BYTES // 4:  # as _small() counts it: plainly within every cap
                        total += size
                        continue
                small = _small(event)
                total += small if small is not None else _cut(event)
    return events, total


def _plain_attributes(kvs: Any) -> tuple[dict[str, Any], int]:
    """``receiver.attributes(kvs)`` and, when every entry is plainly within the caps (``_small``), its size
    in characters; -1 when some value must be measured for real."""
    out: dict[str, Any] = {}
    size = 0
    plain = True
    for kv in kvs:
        key, value = kv.key, kv.value
        text = value.string_value  # "" unless the value is a text (a oneof): then no need to ask which
        if text:
            out[key] = text
            size += len(key) + len(text)
            if len(text) > MAX_VALUE_BYTES // 4:
                plain = False
            if len(key) > MAX_KEY_BYTES // 4:
                plain = False
            continue
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[key] = ""
            size += len(key)
        elif kind is None:
            out[key] = None
            size += len(key) + 16
        elif kind == "int_value" or kind == "bool_value" or kind == "double_value":
            out[key] = getattr(value, kind)
            size += len(key) + 16
        else:  # bytes, arrays, key/value lists
            out[key] = any_value(value)
            plain = False
        if len(key) > MAX_KEY_BYTES // 4:
            plain = False
    return out, size if plain and len(out) == len(kvs) else -1  # a key given twice: counted by _small()


def _from_json(body: bytes) -> ExportLogsServiceRequest:
    try:
        document = json.loads(body)
    except RecursionError:
        raise DecodeError("invalid JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise DecodeError("invalid JSON: not UTF-8") from None
    except ValueError as exc:  # JSONDecodeError
        raise DecodeError(f"invalid JSON: {str(exc)[:120]}") from None
    if not isinstance(document, dict):
        raise DecodeError("OTLP/JSON body must be a JSON object")
    _hex_ids_to_base64(document)
    request = ExportLogsServiceRequest()
    try:
        # OTLP/JSON: receivers must ignore fields they do not know (newer senders add some).
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"invalid OTLP/JSON{_parse_error(str(exc))}") from None
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError):  # odd shapes json_format misses
        # (OverflowError: "severityNumber": 1e400 is an infinite float, which no integer field can hold)
        raise DecodeError("invalid OTLP/JSON: unexpected value types") from None
    return request


def _parse_error(message: str) -> str:
    """json_format nests its messages field by field: say where, briefly, then the cause."""
    fields = _FIELD.findall(message)
    cause = _FIELD.sub("", message).strip().rstrip(".")[:100]
    if len(fields) > 6:
        fields = [*fields[:3], "(...)", *fields[-2:]]
    return f" at {'.'.join(fields)}: {cause}" if fields else f": {cause}"


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON carries trace and span ids as hex, protobuf JSON as base64: convert them in place.

    Odd shapes are left alone for ``json_format`` to report.
    """
    for rl_index, resource_logs in enumerate(_items(document, "resourceLogs", "resource_logs")):
        for sl_index, scope_logs in enumerate(_items(resource_logs, "scopeLogs", "scope_logs")):
            for index, record in enumerate(_items(scope_logs, "logRecords", "log_records")):
                for field, size in _ID_BYTES.items():
                    value = record.get(field)
                    if not isinstance(value, str):
                        continue
                    where = f"resourceLogs[{rl_index}].scopeLogs[{sl_index}].logRecords[{index}].{field}"
                    record[field] = _hex_to_base64(value, size, where)


def _items(obj: Any, *names: str) -> list[dict[str, Any]]:
    if not isinstance(obj, dict):
        return []
    for name in names:
        value = obj.get(name)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


def _hex_to_base64(value: str, size: int, where: str) -> str:
    if value == "":
        return value
    if len(value) != 2 * size or not _HEX.fullmatch(value):
        raise DecodeError(f"{where} must be {2 * size} hex digits, got {_short(value)}")
    return base64.b64encode(binascii.unhexlify(value)).decode("ascii")


def inflate(body: bytes, encoding: str | None, max_size: int) -> bytes:
    """Undo a ``gzip`` / ``deflate`` Content-Encoding (or none) without ever producing more than ``max_size`` bytes.

    A decompression bomb costs at most ``max_size + 1`` bytes of memory before ``TooLarge``.
    """
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    coding = (encoding or "").strip().lower()
    if coding in ("", "identity"):
        if len(body) > max_size:
            raise TooLarge(f"body larger than {max_size} bytes")
        return body
    if coding in ("gzip", "x-gzip"):
        return _gunzip(body, max_size)
    if coding == "deflate":
        return _inflate_deflate(body, max_size)
    raise UnsupportedContentType(f"Content-Encoding must be gzip, deflate or identity, got {_short(coding)}")


def _gunzip(data: bytes, max_size: int) -> bytes:
    out = bytearray()
    members = 0
    while data:  # several gzip members may follow each other
        members += 1
        if members > MAX_GZIP_MEMBERS:  # each one copies the rest of the input: many tiny ones would be quadratic
            raise DecodeError(f"bad gzip body: more than {MAX_GZIP_MEMBERS} members")
        chunk, data = _member(zlib.decompressobj(16 + zlib.MAX_WBITS), data, max_size - len(out), "gzip")
        out += chunk
    return bytes(out)


def _inflate_deflate(data: bytes, max_size: int) -> bytes:
    if not data:
        return b""
    # HTTP "deflate" is the zlib format, but some clients send a raw deflate stream: read both.
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    out, rest = _member(
        zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS), data, max_size, "deflate"
    )
    if rest:
        raise DecodeError("bad deflate body: data after the end of the stream")
    return out


def _member(dec: Any, data: bytes, room: int, coding: str) -> tuple[bytes, bytes]:
    """One compressed stream, at most ``room`` bytes of it: (its bytes, the input that follows it)."""
    try:
        out = dec.decompress(data, room + 1)  # max_length >= 1: 0 would mean "no limit"
    except zlib.error:
        raise DecodeError(f"bad {coding} body") from None
    if len(out) > room:
        raise TooLarge("decompressed body too large")
    if not dec.eof:
        raise DecodeError(f"bad {coding} body: truncated")
    return out, dec.unused_data


def _short(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- byte caps --------------------------------------------------------------------------------------


def cap(events: list[dict[str, Any]]) -> int:
    """Cut oversized values and events in place (see the module docstring); returns the events' size in bytes."""
    total = 0
    for event in events:
        small = _small(event)
        total += small if small is not None else _cut(event)  # nearly always small: nothing to cut
    return total


def _cut(event: dict[str, Any]) -> int:
    """Cap one event that may be over a limit, in place; returns its size in bytes."""
    size = _text_size(event.get("name") or "")
    body = event.get("body")
    if body is not None:
        event["body"], used = _value(body)
        size += used
    for field in ("resource", "attributes"):
        mapping = event.get(field)
        if isinstance(mapping, dict) and mapping:
            mapping = event[field] = dict(mapping)  # decode_capped shares one resource among a scope's events
            used, dropped = _mapping(mapping, MAX_EVENT_BYTES - size)
            size += used
            if dropped and field == "attributes":
                mapping[DROPPED_ATTRIBUTE] = dropped
                size += 64
    return size


_SCALARS = (int, float, bool, type(None))


def _small(event: dict[str, Any]) -> int | None:
    """The event's size when it is plainly within every cap (text short enough even at 4 bytes a character,
    no bytes nor nested values, no body), counting characters; ``None``: measure and cut it for real."""
    if event.get("body") is not None:
        return None
    size = len(event.get("name") or "")
    for field in ("attributes", "resource"):
        for key, value in (event.get(field) or {}).items():
            if len(key) > MAX_KEY_BYTES // 4:
                return None
            if type(value) is str:
                if len(value) > MAX_VALUE_BYTES // 4:
                    return None
                size += len(key) + len(value)
            elif isinstance(value, _SCALARS):
                size += len(key) + 16
            else:
                return None
    return size if size <= MAX_EVENT_BYTES // 4 else None


def _mapping(mapping: dict[str, Any], budget: int) -> tuple[int, int]:
    """Cap each value of ``mapping``; drop entries past ``budget`` bytes. Returns (bytes kept, entries dropped)."""
    size, sized = 0, []
    for key, value in mapping.items():
        short, used = _value(value)
        if short is not value:
            mapping[key] = short
        key_size = _text_size(key)
        if key_size > MAX_KEY_BYTES:  # such a key cannot be kept whole: it is dropped with its value
            used = budget + 1
        sized.append((key, key_size + used))
        size += key_size + used
    if size <= budget:
        return size, 0
    first = [item for item in sized if item[0].startswith(_FIRST)]
    rest = sorted((item for item in sized if not item[0].startswith(_FIRST)), key=lambda item: item[1])
    kept, dropped = 0, 0
    for key, used in first + rest:
        if kept + used <= budget:
            kept += used
        else:
            del mapping[key]
            dropped += 1
    return kept, dropped


def _value(value: Any) -> tuple[Any, int]:
    """``value`` within ``MAX_VALUE_BYTES`` (the same object when it fits) and its size in bytes."""
    if isinstance(value, str):
        size = _text_size(value)
        return (value, size) if size <= MAX_VALUE_BYTES else _cut_text(value)
    if isinstance(value, bytes):
        if len(value) <= MAX_VALUE_BYTES // 2:  # stored as hex: twice as long
            return value, 2 * len(value)
        return value[: MAX_VALUE_BYTES // 2], MAX_VALUE_BYTES
    if isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False, default=_hex, separators=(",", ":"))
        size = _text_size(text)
        return (value, size) if size <= MAX_VALUE_BYTES else _cut_text(text)  # too big: its JSON text, cut
    return value, 16  # numbers, booleans, None


def _cut_text(text: str) -> tuple[str, int]:
    data = text.encode("utf-8", "surrogatepass")
    marker = CUT_MARKER.format(len(data) - (MAX_VALUE_BYTES - 64))
    head = data[: MAX_VALUE_BYTES - 64].decode("utf-8", "ignore")  # "ignore": a character cut in two goes
    return head + marker, MAX_VALUE_BYTES


def _text_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)
