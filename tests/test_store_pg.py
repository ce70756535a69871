"""The explorer's storage on PostgreSQL: the SQLite store's own tests run again on ``PgStore``, then what a
shared database adds (replicas, migrations, ids in commit order, dedupe across processes).

A real PostgreSQL server (Debian's package, installed when missing) runs for the session on loopback;
each test gets a fresh schema.
"""

from __future__ import annotations

import copy
import inspect
import threading
import types
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import test_explorer_store as sqlite_tests
from postgres_server import Server
from test_explorer_store import T0, Clock, event

from sqreen_otel.explorer.storage import open_store
from sqreen_otel.explorer.store import Filters
from sqreen_otel.explorer.store_pg import SCHEMA_VERSION, PgStore

# -- the SQLite store's tests, on PostgreSQL ---------------------------------------------------------

# Those that look behind the API at SQLite itself (pragmas, the file, raw sqlite3 queries) stay there;
# the million-row one is SQLite's page-speed check.
_SQLITE_ONLY = ("raw(", "sqlite3", "PRAGMA", "Store(", "store.path", "million")


def _portable(name: str, function: Any) -> bool:
    if not name.startswith("test_") or not callable(function):
        return False
    parameters = inspect.signature(function).parameters
    source = inspect.getsource(function)
    return ("store" in parameters or "sample" in parameters) and not any(s in source for s in _SQLITE_ONLY)


SHARED = sorted(name for name, function in vars(sqlite_tests).items() if _portable(name, function))


def _copy(function: Any) -> Any:
    """The test again, with its own copy of its parameters (a test may change the dicts it is given)."""
    twin = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__)
    twin.__kwdefaults__ = function.__kwdefaults__
    twin.__dict__.update(copy.deepcopy(function.__dict__))  # pytestmark: parametrize values included
    return twin


for _name in SHARED:
    globals()[_name] = _copy(getattr(sqlite_tests, _name))  # collected here: its ``store`` fixture is the one below
sample = sqlite_tests.sample  # the fixture, so that it builds on this module's ``store``
clock = sqlite_tests.clock


@pytest.fixture(scope="session")
def pg() -> Iterator[Server]:
    with Server() as server:
        yield server


@pytest.fixture
def url(pg: Server) -> str:
    return pg.new_url()


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[PgStore]:
    with PgStore(url, clock=clock) as s:
        yield s


def test_most_storage_tests_run_on_both_backends() -> None:
    assert len(SHARED) >= 19, SHARED  # a rename in test_explorer_store must not silently drop them here


# -- what PostgreSQL adds --------------------------------------------------------------------------


def test_open_store_picks_the_backend_from_the_url(url: str, tmp_path: Any) -> None:
    with open_store(url) as pg_store:
        assert isinstance(pg_store, PgStore)
    sqlite_store = open_store(str(tmp_path / "x.sqlite"))
    assert type(sqlite_store).__name__ == "Store"
    sqlite_store.close()


def test_migrations_are_versioned_and_applied_once(url: str) -> None:
    with PgStore(url), PgStore(url) as second:
        assert second.add([event()]) == 1
    with psycopg.connect(url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        conn.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer than this code"):
        PgStore(url)


def test_replicas_starting_together_migrate_once(url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            PgStore(url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_batch_received_by_two_replicas_is_stored_once(url: str, clock: Clock) -> None:
    batch = [event(props={"n": i}, extra={"log.record.uid": f"uid-{i}"}) for i in range(200)]
    first, second = PgStore(url, clock=clock), PgStore(url, clock=clock)
    stored: list[int] = []
    barrier = threading.Barrier(2)

    def ingest(replica: PgStore) -> None:
        barrier.wait()
        stored.append(replica.add(batch))

    threads = [threading.Thread(target=ingest, args=(r,)) for r in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(stored) == [0, 200]
    assert first.count() == second.count() == 200
    first.close()
    second.close()


def test_ids_follow_commit_order_without_gaps_across_replicas(url: str, clock: Clock) -> None:
    replicas = [PgStore(url, clock=clock) for _ in range(3)]
    seen: list[int] = []  # what a tail reading the whole time would see, in order
    done = threading.Event()

    def tail() -> None:
        reader = PgStore(url, clock=clock)
        last = 0
        while not done.is_set() or reader.after(last, limit=500):
            for found in reader.after(last, limit=500):
                seen.append(found.id)
                last = found.id
        reader.close()

    def write(replica: PgStore, k: int) -> None:
        for j in range(30):
            replica.add([event(props={"k": k, "j": j, "i": i}) for i in range(7)])

    reader_thread = threading.Thread(target=tail)
    reader_thread.start()
    writers = [threading.Thread(target=write, args=(r, k)) for k, r in enumerate(replicas)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader_thread.join()
    assert seen == list(range(1, 3 * 30 * 7 + 1))  # no id skipped by the tail, none twice
    for replica in replicas:
        replica.close()


def test_retention_by_age_and_rows(url: str, clock: Clock) -> None:
    with PgStore(url, max_age=3600, max_rows=5, clock=clock) as store:
        store.add([event(props={"i": i}) for i in range(8)])
        assert store.count() == 8  # pruned at most every 10 s
        assert store.prune() == 3
        assert [e.attributes["sqreen.properties.i"] for e in store.events()] == [7, 6, 5, 4, 3]
        clock.now = T0 + 3601
        assert store.prune() == 5
        assert store.count() == 0
        assert store.add([event()]) == 1
        assert store.events()[0].id == 9  # ids never come back after pruning


def test_a_block_made_on_one_replica_is_served_by_another(url: str, clock: Clock) -> None:
    with PgStore(url, clock=clock) as one, PgStore(url, clock=clock) as other:
        action_id = one.add_action("block_user", user={"email": "mallory@example.com"}, duration=60)
        assert [a["id"] for a in other.actions_document()["actions"]] == [action_id]
        assert other.remove_matching("block_user", user={"email": "mallory@example.com"}) == 1
        assert one.actions() == []


def test_values_that_look_like_sql_or_json_paths_are_only_values(store: PgStore) -> None:
    store.add([event(props={"k": "x' OR 1=1 --"}, user={"email": "a'b@example.com"})])
    assert store.count(Filters(prop=("k", "x' OR 1=1 --"))) == 1
    assert store.count(Filters(prop=("k", "x"))) == 0
    assert store.count(Filters(user="a'b@example.com")) == 1
    assert store.count(Filters(name="'; DROP TABLE events; --")) == 0
    assert store.count() == 1


def test_a_password_is_not_shown_in_the_store_path(pg: Server) -> None:
    with PgStore(pg.url().replace("postgres@", "postgres:s3cret@")) as store:
        assert "s3cret" not in store.path


def test_a_postgresql_restart_costs_one_failed_call_then_the_store_reconnects(clock: Clock) -> None:
    with Server() as server, PgStore(server.new_url(), clock=clock) as store:
        assert store.add([event()]) == 1
        server.restart()  # pg_ctl restart keeps the options of the running server
        with pytest.raises(psycopg.OperationalError):
            store.add([event()])  # this thread's connection was closed by the server: the caller answers 503
        assert store.add([event()]) == 1
        assert store.count() == 2
