"""Events and block actions in PostgreSQL, for several ``sqreen-otel serve`` replicas on one database.

The same methods and results as ``store.Store`` (SQLite): the same columns, filters, pages, histogram,
retention and block list, so the app does not know which one it has. What differs is what a shared
database needs:

- Event ids come from a one-row counter, taken with ``FOR UPDATE`` at the start of each insert: the
  inserts of all replicas are serialised, so ids are given in commit order without gaps. A ``tail``
  that saw id N never misses a later event, and retention by rows can cut at ``max(id) - max_rows``
  as in SQLite. The uniqueness of ``log.record.uid`` is checked under that lock too (and enforced by a
  unique index), so a batch that two replicas receive is stored once.
- Block actions are written under a transaction-level advisory lock, so the document's limits hold
  across replicas; every replica reads the same table, so a block made on one is served by all.
- The schema is a list of versioned migrations in ``schema_migrations``, applied at start under an
  advisory lock: replicas starting together migrate once.
- Playbook alerts, decisions and the live cursor (migration 3) are written by ``alerts.Records``;
  one replica evaluates, chosen by ``leader.Leadership`` (a session advisory lock).

Threads: a connection per thread (psycopg 3, autocommit, explicit transactions). Every statement is a
constant string with ``%s`` parameters. Attribute JSON is kept as text, as in SQLite; property filters
read it as ``json``.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import psycopg

from .store import (
    INT64_MAX,
    MAX_BUCKETS,
    MAX_FILTER_LENGTH,
    PROPERTIES_PREFIX,
    PRUNE_EVERY_ROWS,
    PRUNE_EVERY_SECONDS,
    TOP_SAMPLE,
    UID_COLUMN,
    Clock,
    Event,
    Filters,
    Page,
    _cursor,
    _document,
    _event,
    _id,
    _json,
    _limit,
    _short,
    _sql_ns,
    _target,
    action_entry,
    check_document,
    check_duration,
    only_new,
    rows_of,
    top_values_of,
)

NO_FILTER = Filters()
ATTRIBUTES_COLUMN = 9  # in the rows of store.rows_of()
_ACTIONS_LOCK = 0x5351_0001  # pg_advisory_xact_lock keys of this schema's users
_MIGRATIONS_LOCK = 0x5351_0002

# Versioned migrations: a database at version N has had the first N applied. APPEND only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the tables of store.Store's schema 2, in PostgreSQL's types
        """CREATE TABLE events (
            id BIGINT PRIMARY KEY,
            time_ns BIGINT NOT NULL,
            received_ns BIGINT NOT NULL,
            name TEXT NOT NULL,
            "user" TEXT,
            client_address TEXT,
            path TEXT,
            method TEXT,
            trace_id TEXT,
            span_id TEXT,
            attributes TEXT NOT NULL,
            resource TEXT NOT NULL,
            scope TEXT,
            uid TEXT,
            time_exact TEXT,
            query_attributes TEXT
        )""",
        "CREATE INDEX events_time ON events (time_ns, id)",
        "CREATE INDEX events_name_time ON events (name, time_ns, id)",
        "CREATE INDEX events_address_time ON events (client_address, time_ns, id)",
        "CREATE INDEX events_received ON events (received_ns)",
        "CREATE UNIQUE INDEX events_uid ON events (uid)",  # NULLs are distinct: events without a uid always go in
        """CREATE TABLE event_users (
            event_id BIGINT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (event_id, key)
        )""",
        "CREATE INDEX event_users_value ON event_users (value, event_id)",
        "CREATE TABLE event_ids (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), last_id BIGINT NOT NULL)",
        "INSERT INTO event_ids (last_id) VALUES (0)",
        """CREATE TABLE actions (
            n BIGSERIAL,
            id TEXT PRIMARY KEY,
            action TEXT NOT NULL,
            "user" TEXT,
            ip TEXT,
            expires_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE TABLE write_probe (at DOUBLE PRECISION)",
    ),
    (  # 2: the rest of each OTLP record (store.RECORD_FIELDS) as JSON text; NULL in rows stored before
        "ALTER TABLE events ADD COLUMN record TEXT",
    ),
    (  # 3: playbooks (explorer/alerts.py), as store.Store's migration 3: alerts, decisions, the live cursor
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            playbook_id TEXT NOT NULL,
            group_key TEXT NOT NULL,
            first_ns BIGINT NOT NULL,
            last_ns BIGINT NOT NULL,
            open_until_ns BIGINT NOT NULL,
            count INTEGER NOT NULL,
            event_ids TEXT NOT NULL,
            protected TEXT NOT NULL,
            simulated INTEGER NOT NULL,
            severity TEXT NOT NULL,
            closed_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX alerts_last ON alerts (last_ns)",
        "CREATE INDEX alerts_playbook_last ON alerts (playbook_id, last_ns)",
        """CREATE TABLE decisions (
            id TEXT PRIMARY KEY,
            alert_id TEXT NOT NULL,
            playbook_id TEXT NOT NULL,
            action TEXT NOT NULL,
            ip TEXT,
            "user" TEXT,
            url TEXT,
            duration DOUBLE PRECISION NOT NULL,
            start DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            escalation INTEGER NOT NULL,
            simulated INTEGER NOT NULL,
            lifted_at DOUBLE PRECISION,
            hits INTEGER NOT NULL DEFAULT 0,
            last_hit_ns BIGINT,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX decisions_alert ON decisions (alert_id)",
        "CREATE INDEX decisions_expiry ON decisions (expires_at)",
        "CREATE TABLE playbook_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), last_event_id BIGINT)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    'id, time_ns, received_ns, name, "user", client_address, path, method, trace_id, span_id, attributes,'
    " resource, scope, time_exact, length(attributes) + length(resource) + coalesce(length(record), 0), record"
)
_COPY_EVENTS = (
    'COPY events (id, time_ns, received_ns, name, "user", client_address, path, method, trace_id, span_id,'
    " attributes, resource, scope, uid, time_exact, record, query_attributes) FROM STDIN"
)
_COPY_USERS = "COPY event_users (event_id, key, value) FROM STDIN"
# A property compared as text: strings as they are, numbers and booleans as JSON writes them, null as 'null'.
# query_attributes: the attributes without lone surrogates, which PostgreSQL's json refuses (only when they differ).
_USER_AGENT = "(COALESCE(query_attributes, attributes)::json ->> 'user_agent.original')"
_SURROGATE_IN_JSON = r"\\u[dD][89a-fA-F]"  # a PostgreSQL regular expression: a \uD800-\uDFFF escape
_PROP_MATCH = (
    "COALESCE(COALESCE(query_attributes, attributes)::json ->> %s,"
    " CASE WHEN json_typeof(COALESCE(query_attributes, attributes)::json -> %s) = 'null' THEN 'null' END) = %s"
)
_SURROGATE_ESCAPE = re.compile(r"\\ud[89a-f][0-9a-f]{2}", re.IGNORECASE)


class PgStore:
    """Events and block actions in PostgreSQL; safe for threads and for several processes on one database.

    ``url``: a libpq URL (``postgresql://user@host:5432/dbname``). ``max_age``, ``max_rows`` and
    ``clock`` as for ``store.Store``.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age: float | None = None,
        max_rows: int | None = None,
        clock: Clock = time.time,
    ) -> None:
        if max_age is not None and not (isinstance(max_age, (int, float)) and max_age > 0 and math.isfinite(max_age)):
            raise ValueError(f"max_age must be a number of seconds > 0, got {_short(max_age)}")
        if max_rows is not None and (type(max_rows) is not int or max_rows < 1):
            raise ValueError(f"max_rows must be an integer >= 1, got {_short(max_rows)}")
        self.url = url
        self.path = _shown(url)
        self.max_age = max_age
        self.max_rows = max_rows
        self._clock = clock
        self._local = threading.local()
        self._closed = False
        self._since_prune = 0
        self._last_prune = clock()
        self._migrate()

    # -- connections -------------------------------------------------------------------------------

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if self._closed:
            if conn is not None:
                self._local.conn = None
                conn.close()
            raise RuntimeError("the store is closed")
        if conn is None or conn.closed:
            conn = psycopg.connect(self.url, autocommit=True, application_name="sqreen-otel serve")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, *, snapshot: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """One transaction; ``snapshot``: every query in it sees the same data (REPEATABLE READ)."""
        conn = self._conn()
        with conn.transaction():
            if snapshot:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATIONS_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
            )
            row = conn.execute("SELECT COALESCE(max(version), 0) FROM schema_migrations").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema version {version} is newer than this code's {SCHEMA_VERSION}")
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                for step in migration:
                    conn.execute(step)  # our constant DDL text: no parameters
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (number, time.time()))

    def check_writable(self) -> None:
        """Raise ``psycopg.Error`` unless a write can be committed now (database down, read-only, full...)."""
        with self._tx() as conn:
            conn.execute("INSERT INTO write_probe (at) VALUES (%s)", (self._clock(),))
            conn.execute("DELETE FROM write_probe")

    def close(self) -> None:
        """Close this thread's connection; other threads' close when they next use the store."""
        self._closed = True
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing events ----------------------------------------------------------------------------

    def add(self, events: Iterable[dict[str, Any]]) -> int:
        """Store decoded events in one transaction; returns how many were new (known ``log.record.uid``: skipped)."""
        rows, users = rows_of(events, int(self._clock() * 1e9))
        if not rows:
            return 0
        with self._tx() as conn:
            # The counter row is the replicas' insert lock: ids in commit order, uids checked against committed rows.
            last = _one(conn.execute("SELECT last_id FROM event_ids FOR UPDATE").fetchone())
            uids = [row[UID_COLUMN] for row in rows if row[UID_COLUMN] is not None]
            known = {row[0] for row in conn.execute("SELECT uid FROM events WHERE uid = ANY(%s)", (uids,))}
            rows, users = only_new(rows, users, known if uids else set())
            if not rows:
                return 0
            start = last + 1
            with conn.cursor() as cur:
                with cur.copy(_COPY_EVENTS) as copy:
                    for i, row in enumerate(rows):
                        copy.write_row((start + i, *row, _queryable(row[ATTRIBUTES_COLUMN])))
                if users:
                    with cur.copy(_COPY_USERS) as copy:
                        for i, key, value in users:
                            copy.write_row((start + i, key, value))
            conn.execute("UPDATE event_ids SET last_id = %s", (start + len(rows) - 1,))
            self._since_prune += len(rows)
        self._maybe_prune()
        return len(rows)

    # -- retention ---------------------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        if self.max_age is None and self.max_rows is None:
            return
        if self._since_prune >= PRUNE_EVERY_ROWS or self._clock() - self._last_prune >= PRUNE_EVERY_SECONDS:
            self.prune()

    def prune(self) -> int:
        """Delete events received over ``max_age`` seconds ago and beyond the newest ``max_rows``; returns how many.

        Expired block actions go too. Any replica may prune: it holds the insert lock meanwhile.
        """
        deleted = 0
        now = self._clock()
        with self._tx() as conn:
            self._since_prune = 0
            self._last_prune = now
            newest = _one(conn.execute("SELECT last_id FROM event_ids FOR UPDATE").fetchone())
            if self.max_age is not None:
                cutoff = max(0, min(INT64_MAX, int((now - self.max_age) * 1e9)))
                conn.execute(
                    "DELETE FROM event_users WHERE event_id IN (SELECT id FROM events WHERE received_ns < %s)",
                    (cutoff,),
                )
                deleted += conn.execute("DELETE FROM events WHERE received_ns < %s", (cutoff,)).rowcount
            if self.max_rows is not None and newest > self.max_rows:
                cut = newest - self.max_rows  # ids have no gaps: the newest max_rows are above this
                conn.execute("DELETE FROM event_users WHERE event_id <= %s", (cut,))
                deleted += conn.execute("DELETE FROM events WHERE id <= %s", (cut,)).rowcount
            conn.execute("DELETE FROM actions WHERE expires_at IS NOT NULL AND expires_at <= %s", (now,))
        return deleted

    # -- reading events ----------------------------------------------------------------------------

    def events(
        self,
        filters: Filters = NO_FILTER,
        *,
        before: tuple[int, int] | None = None,
        limit: int = 50,
        max_bytes: int | None = None,
    ) -> Page:
        """A page of events, newest first by (time, id); the last row's ``(time_ns, id)`` as ``before``: the next."""
        where, params = _where(filters)
        if before is not None:
            before_time, before_id = _cursor(before)
            where.append("(time_ns, id) < (%s, %s)")
            params += [before_time, before_id]
        params.append(_limit(limit))
        sql = f"SELECT {_COLUMNS} FROM events{_clause(where)} ORDER BY time_ns DESC, id DESC LIMIT %s"
        return self._page(sql, params, params[-1], max_bytes)

    def after(
        self, last_id: int, filters: Filters = NO_FILTER, limit: int = 100, *, max_bytes: int | None = None
    ) -> Page:
        """Events stored after the one with id ``last_id``, oldest first: what ``tail`` shows next."""
        where, params = _where(filters)
        where.append("id > %s")
        params += [_id(last_id), _limit(limit)]
        sql = f"SELECT {_COLUMNS} FROM events{_clause(where)} ORDER BY id LIMIT %s"
        return self._page(sql, params, params[-1], max_bytes)

    def _page(self, sql: str, params: list[Any], limit: int, max_bytes: int | None) -> Page:
        page, size = Page(), 0
        with self._conn().cursor() as cur:
            for row in cur.execute(sql, params):
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
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM events WHERE id = %s", (event_id,)).fetchone()
        return None if row is None else _event(row)

    def count(self, filters: Filters = NO_FILTER) -> int:
        where, params = _where(filters)
        row = self._conn().execute(f"SELECT count(*) FROM events{_clause(where)}", params).fetchone()
        return int(row[0]) if row else 0

    def histogram(self, filters: Filters = NO_FILTER, *, buckets: int = 60) -> tuple[int, int, list[int]]:
        """``(start_ns, bucket_width_ns, counts)`` as ``store.Store.histogram``: the counts add up to ``count``."""
        if type(buckets) is not int or not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be an integer from 1 to {MAX_BUCKETS}, got {_short(buckets)}")
        where, params = _where(filters)
        with self._tx(snapshot=True) as conn:
            start, end = filters.since_ns, filters.until_ns  # end exclusive
            if start is None or end is None:
                sql = (
                    f"SELECT (SELECT min(time_ns) FROM events{_clause(where)}),"
                    f" (SELECT max(time_ns) FROM events{_clause(where)})"
                )
                low, high = conn.execute(sql, params + params).fetchone() or (None, None)
                if low is None or high is None:
                    return (start or 0, 1, [0] * buckets)
                start = low if start is None else start
                end = high + 1 if end is None else end
            start, end = _sql_ns(start), min(end, INT64_MAX + 1)  # times past 2262 count as 2**63-1
            if end <= start:
                return (start, 1, [0] * buckets)
            width = min(-(-(end - start) // buckets), INT64_MAX)
            counts = [0] * buckets
            sql = (
                f"SELECT (time_ns - %s) / %s AS bucket, count(*) FROM events"
                f"{_clause([*where, 'time_ns >= %s', 'time_ns <= %s'])} GROUP BY bucket"
            )
            for bucket, n in conn.execute(sql, [start, width, *params, start, end - 1]):
                counts[min(int(bucket), buckets - 1)] += n
        return (start, width, counts)

    def top_values(
        self, filters: Filters = NO_FILTER, *, limit: int = 10, sample: int = TOP_SAMPLE
    ) -> dict[str, list[tuple[str, int]]]:
        """As ``store.Store.top_values``."""
        where, params = _where(filters)
        newest = f"SELECT id FROM events{_clause(where)} ORDER BY time_ns DESC, id DESC LIMIT %s"
        with self._tx(snapshot=True) as conn:
            return top_values_of(conn, newest, [*params, sample, limit], _USER_AGENT, "%s")

    def summary(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Per event name: how many, first and last time, distinct users and client addresses; most frequent first."""
        sql = (
            'SELECT name, count(*), min(time_ns), max(time_ns), count(DISTINCT "user"), count(DISTINCT client_address)'
            " FROM events GROUP BY name ORDER BY count(*) DESC, name LIMIT %s"
        )
        keys = ("name", "count", "first_ns", "last_ns", "users", "client_addresses")
        return [dict(zip(keys, row, strict=True)) for row in self._conn().execute(sql, (limit,))]

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
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ACTIONS_LOCK,))
            conn.execute("DELETE FROM actions WHERE expires_at IS NOT NULL AND expires_at <= %s", (now,))
            conn.execute(
                'INSERT INTO actions (id, action, "user", ip, expires_at, created_at) VALUES (%s, %s, %s, %s, %s, %s)',
                (action_id, action, user_json, network, expires_at, now),
            )
            check_document(_unexpired(conn, now))
        return action_id

    def remove_action(self, action_id: str) -> bool:
        if not isinstance(action_id, str) or len(action_id) > MAX_FILTER_LENGTH:
            return False
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ACTIONS_LOCK,))
            return conn.execute("DELETE FROM actions WHERE id = %s", (action_id,)).rowcount > 0

    def remove_matching(
        self,
        action: Literal["block_user", "block_ip"],
        *,
        user: Mapping[str, str | int] | None = None,
        ip: str | None = None,
    ) -> int:
        """Remove the actions blocking exactly these identifiers (or this network); returns how many."""
        user_json, network = _target(action, user, ip)
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ACTIONS_LOCK,))
            if user_json is not None:
                sql = "DELETE FROM actions WHERE action = 'block_user' AND \"user\" = %s"
                return conn.execute(sql, (user_json,)).rowcount
            return conn.execute("DELETE FROM actions WHERE action = 'block_ip' AND ip = %s", (network,)).rowcount

    def actions(self) -> list[dict[str, Any]]:
        """Unexpired actions, oldest first: ``id``, ``action``, ``user`` or ``ip``, ``expires_at``, ``created_at``."""
        with self._tx(snapshot=True) as conn:
            return _unexpired(conn, self._clock())

    def actions_document(self) -> dict[str, Any]:
        """The unexpired actions as the agents' actions document (``sqreen_otel.actions``, version 1)."""
        return _document(self.actions())


# -- rows and SQL pieces (constant text only) ------------------------------------------------------


def _queryable(attributes_json: str) -> str | None:
    """The attributes' JSON as PostgreSQL's json reads it (lone surrogates as U+FFFD), or None when it already does."""
    if not _SURROGATE_ESCAPE.search(attributes_json):  # surrogates only ever appear escaped: the text is ASCII
        return None
    fixed = _json(_replace_surrogates(json.loads(attributes_json)))
    return fixed if fixed != attributes_json else None


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


def _one(row: tuple[Any, ...] | None) -> int:
    if row is None:
        raise RuntimeError("the event_ids counter row is missing")
    return int(row[0])


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _unexpired(conn: psycopg.Connection[Any], now: float) -> list[dict[str, Any]]:
    sql = (
        'SELECT id, action, "user", ip, expires_at, created_at FROM actions'
        " WHERE expires_at IS NULL OR expires_at > %s ORDER BY created_at, n"
    )
    return [action_entry(row) for row in conn.execute(sql, (now,))]


def _where(filters: Filters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if filters.name is not None:
        where.append("name = %s")
        params.append(filters.name)
    if filters.ip is not None:
        where.append("client_address = %s")
        params.append(filters.ip)
    if filters.user is not None:
        where.append("id IN (SELECT event_id FROM event_users WHERE value = %s)")
        params.append(filters.user)
    if filters.since_ns is not None:
        where.append("time_ns >= %s")
        params.append(_sql_ns(filters.since_ns))
    if filters.until_ns is not None:
        where.append("time_ns < %s")
        params.append(filters.until_ns)  # past 2**63-1 psycopg sends a numeric: every row is below it
    if filters.prop is not None:
        key, value = filters.prop
        where.append(_PROP_MATCH)
        params += [PROPERTIES_PREFIX + key, PROPERTIES_PREFIX + key, value]
    if filters.path is not None:
        where.append("path = %s")
        params.append(filters.path)
    if filters.user_agent is not None:
        where.append(f"{_USER_AGENT} = %s")
        params.append(filters.user_agent)
    if filters.service is not None:
        # PostgreSQL's json refuses lone surrogates (escaped in our ASCII JSON): such a resource matches no service
        # rather than failing the query for everyone.
        where.append("(CASE WHEN resource ~ %s THEN NULL ELSE resource::json ->> 'service.name' END) = %s")
        params += [_SURROGATE_IN_JSON, filters.service]
    return where, params


def _clause(where: list[str]) -> str:
    return " WHERE " + " AND ".join(where) if where else ""
