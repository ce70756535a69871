"""The explorer's storage interface, and the one place that picks a backend from ``--db``.

``Store`` (SQLite, one file, one host) and ``PgStore`` (PostgreSQL, shared by several ``serve``
replicas) answer the same methods with the same results, so the app, the UI, the CLI and the
retention rules do not know which one they talk to.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from .store import Clock, Event, Filters, Page, Store


class Storage(Protocol):
    """What the explorer needs from a store (see ``store.Store`` for each method's contract)."""

    path: str  # what messages name: the SQLite file, or the PostgreSQL URL without its password
    max_age: float | None
    max_rows: int | None

    def add(self, events: Iterable[dict[str, Any]]) -> int: ...
    def prune(self) -> int: ...
    def check_writable(self) -> None: ...
    def close(self) -> None: ...
    def events(
        self,
        filters: Filters = ...,
        *,
        before: tuple[int, int] | None = None,
        limit: int = 50,
        max_bytes: int | None = None,
    ) -> Page: ...
    def after(
        self, last_id: int, filters: Filters = ..., limit: int = 100, *, max_bytes: int | None = None
    ) -> Page: ...
    def get(self, event_id: int) -> Event | None: ...
    def count(self, filters: Filters = ...) -> int: ...
    def histogram(self, filters: Filters = ..., *, buckets: int = 60) -> tuple[int, int, list[int]]: ...
    def top_values(
        self, filters: Filters = ..., *, limit: int = 10, sample: int = ...
    ) -> dict[str, list[tuple[str, int]]]: ...
    def summary(self, limit: int | None = None) -> list[dict[str, Any]]: ...
    def add_action(
        self,
        action: Literal["block_user", "block_ip"],
        *,
        user: Mapping[str, str | int] | None = None,
        ip: str | None = None,
        duration: float | None = None,
    ) -> str: ...
    def remove_action(self, action_id: str) -> bool: ...
    def remove_matching(
        self,
        action: Literal["block_user", "block_ip"],
        *,
        user: Mapping[str, str | int] | None = None,
        ip: str | None = None,
    ) -> int: ...
    def actions(self) -> list[dict[str, Any]]: ...
    def actions_document(self) -> dict[str, Any]: ...


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    return db.startswith(POSTGRES_SCHEMES)


def storage_errors(db: str) -> tuple[type[Exception], ...]:
    """The exceptions that opening or probing the store of ``db`` raises for a bad database (not a bug)."""
    if is_postgres(db):
        import psycopg

        return (psycopg.Error, OSError)
    return (sqlite3.Error, OSError)


def open_store(
    db: str, *, max_age: float | None = None, max_rows: int | None = None, clock: Clock = time.time
) -> Storage:
    """``postgresql://user@host/dbname`` (libpq URL): PostgreSQL; anything else: an SQLite file path."""
    if is_postgres(db):
        from .store_pg import PgStore  # psycopg is an extra: imported only when asked for

        return PgStore(db, max_age=max_age, max_rows=max_rows, clock=clock)
    return Store(db, max_age=max_age, max_rows=max_rows, clock=clock)
