"""``sqreen-otel import FILE``: past security events from a JSON Lines, CSV or OTLP JSON file, through the
normal pipeline.

- JSON Lines (``.jsonl``, ``.ndjson``, ``.json``), one event per line, the format ``sqreen-otel export``
  writes::

    {"name": "login_failed", "timestamp": "2024-05-01T12:00:00Z", "properties": {"attempt": 3},
     "user_identifiers": {"email": "alice@example.com"}, "ip": "203.0.113.7", "path": "/login"}

  Required: ``name`` and ``timestamp`` (ISO 8601 with ``Z`` or an offset, naive means UTC, or epoch
  seconds as a number or digits). The timestamp is required, not "now" by default: these are past
  events, and one dated at the import would show up as today's activity (and trip playbooks in a
  backtest). Optional: ``properties`` (a mapping), ``user_identifiers`` (text or integer values), the
  request the event happened in (``ip``, ``user_agent``, ``path``, ``method``, ``params``: a mapping of
  text or lists of text, ``body``) and, on ``sq.action.*`` events only, ``action`` (text values, as
  ``sqreen.action.<key>``). Any other key rejects the line (a misspelt ``timestamp`` must not silently
  become something else), except ``_rejected_reason``, so a corrected ``FILE.rejected`` can be imported
  as it is (a ``_rejected_line`` object must be replaced by the corrected line). A file that starts
  with ``[`` is a JSON array, not JSON Lines: refused whole. Names starting with ``sq.`` are the SDK's:
  only its own events (``sq.sdk.users.login``, ``sq.sdk.users.signup``, ``sq.action.*``) import, so that
  an exported dataset moves whole between explorers.
- CSV (``.csv``): a header with ``name`` and ``timestamp`` and any ``properties.<key>``, ``user.<key>``,
  ``params.<name>``, ``action.<key>``, ``ip``, ``user_agent``, ``path`` and ``method`` columns; empty
  cells are left out; values are text (CSV has no types). Quoted cells may span lines; a record is
  reported by its first line.
- OTLP JSON (``{"resourceLogs": [...]}``, recognised by its content): what OpenTelemetry's file
  exporters and the Collector's ``fileexporter`` write, one request per line, or one document over
  many lines. Each log record is one event: the name from ``eventName`` (else the ``event.name``
  attribute), the time from ``timeUnixNano`` (else ``observedTimeUnixNano``), our attributes mapped
  back (``sqreen.properties.*``, ``sqreen.user.*``, ``client.address``...), any other attribute kept
  as a property. A record is reported as ``FILE:LINE: record N: reason`` (LINE where its document
  starts) and written to ``FILE.rejected`` in the JSON Lines form above.

Each good event is one ``sqreen_otel.track(name, {..., "timestamp": dt})``: validation, scrubbing and
export are the SDK's own. A bad line (bad JSON or CSV, missing name or timestamp, bad timestamp, a
reserved ``sq.`` name, an argument ``track()`` refuses, over 1 MiB (OTLP documents: 16 MiB), not UTF-8,
a lone surrogate the OTLP encoder would drop) is reported on stderr with its line number and written to
``FILE.rejected``: for JSON Lines the original object with a ``_rejected_reason`` field inserted first
(or, when the line is not an object, ``{"_rejected_reason": ..., "_rejected_line": "<the line>"}``), for
CSV the original row with a ``rejected_reason`` column (a line that is not a CSV record: as it was,
plus the reason). Each run replaces ``FILE.rejected``, and removes it when no line was rejected. Blank
lines are skipped and not counted.

Events are flushed every ``CHUNK`` lines; if a flush fails (nothing listening, the endpoint refuses
them), reading stops there. Exit status: 0 all lines sent and delivered, 1 some lines rejected, 2 the
export did not complete or the file could not be read.
"""

from __future__ import annotations

import codecs
import collections
import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, BinaryIO, TextIO

import sqreen_otel

from .clientip import parse_address
from .track import _record

MiB = 1024 * 1024
MAX_LINE = MiB
CHUNK = 4096  # events between flushes; the queue holds two chunks, so nothing is ever dropped
FLUSH_TIMEOUT = 30.0
FLUSH_RETRY_DELAYS = (0.5, 1.5)  # a busy endpoint gets two more tries before the import stops
DEFAULT_ENDPOINT = "http://127.0.0.1:4318/v1/logs"
RESERVED_PREFIX = "sq."
MAX_DOCUMENT = 16 * MiB  # one OTLP JSON document (a request of many records)
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
FORMAT_NAMES = ("jsonl", "csv", "otlp")
REQUEST_FIELDS = {"ip": "client.address", "user_agent": "user_agent.original", "path": "url.path",
                  "method": "http.request.method"}  # fmt: skip
