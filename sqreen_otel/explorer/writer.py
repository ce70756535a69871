"""Group commit for ingest: each request is answered once its events are committed, never before.

An exporter that got a 2xx forgets its batch, so the answer must wait for SQLite's COMMIT: then a
SIGKILL of the explorer loses nothing that was acknowledged. To keep throughput, one thread stores
whatever requests wait at that moment in one transaction (a commit per group, not per request).

The queue is bounded in events and in bytes (``otlp.cap`` sizes): past either, ``submit`` refuses and
ingest answers 503 with ``Retry-After``. When a transaction fails (disk full, read-only database, a
locked file), every request in it gets the error (503 too: the exporter keeps its batch and retries);
failures are logged at ERROR once per interval with counts, and recovery once, on logger
``sqreen_otel.explorer``. A group that fails is retried request by request, so one bad batch cannot
sink the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .storage import Storage

logger = logging.getLogger("sqreen_otel.explorer")

Done = Callable[[BaseException | None], None]


class StorageError(Exception):
    """The events could not be committed; ``str()`` says why (for the 503 answer and the log)."""


@dataclass
class _Batch:
    events: list[dict[str, Any]]
    size: int
    done: Done


class Writer:
    def __init__(
        self,
        store: Storage,
        *,
        max_pending: int = 50_000,
        max_bytes: int = 64 * 1024 * 1024,
        report_every: float = 10.0,
    ) -> None:
        self.store = store
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.report_every = report_every
        self._batches: list[_Batch] = []
        self._pending = 0  # events submitted and not yet committed (queued or being written)
        self._pending_bytes = 0
        self._closed = False
        self._failing = False
        self._failed_batches = 0  # since the last report
        self._failed_events = 0
        self._last_report = 0.0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="sqreen_otel.explorer.writer", daemon=True)
        self._thread.start()

    @property
    def failing(self) -> bool:
        """The last transaction failed (and none succeeded since)."""
        return self._failing

    def submit(self, events: list[dict[str, Any]], size: int, done: Done) -> bool:
        """Queue ``events`` (``size`` bytes); ``done(None)`` after their commit, ``done(StorageError)`` if it failed.

        ``False`` (and ``done`` never called) when the queue is full or the writer closed: answer 503.
        ``done`` runs on the writer's thread.
        """
        with self._lock:
            if self._closed:
                return False
            if self._pending and (
                self._pending + len(events) > self.max_pending or self._pending_bytes + size > self.max_bytes
            ):
                return False
            self._batches.append(_Batch(events, size, done))
            self._pending += len(events)
            self._pending_bytes += size
            self._changed.notify_all()
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted event is committed or refused."""
        with self._lock:
            return self._changed.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Store what is queued, then stop the thread."""
        self.wait_idle(timeout)
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._batches or self._closed)
                if not self._batches:
                    return
                batches, self._batches = self._batches, []
            error = self._store([event for batch in batches for event in batch.events])
            if error is not None and len(batches) > 1:  # find the guilty one: the others may go in alone
                results = [(batch, self._store(batch.events)) for batch in batches]
            else:
                results = [(batch, error) for batch in batches]
            for batch, failure in results:
                try:
                    batch.done(failure)
                except Exception:  # the request's loop is gone (server stopping): nobody waits for it
                    logger.debug("could not hand a commit result back", exc_info=True)
            with self._lock:
                self._pending -= sum(len(batch.events) for batch in batches)
                self._pending_bytes -= sum(batch.size for batch in batches)
                self._changed.notify_all()

    def _store(self, events: list[dict[str, Any]]) -> StorageError | None:
        try:
            self.store.add(events)
        except Exception as exc:
            self._failed(len(events), exc)
            return StorageError(f"storing events failed: {exc}")
        if self._failing:
            self._failing = False
            logger.warning("storing events works again (after %d failed batch(es))", self._failed_batches)
            self._failed_batches = self._failed_events = 0
        return None

    def _failed(self, count: int, exc: Exception) -> None:
        first = not self._failing
        self._failing = True
        self._failed_batches += 1
        self._failed_events += count
        now = time.monotonic()
        if first or now - self._last_report >= self.report_every:
            logger.error(
                "cannot store events in %s: %s: %s; %d batch(es) of %d event(s) refused with 503 so far,"
                " exporters keep them and retry",
                self.store.path, type(exc).__name__, exc, self._failed_batches, self._failed_events,
            )  # fmt: skip
            self._last_report = now
