"""Events and block actions in one SQLite file, for the Event Explorer.

One row per event with the columns the UI filters on (name, user, client address, time) indexed, and
the rest as JSON. A side table lists each user identifier value so that "every event of
alice@example.com" is an index lookup whatever the identifier's key.

Threads: each thread gets its own connection (WAL lets readers run while one writer writes); writes
go through one lock so that id allocation and retention never race. Every SQL statement is a
constant string with ``?`` parameters: filter values, JSON paths and limits are never spliced in.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from ..actions import MAX_ACTIONS, MAX_DOCUMENT_BYTES
from ..blocking import MAX_IDENTIFIERS, check_identifiers, check_network

MAX_FILTER_LENGTH = 1024
MAX_TEXT = 1024  # indexed text columns (name, address, path, method, ids, scope, user values)
MAX_PAGE = 500
MAX_BUCKETS = 1000
PRUNE_EVERY_SECONDS = 10.0
PRUNE_EVERY_ROWS = 10_000
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1  # OTLP times are fixed64: up to the year 2554
UID_ATTRIBUTE = "log.record.uid"  # OpenTelemetry semantic conventions: a unique id per log record

USER_PREFIX = "sqreen.user."
TRAITS_PREFIX = "sqreen.user.traits."
PROPERTIES_PREFIX = "sqreen.properties."
_PROP_KEY = re.compile(r"[A-Za-z0-9_.\-]+")

Clock = Callable[[], float]

# The schema as a list of migrations: a database at ``PRAGMA user_version`` N has had the first N applied.
# Opening a database applies the missing ones in one transaction, so older files stay readable. To change
# the schema, APPEND an entry (SQL text or a function of the connection); never edit or reorder past ones.
_V1 = (
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        name TEXT NOT NULL,
        user TEXT,
        client_address TEXT,
        path TEXT,
        method TEXT,
        trace_id TEXT,
        span_id TEXT,
        attributes TEXT NOT NULL,
        resource TEXT NOT NULL,
        scope TEXT
    )""",
    # SQLite appends the rowid to every index entry: these are also ordered by id within equal times.
    "CREATE INDEX IF NOT EXISTS events_time ON events (time_ns)",
    "CREATE INDEX IF NOT EXISTS events_name_time ON events (name, time_ns)",
    "CREATE INDEX IF NOT EXISTS events_address_time ON events (client_address, time_ns)",
    "CREATE INDEX IF NOT EXISTS events_received ON events (received_ns)",
    """CREATE TABLE IF NOT EXISTS event_users (
        event_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (event_id, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS event_users_value ON event_users (value, event_id)",
    """CREATE TABLE IF NOT EXISTS actions (
        id TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        user TEXT,
        ip TEXT,
        expires_at REAL,
        created_at REAL NOT NULL
    )""",
)
MIGRATIONS: tuple[tuple[str | Callable[[sqlite3.Connection], None], ...], ...] = (
    _V1,  # 1: events, users, actions
    (  # 2: exactly-once ingest by OTel's log.record.uid (NULLs are distinct: events without one always go in);
        # the exact OTLP time when it does not fit SQLite's signed 64-bit INTEGER (after 2262-04-11)
        "ALTER TABLE events ADD COLUMN uid TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS events_uid ON events (uid)",
        "ALTER TABLE events ADD COLUMN time_exact TEXT",
    ),
    (  # 3: playbooks (explorer/alerts.py): incidents, the decisions they took (served to agents unless simulated
        # or lifted), per-decision hits from sq.action.* events, and how far live evaluation has read the events
        """CREATE TABLE IF NOT EXISTS alerts (
            id TEXT PRIMARY KEY,
            playbook_id TEXT NOT NULL,
            group_key TEXT NOT NULL,
            first_ns INTEGER NOT NULL,
            last_ns INTEGER NOT NULL,
            open_until_ns INTEGER NOT NULL,
            count INTEGER NOT NULL,
            event_ids TEXT NOT NULL,
            protected TEXT NOT NULL,
            simulated INTEGER NOT NULL,
            severity TEXT NOT NULL,
            closed_at REAL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS alerts_last ON alerts (last_ns)",
        "CREATE INDEX IF NOT EXISTS alerts_playbook_last ON alerts (playbook_id, last_ns)",
        """CREATE TABLE IF NOT EXISTS decisions (
            id TEXT PRIMARY KEY,
            alert_id TEXT NOT NULL,
            playbook_id TEXT NOT NULL,
            action TEXT NOT NULL,
            ip TEXT,
            user TEXT,
            url TEXT,
            duration REAL NOT NULL,
            start REAL NOT NULL,
            expires_at REAL NOT NULL,
            escalation INTEGER NOT NULL,
            simulated INTEGER NOT NULL,
            lifted_at REAL,
            hits INTEGER NOT NULL DEFAULT 0,
            last_hit_ns INTEGER,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS decisions_alert ON decisions (alert_id)",
        "CREATE INDEX IF NOT EXISTS decisions_expiry ON decisions (expires_at)",
        "CREATE TABLE IF NOT EXISTS playbook_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), last_event_id INTEGER)",
    ),
    (  # 4: the rest of each OTLP record (observed time, severity, body, scope version and attributes) as JSON;
        # NULL in rows stored before, which read as they did
        "ALTER TABLE events ADD COLUMN record TEXT",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "id, time_ns, received_ns, name, user, client_address, path, method, trace_id, span_id, attributes, resource,"
    " scope, time_exact, length(attributes) + length(resource) + coalesce(length(record), 0), record"
)
_INSERT_EVENT = (
    "INSERT INTO events (id, time_ns, received_ns, name, user, client_address, path, method, trace_id, span_id,"
    " attributes, resource, scope, uid, time_exact, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RECORD_FIELDS = ("observed_time_unix_nano", "severity_number", "severity_text", "body", "scope_version",
                 "scope_attributes")  # fmt: skip
MAX_SCOPE_ATTRIBUTES_BYTES = 4096  # repeated on every record of the scope: kept small
MAX_RECORD_TEXT = 256  # characters of severity text and scope version
CUT_SCOPE_ATTRIBUTES = "sqreen_otel.explorer.scope_attributes_cut"
_KNOWN_UIDS = "SELECT uid FROM events WHERE uid IN (SELECT value FROM json_each(?))"
_INSERT_USER = "INSERT INTO event_users (event_id, key, value) VALUES (?, ?, ?)"
# A property compared as text: strings as they are, numbers and booleans as JSON writes them.
_USER_AGENT = """json_extract(attributes, '$."user_agent.original"')"""
_SERVICE = """json_extract(resource, '$."service.name"')"""
TOP_FIELDS = ("ip", "user", "path", "user_agent")
TOP_SAMPLE = 10_000  # the newest matching events that top_values counts over: a bounded cost at any size
_PROP_MATCH = (
    "(CASE json_type(attributes, ?) WHEN 'text' THEN json_extract(attributes, ?)"
    " WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null'"
    " ELSE CAST(json_extract(attributes, ?) AS TEXT) END) = ?"
)


# -- values ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the UI narrows events by; all given filters must match. Empty text means "no filter".

    ``since_ns <= time_ns < until_ns``; ``prop`` is ``(key, value)`` matched against ``sqreen.properties.<key>``
    compared as text (``"42"`` matches the number 42, ``"true"`` the boolean).
    """

    name: str | None = None
    user: str | None = None
    ip: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    prop: tuple[str, str] | None = None
    path: str | None = None  # url.path, exactly
    user_agent: str | None = None  # user_agent.original, exactly
    service: str | None = None  # the resource's service.name, exactly

    def __post_init__(self) -> None:
        for name in ("name", "user", "ip", "path", "user_agent", "service"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _filter_text(name, value))
        for name in ("since_ns", "until_ns"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 0 <= value <= UINT64_MAX):
                raise ValueError(f"{name} must be an integer from 0 to 2**64-1 (nanoseconds), got {_short(value)}")
        if self.prop is not None:
            if not isinstance(self.prop, tuple) or len(self.prop) != 2:
                raise ValueError("prop must be a (key, value) pair")
            key, value = self.prop
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("prop key and value must be text")
            if len(key) > MAX_FILTER_LENGTH or len(value) > MAX_FILTER_LENGTH:
                raise ValueError(f"prop key and value are limited to {MAX_FILTER_LENGTH} characters")
            if not _PROP_KEY.fullmatch(key):
                raise ValueError(f"prop key {_short(key)} may only hold letters, digits, '_', '.' and '-'")


def _filter_text(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        raise ValueError(f"{name} filter must be text, got {type(value).__name__}")
    if len(value) > MAX_FILTER_LENGTH:
        raise ValueError(f"{name} filter is limited to {MAX_FILTER_LENGTH} characters")
    return value or None


@dataclass(frozen=True)
class Event:
    """A stored event; ``user`` holds the identifiers (``{}`` when anonymous)."""

    id: int
    time_ns: int
    received_ns: int
    name: str
    user: dict[str, Any]
    client_address: str | None
    path: str | None
    method: str | None
    trace_id: str | None
    span_id: str | None
    attributes: dict[str, Any] = field(repr=False)
    resource: dict[str, Any] = field(repr=False)
    scope: str | None
    # The rest of the OTLP record (RECORD_FIELDS, those that were set); {} for events stored before schema 4.
    record: dict[str, Any] = field(default_factory=dict, repr=False)


class Page(list[Event]):
    """Events of one query, newest or oldest first; ``more`` when more match (a full page, or the byte budget hit)."""

    more: bool = False


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        row[0],
        int(row[13]) if row[13] else row[1],
        row[2],
        row[3],
        json.loads(row[4]) if row[4] else {},
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        json.loads(row[10]),
        json.loads(row[11]),
        row[12],
        json.loads(row[15]) if len(row) > 15 and row[15] else {},
    )


# -- JSON that never fails -------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


# Compact, ASCII-only (lone surrogates cannot break the UTF-8 SQLite wants), strict JSON (no NaN).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_default)
_CANONICAL = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_default, sort_keys=True)


