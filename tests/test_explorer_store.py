"""Event Explorer storage: events and block actions in SQLite, from real SDK records to pages, counts and documents."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import sqreen_otel
from sqreen_otel import context, runtime
from sqreen_otel.actions import parse_actions
from sqreen_otel.explorer import otlp
from sqreen_otel.explorer.store import MAX_PAGE, MIGRATIONS, SCHEMA_VERSION, Event, Filters, Store
from sqreen_otel.request import from_wsgi

T0 = 1_800_000_000.0  # the fake clock's start, epoch seconds
NS = 10**9
BASE_NS = 1_700_000_000 * NS
INJECTIONS = ["x' OR 1=1 --", '"; DROP TABLE events; --', "') OR ('1'='1", "%", "_", "*", "\\", "\0"]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store(tmp_path / "events.db", clock=clock) as s:
        yield s


def event(
    name: str = "evt",
    time_ns: int = BASE_NS,
    *,
    user: dict[str, Any] | None = None,
    ip: str | None = None,
    props: dict[str, Any] | None = None,
    observed_ns: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event dict as otlp.decode makes them."""
    attrs: dict[str, Any] = {f"sqreen.properties.{k}": v for k, v in (props or {}).items()}
    attrs.update({f"sqreen.user.{k}": v for k, v in (user or {}).items()})
    if ip is not None:
        attrs["client.address"] = ip
    attrs.update(extra or {})
    return {
        "name": name,
        "time_unix_nano": time_ns,
        "observed_time_unix_nano": observed_ns,
        "severity_number": 9,
        "severity_text": "INFO",
        "trace_id": "",
        "span_id": "",
        "attributes": attrs,
        "body": None,
        "resource": {"service.name": "shop"},
        "scope": "sqreen_otel",
    }


