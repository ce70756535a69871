"""Write-behind for ingest: the HTTP answer does not wait for SQLite's commit.

An exporter sends one batch at a time and waits for the answer; if that answer waited for the
commit too, encoding (client) and storing (server) would never overlap and ingest would run at
the speed of their sum. A thread of its own stores what ingest decoded, merging waiting batches
into one transaction. The queue is bounded: past ``max_pending`` events, ingest answers 503 with
``Retry-After`` and the exporter retries later. Queries first wait for the queue to empty, so
what was acknowledged is visible to the next read. The price: events acknowledged but not yet
committed (at most ``max_pending``) are lost if the process is killed, as in any batching collector.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .store import Store

logger = logging.getLogger("sqreen_otel.explorer")


class Writer:
    def __init__(self, store: Store, *, max_pending: int = 50_000) -> None:
        self.store = store
        self.max_pending = max_pending
        self._batches: list[list[dict[str, Any]]] = []
        self._pending = 0  # events submitted and not yet committed (queued or being written)
        self._closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="sqreen_otel.explorer.writer", daemon=True)
        self._thread.start()

    def submit(self, events: list[dict[str, Any]]) -> bool:
        """Queue ``events`` for storing; ``False`` when too many already wait (answer 503)."""
        with self._lock:
            if self._closed or (self._pending and self._pending + len(events) > self.max_pending):
                return False
            self._batches.append(events)
            self._pending += len(events)
            self._changed.notify_all()
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted event is committed (read-after-write for queries)."""
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
            events = [event for batch in batches for event in batch]  # one transaction for all of them
            try:
                self.store.add(events)
            except Exception:  # a bad batch must not stop ingest for good
                logger.exception("storing %d event(s) failed; they are lost", len(events))
            with self._lock:
                self._pending -= len(events)
                self._changed.notify_all()
