"""EventBatchProcessor: queue, heartbeat flush, retry with backoff, bounded and counted drops.

``on_emit`` (the application's thread) only appends to a bounded deque under a short lock. One
daemon thread does the rest: it wakes at the heartbeat (``flush_interval`` plus up to 10% jitter),
for a full batch, for the first event of a new name, or for ``flush()``; it scrubs, exports, and
keeps failed batches queued until ``max_event_age``. Every record ends in exactly one counter:
exported, dropped (by reason) or still queued.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from .draft import EventDraft
from .event import scrub_attributes
from .exporter import Outcome, Status, backoff
from .scrub import Scrubber
from .values import clean

logger = logging.getLogger("sqreen_otel")

DROP_REASONS = ("queue_full", "expired", "rejected", "shutdown")
_EMPTY_RESOURCE = Resource.get_empty()
MAX_FIRST_SEEN_NAMES = 1024  # past this many names (dynamic names?), new ones wait for the heartbeat
_Queued = tuple[float, "ReadableLogRecord | EventDraft"]  # (monotonic time it was queued, record or draft)


@dataclass
class _Counters:
    tracked: int = 0
    exported: int = 0
    retries: int = 0
    last_export_error: str | None = None

    def __post_init__(self) -> None:
        self.dropped = dict.fromkeys(DROP_REASONS, 0)


class EventBatchProcessor(LogRecordProcessor):
    """A LogRecordProcessor for security events; see the README for every setting."""

    def __init__(
        self,
        exporter: LogRecordExporter,
        *,
        flush_interval: float = 60.0,
        max_queue_size: int = 8192,
        max_export_batch_size: int = 512,
        max_event_age: float = 900.0,
        first_seen_delay: float | None = 1.0,
        shutdown_timeout: float = 5.0,
        scrubber: Scrubber | None = None,
        max_value_length: int = 4096,
        prescrubbed_scopes: frozenset[str] = frozenset(),
    ) -> None:
        for name, value in (
            ("flush_interval", flush_interval),
            ("max_queue_size", max_queue_size),
            ("max_export_batch_size", max_export_batch_size),
            ("max_event_age", max_event_age),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.exporter = exporter
        self.flush_interval = flush_interval
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.max_event_age = max_event_age
        self.first_seen_delay = first_seen_delay
        self.shutdown_timeout = shutdown_timeout
        self.scrubber = scrubber if scrubber is not None else Scrubber()
        self.max_value_length = max_value_length
        # Loggers whose records were scrubbed at the source by this same scrubber (configure() sets
        # sqreen_otel's own); records of any other logger are scrubbed here, in the export thread.
        self.prescrubbed_scopes = prescrubbed_scopes
        self._init_state()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[_Queued] = collections.deque()
        self._counters = _Counters()
        self._seen_names: set[str] = set()
        self._first_seen_due: float | None = None
        self._flush_requests: list[threading.Event] = []
        self._inflight = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._attempt = 0
        self._retry_at = 0.0
        self._next_flush = time.monotonic() + self._jittered_interval()
        self._reported_drops = 0
        self._last_drop_report = 0.0

    def _after_fork(self) -> None:
        # The parent still owns what it queued: a child starts empty, so nothing is sent twice.
        closed = self._closed
        self._init_state()
        self._closed = closed

    def _jittered_interval(self) -> float:
        return self.flush_interval * (1.0 + random.uniform(0.0, 0.1))

    # -- application side ------------------------------------------------------------------------

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        readable = ReadableLogRecord(
            log_record=log_record.log_record,
            resource=log_record.resource or _EMPTY_RESOURCE,
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        self._enqueue(log_record.log_record.event_name or "", readable)

    def enqueue(self, draft: EventDraft) -> None:
        """``track()``'s fast path when this processor alone would see the record (see ``pipeline``):
        the draft is built, scrubbed and encoded in the export thread."""
        self._enqueue(draft.name, draft)

    def _enqueue(self, name: str, item: ReadableLogRecord | EventDraft) -> None:
        with self._lock:
            if self._closed:
                self._counters.tracked += 1
                self._counters.dropped["shutdown"] += 1
                return
            self._counters.tracked += 1
            self._queue.append((time.monotonic(), item))
            if len(self._queue) + self._inflight > self.max_queue_size:
                self._queue.popleft()
                self._counters.dropped["queue_full"] += 1
            wake = len(self._queue) >= self.max_export_batch_size
            if (
                name not in self._seen_names
                and self.first_seen_delay is not None
                and len(self._seen_names) < MAX_FIRST_SEEN_NAMES
            ):
                self._seen_names.add(name)
                due = time.monotonic() + self.first_seen_delay
                if self._first_seen_due is None or due < self._first_seen_due:
                    self._first_seen_due = due
                    wake = True
            if self._thread is None:
                self._start_worker()
            elif wake:
                self._wake.notify()

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqreen_otel.processor", daemon=True)
        self._thread.start()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(timeout_millis / 1000.0)

    def flush(self, timeout: float | None = None) -> bool:
        """Export everything queued now; ``True`` when the queue was emptied in time."""
        done = threading.Event()
        with self._lock:
            if not self._queue and not self._inflight:
                return True
            if self._thread is None or not self._thread.is_alive():
                self._start_worker()
            self._flush_requests.append(done)
            self._wake.notify()
        return done.wait(timeout) and self.stats()["queued"] == 0

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush within ``timeout`` (default ``shutdown_timeout``), then drop what is left, counted."""
        with self._lock:
            if self._closed:
                return
        self.flush(self.shutdown_timeout if timeout is None else timeout)
        with self._lock:
            self._closed = True
            left = len(self._queue)
            self._queue.clear()
            self._counters.dropped["shutdown"] += left
            self._wake.notify()
        if left:
            logger.warning("sqreen_otel shutdown: %d event(s) could not be delivered and were dropped", left)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        self.exporter.shutdown()

    def stats(self) -> dict[str, Any]:
        """Counters; at rest ``tracked == exported + sum(dropped.values()) + queued``."""
        with self._lock:
            c = self._counters
            return {
                "tracked": c.tracked,
                "exported": c.exported,
                "dropped": dict(c.dropped),
                "queued": len(self._queue) + self._inflight,
                "retries": c.retries,
                "last_export_error": c.last_export_error,
            }

    # -- worker side -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                work = self._wait_for_work()
                if self._closed:
                    return
                flushes, self._flush_requests = self._flush_requests, []
            try:
                if work or flushes:
                    self._cycle(forced=bool(flushes))
                self._report_drops()
            except Exception:  # a bug here must not kill the thread and strand the queue
                logger.exception("sqreen_otel export cycle failed")
            for done in flushes:
                done.set()

    def _wait_for_work(self) -> bool:
        """Wait once (for the next due time or a notify); ``True`` when an export cycle is due."""
        if self._closed or self._flush_requests:
            return True
        now = time.monotonic()
        due = self._next_flush
        if self._first_seen_due is not None:
            due = min(due, self._first_seen_due)
        if len(self._queue) >= self.max_export_batch_size:
            due = now
        due = max(due, self._retry_at)
        if self._queue and due <= now:
            return True
        if not self._queue:
            due = max(due, now + self.flush_interval)
        self._wake.wait(timeout=max(due - now, 0.001))
        return False

    def _cycle(self, forced: bool) -> None:
        self._expire()
        while True:
            with self._lock:
                if not self._queue:
                    break
                count = min(len(self._queue), self.max_export_batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
                self._inflight = count
            retry = self._deliver(batch)
            with self._lock:
                self._inflight = 0
                if retry and self._closed:  # shutdown() has given up on this in-flight batch
                    self._counters.dropped["shutdown"] += len(retry)
                    break
                if retry:
                    self._requeue(retry)
                    break
                if not forced and len(self._queue) < self.max_export_batch_size:
                    break
        with self._lock:
            self._first_seen_due = None
            self._next_flush = time.monotonic() + self._jittered_interval()

    def _requeue(self, batch: list[_Queued]) -> None:
        """Put a failed batch back in front; the bound still holds, the oldest go first."""
        self._queue.extendleft(reversed(batch))
        for _ in range(max(len(self._queue) - self.max_queue_size, 0)):
            self._queue.popleft()
            self._counters.dropped["queue_full"] += 1

    def _deliver(self, batch: list[_Queued]) -> list[_Queued]:
        """Export ``batch``, splitting it on 413; returns what must be retried later."""
        outcome = self._send([self._prepare(item) for _, item in batch])
        if outcome.status is Status.TOO_LARGE and len(batch) > 1:
            half = len(batch) // 2
            retry = self._deliver(batch[:half])
            return retry + batch[half:] if retry else self._deliver(batch[half:])
        with self._lock:
            c = self._counters
            if outcome.error:
                c.last_export_error = outcome.error
            if outcome.status is Status.SUCCESS:
                c.exported += len(batch) - outcome.rejected
                c.dropped["rejected"] += outcome.rejected
                self._attempt = 0
                self._retry_at = 0.0
                if outcome.rejected:
                    logger.warning(
                        "backend rejected %d of %d event(s): %s", outcome.rejected, len(batch), outcome.error
                    )
                return []
            if outcome.status is Status.RETRY:
                c.retries += 1
                delay = backoff(self._attempt, self.flush_interval)
                if outcome.retry_after is not None:
                    delay = min(max(delay, outcome.retry_after), self.max_event_age)
                self._attempt += 1
                self._retry_at = time.monotonic() + delay
                logger.info("event export failed, retrying in %.1fs: %s", delay, outcome.error)
                return batch
            c.dropped["rejected"] += len(batch)
        logger.error("event export rejected for good, %d event(s) dropped: %s", len(batch), outcome.error)
        return []

    def _send(self, batch: Sequence[ReadableLogRecord | EventDraft]) -> Outcome:
        send = getattr(self.exporter, "send", None)
        try:
            if send is not None:
                return send(batch)
            result = self.exporter.export(batch)  # type: ignore[arg-type]  # drafts only reach ours
        except Exception as exc:  # an exporter bug is a failed export, not a crash
            logger.exception("exporter raised")
            return Outcome(Status.RETRY, error=f"exporter raised {exc!r}")
        if result is LogRecordExportResult.SUCCESS:
            return Outcome(Status.SUCCESS)
        return Outcome(Status.RETRY, error="exporter returned FAILURE")

    def _prepare(self, item: ReadableLogRecord | EventDraft) -> ReadableLogRecord | EventDraft:
        """What the exporter gets: drafts as they are when it encodes them itself (ours), else SDK records."""
        if isinstance(item, EventDraft):
            return item if getattr(self.exporter, "accepts_drafts", False) else item.to_readable()
        return self._scrub(item)

    def _scrub(self, record: ReadableLogRecord) -> ReadableLogRecord:
        """Scrub records of any origin at export time; already-scrubbed values come out the same."""
        scope = record.instrumentation_scope
        if scope is not None and scope.name in self.prescrubbed_scopes:
            return record
        log_record = copy.copy(record.log_record)  # other processors may hold the original
        if log_record.attributes:
            log_record.attributes = scrub_attributes(log_record.attributes, self.scrubber, self.max_value_length)
        if log_record.body is not None:
            log_record.body = clean(log_record.body, self.scrubber, self.max_value_length)
        return dataclasses.replace(record, log_record=log_record)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.max_event_age
        with self._lock:
            while self._queue and self._queue[0][0] < cutoff:
                self._queue.popleft()
                self._counters.dropped["expired"] += 1

    def _report_drops(self) -> None:
        """One warning per interval at most, with the counts by reason."""
        now = time.monotonic()
        with self._lock:
            dropped = dict(self._counters.dropped)
        total = sum(dropped.values())
        if total > self._reported_drops and now - self._last_drop_report >= self.flush_interval:
            logger.warning(
                "sqreen_otel dropped %d event(s) since the last report; totals by reason: %s",
                total - self._reported_drops,
                ", ".join(f"{k}={v}" for k, v in dropped.items()),
            )
            self._reported_drops = total
            self._last_drop_report = now