JSON_KEYS = ("name", "timestamp", "properties", "user_identifiers", *REQUEST_FIELDS, "params", "body", "action")
SDK_EVENTS = frozenset({"sq.sdk.users.login", "sq.sdk.users.signup"})  # the SDK's own names that import
ACTION_PREFIX = "sq.action."
# Attribute prefixes of the import format's fields, and attributes that are made anew for each event.
PROPERTIES, USER, TRAITS = "sqreen.properties.", "sqreen.user.", "sqreen.user.traits."
PARAMS, BODY, ACTION = "sqreen.request.params.", "sqreen.request.body", "sqreen.action."
NOT_CARRIED = frozenset({"network.peer.address", "log.record.uid", "event.name"})
MAX_ACTION_VALUE = 1024
_OTLP_START = re.compile(rb'\A\s*\{\s*"resource_?[lL]ogs"\s*:')
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')  # strings (skipped) and brackets, for depth
REASON_KEY = "_rejected_reason"
LINE_KEY = "_rejected_line"
REASON_COLUMN = "rejected_reason"
EXIT_OK, EXIT_REJECTED, EXIT_INCOMPLETE = 0, 1, 2
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class Rejected(Exception):
    """This line cannot become an event; ``str()`` is the reason."""


class ImportFailed(Exception):
    """The file as a whole cannot be imported (unreadable, bad CSV header)."""


def format_of(path: str) -> str:
    """``jsonl``, ``csv`` or ``otlp``: from the extension (``FILE.rejected`` counts as ``FILE``), and for JSON
    from the content (``{"resourceLogs": ...`` is OTLP); ``ImportFailed`` if unknown."""
    base = path[: -len(".rejected")] if path.endswith(".rejected") else path
    fmt = FORMATS.get(os.path.splitext(base)[1].lower())
    if fmt is None:
        raise ImportFailed(f"cannot tell the format of {path!r} from its extension: give --format jsonl, csv or otlp")
    if fmt == "jsonl":
        try:
            with open(path, "rb") as f:
                start = f.read(4096)
        except OSError:
            return fmt  # import_file reports it
        if _OTLP_START.match(start.removeprefix(codecs.BOM_UTF8)):
            return "otlp"
    return fmt


def parse_timestamp(raw: Any) -> _dt.datetime:
    """ISO 8601 text (naive = UTC) or epoch seconds (number or numeric text) as an aware datetime."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise Rejected(f"bad timestamp: expected ISO 8601 text or epoch seconds, got {_json_type(raw)}")
    seconds: float | None = None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            seconds = float(text)
        except ValueError:
            iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text  # Python 3.10 reads no "Z"
            try:
                moment = _dt.datetime.fromisoformat(iso)
            except ValueError:
                raise Rejected(f"bad timestamp {_short(raw)}: expected ISO 8601 or epoch seconds") from None
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=_dt.timezone.utc)
    else:
        seconds = raw
    if not math.isfinite(seconds):
        raise Rejected(f"bad timestamp {_short(raw)}")
    hint = " (milliseconds? epoch timestamps are in seconds)" if abs(seconds) > 1e11 else ""
    try:
        return _EPOCH + _dt.timedelta(seconds=seconds)
    except OverflowError:
        raise Rejected(f"bad timestamp {_short(raw)}: out of range{hint}") from None


# -- lines -----------------------------------------------------------------------------------------


@dataclass
class _Line:
    number: int
    data: bytes  # without its line ending; for a line over MAX_LINE, only its first part
    rest: Iterator[bytes] | None = None  # the remainder of a line over MAX_LINE, read on demand

    @property
    def too_long(self) -> bool:
        return self.rest is not None


def _lines(stream: BinaryIO) -> Iterator[_Line]:
    """Numbered lines, never holding more than MAX_LINE + 1 bytes of one."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        elif len(raw) > MAX_LINE:
            line = _Line(number, raw, _rest_of_line(stream))
            yield line
            assert line.rest is not None
            for _ in line.rest:  # skip what the consumer did not read
                pass
            continue
        yield _Line(number, raw[:-1] if raw.endswith(b"\r") else raw)