def raw(store: Store, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Look behind the API, with a connection of our own."""
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        return conn.execute(sql, params).fetchall()


# -- from real SDK records -------------------------------------------------------------------------


def test_round_trip_from_sdk_records(store: Store) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    previous = runtime.current
    runtime.install(runtime.Runtime(logger=provider.get_logger(runtime.LOGGER_NAME), configured=True))
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
    past = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    try:
        with TracerProvider().get_tracer("t").start_as_current_span("POST /login") as span:
            sqreen_otel.identify({"email": "alice@example.com", "id": 7}, traits={"plan": "pro"})
            props = {"email_domain": "example.com", "attempt": 3, "remember": True}
            sqreen_otel.track("password_reset", {"properties": props, "request": from_wsgi(environ)})
        context.set_user(None)
        sqreen_otel.auth_track(False, email="mallory@example.com")
        sqreen_otel.track("imported", {"timestamp": past})
    finally:
        context.set_user(None)
        runtime.install(previous)
        provider.shutdown()
    records = exporter.get_finished_logs()
    body = encode_logs(records).SerializeToString()
    decoded = otlp.decode(otlp.inflate(body, None, len(body)), "application/x-protobuf")
    assert store.add(decoded) == 3

    page = store.events()
    assert [e.name for e in page] == ["sq.sdk.users.login", "password_reset", "imported"]
    login, reset, imported = page
    ctx = span.get_span_context()
    assert reset == Event(
        id=1,
        time_ns=decoded[0]["time_unix_nano"],
        received_ns=int(T0 * NS),
        name="password_reset",
        user={"email": "alice@example.com", "id": 7},
        client_address="203.0.113.9",
        path="/login",
        method="POST",
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        attributes=decoded[0]["attributes"],
        resource=decoded[0]["resource"],
        scope="sqreen_otel",
        record={"observed_time_unix_nano": decoded[0]["observed_time_unix_nano"], "severity_number": 9,
                "severity_text": "INFO"},  # the whole record is kept
    )  # fmt: skip
    assert reset.attributes["sqreen.user.traits.plan"] == "pro"
    assert reset.attributes["sqreen.request.params.next"] == "/home"
    assert reset.resource["service.name"] == "shop"
    assert store.get(1) == reset
    assert login.user == {"email": "mallory@example.com"}
    shown = {k: v for k, v in login.attributes.items() if k != "log.record.uid"}  # the agent's event id, if set
    assert shown == {"sqreen.properties.success": False, "sqreen.user.email": "mallory@example.com"}
    assert login.client_address is login.path is login.method is login.trace_id is login.span_id is None
    assert imported.time_ns == int(past.timestamp()) * NS
    assert imported.user == {}
    assert store.events(Filters(user="alice@example.com")) == [reset]
    assert store.events(Filters(user="7")) == [reset]  # identifier values are matched as text
    assert store.events(Filters(prop=("success", "false"))) == [login]
    assert store.events(Filters(prop=("attempt", "3"))) == [reset]


# -- mapping event dicts to rows -------------------------------------------------------------------


def test_name_and_time_fallbacks(store: Store) -> None:
    store.add(
        [
            event("", 0, observed_ns=BASE_NS + 5, extra={"event.name": "from.attribute"}),
            event("named", 0, observed_ns=0),
            event("both", BASE_NS + 1, observed_ns=BASE_NS + 9, extra={"event.name": "ignored"}),
            event("", BASE_NS + 2),
        ]
    )
    rows = {e.id: e for e in store.after(0)}
    assert (rows[1].name, rows[1].time_ns) == ("from.attribute", BASE_NS + 5)
    assert (rows[2].name, rows[2].time_ns) == ("named", int(T0 * NS))  # no time at all: received time
    assert (rows[3].name, rows[3].time_ns) == ("both", BASE_NS + 1)
    assert (rows[4].name, rows[4].time_ns) == ("", BASE_NS + 2)


def test_user_is_canonical_identifiers_without_traits(store: Store) -> None:
    store.add([event(user={"id": 7, "email": "a@x.io", "traits.plan": "pro"}), event(user={})])
    assert raw(store, "SELECT user FROM events ORDER BY id") == [('{"email":"a@x.io","id":7}',), (None,)]
    assert raw(store, "SELECT event_id, key, value FROM event_users ORDER BY key") == [
        (1, "email", "a@x.io"),
        (1, "id", "7"),
    ]
    first = store.get(1)
    assert first is not None and first.user == {"email": "a@x.io", "id": 7}


def test_odd_attribute_values_never_fail_an_insert(store: Store) -> None:
    odd = event(
        "odd",
        2**64 - 1,  # fixed64 allows it, SQLite's INTEGER does not
        user={"email": "sur\udcffrogate", "blob": b"\x00\xff"},
        ip="\udc80",
        props={
            "bytes": b"\x00\x01\xfe",
            "nan": math.nan,
            "inf": math.inf,
            "ninf": -math.inf,
            "nested": {"b": b"\xff", "list": [1.5, math.nan, b"\x01"]},
            "big": 2**70,
            "surrogate": "\ud800",
            "unicode": "héllo ✓",
        },
        extra={"url.path": "/" + "p" * 5000, "http.request.method": 42},
    )
    assert store.add([odd]) == 1
    (stored,) = store.events()
    props = {k.removeprefix("sqreen.properties."): v for k, v in stored.attributes.items() if "properties" in k}
    assert props == {
        "bytes": "0001fe",
        "nan": "nan",
        "inf": "inf",
        "ninf": "-inf",
        "nested": {"b": "ff", "list": [1.5, "nan", "01"]},
        "big": 2**70,
        "surrogate": "\ud800",
        "unicode": "héllo ✓",
    }
    assert stored.time_ns == 2**64 - 1  # kept exactly (in a text column), charted and ordered as 2**63-1
    assert store.histogram(buckets=3) == (2**63 - 1, 1, [1, 0, 0])
    assert store.histogram(Filters(since_ns=0), buckets=1) == (0, 2**63 - 1, [1])
    assert stored.user == {"email": "sur\udcffrogate", "blob": "00ff"}
    assert stored.client_address == "?"  # not UTF-8: replaced, the row still goes in
    assert stored.path == "/" + "p" * 1023  # indexed text columns are capped
    assert stored.method == "42"
    assert store.count(Filters(prop=("nan", "nan"))) == 1
    assert store.count(Filters(user="00ff")) == 1
    assert store.count(Filters(prop=("unicode", "héllo ✓"))) == 1


def test_resource_is_stored_per_event(store: Store) -> None:
    a, b = event("a"), event("b")
    b["resource"] = {"service.name": "billing"}
    c = event("c")
    store.add([a, b, c])
    shop, billing = {"service.name": "shop"}, {"service.name": "billing"}
    assert [e.resource for e in store.after(0)] == [shop, billing, shop]


def test_add_nothing(store: Store) -> None:
    assert store.add([]) == 0
    assert store.add(iter(())) == 0
    assert store.count() == 0


# -- filters ---------------------------------------------------------------------------------------


@pytest.fixture
def sample(store: Store) -> Store:
    store.add(
        [
            event("login", BASE_NS + 1, user={"email": "alice@x.io", "id": 1}, ip="10.0.0.1", props={"ok": True}),
            event("login", BASE_NS + 2, user={"email": "bob@x.io"}, ip="10.0.0.2", props={"ok": False}),
            event("reset", BASE_NS + 3, user={"email": "alice@x.io"}, ip="10.0.0.2", props={"domain": "x.io"}),
            event("reset", BASE_NS + 4, ip="10.0.0.1", props={"domain": "y.io", "n": 42}),
            event("signup", BASE_NS + 5, user={"username": "alice@x.io"}, props={"n": 4.5, "tags": ["a", "b"]}),
        ]
    )
    return store


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        (Filters(), [5, 4, 3, 2, 1]),
        (Filters(name="login"), [2, 1]),
        (Filters(name="nope"), []),
        (Filters(user="alice@x.io"), [5, 3, 1]),  # any identifier key
        (Filters(user="1"), [1]),
        (Filters(ip="10.0.0.1"), [4, 1]),
        (Filters(ip="10.0.0"), []),  # equality, not prefix
        (Filters(since_ns=BASE_NS + 2), [5, 4, 3, 2]),
        (Filters(until_ns=BASE_NS + 2), [1]),  # until is exclusive
        (Filters(since_ns=BASE_NS + 2, until_ns=BASE_NS + 4), [3, 2]),
        (Filters(prop=("ok", "true")), [1]),
        (Filters(prop=("ok", "false")), [2]),
        (Filters(prop=("domain", "x.io")), [3]),
        (Filters(prop=("n", "42")), [4]),
        (Filters(prop=("n", "4.5")), [5]),
        (Filters(prop=("tags", '["a","b"]')), [5]),
        (Filters(prop=("missing", "")), []),
        (Filters(name="reset", ip="10.0.0.2"), [3]),
        (Filters(name="reset", user="alice@x.io", ip="10.0.0.2", since_ns=BASE_NS + 3, prop=("domain", "x.io")), [3]),
        (Filters(name="login", user="alice@x.io", until_ns=BASE_NS + 1), []),
        (Filters(name="", user="", ip=""), [5, 4, 3, 2, 1]),  # empty text: no filter (query strings)
    ],
)
def test_filters(sample: Store, filters: Filters, ids: list[int]) -> None:
    assert [e.id for e in sample.events(filters)] == ids
    assert sample.count(filters) == len(ids)
    assert [e.id for e in sample.after(0, filters)] == sorted(ids)
    assert sum(sample.histogram(filters, buckets=7)[2]) == len(ids)


@pytest.mark.parametrize("value", INJECTIONS)
def test_filter_values_are_only_values(sample: Store, value: str) -> None:
    for filters in (
        Filters(name=value),
        Filters(user=value),
        Filters(ip=value),
        Filters(prop=("domain", value)),
        Filters(name=value, user=value, ip=value, prop=("n", value)),
    ):
        assert sample.events(filters) == []
        assert sample.count(filters) == 0
        assert sample.after(0, filters) == []
        assert sum(sample.histogram(filters)[2]) == 0
    assert sample.count() == 5
    assert raw(sample, "SELECT count(*) FROM event_users") == [(5,)]


@pytest.mark.parametrize("key", ["a'b", 'x" OR 1=1', "a b", "é", "$.x[0]", "", "a\0"])
def test_prop_keys_are_checked_never_spliced(key: str) -> None:
    with pytest.raises(ValueError, match="prop key") as info:
        Filters(prop=(key, "v"))
    assert repr(key)[:20] in str(info.value)


def test_filter_caps_and_types() -> None:
    long = "x" * 1025
    too_long: list[dict[str, Any]] = [{"name": long}, {"user": long}, {"ip": long}, {"prop": ("k", long)}]
    for kwargs in [*too_long, {"prop": (long, "v")}]:
        with pytest.raises(ValueError, match="1024"):
            Filters(**kwargs)
    assert Filters(name="x" * 1024).name == "x" * 1024
    bad: list[dict[str, Any]] = [{"since_ns": -1}, {"until_ns": 2**64}, {"since_ns": True}, {"since_ns": 1.5}]
    for kwargs in [*bad, {"name": 5}]:
        with pytest.raises(ValueError):
            Filters(**kwargs)
    with pytest.raises(ValueError, match="pair"):
        Filters(prop=("a",))  # type: ignore[arg-type]


# -- paging ----------------------------------------------------------------------------------------


def test_keyset_paging_with_ties_on_time(store: Store) -> None:
    # 200 events on 23 distinct times, inserted out of order: many ties that only the id breaks.
    store.add(event("tick" if i % 3 else "tock", BASE_NS + (i * 7919) % 23) for i in range(200))
    everything = [(e.time_ns, e.id) for e in store.after(0, limit=500)]
    expected = sorted(everything, reverse=True)
    for filters in (Filters(), Filters(name="tick")):
        want = [key for key in expected if filters.name is None or store.get(key[1]).name == filters.name]  # type: ignore[union-attr]
        seen: list[tuple[int, int]] = []
        before = None
        while True:
            page = store.events(filters, before=before, limit=7)
            assert len(page) <= 7
            if not page:
                break
            seen += [(e.time_ns, e.id) for e in page]
            before = (page[-1].time_ns, page[-1].id)
        assert seen == want


def test_limits(store: Store) -> None:
    store.add(event(time_ns=BASE_NS + i) for i in range(MAX_PAGE + 20))
    assert len(store.events(limit=10_000)) == MAX_PAGE
    assert len(store.after(0, limit=10_000)) == MAX_PAGE
    assert len(store.events()) == 50
    assert len(store.after(0)) == 100
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="limit"):
            store.events(limit=bad)  # type: ignore[arg-type]
    for cursor in ((1,), (1, 2, 3), (-1, 1), (1, 2**63), (2**64, 1), ("1", 2)):
        with pytest.raises(ValueError, match=r"before|id"):
            store.events(before=cursor)  # type: ignore[arg-type]


def test_after_is_for_tail(sample: Store) -> None:
    assert [e.id for e in sample.after(2)] == [3, 4, 5]
    assert [e.id for e in sample.after(2, Filters(name="reset"), limit=1)] == [3]
    assert sample.after(5) == []
    with pytest.raises(ValueError):
        sample.after(-1)


def test_get(sample: Store) -> None:
    found = sample.get(3)
    assert found is not None and found.name == "reset" and found.user == {"email": "alice@x.io"}
    for missing in (0, 99, -5, 2**70, True, "3"):
        assert sample.get(missing) is None  # type: ignore[arg-type]


# -- histogram and summary -------------------------------------------------------------------------


def test_histogram_buckets(store: Store) -> None:
    times = [0, 1, 9, 10, 11, 59, 60, 99]
    store.add(event("h", BASE_NS + t) for t in times)
    # Open range: from the first event to just past the last one.
    start, width, counts = store.histogram(buckets=10)
    assert (start, width) == (BASE_NS, 10)
    assert counts == [3, 2, 0, 0, 0, 1, 1, 0, 0, 1]
    # Closed range: exactly the filter's, events outside it not counted.
    start, width, counts = store.histogram(Filters(since_ns=BASE_NS + 10, until_ns=BASE_NS + 70), buckets=6)
    assert (start, width, counts) == (BASE_NS + 10, 10, [2, 0, 0, 0, 1, 1])
    # Half-open: since given, until from the data.
    start, width, counts = store.histogram(Filters(since_ns=BASE_NS + 50), buckets=5)
    assert (start, width, counts) == (BASE_NS + 50, 10, [1, 1, 0, 0, 1])
    assert sum(store.histogram(buckets=1)[2]) == len(times)
    assert sum(store.histogram(buckets=1000)[2]) == len(times)


def test_histogram_edges(store: Store) -> None:
    assert store.histogram(buckets=4) == (0, 1, [0, 0, 0, 0])
    store.add([event("one", BASE_NS)])
    assert store.histogram(buckets=3) == (BASE_NS, 1, [1, 0, 0])
    assert store.histogram(Filters(since_ns=BASE_NS + 5, until_ns=BASE_NS), buckets=2) == (BASE_NS + 5, 1, [0, 0])
    for bad in (0, 1001, True):
        with pytest.raises(ValueError, match="buckets"):
            store.histogram(buckets=bad)


def test_summary(store: Store) -> None:
    store.add(
        [
            event("login", BASE_NS + 5, user={"email": "a"}, ip="10.0.0.1"),
            event("login", BASE_NS + 1, user={"email": "a"}, ip="10.0.0.2"),
            event("login", BASE_NS + 9, user={"email": "b"}, ip="10.0.0.2"),
            event("login", BASE_NS + 3),
            event("reset", BASE_NS + 7, user={"email": "a", "id": 1}),
        ]
    )
    assert store.summary() == [
        {
            "name": "login",
            "count": 4,
            "first_ns": BASE_NS + 1,
            "last_ns": BASE_NS + 9,
            "users": 2,
            "client_addresses": 2,
        },
        {
            "name": "reset",
            "count": 1,
            "first_ns": BASE_NS + 7,
            "last_ns": BASE_NS + 7,
            "users": 1,
            "client_addresses": 0,
        },
    ]


# -- retention -------------------------------------------------------------------------------------


def test_retention_by_received_age(tmp_path: Path, clock: Clock) -> None:
    with Store(tmp_path / "r.db", max_age=3600, clock=clock) as store:
        ancient = BASE_NS - 365 * 86400 * NS
        store.add([event("old", ancient, user={"email": "a"}), event("old", ancient, user={"email": "b"})])
        assert store.prune() == 0  # imported past events: kept, age is by *received* time
        clock.now += 1800
        store.add([event("new", ancient, user={"email": "c"})])
        clock.now += 1801  # the first two were received 3601 s ago
        assert store.prune() == 2
        assert [e.name for e in store.events()] == ["new"]
        assert raw(store, "SELECT event_id, value FROM event_users") == [(3, "c")]
        assert store.count(Filters(user="a")) == 0


def test_retention_by_rows(tmp_path: Path, clock: Clock) -> None:
    with Store(tmp_path / "r.db", max_rows=10, clock=clock) as store:
        store.add(event(time_ns=BASE_NS - i, user={"id": i}) for i in range(25))  # newest *received* are kept
        assert store.count() == 25  # add() prunes every 10 s or 10,000 rows, not on every call
        assert store.prune() == 15
        assert [e.id for e in store.after(0)] == list(range(16, 26))
        assert raw(store, "SELECT min(event_id), count(*) FROM event_users") == [(16, 10)]
        assert store.prune() == 0


def test_add_prunes_every_10_seconds_or_10000_rows(tmp_path: Path, clock: Clock) -> None:
    with Store(tmp_path / "r.db", max_rows=5, clock=clock) as store:
        store.add(event() for _ in range(8))
        clock.now += 9.9
        store.add([event()])
        assert store.count() == 9
        clock.now += 0.1
        store.add([event()])
        assert store.count() == 5
        store.add(event() for _ in range(9_999))
        assert store.count() == 10_004
        store.add([event()])
        assert store.count() == 5


def test_ids_never_come_back_after_pruning(tmp_path: Path, clock: Clock) -> None:
    """``tail`` asks for ids after the last one it saw: a reused id would hide new events from it."""
    with Store(tmp_path / "r.db", max_age=10, clock=clock) as store:
        store.add(event() for _ in range(3))
        clock.now += 11
        assert store.prune() == 3
        store.add([event("later")])
        assert [(e.id, e.name) for e in store.after(3)] == [(4, "later")]


def test_retention_settings_are_checked(tmp_path: Path) -> None:
    for kwargs in ({"max_age": 0}, {"max_age": -1}, {"max_age": math.nan}, {"max_rows": 0}, {"max_rows": 1.5}):
        with pytest.raises(ValueError):
            Store(tmp_path / "x.db", **kwargs)


# -- the database itself ---------------------------------------------------------------------------


def test_schema_and_pragmas(store: Store) -> None:
    assert raw(store, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw(store, "PRAGMA journal_mode") == [("wal",)]
    indexes = {row[0]: row[1] for row in raw(store, "SELECT name, sql FROM sqlite_master WHERE type = 'index'")}
    assert "ON events (time_ns)" in indexes["events_time"]
    assert "ON events (name, time_ns)" in indexes["events_name_time"]
    assert "ON events (client_address, time_ns)" in indexes["events_address_time"]
    assert "ON events (received_ns)" in indexes["events_received"]
    assert "ON event_users (value, event_id)" in indexes["event_users_value"]
    plan = " ".join(
        row[3] for row in raw(store, "EXPLAIN QUERY PLAN SELECT event_id FROM event_users WHERE value = ?", "a")
    )
    assert "event_users_value" in plan


def test_reopen_keeps_data_and_refuses_newer_schemas(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with Store(path) as store:
        store.add([event("kept")])
    with Store(str(path)) as store:
        assert [e.name for e in store.events()] == ["kept"]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        Store(path)


def test_needs_a_file(tmp_path: Path) -> None:
    for path in (":memory:", "", "file::memory:?cache=shared"):
        with pytest.raises(ValueError, match="file path"):
            Store(path)


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.events()
    with pytest.raises(RuntimeError, match="closed"):
        store.add([event()])


def test_four_writer_threads(store: Store) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(n: int) -> None:
        try:
            start.wait()
            for batch in range(20):
                store.add(event(f"t{n}", BASE_NS + batch, user={"id": f"{n}-{batch}"}) for _ in range(250))
                store.events(Filters(name=f"t{n}"), limit=5)  # readers run alongside
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert store.count() == 20_000
    assert raw(store, "SELECT count(DISTINCT id), min(id), max(id) FROM events") == [(20_000, 1, 20_000)]
    assert raw(store, "SELECT count(*) FROM event_users") == [(20_000,)]
    assert [store.count(Filters(name=f"t{n}")) for n in range(4)] == [5000] * 4
    assert store.count(Filters(user="2-7")) == 250


# -- a million rows --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """1,000,000 events, three per millisecond, 20 names, 1,000 users, 250 addresses; built in SQL, then indexed."""
    path = tmp_path_factory.mktemp("million") / "m.db"
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("BEGIN")
    for index in ("events_time", "events_name_time", "events_address_time", "events_received", "event_users_value"):
        conn.execute(f"DROP INDEX {index}")  # sorted index builds beat a million random inserts
    conn.execute(
        """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
        INSERT INTO events (id, time_ns, received_ns, name, user, client_address, path, method, trace_id, span_id,
                            attributes, resource, scope)
        SELECT i, ? + (i / 3) * 1000000, ?, 'evt' || (i % 20), '{"email":"u' || (i % 1000) || '@x.io"}',
               '10.0.' || (i % 250) || '.1', '/p', 'GET', NULL, NULL,
               '{"sqreen.properties.n":' || (i % 100) || '}', '{}', 'sqreen_otel'
        FROM n""",
        (BASE_NS, BASE_NS),
    )
    conn.execute(
        "INSERT INTO event_users (event_id, key, value) SELECT id, 'email', 'u' || (id % 1000) || '@x.io' FROM events"
    )
    conn.execute("UPDATE sqlite_sequence SET seq = 1000000 WHERE name = 'events'")
    for statement in MIGRATIONS[0]:  # the indexes dropped above, built now in one sorted pass each
        conn.execute(str(statement))
    conn.execute("COMMIT")
    conn.close()
    with Store(path) as store:
        yield store


def vm_steps(store: Store, fn: Any) -> int:
    """Thousands of SQLite VM instructions ``fn`` runs on this thread's connection."""
    conn = store._conn()
    counter = [0]

    def tick() -> int:
        counter[0] += 1
        return 0  # go on

    conn.set_progress_handler(tick, 1000)
    try:
        fn()
    finally:
        conn.set_progress_handler(None, 0)
    return counter[0]


def best_ms(fn: Any) -> float:
    fn()
    return min(_timed(fn) for _ in range(3)) * 1000


def _timed(fn: Any) -> float:
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def test_page_queries_at_a_million_rows(million: Store) -> None:
    assert million.count() == 1_000_000
    first = million.events(limit=50)
    assert [e.id for e in first] == list(range(1_000_000, 999_950, -1))
    cursor = (first[-1].time_ns, first[-1].id)
    deep = (BASE_NS + 1000 * 1_000_000, 3_001)
    queries = {
        "newest page": lambda: million.events(limit=50),
        "next page": lambda: million.events(before=cursor, limit=50),
        "name page": lambda: million.events(Filters(name="evt7"), limit=50),
        "name, deep page": lambda: million.events(Filters(name="evt7"), before=deep, limit=50),
        "ip page": lambda: million.events(Filters(ip="10.0.3.1"), limit=50),
        "user page": lambda: million.events(Filters(user="u7@x.io"), limit=50),
        "tail": lambda: million.after(999_000, limit=100),
    }
    # The work, not the time (a shared machine makes times meaningless): SQLite's virtual machine steps,
    # counted in thousands. An index walk takes a few hundred thousand at most; a scan or sort of a
    # million rows, tens of millions.
    steps = {name: vm_steps(million, query) for name, query in queries.items()}
    print("1M-row pages (ms):", {name: round(best_ms(query), 2) for name, query in queries.items()})
    print("1M-row pages (thousands of VM steps):", steps)
    assert all(count < 1000 for count in steps.values()), steps
    page = million.events(Filters(name="evt7"), before=deep, limit=50)
    assert len(page) == 50 and all(e.name == "evt7" and (e.time_ns, e.id) < deep for e in page)


# -- block actions ---------------------------------------------------------------------------------


def test_actions_document_round_trip(store: Store, clock: Clock) -> None:
    user_id = store.add_action("block_user", user={"email": "mallory@example.com", "id": 7}, duration=3600)
    ip_id = store.add_action("block_ip", ip="203.0.113.7/24")
    single = store.add_action("block_ip", ip="2001:db8::1", duration=0.5)
    for action_id in (user_id, ip_id, single):
        assert uuid.UUID(hex=action_id).version == 4 and len(action_id) == 32
    document = store.actions_document()
    assert document == {
        "version": 1,
        "actions": [
            {
                "id": user_id,
                "action": "block_user",
                "user": {"email": "mallory@example.com", "id": "7"},
                "expires_at": dt.datetime.fromtimestamp(T0 + 3600, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            {"id": ip_id, "action": "block_ip", "ip": "203.0.113.0/24", "expires_at": None},
            {"id": single, "action": "block_ip", "ip": "2001:db8::1", "expires_at": "2027-01-15T08:00:00.500000Z"},
        ],
    }
    entries = parse_actions(json.dumps(document), "url")
    assert [(e.action_id, e.kind, e.user, str(e.network) if e.network else None, e.source) for e in entries] == [
        (user_id, "user", {"email": "mallory@example.com", "id": "7"}, None, "url"),
        (ip_id, "ip", None, "203.0.113.0/24", "url"),
        (single, "ip", None, "2001:db8::1/128", "url"),
    ]
    assert entries[0].expires_at == pytest.approx(T0 + 3600, abs=1e-6)
    assert entries[1].expires_at is None
    assert entries[2].expires_at == pytest.approx(T0 + 0.5, abs=1e-6)
    assert store.actions() == [
        {**document["actions"][0], "expires_at": T0 + 3600, "created_at": T0},
        {**document["actions"][1], "created_at": T0},
        {**document["actions"][2], "expires_at": T0 + 0.5, "created_at": T0},
    ]


def test_actions_expire(store: Store, clock: Clock) -> None:
    short = store.add_action("block_ip", ip="198.51.100.1", duration=10)
    forever = store.add_action("block_ip", ip="198.51.100.2")
    clock.now += 10
    assert [a["id"] for a in store.actions()] == [forever]
    assert [a["id"] for a in store.actions_document()["actions"]] == [forever]
    store.prune()
    assert raw(store, "SELECT id FROM actions") == [(forever,)]
    assert short != forever


def test_remove_actions(store: Store) -> None:
    a = store.add_action("block_user", user={"email": "m@x.io"})
    b = store.add_action("block_user", user={"email": "m@x.io", "id": 1})
    c = store.add_action("block_ip", ip="10.1.2.3/16")
    d = store.add_action("block_ip", ip="10.1.0.0/16", duration=60)
    assert store.remove_action(a) is True
    assert store.remove_action(a) is False
    assert store.remove_action("x" * 5000) is False
    assert store.remove_action(INJECTIONS[0]) is False
    assert store.remove_matching("block_user", user={"id": 1, "email": "m@x.io"}) == 1  # exactly these identifiers
    assert store.remove_matching("block_user", user={"email": "m@x.io"}) == 0
    assert store.remove_matching("block_ip", ip="10.1.99.99/16") == 2  # same network
    assert store.actions() == []
    assert {a, b, c, d} == {a, b, c, d} and len({a, b, c, d}) == 4


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"action": "block_user", "user": {}}, ValueError),
        ({"action": "block_user", "user": {"email": ""}, "ip": "1.2.3.4"}, ValueError),
        ({"action": "block_user", "user": {"email": ["x"]}}, TypeError),
        ({"action": "block_user", "user": {"k": "v" * 257}}, ValueError),
        ({"action": "block_user", "user": {f"k{i}": "v" for i in range(17)}}, ValueError),
        ({"action": "block_user"}, ValueError),
        ({"action": "block_ip", "ip": "not an ip"}, ValueError),
        ({"action": "block_ip", "ip": "1.2.3.4", "user": {"email": "x"}}, ValueError),
        ({"action": "block_ip", "ip": 16909060}, TypeError),
        ({"action": "block_ip"}, ValueError),
        ({"action": "block_ip", "ip": "1.2.3.4", "duration": 0}, ValueError),
        ({"action": "block_ip", "ip": "1.2.3.4", "duration": -5}, ValueError),
        ({"action": "block_ip", "ip": "1.2.3.4", "duration": math.nan}, ValueError),
        ({"action": "block_ip", "ip": "1.2.3.4", "duration": math.inf}, ValueError),
        ({"action": "block_ip", "ip": "1.2.3.4", "duration": True}, TypeError),
        ({"action": "block_ip", "ip": "1.2.3.4", "duration": "60"}, TypeError),
        ({"action": "allow_ip", "ip": "1.2.3.4"}, ValueError),
    ],
)
def test_add_action_validation(store: Store, kwargs: dict[str, Any], error: type[Exception]) -> None:
    action = kwargs.pop("action")
    with pytest.raises(error):
        store.add_action(action, **kwargs)
    assert store.actions() == []


