"""EventBatchProcessor: queue, heartbeat flush, retry with backoff, bounded and counted drops.

``on_emit`` (the application's thread) only appends to a bounded deque under a short lock. One
daemon thread does the rest: it wakes at the heartbeat (``flush_interval`` plus up to 10% jitter),
for a full batch, for the first event of a new name, or for ``flush()``; it scrubs, exports, and
keeps failed batches queued until ``max_event_age`` (or, with a spool, on disk). After a failure it
probes again within seconds (``MAX_RETRY_DELAY``), not at the next heartbeat. Every record ends in
exactly one counter: exported, uncertain (given up after an attempt that got no answer: the backend
may have stored it), dropped (by reason) or still queued (in memory or in this process's spool).
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
from .senders import Flight, SenderPool
from .settings import check_concurrency
from .spool import Claimed, Evicted, Spool
from .values import clean

logger = logging.getLogger("sqreen_otel")

DROP_REASONS = ("queue_full", "expired", "rejected", "shutdown")
_EMPTY_RESOURCE = Resource.get_empty()
MAX_FIRST_SEEN_NAMES = 1024  # past this many names (dynamic names?), new ones wait for the heartbeat
MAX_RETRY_DELAY = 5.0  # seconds: after a failure, probe at least this often (unless Retry-After says)
_Queued = tuple[float, "ReadableLogRecord | EventDraft"]  # (monotonic time it was queued, record or draft)


@dataclass
class _Counters:
    tracked: int = 0
    exported: int = 0
    uncertain: int = 0  # given up after an attempt that got no answer (timeout): maybe stored
    resent: int = 0  # exported after such an attempt: the backend may hold them twice (same uid)
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
        spool: Spool | None = None,
        max_concurrent_exports: int = 2,
    ) -> None:
        check_concurrency("max_concurrent_exports", max_concurrent_exports)
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
        if spool is not None and not all(hasattr(exporter, m) for m in ("encode", "send_encoded")):
            raise ValueError("spool needs an exporter with encode() and send_encoded(), such as OTLPEventExporter")
        self.spool = spool
        # Up to this many requests in flight, when the exporter can encode and send apart (ours): the
        # next batch is encoded while the backend commits the previous one. Other exporters are called
        # one batch at a time, as OTel's own processors do.
        self.max_concurrent_exports = max_concurrent_exports
        self._pipelined = max_concurrent_exports > 1 and all(hasattr(exporter, m) for m in ("encode", "send_encoded"))
        self._init_state()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())
        if spool is not None:  # send what earlier runs left in the spool, without waiting for an event
            with self._lock:
                self._start_worker()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[_Queued] = collections.deque()
        self._counters = _Counters()
        self._seen_names: set[str] = set()
        self._first_seen_due: float | None = None
        self._flush_requests: list[threading.Event] = []
        self._inflight = 0
        self._senders: SenderPool | None = None  # created by the export thread (again in a forked child)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._attempt = 0
        self._retry_at = 0.0
        self._next_flush = time.monotonic() + self._jittered_interval()
        self._reported_drops = 0
        self._last_drop_report = 0.0
        self._maybe: set[int] = set()  # id() of queued items whose last attempt got no answer
        self._failures = 0  # failed attempts since the last report
        self._failing_since: float | None = None
        self._last_failure_report = -1e9
        self._spooled = 0  # records of this process in the spool (part of "queued")
        self._spool_due = time.monotonic()  # when to look at the spool directory again

    def _after_fork(self) -> None:
        # The parent still owns what it queued: a child starts empty, so nothing is sent twice.
        closed = self._closed
        self._init_state()
        self._closed = closed
        if self.spool is not None:
            self.spool.after_fork()  # the parent keeps its segments; the child is a new owner

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
                self._drop_one(self._queue.popleft(), "queue_full")
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
            if not self._queue and not self._inflight and self.spool is None:
                return True  # (with a spool, a flush also sends what earlier runs left there)
            if self._thread is None or not self._thread.is_alive():
                self._start_worker()
            self._flush_requests.append(done)
            self._wake.notify()
        return done.wait(timeout) and self.stats()["queued"] == 0

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush within ``timeout`` (default ``shutdown_timeout``), then drop what is left, counted;
        with a spool, what is left is written there for the next start instead."""
        with self._lock:
            if self._closed:
                return
        self._deliver_within(self.shutdown_timeout if timeout is None else timeout)
        with self._lock:
            self._closed = True
            self._wake.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            # The worker spills the queue to the spool on its way out; a worker stuck in a request
            # (a hanging backend) is given a second, then its queue counts as shutdown.
            thread.join(timeout=1.0)
        with self._lock:
            left = list(self._queue)
            self._queue.clear()
            self._drop(left, "shutdown")
        if left:
            logger.warning("sqreen_otel shutdown: %d event(s) could not be delivered and were dropped", len(left))
        self.exporter.shutdown()

    def _deliver_within(self, budget: float) -> None:
        """Flush, and after a failure probe again (at the backoff's pace) while ``budget`` lasts."""
        deadline = time.monotonic() + budget
        while not self.flush(max(deadline - time.monotonic(), 0.0)):
            with self._lock:
                if not self._queue and not self._inflight:
                    return  # what is left is in the spool, which keeps it
                pause = self._retry_at - time.monotonic()
            if time.monotonic() + max(pause, 0.0) >= deadline:
                return
            time.sleep(max(pause, 0.0))

    def stats(self) -> dict[str, Any]:
        """Counters; at rest ``tracked == exported + uncertain + sum(dropped.values()) + queued``."""
        with self._lock:
            c = self._counters
            spool = self.spool
            return {
                "tracked": c.tracked,
                "exported": c.exported,
                "uncertain": c.uncertain,
                "resent": c.resent,
                "dropped": dict(c.dropped),
                "queued": len(self._queue) + self._inflight + self._spooled,
                "retries": c.retries,
                "last_export_error": c.last_export_error,
                "spool": None if spool is None else {**spool.stats(), "records": self._spooled},
            }

    # -- worker side -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            senders, self._senders = self._senders, None
            if senders is not None:
                senders.close()
            if self.spool is not None:
                self._spill(everything=True)  # closed: what is left waits on disk for the next start
                self.spool.close()

    def _loop(self) -> None:
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
        spool = self.spool
        pending = bool(self._queue) or self._spooled > 0
        if self._attempt > 0 and pending:
            due = self._retry_at  # failing: probe again within seconds, not at the next heartbeat
        else:
            due = self._next_flush
            if self._first_seen_due is not None:
                due = min(due, self._first_seen_due)
            if len(self._queue) >= self.max_export_batch_size:
                due = now
            due = max(due, self._retry_at)
        if spool is not None:
            if len(self._queue) >= self.max_export_batch_size:
                return True  # sent, or put on disk while backing off: memory never overflows
            due = min(due, max(self._spool_due, self._retry_at))
            if due <= now:
                return True
        else:
            if self._queue and due <= now:
                return True
            if not self._queue:
                due = max(due, now + self.flush_interval)
        self._wake.wait(timeout=max(due - now, 0.001))
        return False

    def _cycle(self, forced: bool) -> None:
        self._expire()
        recovering = self._attempt > 0
        if self.spool is not None:
            if not forced and time.monotonic() < self._retry_at:  # a full batch while backing off
                self._spill(everything=False)
                return
            if not self._drain_spool():
                self._spill(everything=True)  # the backend is down: the waiting events go to disk
                self._cycle_done(spool_due=self._retry_at)
                return
        self._send_queue(forced=forced or recovering)  # the backend is back: send all that waited, at once
        if self.spool is not None and self._attempt > 0:
            self._spill(everything=True)
            self._cycle_done(spool_due=self._retry_at)
            return
        self._cycle_done()

    def _send_queue(self, forced: bool) -> None:
        """Send the queue's batches, up to ``max_concurrent_exports`` in flight (one while probing a
        failing backend), answers read in the order sent; stop taking batches after a failure."""
        limit = self.max_concurrent_exports if self._pipelined else 1
        flights: collections.deque[tuple[list[_Queued], Flight]] = collections.deque()
        retry: list[_Queued] = []  # failed batches, oldest first, still counted in flight
        failed = False
        first = True
        try:
            while True:
                batch: list[_Queued] | None = None
                with self._lock:
                    if (
                        not failed
                        and self._queue
                        and len(flights) < (limit if self._attempt == 0 else 1)
                        and (first or forced or len(self._queue) >= self.max_export_batch_size)
                    ):
                        count = min(len(self._queue), self.max_export_batch_size)
                        batch = [self._queue.popleft() for _ in range(count)]
                        self._inflight += count
                        first = False
                if batch is not None:
                    if not self._pipelined:
                        failed = self._settle(batch, self._deliver(batch), retry)
                    elif (flight := self._launch(batch)) is not None:
                        flights.append((batch, flight))
                    continue
                if not flights:
                    break
                batch, flight = flights.popleft()
                left = self._finish(batch, flight.body, flight.wait(), recover=not failed)
                failed = self._settle(batch, left, retry) or failed
        finally:
            with self._lock:
                for batch, _ in flights:  # only after a bug above: resent later (same uids)
                    retry.extend(batch)
                if retry:
                    self._inflight -= len(retry)
                    if self._closed:  # shutdown() has given up on these in-flight batches
                        self._drop(retry, "shutdown")
                    else:
                        self._requeue(retry)

    def _settle(self, batch: list[_Queued], left: list[_Queued], retry: list[_Queued]) -> bool:
        """Account one answered batch; ``True`` when it failed (kept for retry, or gone to the spool)."""
        with self._lock:
            self._inflight -= len(batch) - len(left)
            retry.extend(left)
            return bool(left) or self._attempt > 0

    def _launch(self, batch: list[_Queued]) -> Flight | None:
        """Encode ``batch`` here and hand it to a sender thread; ``None`` when it cannot be encoded."""
        try:
            body = self.exporter.encode([self._prepare(item) for _, item in batch])  # type: ignore[attr-defined]
        except Exception as exc:
            self._finish(batch, None, Outcome(Status.PERMANENT, error=f"encoding failed: {exc!r}"))
            with self._lock:
                self._inflight -= len(batch)
            return None
        if self._senders is None:
            self._senders = SenderPool(self._send_encoded, self.max_concurrent_exports)
        return self._senders.submit(body, len(batch))

    def _cycle_done(self, spool_due: float | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            self._first_seen_due = None
            self._next_flush = now + self._jittered_interval()
            # Look at the directory again for the leftovers of processes that exited meanwhile.
            self._spool_due = now + self.flush_interval if spool_due is None else spool_due

    def _requeue(self, batch: list[_Queued]) -> None:
        """Put a failed batch back in front; the bound still holds, the oldest go first."""
        self._queue.extendleft(reversed(batch))
        for _ in range(max(len(self._queue) - self.max_queue_size, 0)):
            self._drop_one(self._queue.popleft(), "queue_full")

    def _drop_one(self, item: _Queued, reason: str) -> None:
        """Count one record that leaves the queue unsent (under the lock)."""
        if self._maybe and id(item[1]) in self._maybe:
            self._maybe.discard(id(item[1]))
            self._counters.uncertain += 1  # an attempt got no answer: the backend may have it
        else:
            self._counters.dropped[reason] += 1

    def _drop(self, items: list[_Queued], reason: str) -> None:
        for item in items:
            self._drop_one(item, reason)

    def _deliver(self, batch: list[_Queued]) -> list[_Queued]:
        """Export ``batch`` from this thread, splitting it on 413; returns what must be retried later."""
        prepared = [self._prepare(item) for _, item in batch]
        body: bytes | None = None
        if self.spool is not None:  # encoded once: the same bytes go to the spool if this fails
            try:
                body = self.exporter.encode(prepared)  # type: ignore[attr-defined]
            except Exception as exc:
                outcome = Outcome(Status.PERMANENT, error=f"encoding failed: {exc!r}")
            else:
                outcome = self._send_encoded(body, len(batch))
        else:
            outcome = self._send(prepared)
        return self._finish(batch, body, outcome)

    def _finish(
        self, batch: list[_Queued], body: bytes | None, outcome: Outcome, recover: bool = True
    ) -> list[_Queued]:
        """Count one attempt's outcome for ``batch`` (``body``: its encoded bytes, for the spool); split
        and resend on 413; returns what must be retried later. ``recover=False``: an earlier batch of
        the same round failed, so this one's success does not end the backoff."""
        if outcome.status is Status.TOO_LARGE and len(batch) > 1:
            half = len(batch) // 2
            retry = self._deliver(batch[:half])
            return retry + batch[half:] if retry else self._deliver(batch[half:])
        self._note(outcome, len(batch), recover)
        if outcome.status is Status.RETRY:
            if outcome.maybe_delivered:
                with self._lock:
                    self._maybe.update(id(item) for _, item in batch)
            if self.spool is None or body is None:
                return batch
            self._spool_write(body, batch)  # the caller keeps it counted in flight meanwhile
            return []
        with self._lock:
            c, maybe = self._counters, self._maybe
            if outcome.status is Status.SUCCESS:
                c.exported += len(batch) - outcome.rejected
                c.dropped["rejected"] += outcome.rejected
            else:
                c.dropped["rejected"] += len(batch)
            if maybe:
                for _, item in batch:
                    if id(item) in maybe:
                        maybe.discard(id(item))
                        c.resent += outcome.status is Status.SUCCESS
        if outcome.status is not Status.SUCCESS:
            logger.error("event export rejected for good, %d event(s) dropped: %s", len(batch), outcome.error)
        return []

    def _note(self, outcome: Outcome, count: int, recover: bool = True) -> None:
        """Backoff, error and the failure report after one attempt (records are counted by the caller)."""
        now = time.monotonic()
        recovered = None
        with self._lock:
            c = self._counters
            if outcome.status is Status.RETRY:
                c.retries += 1
                c.last_export_error = outcome.error
                delay = backoff(self._attempt, min(self.flush_interval, MAX_RETRY_DELAY))
                if outcome.retry_after is not None:
                    delay = min(max(delay, outcome.retry_after), self.max_event_age)
                self._attempt += 1
                self._retry_at = now + delay
                self._failures += 1
                if self._failing_since is None:
                    self._failing_since = now
                waiting = len(self._queue) + count + self._spooled
            elif recover:
                c.last_export_error = outcome.error  # None after a clean success
                if self._failing_since is not None:
                    recovered = (self._attempt, now - self._failing_since)
                self._attempt = 0
                self._retry_at = 0.0
                self._failing_since = None
                self._failures = 0
        if outcome.status is Status.RETRY:
            logger.debug("event export failed, retrying in %.1fs: %s", delay, outcome.error)
            if now - self._last_failure_report >= self.flush_interval:
                logger.warning(
                    "sqreen_otel cannot export events to %s: %d failed attempt(s) in %.0fs, %d event(s) waiting; "
                    "retrying every few seconds; last error: %s",
                    getattr(self.exporter, "endpoint", type(self.exporter).__name__),
                    self._failures, now - (self._failing_since or now), waiting, outcome.error,
                )  # fmt: skip
                self._last_failure_report = now
                self._failures = 0
        elif recovered is not None:
            logger.info("sqreen_otel event export recovered after %d failed attempt(s) in %.1fs", *recovered)
        if outcome.status is Status.SUCCESS and outcome.rejected:
            logger.warning("backend rejected %d of %d event(s): %s", outcome.rejected, count, outcome.error)

    def _send_encoded(self, body: bytes, count: int) -> Outcome:
        try:
            outcome: Outcome = self.exporter.send_encoded(body, count)  # type: ignore[attr-defined]
        except Exception as exc:  # an exporter bug is a failed export, not a crash
            logger.exception("exporter raised")
            return Outcome(Status.RETRY, error=f"exporter raised {exc!r}")
        return outcome

    # -- spool (export thread only) --------------------------------------------------------------

    def _spool_write(self, body: bytes | None, batch: list[_Queued]) -> None:
        """Store one encoded batch on disk (not under the lock: ``track()`` never waits on the disk);
        counted as dropped when it cannot be. The caller counts ``batch`` in flight meanwhile."""
        spool = self.spool
        assert spool is not None and body is not None
        with self._lock:
            maybe = any(id(item) in self._maybe for _, item in batch) if self._maybe else False
        stored, evicted = spool.write(body, len(batch), maybe)
        with self._lock:
            self._absorb(evicted)
            if stored:
                self._spooled += len(batch)
                for _, item in batch:
                    self._maybe.discard(id(item))
            else:
                self._drop(batch, "queue_full")

    def _absorb(self, lost: Evicted) -> None:
        """Count own records that left the spool unsent (under the lock)."""
        if lost.own or lost.corrupt_own:
            c = self._counters
            c.uncertain += lost.own_maybe_delivered
            c.dropped["queue_full"] += lost.own - lost.own_maybe_delivered
            c.dropped["rejected"] += lost.corrupt_own
            self._spooled -= lost.own + lost.corrupt_own

    def _spill(self, everything: bool) -> None:
        """Move queued events to the spool: full batches, or ``everything``."""
        while True:
            with self._lock:
                count = min(len(self._queue), self.max_export_batch_size)
                if count == 0 or (count < self.max_export_batch_size and not everything):
                    return
                batch = [self._queue.popleft() for _ in range(count)]
                self._inflight += count
            try:
                body = self.exporter.encode([self._prepare(item) for _, item in batch])  # type: ignore[attr-defined]
            except Exception as exc:
                logger.error("event export rejected for good, %d event(s) dropped: encoding failed: %r", count, exc)
                with self._lock:
                    self._inflight -= count
                    self._counters.dropped["rejected"] += count
                continue
            self._spool_write(body, batch)
            with self._lock:
                self._inflight -= count

    def _drain_spool(self) -> bool:
        """Send spooled segments (ours, then those of processes gone), oldest first; ``False`` on a failure."""
        spool = self.spool
        assert spool is not None
        segments = spool.sendable()
        with self._lock:
            self._absorb(spool.take_lost())
        for segment in segments:
            claimed = spool.claim(segment)
            with self._lock:
                self._absorb(spool.take_lost())
            if claimed is None:
                continue
            outcome = self._send_encoded(claimed.body, claimed.count)
            if outcome.status is Status.RETRY:
                spool.release(claimed)
                self._note(outcome, 0)
                return False
            self._note(outcome, claimed.count)
            self._segment_done(claimed, outcome)
        return True

    def _segment_done(self, claimed: Claimed, outcome: Outcome) -> None:
        spool = self.spool
        assert spool is not None
        spool.done(claimed)
        count = claimed.count
        delivered = count - outcome.rejected if outcome.status is Status.SUCCESS else 0
        if not claimed.own:
            spool.recovered += delivered
            if delivered < count:
                logger.error("spooled event(s) from an earlier run rejected: %d: %s", count - delivered, outcome.error)
            return
        with self._lock:
            c = self._counters
            self._spooled -= count
            c.exported += delivered
            c.dropped["rejected"] += count - delivered
            if claimed.maybe_delivered:
                c.resent += delivered
        if delivered < count:
            logger.error("event export rejected for good, %d event(s) dropped: %s", count - delivered, outcome.error)

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
                self._drop_one(self._queue.popleft(), "expired")

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