def _rest_of_line(stream: BinaryIO) -> Iterator[bytes]:
    """The rest of a long line in chunks, without its ``\n`` or ``\r\n``."""
    held = b""  # a "\r" that may be the first half of the line ending
    while True:
        chunk = stream.readline(64 * 1024)
        data = held + (chunk[:-1] if chunk.endswith(b"\n") else chunk)
        if not chunk or chunk.endswith(b"\n"):
            yield data[:-1] if data.endswith(b"\r") else data
            return
        held = b"\r" if data.endswith(b"\r") else b""
        yield data[: len(data) - len(held)]


# -- rejected lines --------------------------------------------------------------------------------


class _RejectFile:
    """``FILE.rejected``, opened on the first rejected line (and replaced: each run writes its own)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self.header: bytes | None = None  # CSV: written first

    def write(self, *parts: bytes) -> None:
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            if self.header is not None:
                self._file.write(self.header)
        for part in parts:
            self._file.write(part)

    def stream(self, line: _Line, escape: Callable[[str], str] | None) -> None:
        """The line's bytes, whole (even over MAX_LINE), as is or as the inside of a JSON string."""
        if escape is None:
            self.write(line.data, *(line.rest or ()))
            return
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.write(escape(decoder.decode(line.data)).encode())
        for chunk in line.rest or ():
            self.write(escape(decoder.decode(chunk)).encode())
        self.write(escape(decoder.decode(b"", final=True)).encode())

    @property
    def used(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _json_inside(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _csv_text(row: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue().encode()


# -- the import ------------------------------------------------------------------------------------


@dataclass
class Result:
    read: int = 0
    sent: int = 0
    rejected: int = 0
    delivered: int = 0
    complete: bool = True
    problem: str | None = None
    rejected_path: str | None = None

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return EXIT_INCOMPLETE
        return EXIT_REJECTED if self.rejected else EXIT_OK


class _Progress:
    """A one-line progress bar on a terminal; nothing otherwise."""

    WIDTH = 30

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = max(total, 1)
        self.enabled = out.isatty()
        self._last = 0.0
        self._shown = False

    def update(self, done: int, read: int, rejected: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.out.write(f"\r[{bar}] {fraction:4.0%}  {read:,} read, {rejected:,} rejected\x1b[K")
        self.out.flush()
        self._shown = True

    def say(self, text: str) -> None:
        if self._shown:
            self.out.write("\r\x1b[K")
            self._shown = False
            self._last = 0.0  # redraw at the next update
        self.out.write(text + "\n")
        self.out.flush()

    def finish(self, done: int, read: int, rejected: int) -> None:
        if self.enabled:
            self.update(done, read, rejected, force=True)
            self.out.write("\n")
            self.out.flush()


class _Warnings(logging.Handler):
    """Warnings of the ``sqreen_otel`` logger: those of the importing thread belong to the current line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.mine: list[str] = []
        self.others: collections.deque[str] = collections.deque()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad log call must not break the import
            message = str(record.msg)
        (self.mine.append if record.thread == self.thread else self.others.append)(message)


class _Importer:
    def __init__(self, path: str, fmt: str, endpoint: str, err: TextIO) -> None:
        self.path = path
        self.fmt = fmt
        self.endpoint = endpoint
        self.err = err
        self.result = Result()
        self.rejects = _RejectFile(path + ".rejected")
        self.progress = _Progress(err, os.path.getsize(path))
        self.warnings = _Warnings()
        self.stream: BinaryIO | None = None
        self.position = 0
        self.last_line = 0
        self.since_flush = 0

    # -- reporting ----------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.progress.say(text)

    def tick(self) -> None:
        self.drain_warnings()
        if self.progress.enabled and self.stream is not None:
            self.position = self.stream.tell()
            self.progress.update(self.position, self.result.read, self.result.rejected)

    def drain_warnings(self) -> None:
        """Warnings of the export thread (a batch rejected for good, drops), shown as they come."""
        for _ in range(len(self.warnings.others)):
            self.say(f"warning: {self.warnings.others.popleft()}")

    def reject(self, number: int, reason: str, write: Callable[[], None]) -> None:
        self.result.read += 1
        self.result.rejected += 1
        self.say(f"{self.path}:{number}: {reason}")
        write()

    # -- sending ------------------------------------------------------------------------------------

    def send(self, number: int, event: _Event, write_rejected: Callable[[str], None], where: str = "") -> bool:
        """Track one event; ``False`` when the import must stop (the export failed)."""
        reason = None
        name, options = event.name, event.options
        sdk_event = isinstance(name, str) and (name in SDK_EVENTS or name.startswith(ACTION_PREFIX))
        if isinstance(name, str) and name.startswith(RESERVED_PREFIX) and not sdk_event:
            reason = (f"reserved name {_short(name)}: names starting with {RESERVED_PREFIX!r} are the SDK's own "
                      f"(only {', '.join(sorted(SDK_EVENTS))} and {ACTION_PREFIX}* import)")  # fmt: skip
        elif event.extra and not sdk_event:
            reason = f"action is only for {ACTION_PREFIX}* events"
        else:
            try:
                _check_unicode(name, options)
                # The SDK's own events: recorded as auth_track() and the block checks record them.
                recorded = (_record(name, options, internal=True, extra=event.extra or None) if sdk_event
                            else sqreen_otel.track(name, options))  # fmt: skip
                if not recorded:
                    reason = "track() did not record it: " + ("; ".join(self.warnings.mine) or "see the log")
            except (TypeError, ValueError) as exc:  # track()'s argument errors
                reason = str(exc)
            except Rejected as exc:
                reason = str(exc)
        if reason is None:
            for message in self.warnings.mine:
                self.say(f"{self.path}:{number}: {where}warning: {message}")
        self.warnings.mine.clear()
        if reason is not None:
            self.reject(number, where + reason, lambda: write_rejected(reason))
            return True
        self.result.read += 1
        self.result.sent += 1
        self.since_flush += 1
        if self.since_flush >= CHUNK:
            self.since_flush = 0
            return self.deliver()
        return True

    def deliver(self) -> bool:
        """Flush what was tracked; ``False`` (with ``result.problem``) when it could not all be delivered."""
        flushed = False
        for delay in (*FLUSH_RETRY_DELAYS, None):
            flushed = sqreen_otel.flush(FLUSH_TIMEOUT)
            if flushed or delay is None:
                break
            time.sleep(delay)
        stats = sqreen_otel.stats()
        self.result.delivered = stats["exported"]
        dropped = sum(stats["dropped"].values())
        if flushed and not dropped and stats["exported"] == self.result.sent:
            return True
        self.result.complete = False
        error = stats["last_export_error"] or ("flush timed out" if not flushed else None)
        details = ", ".join(f"{k}={v}" for k, v in stats["dropped"].items() if v)
        self.result.problem = (
            f"export did not complete: {stats['exported']:,} of {self.result.sent:,} event(s) delivered to "
            f"{self.endpoint}{f', dropped {details}' if details else ''}{f' ({error})' if error else ''}"
        )
        return False

    # -- formats ------------------------------------------------------------------------------------

    def run(self, stream: BinaryIO) -> Result:
        self.stream = stream
        if self.fmt == "otlp":
            going = self.otlp(stream)
        else:
            lines = _lines(stream)
            going = self.jsonl(lines) if self.fmt == "jsonl" else self.csv(lines)
        if going and self.result.sent:
            self.deliver()
        elif not self.result.complete:
            self.say(f"stopped reading after line {self.last_line} of {self.path}")
        self.drain_warnings()
        if self.result.complete:
            self.position = self.progress.total
        return self.result

    def jsonl(self, lines: Iterator[_Line]) -> bool:
        for line in lines:
            self.last_line = line.number
            self.tick()
            if line.too_long:
                reason = f"line longer than {MAX_LINE:,} bytes"
                self.reject(line.number, reason, partial(self._json_wrap, line, reason))
                continue
            if not line.data.strip():
                continue
            if not self.result.read and line.data.lstrip().startswith(b"["):
                raise ImportFailed(f"{self.path} looks like a JSON array: import reads JSON Lines, one object per "
                                   f"line (jq -c '.[]' {self.path} > events.jsonl)")  # fmt: skip
            try:
                obj = _json_object(line.data)
            except Rejected as exc:
                self.reject(line.number, str(exc), partial(self._json_wrap, line, str(exc)))
                continue
            try:
                event = _json_event(obj)
            except Rejected as exc:
                self.reject(line.number, str(exc), partial(self._json_insert, line, obj, str(exc)))
                continue
            if not self.send(line.number, event, partial(self._json_insert, line, obj)):
                return False
        return True

    def _json_wrap(self, line: _Line, reason: str) -> None:
        """A line that is not a JSON object: kept whole as the text of ``_rejected_line``."""
        self.rejects.write(f'{{"{REASON_KEY}":{json.dumps(reason)},"{LINE_KEY}":"'.encode())
        self.rejects.stream(line, _json_inside)
        self.rejects.write(b'"}\n')

    def _json_insert(self, line: _Line, obj: dict[str, Any], reason: str) -> None:
        """The original object, byte for byte, with ``_rejected_reason`` inserted as its first member."""
        field = b'"' + REASON_KEY.encode() + b'":' + json.dumps(reason).encode()
        if REASON_KEY in obj:  # a rejected line again: replace the old reason (the text changes form)
            again = {REASON_KEY: reason, **{k: v for k, v in obj.items() if k != REASON_KEY}}
            self.rejects.write(json.dumps(again).encode(), b"\n")  # ASCII: lone surrogates stay \u escapes
            return
        text = line.data.lstrip()
        assert text.startswith(b"{")
        self.rejects.write(b"{", field, b"," if obj else b"", text[1:] if obj else b"}", b"\n")

    def otlp(self, stream: BinaryIO) -> bool:
        """OTLP JSON documents, each record one event; rejected records go out in the JSON Lines form."""
        for document in _documents(stream):
            self.last_line = document.last
            self.tick()
            if document.problem is not None:
                self.reject(document.first, document.problem, partial(self._json_text, document))
                continue
            try:
                records = decode_otlp(document.data)
            except ValueError as exc:
                reason = f"bad OTLP JSON: {exc}"
                self.reject(document.first, reason, partial(self._json_text, document, reason))
                continue
            for index, record in enumerate(records, 1):
                obj = import_object(record["name"] or record["attributes"].get("event.name"),
                                    record["time_unix_nano"] or record["observed_time_unix_nano"],
                                    record["attributes"])  # fmt: skip
                where = f"record {index}: "
                write = partial(self._json_object, obj)
                try:
                    if not obj["name"]:
                        raise Rejected("missing name: the record has no eventName (nor an event.name attribute)")
                    event = _json_event(obj)
                except Rejected as exc:
                    self.reject(document.first, where + str(exc), partial(write, str(exc)))
                    continue
                if not self.send(document.first, event, write, where):
                    return False
        return True

    def _json_text(self, document: _Document, reason: str | None = None) -> None:
        text = document.data.rstrip().decode("utf-8", "replace") if document.problem is None else None
        item = {REASON_KEY: reason or document.problem, **({LINE_KEY: text} if text is not None else {})}
        self.rejects.write(json.dumps(item, ensure_ascii=False).encode("utf-8", "replace"), b"\n")

    def _json_object(self, obj: dict[str, Any], reason: str) -> None:
        self.rejects.write(json.dumps({REASON_KEY: reason, **obj}, default=_hex_bytes).encode(), b"\n")

    def csv(self, lines: Iterator[_Line]) -> bool:
        columns: list[tuple[str, str]] | None = None
        pending: list[_Line] = []
        texts: list[str] = []
        size = 0
        for line in lines:
            self.last_line = line.number
            self.tick()
            first = pending[0].number if pending else line.number
            if line.too_long or size + len(line.data) > MAX_LINE:
                reason = f"{'line' if line.too_long else 'record'} longer than {MAX_LINE:,} bytes"
                self.reject(first, reason, partial(self._csv_raw, [*pending, line], reason))
                pending, texts, size = [], [], 0
                continue
            try:
                text = line.data.decode("utf-8")
            except UnicodeDecodeError:
                self.reject(first, "not UTF-8 text", partial(self._csv_raw, [*pending, line], "not UTF-8 text"))
                pending, texts, size = [], [], 0
                continue
            pending.append(line)
            texts.append(text)
            size += len(line.data) + 1
            record = "\n".join(texts)
            if record.count('"') % 2:  # inside a quoted cell: the record goes on
                continue
            group, pending, texts, size = pending, [], [], 0
            if not record.strip():
                continue
            try:
                rows = list(csv.reader(io.StringIO(record), strict=True))
                if len(rows) != 1:
                    raise csv.Error("not one record")
            except csv.Error as exc:
                self.reject(first, f"bad CSV: {exc}", partial(self._csv_raw, group, f"bad CSV: {exc}"))
                continue
            row = rows[0]
            if columns is None:
                columns = self._csv_header(row, first)
                continue
            try:
                event = _json_event(_csv_object(row, columns))
            except Rejected as exc:
                self.reject(first, str(exc), partial(self._csv_row, row, columns, str(exc)))
                continue
            if not self.send(first, event, partial(self._csv_row, row, columns)):
                return False
        if pending:
            reason = "unclosed quote at the end of the file"
            self.reject(pending[0].number, reason, partial(self._csv_raw, pending, reason))
        return True

    def _csv_header(self, row: list[str], number: int) -> list[tuple[str, str]]:
        columns: list[tuple[str, str]] = []
        seen: set[str] = set()
        for cell in row:
            name = cell.strip()
            if name in seen:
                raise ImportFailed(f"{self.path}:{number}: column {_short(name)} appears twice")
            seen.add(name)
            kind, _, key = name.partition(".")
            if name in ("name", "timestamp", REASON_COLUMN, *REQUEST_FIELDS):
                columns.append((name, ""))
            elif kind in _CSV_GROUPS and key:
                columns.append((kind, key))
            else:
                groups = ", ".join(f"{group}.<key>" for group in _CSV_GROUPS)
                raise ImportFailed(f"{self.path}:{number}: unknown column {_short(name)}: expected name, timestamp, "
                                   f"{', '.join(REQUEST_FIELDS)} and {groups}")  # fmt: skip
        if "name" not in seen or "timestamp" not in seen:
            raise ImportFailed(f"{self.path}:{number}: the CSV header must have name and timestamp columns")
        header = [*row, REASON_COLUMN] if REASON_COLUMN not in seen else row
        self.rejects.header = _csv_text(header)
        return columns

    def _csv_row(self, row: list[str], columns: list[tuple[str, str]], reason: str) -> None:
        out = list(row)
        index = next((i for i, (kind, _) in enumerate(columns) if kind == REASON_COLUMN), None)
        if index is not None and index < len(out):
            out[index] = reason
        else:
            out.append(reason)
        self.rejects.write(_csv_text(out))

    def _csv_raw(self, lines: list[_Line], reason: str) -> None:
        """Lines that are not a CSV record: as they were, with the reason as one more cell."""
        for i, line in enumerate(lines):
            if i:
                self.rejects.write(b"\n")
            self.rejects.stream(line, None)
        self.rejects.write(b",", _csv_text([reason]))


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except UnicodeDecodeError:
        raise Rejected("not UTF-8 text") from None
    except RecursionError:
        raise Rejected("bad JSON: nested too deeply") from None
    except ValueError as exc:
        raise Rejected(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Rejected(f"expected a JSON object, got {_json_type(obj)}")
    return obj


@dataclass
class _Event:
    name: Any
    options: dict[str, Any]
    extra: dict[str, str]  # sqreen.action.* attributes of an sq.action.* event


class ImportedRequest:
    """The request an imported event happened in, as the file gives it (a ``RequestContext``)."""

    def __init__(self, attributes: dict[str, Any], body: Any) -> None:
        self._attributes = attributes
        self._body = body

    def attributes(self) -> dict[str, Any]:
        return self._attributes

    def body(self) -> Any:
        return self._body


def _json_event(obj: dict[str, Any]) -> _Event:
    if LINE_KEY in obj:
        raise Rejected(f"a line rejected earlier ({LINE_KEY}): replace this object with the corrected line")
    unknown = sorted(key for key in obj if key not in JSON_KEYS and key != REASON_KEY)
    if unknown:
        raise Rejected(f"unknown field(s) {', '.join(map(_short, unknown))}: expected {', '.join(JSON_KEYS)}")
    name = obj.get("name")
    if name is None or name == "":
        raise Rejected("missing name")
    options: dict[str, Any] = {"timestamp": _timestamp(obj.get("timestamp"))}
    for key in ("properties", "user_identifiers"):
        if obj.get(key) is not None:
            options[key] = obj[key]
    request = _request(obj)
    if request is not None:
        options["request"] = request
        options["collect_body"] = obj.get("body") is not None
    return _Event(name, options, _action(obj.get("action")))


def _request(obj: dict[str, Any]) -> ImportedRequest | None:
    attributes: dict[str, Any] = {}
    for field, attribute in REQUEST_FIELDS.items():
        value = obj.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Rejected(f"{field} must be text, got {_json_type(value)}")
        if field == "ip":
            address = parse_address(value)
            if address is None:
                raise Rejected(f"ip must be an IP address, got {_short(value)}")
            value = str(address)
        attributes[attribute] = value
    params = obj.get("params")
    if params is not None:
        if not isinstance(params, dict):
            raise Rejected(f"params must be a mapping, not {_json_type(params)}")
        for key, value in params.items():
            if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
                raise Rejected(f"params[{_short(key)}] must be text or a list of text, got {_json_type(value)}")
            attributes[PARAMS + key] = value
    if not attributes and obj.get("body") is None:
        return None
    return ImportedRequest(attributes, obj.get("body"))


def _action(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Rejected(f"action must be a mapping, not {_json_type(raw)}")
    extra: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or len(value) > MAX_ACTION_VALUE:
            raise Rejected(f"action[{_short(key)}] must be text of at most {MAX_ACTION_VALUE} characters")
        extra[ACTION + key] = value
    return extra


_CSV_GROUPS = {"properties": "properties", "user": "user_identifiers", "params": "params", "action": "action"}


def _csv_object(row: list[str], columns: list[tuple[str, str]]) -> dict[str, Any]:
    """A CSV record as the JSON Lines object it stands for; empty cells left out."""
    if len(row) != len(columns):
        raise Rejected(f"expected {len(columns)} cells as in the header, got {len(row)}")
    obj: dict[str, Any] = {}
    for (kind, key), value in zip(columns, row, strict=True):
        if kind == "name":
            obj["name"] = value.strip()
        elif kind == REASON_COLUMN or value == "":
            continue
        elif kind in _CSV_GROUPS:
            obj.setdefault(_CSV_GROUPS[kind], {})[key] = value
        else:
            obj[kind] = value
    return obj


def import_object(name: Any, time_ns: int, attributes: dict[str, Any]) -> dict[str, Any]:
    """An event's stored attributes as one import-format object (what ``export`` writes, OTLP records become).

    Our attributes map back to their fields; another producer's attributes are kept as properties under
    their own key; the ids and the peer address are made anew when the event is recorded again.
    """
    found: dict[str, Any] = {"name": name}
    if time_ns:
        moment = _EPOCH + _dt.timedelta(microseconds=time_ns // 1000)
        found["timestamp"] = f"{moment:%Y-%m-%dT%H:%M:%S.%f}Z"
    fields = {attribute: field for field, attribute in REQUEST_FIELDS.items()}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in attributes.items():
        if key in fields:
            found[fields[key]] = value
        elif key == BODY:
            found["body"] = value
        elif key in NOT_CARRIED or key.startswith(TRAITS):
            continue
        else:
            for prefix, group in ((PROPERTIES, "properties"), (USER, "user_identifiers"), (PARAMS, "params"),
                                  (ACTION, "action")):  # fmt: skip
                if key.startswith(prefix):
                    groups.setdefault(group, {})[key[len(prefix) :]] = value
                    break
            else:
                if not key.startswith("sqreen."):
                    groups.setdefault("properties", {})[key] = value
    found.update(groups)
    return {key: found[key] for key in JSON_KEYS if key in found}  # in the documented order


def decode_otlp(data: bytes) -> list[dict[str, Any]]:
    """The records of one OTLP JSON document (hex ids, unknown fields ignored), as the explorer decodes them."""
    from .explorer.otlp import JSON, decode

    return decode(data, JSON)


def _hex_bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _bracket_depth(line: bytes) -> tuple[int, int]:
    """How much ``line`` opens (its brackets outside strings), and the lowest depth reached within it."""
    depth = lowest = 0
    for match in _JSON_TOKEN.finditer(line):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
            lowest = min(lowest, depth)
    return depth, lowest


@dataclass
class _Document:
    first: int  # its first and last line
    last: int
    data: bytes
    problem: str | None = None


def _documents(stream: BinaryIO) -> Iterator[_Document]:
    """The JSON documents of a file, one per line or spread over lines, each at most ``MAX_DOCUMENT`` bytes.

    A document ends on the line where its brackets balance (JSON strings cannot hold a raw newline, so each
    line is scanned on its own); text that is not one is one bad document per line.
    """
    number, depth, first, size = 0, 0, 0, 0
    parts: list[bytes] = []
    problem: str | None = None
    while True:
        raw = stream.readline(MAX_DOCUMENT + 1)
        if not raw:
            break
        number += 1
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if not parts and problem is None and not raw.strip():
            continue
        if not parts and problem is None:
            first = number
        if len(raw) > MAX_DOCUMENT and not raw.endswith(b"\n"):  # one huge line: skip it, without scanning
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(64 * 1024)
            yield _Document(first, number, b"", f"document longer than {MAX_DOCUMENT:,} bytes")
            depth, parts, size, problem = 0, [], 0, None
            continue
        change, lowest = _bracket_depth(raw)
        if (parts or problem is not None) and raw.startswith(b"{") and change == 0 and lowest >= 0:
            # A whole document on one line while another is still open: that one was not JSON (an unbalanced
            # "{"), and must not swallow the documents that follow it.
            yield _Document(first, number - 1, b"".join(parts), problem)
            depth, parts, size, problem, first = 0, [], 0, None, number
        depth += change
        size += len(raw)
        if size > MAX_DOCUMENT:
            problem, parts = f"document longer than {MAX_DOCUMENT:,} bytes", []
        elif problem is None:
            parts.append(raw)
        if depth <= 0:
            yield _Document(first, number, b"".join(parts), problem)
            depth, parts, size, problem = 0, [], 0, None
    if parts or problem is not None:
        yield _Document(first, number, b"".join(parts), problem or "unexpected end of the file inside a document")


def _timestamp(raw: Any) -> _dt.datetime:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise Rejected("missing timestamp")
    return parse_timestamp(raw)


def _check_unicode(name: Any, options: dict[str, Any]) -> None:
    """Lone surrogates (``"\\udc80"`` in JSON) cannot be UTF-8: the OTLP encoder would drop the attribute."""
    try:
        json.dumps([name, options.get("properties"), options.get("user_identifiers")], ensure_ascii=False,
                   default=str).encode("utf-8")  # fmt: skip
    except UnicodeEncodeError:
        raise Rejected("text with a lone surrogate (e.g. \\udc80) cannot be exported as UTF-8") from None
    except (ValueError, TypeError):  # cycles cannot come from JSON; track() reports anything else
        pass


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "text", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- entry point -----------------------------------------------------------------------------------


def import_file(
    path: str,
    *,
    endpoint: str | None = None,
    fmt: str | None = None,
    token: str | None = None,
    err: TextIO | None = None,
    out: IO[str] | None = None,
) -> Result:
    """Import ``path`` into ``endpoint`` (default: ``SQREEN_OTEL_ENDPOINT``, else the local explorer).

    Configures the process's pipeline (``sqreen_otel.configure``): meant for the CLI's own process.
    """
    import sys

    err = err if err is not None else sys.stderr
    out = out if out is not None else sys.stdout
    fmt = fmt or format_of(path)
    if fmt not in FORMAT_NAMES:
        raise ImportFailed(f"format must be jsonl, csv or otlp, got {fmt!r}")
    endpoint = endpoint or os.environ.get("SQREEN_OTEL_ENDPOINT") or DEFAULT_ENDPOINT
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    headers = {"Authorization": f"Bearer {token}"} if token else None
    os.environ.setdefault("OTEL_SERVICE_NAME", "sqreen-otel-import")  # the resource says where events came from
    pipeline = sqreen_otel.configure(
        endpoint=endpoint, headers=headers, flush_interval=5.0, first_seen_delay=None,
        max_queue_size=2 * CHUNK + 1024, max_export_batch_size=512,
    )  # fmt: skip
    if pipeline.settings.disabled:
        stream.close()
        raise ImportFailed("SQREEN_OTEL_DISABLED is set: nothing would be sent")
    importer = _Importer(path, fmt, endpoint, err)
    log = logging.getLogger("sqreen_otel")
    log.addHandler(importer.warnings)
    try:
        with stream:
            result = importer.run(stream)
    finally:
        log.removeHandler(importer.warnings)
        importer.rejects.close()
        importer.progress.finish(importer.position, importer.result.read, importer.result.rejected)
    rejected_path = importer.rejects.path
    if importer.rejects.used:
        result.rejected_path = rejected_path
    elif os.path.exists(rejected_path):
        os.remove(rejected_path)  # a previous run's rejects must not pass for this run's
    print(f"read {result.read:,}, sent {result.sent:,}, rejected {result.rejected:,}", file=out)
    if result.rejected_path:
        print(f"rejected lines written to {result.rejected_path}", file=err)
    if result.problem:
        print(result.problem, file=err)
    return result