def test_actions_document_stays_within_agent_limits(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqreen_otel.explorer import store as module

    monkeypatch.setattr(module, "MAX_ACTIONS", 3)
    for i in range(3):
        store.add_action("block_ip", ip=f"10.0.0.{i}")
    with pytest.raises(ValueError, match="too many"):
        store.add_action("block_ip", ip="10.0.0.9")
    assert len(store.actions()) == 3
    monkeypatch.setattr(module, "MAX_ACTIONS", 10_000)
    monkeypatch.setattr(module, "MAX_DOCUMENT_BYTES", 400)
    with pytest.raises(ValueError, match="exceed"):
        store.add_action("block_user", user={"email": "e" * 200})
    assert len(store.actions()) == 3


# -- exactly once, full time range, schema upgrades, byte-bounded pages (issue 8) ------------------


def with_uid(uid: str | None, name: str = "evt", **kwargs: Any) -> dict[str, Any]:
    evt = event(name, user={"id": name}, **kwargs)
    if uid is not None:
        evt["attributes"]["log.record.uid"] = uid
    return evt


def test_an_event_id_already_stored_is_ignored(store: Store) -> None:
    batch = [with_uid("01J0000000000000000000000A", "a"), with_uid("01J0000000000000000000000B", "b"), with_uid(None)]
    assert store.add(batch) == 3
    # A retry of the same batch (the exporter timed out before the answer), and a batch repeating itself.
    assert store.add(batch) == 1  # only the event without an id
    again = [with_uid("01J0000000000000000000000C", "c"), with_uid("01J0000000000000000000000C", "c"), batch[0]]
    assert store.add(again) == 1
    assert sorted(e.name for e in store.events()) == ["a", "b", "c", "evt", "evt"]
    # Ids stay contiguous (retention by max_rows relies on it) and users point at the right events.
    assert raw(store, "SELECT min(id), max(id), count(*) FROM events") == [(1, 5, 5)]
    assert raw(store, "SELECT e.name FROM event_users u JOIN events e ON e.id = u.event_id WHERE u.value = 'c'") == [
        ("c",)
    ]


def test_times_after_2262_keep_their_full_otlp_range(store: Store) -> None:
    year_2500 = 16_725_225_600 * 10**9  # fits fixed64, not SQLite's signed INTEGER
    store.add([event("future", year_2500), event("future", year_2500 + 1), event("now", BASE_NS)])
    first, second, now = store.events()
    assert (first.time_ns, second.time_ns, now.time_ns) == (year_2500 + 1, year_2500, BASE_NS)
    assert [e.name for e in store.events(Filters(since_ns=year_2500))] == ["future", "future"]
    # Past 2262 events are ordered and filtered as 2**63-1 (then by arrival); their exact time is kept.
    assert [e.name for e in store.events(Filters(until_ns=2**63 - 1))] == ["now"]
    assert [e.name for e in store.events(Filters(since_ns=2**64 - 1))] == ["future", "future"]
    page = store.events(limit=1)
    assert [e.time_ns for e in store.events(before=(page[-1].time_ns, page[-1].id))] == [year_2500, BASE_NS]


def test_a_version_1_database_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # the schema as version 1 of the explorer wrote it
        for statement in MIGRATIONS[0]:
            conn.execute(str(statement))
        conn.execute(
            "INSERT INTO events (time_ns, received_ns, name, attributes, resource) VALUES (?, ?, 'old', '{}', '{}')",
            (BASE_NS, BASE_NS),
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    with Store(path) as store:
        assert [(e.name, e.time_ns, e.record) for e in store.events()] == [("old", BASE_NS, {})]
        assert store.add([with_uid("u1"), with_uid("u1")]) == 1
        assert raw(store, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert SCHEMA_VERSION >= 2


def test_pages_stop_at_a_byte_budget(store: Store) -> None:
    store.add(event(props={"blob": "x" * 10_000}, time_ns=BASE_NS + i) for i in range(10))
    page = store.events(limit=10, max_bytes=25_000)
    assert len(page) == 3 and page.more  # the event crossing the budget is the last one
    assert len(store.events(limit=10, max_bytes=1)) == 1
    whole = store.events(limit=20)
    assert len(whole) == 10 and not whole.more
    assert store.after(0, limit=5).more and not store.after(5, limit=10).more


def test_top_values_and_the_path_and_user_agent_filters(store: Store) -> None:
    def hit(i: int, ip: str, path: str, agent: str, email: str) -> dict[str, Any]:
        return event("login", BASE_NS + i, user={"email": email}, ip=ip,
                     extra={"url.path": path, "user_agent.original": agent})  # fmt: skip

    store.add([hit(i, "10.0.0.9", "/login", "stuffer/1.0", f"v{i % 3}@x.io") for i in range(6)])
    store.add([hit(10 + i, f"10.0.0.{i + 1}", "/home", "Mozilla/5.0", "alice@x.io") for i in range(2)])
    top = store.top_values()
    assert top["ip"] == [("10.0.0.9", 6), ("10.0.0.1", 1), ("10.0.0.2", 1)]  # most frequent, then by value
    assert top["user"] == [("alice@x.io", 2), ("v0@x.io", 2), ("v1@x.io", 2), ("v2@x.io", 2)]
    assert top["path"] == [("/login", 6), ("/home", 2)]
    assert top["user_agent"] == [("stuffer/1.0", 6), ("Mozilla/5.0", 2)]
    assert store.top_values(limit=1, sample=2)["ip"] == [("10.0.0.1", 1)]  # the newest two events only
    assert store.count(Filters(path="/home")) == 2 and store.count(Filters(user_agent="stuffer/1.0")) == 6
    assert store.top_values(Filters(user_agent="Mozilla/5.0", path="/home"))["user"] == [("alice@x.io", 2)]
    assert store.top_values(Filters(name="nothing")) == {"ip": [], "user": [], "path": [], "user_agent": []}


def test_the_whole_record_is_kept(store: Store) -> None:
    scope = {"library.kind": "security"}
    full = {
        **event("full", BASE_NS, observed_ns=BASE_NS + 5),
        "body": {"message": "hi", "n": [1, 2]},
        "severity_number": 17,
        "severity_text": "ERROR",
        "scope_version": "1.4.0",
        "scope_attributes": scope,
    }
    bare = {**event("bare", BASE_NS + 1), "severity_number": 0, "severity_text": "", "body": None}
    huge = {**event("huge", BASE_NS + 2), "severity_text": "X" * 10_000, "scope_attributes": {"k": "v" * 10_000}}
    assert store.add([full, bare, huge]) == 3  # fmt: skip
    by_name = {e.name: e for e in store.events()}
    assert by_name["full"].record == {
        "observed_time_unix_nano": BASE_NS + 5, "severity_number": 17, "severity_text": "ERROR",
        "body": {"message": "hi", "n": [1, 2]}, "scope_version": "1.4.0", "scope_attributes": scope,
    }  # fmt: skip
    assert by_name["bare"].record == {}  # only what was set
    # What a sender repeats on every record is capped: scope attributes in bytes, texts in characters.
    assert by_name["huge"].record["scope_attributes"] == {"sqreen_otel.explorer.scope_attributes_cut": 10_008}
    assert by_name["huge"].record["severity_text"] == "X" * 256


def test_service_filter(store: Store) -> None:
    def served(name: str, service: Any) -> dict[str, Any]:
        return {**event(name, BASE_NS), "resource": {"service.name": service, "host.name": "h1"}}

    store.add([served("a", "shop"), served("b", "shop"), served("c", "billing"), served("d", "x\udc80y"),
               {**event("e", BASE_NS), "resource": {}}])  # fmt: skip
    assert sorted(e.name for e in store.events(Filters(service="shop"))) == ["a", "b"]
    assert [e.name for e in store.events(Filters(service="billing", name="c"))] == ["c"]
    assert store.count(Filters(service="nothing")) == 0  # and a lone surrogate in a resource breaks no query