def _one_shot(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode``, minus the C encoder's set-up on every call (a quarter of ingest's JSON cost).

    No circular-reference markers: a cycle ends in RecursionError, which ``_json`` turns into ``_plain``'s
    text just as it did the ValueError of the markers.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return encoder.encode
    chunks = make(None, encoder.default, json.encoder.encode_basestring_ascii, None, encoder.key_separator,
                  encoder.item_separator, encoder.sort_keys, encoder.skipkeys, encoder.allow_nan)  # fmt: skip

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


_FAST = {id(_ENCODER): _one_shot(_ENCODER), id(_CANONICAL): _one_shot(_CANONICAL)}


def _json(value: Any, encoder: json.JSONEncoder = _ENCODER) -> str:
    """JSON text of any attribute value: bytes as hex, NaN and infinities as text, odd keys as text."""
    try:
        fast = _FAST.get(id(encoder))
        return fast(value) if fast is not None else encoder.encode(value)
    except (ValueError, TypeError, RecursionError):  # NaN, non-text keys, cycles, absurd nesting
        return encoder.encode(_plain(value, 0))


def _plain(value: Any, depth: int) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if depth >= 32:
        return _short(value, 200)
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, str) else _json(_plain(k, depth + 1)): _plain(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    return _default(value)


def _text(value: Any) -> str | None:
    """A short text column: ``None`` for nothing, capped, and always valid UTF-8."""
    if type(value) is str and len(value) <= MAX_TEXT and value.isascii():  # nearly always: no copy, no check
        return value or None
    if value is None or value == "":
        return None
    if type(value) is int:
        return str(value)
    if not isinstance(value, str):
        value = value.hex() if isinstance(value, bytes) else _json(value)
    value = value[:MAX_TEXT]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _ns(value: Any) -> int:
    """An OTLP time (fixed64): anything else is 0 ("unknown")."""
    return value if type(value) is int and 0 <= value <= UINT64_MAX else 0


def _sql_ns(value: int) -> int:
    """A time as SQLite's signed INTEGER can hold it: past 2262-04-11 it is ordered, filtered and charted as 2**63-1."""
    return min(value, INT64_MAX)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- the store -------------------------------------------------------------------------------------


class Store:
    """Events and block actions in SQLite (WAL). Thread-safe: a connection per thread, one writer at a time.

    ``max_age`` (seconds, by *received* time) and ``max_rows`` bound what is kept; ``add()`` prunes at
    most every 10 s or 10,000 rows. ``clock`` (epoch seconds) is for tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_age: float | None = None,
        max_rows: int | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.path = os.fspath(path)
        if self.path in ("", ":memory:") or self.path.startswith("file:"):
            raise ValueError("Store needs a file path: each thread opens its own connection to it")
        if max_age is not None and not (isinstance(max_age, (int, float)) and max_age > 0 and math.isfinite(max_age)):
            raise ValueError(f"max_age must be a number of seconds > 0, got {_short(max_age)}")
        if max_rows is not None and (type(max_rows) is not int or max_rows < 1):
            raise ValueError(f"max_rows must be an integer >= 1, got {_short(max_rows)}")
        self.max_age = max_age
        self.max_rows = max_rows
        self._clock = clock
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._closed = False
        self._since_prune = 0
        self._last_prune = clock()
        self._create_schema()

    # -- connections -------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self._closed:
            if conn is not None:
                self._local.conn = None
                conn.close()
            raise RuntimeError("the store is closed")
        if conn is None:
            # isolation_level=None: we say where transactions start and end.
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA page_size=8192")  # a new file only: rows with their JSON are ~1 KB; +15% inserts
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~40 MB of WAL rather than 4 MB: hot index pages are copied back once, not ten
            # times, which is a third of the insert cost; the file is cut back to 64 MB afterwards.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute("PRAGMA journal_size_limit=67108864")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialised with the other threads' (and locked against other processes)."""
        with self._write_lock:
            conn = self._conn()
            if not getattr(self._local, "writer", False):
                # Writers keep the indexes' hot pages (16 MB, not 2 MB); readers keep the default.
                conn.execute("PRAGMA cache_size=-16384")
                self._local.writer = True
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # never leave the next writer inside our transaction
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see the same snapshot."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _create_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema version {version} is newer than this code's {SCHEMA_VERSION}")
            for migration in MIGRATIONS[version:]:
                for step in migration:
                    if isinstance(step, str):
                        conn.execute(step)
                    else:
                        step(conn)
            if version < SCHEMA_VERSION:
                # Pragmas take no parameters; the value is our own integer constant.
                conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")

    def check_writable(self) -> None:
        """Raise ``sqlite3.Error`` unless a write can be committed now (read-only file or directory, full disk...)."""
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS write_probe (at REAL)")
            conn.execute("INSERT INTO write_probe (at) VALUES (?)", (self._clock(),))
            conn.execute("DELETE FROM write_probe")

    def close(self) -> None:
        """Close this thread's connection; other threads' close when they next use the store or when they end."""
        self._closed = True
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing events ----------------------------------------------------------------------------

    def add(self, events: Iterable[dict[str, Any]]) -> int:
        """Store decoded events (``otlp.decode`` dicts) in one transaction; returns how many were new.

        An event whose ``log.record.uid`` attribute is already stored (or repeated in the batch) is skipped:
        an exporter's retry or a replayed spool is stored once. Events without a uid are always stored.
        """
        rows, users = rows_of(events, int(self._clock() * 1e9))
        uids = [row[UID_COLUMN] for row in rows]
        if not rows:
            return 0
        with self._write() as conn:
            rows, users = only_new(rows, users, self._known(conn, uids))
            if not rows:
                return 0
            # Ids are ours to give (we hold the write lock): event_users rows need them, executemany
            # does not return them. AUTOINCREMENT's counter never goes back, even after pruning, so a
            # `tail` that saw id N never misses a later event.
            first = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'events'")
            start = first.fetchone()[0]
            conn.executemany(_INSERT_EVENT, [(start + i, *row) for i, row in enumerate(rows)])
            if users:
                conn.executemany(_INSERT_USER, [(start + i, key, value) for i, key, value in users])
            self._since_prune += len(rows)
        self._maybe_prune()
        return len(rows)

    @staticmethod
    def _known(conn: sqlite3.Connection, uids: list[str | None]) -> set[str]:
        """Which of these uids are already stored."""
        given = [uid for uid in uids if uid is not None]
        return {row[0] for row in conn.execute(_KNOWN_UIDS, (json.dumps(given),))} if given else set()

    # -- retention ---------------------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        if self.max_age is None and self.max_rows is None:
            return
        if self._since_prune >= PRUNE_EVERY_ROWS or self._clock() - self._last_prune >= PRUNE_EVERY_SECONDS:
            self.prune()

    def prune(self) -> int:
        """Delete events received over ``max_age`` seconds ago and beyond the newest ``max_rows``; returns how many.

        Expired block actions go too.
        """
        deleted = 0
        now = self._clock()
        with self._write() as conn:
            self._since_prune = 0
            self._last_prune = now
            if self.max_age is not None:
                cutoff = max(0, min(INT64_MAX, int((now - self.max_age) * 1e9)))
                conn.execute(
                    "DELETE FROM event_users WHERE event_id IN (SELECT id FROM events WHERE received_ns < ?)", (cutoff,)
                )
                deleted += conn.execute("DELETE FROM events WHERE received_ns < ?", (cutoff,)).rowcount
            if self.max_rows is not None:
                # Ids are given in a row without gaps (add() numbers each batch from the sequence), so the
                # newest max_rows are those above max(id) - max_rows: an index lookup, where OFFSET max_rows
                # walked up to max_rows entries (0.4 s at 2M rows) on every prune, under the write lock.
                newest = conn.execute("SELECT max(id) FROM events").fetchone()[0]
                if newest is not None and newest > self.max_rows:
                    cut = newest - self.max_rows
                    conn.execute("DELETE FROM event_users WHERE event_id <= ?", (cut,))
                    deleted += conn.execute("DELETE FROM events WHERE id <= ?", (cut,)).rowcount
            conn.execute("DELETE FROM actions WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
        return deleted

    # -- reading events ----------------------------------------------------------------------------

    def events(
        self,
        filters: Filters = Filters(),
        *,
        before: tuple[int, int] | None = None,
        limit: int = 50,
        max_bytes: int | None = None,
    ) -> Page:
        """A page of events, newest first by (time, id); the last row's ``(time_ns, id)`` as ``before``: the next.

        ``max_bytes``: stop once the events' stored JSON reaches that many bytes (at least one event comes back).
        """
        where, params = _where(filters)
        if before is not None:
            before_time, before_id = _cursor(before)
            where.append("(time_ns, id) < (?, ?)")
            params += [before_time, before_id]
        params.append(_limit(limit))
        sql = f"SELECT {_COLUMNS} FROM events{_clause(where)} ORDER BY time_ns DESC, id DESC LIMIT ?"
        return self._page(sql, params, params[-1], max_bytes)

    def after(
        self, last_id: int, filters: Filters = Filters(), limit: int = 100, *, max_bytes: int | None = None
    ) -> Page:
        """Events stored after the one with id ``last_id``, oldest first: what ``tail`` shows next."""
        where, params = _where(filters)
        where.append("id > ?")
        params += [_id(last_id), _limit(limit)]
        sql = f"SELECT {_COLUMNS} FROM events{_clause(where)} ORDER BY id LIMIT ?"
        return self._page(sql, params, params[-1], max_bytes)

    def _page(self, sql: str, params: list[Any], limit: int, max_bytes: int | None) -> Page:
        page, size = Page(), 0
        for row in self._conn().execute(sql, params):  # rows are read one at a time: stopping early reads no more
            page.append(_event(row))
            size += row[14]
            if max_bytes is not None and size >= max_bytes:
                page.more = True
                break
        page.more = page.more or len(page) == limit
        return page

    def get(self, event_id: int) -> Event | None:
        if type(event_id) is not int or not 0 <= event_id <= INT64_MAX:
            return None
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else _event(row)

    def count(self, filters: Filters = Filters()) -> int:
        where, params = _where(filters)
        result: int = self._conn().execute(f"SELECT count(*) FROM events{_clause(where)}", params).fetchone()[0]
        return result

    def histogram(self, filters: Filters = Filters(), *, buckets: int = 60) -> tuple[int, int, list[int]]:
        """``(start_ns, bucket_width_ns, counts)`` over the filter's time range, or the matching data's when open.

        The buckets cover ``[start, start + width * buckets)``, so the counts add up to ``count(filters)``.
        """
        if type(buckets) is not int or not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be an integer from 1 to {MAX_BUCKETS}, got {_short(buckets)}")
        where, params = _where(filters)
        with self._read() as conn:
            start, end = filters.since_ns, filters.until_ns  # end exclusive
            if start is None or end is None:
                sql = (
                    f"SELECT (SELECT min(time_ns) FROM events{_clause(where)}),"
                    f" (SELECT max(time_ns) FROM events{_clause(where)})"
                )
                low, high = conn.execute(sql, params + params).fetchone()
                if low is None:
                    return (start or 0, 1, [0] * buckets)
                start = low if start is None else start
                end = high + 1 if end is None else end
            start, end = _sql_ns(start), min(end, INT64_MAX + 1)  # times past 2262 count as 2**63-1
            if end <= start:
                return (start, 1, [0] * buckets)
            width = min(-(-(end - start) // buckets), INT64_MAX)
            counts = [0] * buckets
            sql = (
                f"SELECT (time_ns - ?) / ? AS bucket, count(*) FROM events"
                f"{_clause([*where, 'time_ns >= ?', 'time_ns <= ?'])} GROUP BY bucket"
            )
            # end - 1: the end of a range reaching the largest time would not fit SQLite's integers.
            for bucket, n in conn.execute(sql, [start, width, *params, start, end - 1]):
                counts[min(bucket, buckets - 1)] += n  # only a width capped at 2**63-1 can overshoot
        return (start, width, counts)

    def top_values(
        self, filters: Filters = Filters(), *, limit: int = 10, sample: int = TOP_SAMPLE
    ) -> dict[str, list[tuple[str, int]]]:
        """The most frequent client addresses, user identifier values, paths and user agents of the matching
        events (the newest ``sample`` of them), with their counts: most frequent first, then by value."""
        where, params = _where(filters)
        newest = f"SELECT id FROM events{_clause(where)} ORDER BY time_ns DESC, id DESC LIMIT ?"
        with self._read() as conn:
            return top_values_of(conn, newest, [*params, sample, limit], _USER_AGENT, "?")

    def summary(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Per event name: how many, first and last time, distinct users and client addresses; most frequent first.

        ``limit``: at most that many names (anyone who can send events can make up names).
        """
        sql = (
            "SELECT name, count(*), min(time_ns), max(time_ns), count(DISTINCT user), count(DISTINCT client_address)"
            " FROM events GROUP BY name ORDER BY count(*) DESC, name LIMIT ?"
        )
        keys = ("name", "count", "first_ns", "last_ns", "users", "client_addresses")
        rows = self._conn().execute(sql, (-1 if limit is None else limit,))
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # -- block actions -----------------------------------------------------------------------------

    def add_action(
        self,
        action: Literal["block_user", "block_ip"],
        *,
        user: Mapping[str, str | int] | None = None,
        ip: str | None = None,
        duration: float | None = None,
    ) -> str:
        """Add a block for agents to fetch (``actions_document``); returns its id. ``duration``: seconds, or never."""
        user_json, network = _target(action, user, ip)
        check_duration(duration)
        action_id = uuid.uuid4().hex
        now = self._clock()
        expires_at = None if duration is None else now + duration
        with self._write() as conn:
            conn.execute("DELETE FROM actions WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO actions (id, action, user, ip, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (action_id, action, user_json, network, expires_at, now),
            )
            check_document(self._unexpired(conn, now))
        return action_id

    def remove_action(self, action_id: str) -> bool:
        if not isinstance(action_id, str) or len(action_id) > MAX_FILTER_LENGTH:
            return False
        with self._write() as conn:
            return conn.execute("DELETE FROM actions WHERE id = ?", (action_id,)).rowcount > 0

    def remove_matching(
        self,
        action: Literal["block_user", "block_ip"],
        *,
        user: Mapping[str, str | int] | None = None,
        ip: str | None = None,
    ) -> int:
        """Remove the actions blocking exactly these identifiers (or this network); returns how many."""
        user_json, network = _target(action, user, ip)
        with self._write() as conn:
            if user_json is not None:
                sql = "DELETE FROM actions WHERE action = 'block_user' AND user = ?"
                return conn.execute(sql, (user_json,)).rowcount
            return conn.execute("DELETE FROM actions WHERE action = 'block_ip' AND ip = ?", (network,)).rowcount

    def actions(self) -> list[dict[str, Any]]:
        """Unexpired actions, oldest first: ``id``, ``action``, ``user`` or ``ip``, ``expires_at``, ``created_at``."""
        with self._read() as conn:
            return self._unexpired(conn, self._clock())

    def actions_document(self) -> dict[str, Any]:
        """The unexpired actions as the agents' actions document (``sqreen_otel.actions``, version 1)."""
        return _document(self.actions())

    @staticmethod
    def _unexpired(conn: sqlite3.Connection, now: float) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, action, user, ip, expires_at, created_at FROM actions"
            " WHERE expires_at IS NULL OR expires_at > ? ORDER BY created_at, rowid"
        )
        return [action_entry(row) for row in conn.execute(sql, (now,))]


# -- rows and checks that do not depend on the database (store_pg.PgStore uses them too) ------------

UID_COLUMN = 12  # in the rows of rows_of(): the event's log.record.uid, or None


def rows_of(
    events: Iterable[dict[str, Any]], received: int
) -> tuple[list[tuple[Any, ...]], list[tuple[int, str, str]]]:
    """The ``events`` columns of decoded events (``time_ns`` to ``time_exact``, no id) and their users' identifiers.

    Identifiers come as ``(row index, key, value)``; ``received``: nanoseconds, the time for events without one.
    """
    rows: list[tuple[Any, ...]] = []
    users: list[tuple[int, str, str]] = []
    last_resource: Any = None
    resource_json = "{}"
    scopes: dict[int, Any] = {}
    text, attributes_json = _text, _FAST[id(_ENCODER)]
    for event in events:
        get = event.get
        attributes = get("attributes") or {}
        user: dict[str, Any] = {}
        for key in attributes:
            if (
                type(key) is str
                and key.startswith(USER_PREFIX)
                and not key.startswith(TRAITS_PREFIX)
                and len(user) < MAX_IDENTIFIERS
            ):
                user[text(key[12:]) or ""] = attributes[key]  # capped keys stay distinct: they are dict keys
        if user:
            index = len(rows)
            for key, value in user.items():
                users.append((index, key, text(value) or ""))
        resource = get("resource") or {}
        if resource is not last_resource and resource != last_resource:  # one resource per batch, usually
            resource_json = _json(resource)
        last_resource = resource
        uid = attributes.get(UID_ATTRIBUTE)
        time_ns = _ns(get("time_unix_nano")) or _ns(get("observed_time_unix_nano")) or received
        try:
            stored_attributes = attributes_json(attributes)
        except (ValueError, TypeError, RecursionError):
            stored_attributes = _json(attributes)
        rows.append(
            (
                time_ns if time_ns <= INT64_MAX else INT64_MAX,
                received,
                text(get("name") or attributes.get("event.name")) or "",
                _json(user, _CANONICAL) if user else None,
                text(attributes.get("client.address")),
                text(attributes.get("url.path")),
                text(attributes.get("http.request.method")),
                text(get("trace_id")),
                text(get("span_id")),
                stored_attributes,
                resource_json,
                text(get("scope")),
                text(uid) if isinstance(uid, str) and uid else None,
                str(time_ns) if time_ns > INT64_MAX else None,
                _record(event, scopes),
            )
        )
    return rows, users


def _record(event: dict[str, Any], scopes: dict[int, Any]) -> str | None:
    """The record's other fields as JSON, those that were set; capped where the sender could repeat a lot."""
    record: dict[str, Any] = {}
    get = event.get
    for key in ("observed_time_unix_nano", "severity_number"):
        number = _ns(get(key))
        if number:
            record[key] = number
    value: Any
    for key in ("severity_text", "body", "scope_version"):  # RECORD_FIELDS' order, as stored before
        value = get(key)
        if value not in _UNSET:
            if key == "body":
                record[key] = value
                continue
            text = _text(value)
            if text:
                record[key] = text[:MAX_RECORD_TEXT]
    value = get("scope_attributes")
    if value not in _UNSET:
        value = _scope_attributes(value, scopes)
        if value not in _UNSET:
            record["scope_attributes"] = value
    return _json(record) if record else None


_UNSET: tuple[Any, ...] = (None, "", 0, {})  # a record field that was not set: not stored


def _scope_attributes(value: Any, scopes: dict[int, Any]) -> Any:
    """One scope's attributes, the same object for each of its records: measured once per scope."""
    known = scopes.get(id(value))
    if known is None or known[0] is not value:
        size = len(_json(value)) if isinstance(value, dict) else 0
        capped = value if 0 < size <= MAX_SCOPE_ATTRIBUTES_BYTES else {CUT_SCOPE_ATTRIBUTES: size} if size else None
        known = scopes[id(value)] = (value, capped)
    return known[1]


def only_new(
    rows: list[tuple[Any, ...]], users: list[tuple[int, str, str]], known: set[str]
) -> tuple[list[tuple[Any, ...]], list[tuple[int, str, str]]]:
    """The rows to insert: the first of each uid not in ``known`` (and every row without one), renumbered."""
    uids = [row[UID_COLUMN] for row in rows]
    given = [uid for uid in uids if uid is not None]
    if not known and len(set(given)) == len(given):
        return rows, users
    keep, seen = [], set(known)
    for index, uid in enumerate(uids):
        if uid is None:
            keep.append(index)
        elif uid not in seen:
            seen.add(uid)
            keep.append(index)
    renumber = {old: new for new, old in enumerate(keep)}  # the others numbered without gaps
    return [rows[i] for i in keep], [(renumber[i], key, value) for i, key, value in users if i in renumber]


def check_duration(duration: Any) -> None:
    """A block's duration: a number of seconds > 0, or None for never."""
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise TypeError(f"duration must be a number of seconds, not {type(duration).__name__}")
        if not (duration > 0 and math.isfinite(duration)):
            raise ValueError(f"duration must be > 0 seconds, got {duration!r}")


def check_document(entries: list[dict[str, Any]]) -> None:
    """Agents reject a whole document over their limits: refuse the action that would cross them."""
    if len(entries) > MAX_ACTIONS:
        raise ValueError(f"too many block actions (at most {MAX_ACTIONS})")
    if len(json.dumps(_document(entries))) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"the actions document would exceed {MAX_DOCUMENT_BYTES} bytes")


def action_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    """An ``actions`` row ``(id, action, user, ip, expires_at, created_at)`` as ``actions()`` lists it."""
    action_id, action, user, ip, expires_at, created_at = row
    entry: dict[str, Any] = {"id": action_id, "action": action}
    if action == "block_user":
        entry["user"] = json.loads(user)
    else:
        entry["ip"] = ip
    entry["expires_at"] = expires_at
    entry["created_at"] = created_at
    return entry


# -- SQL pieces (constant text only) ---------------------------------------------------------------


def _where(filters: Filters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if filters.name is not None:
        where.append("name = ?")
        params.append(filters.name)
    if filters.ip is not None:
        where.append("client_address = ?")
        params.append(filters.ip)
    if filters.user is not None:
        where.append("id IN (SELECT event_id FROM event_users WHERE value = ?)")
        params.append(filters.user)
    if filters.since_ns is not None:
        where.append("time_ns >= ?")
        params.append(_sql_ns(filters.since_ns))
    if filters.until_ns is not None:
        where.append("time_ns < ?")
        params.append(filters.until_ns if filters.until_ns <= INT64_MAX else INT64_MAX + 1.0)
    if filters.prop is not None:
        key, value = filters.prop
        path = f'$."{PROPERTIES_PREFIX}{key}"'  # a parameter, and the key was checked: no quote can end it
        where.append(_PROP_MATCH)
        params += [path, path, path, value]
    if filters.path is not None:
        where.append("path = ?")
        params.append(filters.path)
    if filters.user_agent is not None:
        where.append(f"{_USER_AGENT} = ?")
        params.append(filters.user_agent)
    if filters.service is not None:
        where.append(f"{_SERVICE} = ?")
        params.append(filters.service)
    return where, params


def top_values_of(
    conn: Any, newest: str, params: list[Any], user_agent: str, mark: str
) -> dict[str, list[tuple[str, int]]]:
    """``top_values`` on a connection of either database (``params``: ``newest``'s, then sample and limit)."""
    return {
        name: [(str(value), int(n)) for value, n in conn.execute(sql, params)]
        for name, sql in _top_queries(newest, user_agent, mark).items()
    }


def _top_queries(newest: str, user_agent: str, mark: str) -> dict[str, str]:
    """The SQL of each ``top_values`` field over the ids that ``newest`` selects; SQLite and PostgreSQL differ
    only in the placeholder ``mark`` and the ``user_agent`` expression."""
    queries = {
        "user": f"SELECT value, count(DISTINCT event_id) AS n FROM event_users WHERE event_id IN ({newest})"
        f" GROUP BY value ORDER BY n DESC, value LIMIT {mark}"
    }
    for name, column in (("ip", "client_address"), ("path", "path"), ("user_agent", user_agent)):
        queries[name] = (
            f"SELECT v, count(*) AS n FROM (SELECT {column} AS v FROM events WHERE id IN ({newest})) AS picked"
            f" WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {mark}"
        )
    return {name: queries[name] for name in TOP_FIELDS}


def _clause(where: list[str]) -> str:
    return " WHERE " + " AND ".join(where) if where else ""


def _limit(limit: int) -> int:
    if type(limit) is not int or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {_short(limit)}")
    return min(limit, MAX_PAGE)


def _id(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise ValueError(f"an event id must be an integer from 0 to 2**63-1, got {_short(value)}")
    return value


def _cursor(before: Any) -> tuple[int, int]:
    if not isinstance(before, tuple) or len(before) != 2:
        raise ValueError("before must be the (time_ns, id) of the last event of the previous page")
    time_ns, event_id = before
    if type(time_ns) is not int or not 0 <= time_ns <= UINT64_MAX:
        raise ValueError(f"before: time must be an integer from 0 to 2**64-1, got {_short(time_ns)}")
    return _sql_ns(time_ns), _id(event_id)


def _target(action: str, user: Mapping[str, str | int] | None, ip: str | None) -> tuple[str | None, str | None]:
    """Checked (canonical user JSON, normalised network) of an action: exactly one of them."""
    if action == "block_user":
        if ip is not None or user is None:
            raise ValueError("block_user takes user identifiers and no ip")
        return _CANONICAL.encode(check_identifiers(user)), None
    if action == "block_ip":
        if user is not None or ip is None:
            raise ValueError("block_ip takes an ip and no user identifiers")
        network = check_network(ip)
        single = network.prefixlen == network.max_prefixlen
        return None, str(network.network_address) if single else str(network)
    raise ValueError(f"action must be 'block_user' or 'block_ip', got {_short(action)}")


def _document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    actions = []
    for entry in entries:
        item: dict[str, Any] = {key: entry[key] for key in ("id", "action", "user", "ip") if key in entry}
        item["expires_at"] = _iso(entry["expires_at"])
        actions.append(item)
    return {"version": 1, "actions": actions}
