"""EventBatchProcessor against a real OTLP/HTTP Receiver on loopback: timing, retries, drops, accounting, fork."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from opentelemetry.sdk._logs import LoggerProvider

import sqreen_otel
from sqreen_otel import runtime
from sqreen_otel.exporter import OTLPEventExporter
from sqreen_otel.ids import UID, new_uid
from sqreen_otel.processor import EventBatchProcessor
from sqreen_otel.receiver import Receiver

Make = Callable[..., tuple[EventBatchProcessor, Any]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


@pytest.fixture
def make(receiver: Receiver) -> Iterator[Make]:
    """Build a processor exporting to ``receiver``; every one built is shut down after the test."""
    made: list[EventBatchProcessor] = []

    def build(*, timeout: float = 2.0, scope: str = "test", **kwargs: Any) -> tuple[EventBatchProcessor, Any]:
        kwargs.setdefault("first_seen_delay", None)
        provider = LoggerProvider(shutdown_on_exit=False)
        proc = EventBatchProcessor(OTLPEventExporter(receiver.endpoint, timeout=timeout), **kwargs)
        provider.add_log_record_processor(proc)
        made.append(proc)
        return proc, provider.get_logger(scope)

    yield build
    for proc in made:
        proc.shutdown(timeout=0.5)
        if proc._thread is not None:
            proc._thread.join(timeout=3)
        # After shutdown nothing may be left in limbo: each record was exported or dropped, by reason.
        assert accounted(proc)["queued"] == 0


@pytest.fixture
def use_runtime() -> Iterator[Callable[[Any], None]]:
    """Point ``sqreen_otel.track`` at a test logger; the previous runtime comes back afterwards."""
    saved = runtime.current

    def install(logger: Any) -> None:
        runtime.install(runtime.Runtime(logger=logger, configured=True))

    yield install
    runtime.install(saved)


def emit(logger: Any, n: int, name: str = "evt", start: int = 0, **attrs: Any) -> None:
    """Like track(): each record carries its own log.record.uid."""
    for i in range(start, start + n):
        logger.emit(event_name=name, attributes={"i": i, UID: new_uid(), **attrs})


def accounted(proc: EventBatchProcessor) -> dict[str, Any]:
    """The invariant, checked at rest: every tracked record is exported, dropped (by reason) or queued."""
    s = proc.stats()
    assert s["tracked"] == s["exported"] + s["uncertain"] + sum(s["dropped"].values()) + s["queued"], s
    return s


def indexes(events: list[dict[str, Any]]) -> list[int]:
    return [e["attributes"]["i"] for e in events]


def statuses(receiver: Receiver) -> list[int]:
    return [r["status"] for r in receiver.requests()]


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


# -- scheduling ----------------------------------------------------------------------------------


def test_heartbeat_exports_after_the_interval_not_before(make: Make, receiver: Receiver) -> None:
    created = time.monotonic()
    proc, logger = make(flush_interval=0.5)
    emit(logger, 3)
    receiver.wait_for(3, timeout=3)
    first = time.monotonic() - created
    # The heartbeat is due flush_interval (+ up to 10%) after the processor started.
    assert 0.5 <= first < 0.55 + 0.35, first
    assert indexes(receiver.events()) == [0, 1, 2]
    assert [r["records"] for r in receiver.requests()] == [3]

    # The next heartbeat is one interval after the end of that cycle, not earlier.
    after_first = time.monotonic()
    emit(logger, 2, start=3)
    receiver.wait_for(5, timeout=3)
    second = time.monotonic() - after_first
    assert 0.5 - 0.05 <= second < 0.55 + 0.35, second
    assert [r["records"] for r in receiver.requests()] == [3, 2]
    assert proc.flush(timeout=2) is True
    s = accounted(proc)
    assert (s["exported"], s["queued"]) == (5, 0)


def test_jitter_stays_within_ten_percent(make: Make) -> None:
    proc, _ = make(flush_interval=0.5)
    values = [proc._jittered_interval() for _ in range(2000)]
    assert all(0.5 <= v <= 0.55 for v in values), (min(values), max(values))
    # Jitter really spreads the heartbeats (it is not a constant).
    assert max(values) - min(values) > 0.04


def test_full_batch_is_exported_early(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30, max_export_batch_size=5)
    emit(logger, 4)
    time.sleep(0.3)
    assert receiver.requests() == []  # 4 < batch size: waits for the 30 s heartbeat
    start = time.monotonic()
    emit(logger, 3, start=4)  # the 5th completes a batch
    receiver.wait_for(5, timeout=2)
    assert time.monotonic() - start < 1.0
    time.sleep(0.2)
    # Exactly one full batch went out; the 2 extra wait for the heartbeat.
    assert [r["records"] for r in receiver.requests()] == [5]
    assert indexes(receiver.events()) == [0, 1, 2, 3, 4]
    s = accounted(proc)
    assert (s["exported"], s["queued"]) == (5, 2)


def test_first_event_of_a_new_name_is_delivered_early_once(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30, first_seen_delay=0.2)
    start = time.monotonic()
    emit(logger, 1, name="login")
    receiver.wait_for(1, timeout=1.0)
    took = time.monotonic() - start
    assert 0.2 <= took < 1.0, took

    emit(logger, 1, name="login", start=1)  # a name already seen: no early export
    time.sleep(0.6)
    assert len(receiver.requests()) == 1
    assert proc.stats()["queued"] == 1

    start = time.monotonic()
    emit(logger, 1, name="signup", start=2)  # a new name: early export again, taking the queued login along
    receiver.wait_for(3, timeout=1.0)
    assert time.monotonic() - start < 1.0
    assert [(e["name"], e["attributes"]["i"]) for e in receiver.events()] == [
        ("login", 0),
        ("login", 1),
        ("signup", 2),
    ]
    assert [r["records"] for r in receiver.requests()] == [1, 2]
    accounted(proc)


# -- queue bound ---------------------------------------------------------------------------------


def test_queue_bound_drops_the_oldest(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30, max_queue_size=10, max_export_batch_size=10)
    receiver.stop()
    emit(logger, 25)
    s = accounted(proc)
    assert s["dropped"]["queue_full"] == 15
    assert (s["tracked"], s["queued"], s["exported"]) == (25, 10, 0)

    receiver.start()
    assert proc.flush(timeout=5) is True
    assert indexes(receiver.events()) == list(range(15, 25))
    s = accounted(proc)
    assert (s["exported"], s["queued"], s["dropped"]["queue_full"]) == (10, 0, 15)


# -- retries -------------------------------------------------------------------------------------


def test_retry_on_503_delivers_each_event_once(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=0.2)
    receiver.fail_next(503, times=2)
    emit(logger, 5)
    receiver.wait_for(5, timeout=5)
    assert proc.flush(timeout=2) is True
    assert statuses(receiver) == [503, 503, 200]
    assert indexes(receiver.events()) == [0, 1, 2, 3, 4]  # no duplicates
    s = accounted(proc)
    assert (s["exported"], s["retries"], s["queued"]) == (5, 2, 0)
    assert s["last_export_error"] is None  # cleared by the success that followed


def test_retry_after_is_honoured(make: Make, receiver: Receiver) -> None:
    # flush_interval caps the backoff at 0.2 s: only Retry-After can hold the retry back for 1 s.
    proc, logger = make(flush_interval=0.2)
    receiver.fail_next(429, retry_after="1")
    emit(logger, 3)
    assert proc.flush(timeout=2) is False  # answered 429, still queued
    answered = time.monotonic()  # the 429 answer arrived before this point
    assert statuses(receiver) == [429]
    receiver.wait_for(3, timeout=4)
    waited = time.monotonic() - answered
    assert 0.95 <= waited < 2.5, waited
    assert proc.flush(timeout=2) is True  # the receiver stores before it answers: let the answer land
    assert statuses(receiver) == [429, 200]
    s = accounted(proc)
    assert (s["exported"], s["retries"]) == (3, 1)


def test_connection_refused_keeps_events_queued_until_the_backend_returns(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=0.2)
    receiver.stop()
    emit(logger, 4)
    assert proc.flush(timeout=2) is False
    s = accounted(proc)
    assert (s["queued"], s["exported"]) == (4, 0)
    assert s["retries"] >= 1
    assert "ConnectionError" in s["last_export_error"]

    receiver.start()
    receiver.wait_for(4, timeout=3)  # the next heartbeat retries on its own
    assert proc.flush(timeout=2) is True
    assert indexes(receiver.events()) == [0, 1, 2, 3]
    s = accounted(proc)
    assert (s["queued"], s["exported"], sum(s["dropped"].values())) == (0, 4, 0)


def test_recovery_is_probed_within_seconds_not_at_the_heartbeat(make: Make, receiver: Receiver) -> None:
    # A 60 s heartbeat: before, a failed export waited for the next one (and the backoff was capped at it).
    proc, logger = make(flush_interval=60)
    receiver.stop()
    emit(logger, 4)
    assert proc.flush(timeout=2) is False
    assert proc.stats()["last_export_error"] is not None
    receiver.start()
    receiver.wait_for(4, timeout=8)  # the next probe, at most MAX_RETRY_DELAY (5 s) later
    wait_until(lambda: proc.stats()["queued"] == 0)
    s = accounted(proc)
    assert (s["exported"], s["last_export_error"]) == (4, None)  # and the error is cleared


def test_after_recovery_everything_that_waited_goes_at_once(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=60, max_export_batch_size=10, max_queue_size=100)
    receiver.stop()
    emit(logger, 3)
    assert proc.flush(timeout=2) is False
    emit(logger, 42, start=3)  # 45 waiting: 4 full batches and a partial one
    receiver.start()
    receiver.wait_for(45, timeout=8)  # one probe, then the rest in the same cycle
    # Batches may arrive in any order (max_concurrent_exports): each event once, carrying its uid.
    assert sorted(indexes(receiver.events())) == list(range(45))


def test_connection_failures_warn_once_per_interval_with_counts(
    make: Make, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqreen_otel")
    proc, logger = make(flush_interval=30)
    receiver.stop()
    emit(logger, 4)
    for _ in range(3):  # three attempts, each failing
        assert proc.flush(timeout=2) is False
    assert proc.stats()["retries"] == 3
    failing = [r for r in caplog.records if r.name == "sqreen_otel" and r.levelno >= logging.INFO]
    assert [r.levelno for r in failing] == [logging.WARNING]  # once, not per attempt, and not at INFO
    message = failing[0].getMessage()
    assert message.startswith(f"sqreen_otel cannot export events to {receiver.endpoint}: 1 failed attempt(s)")
    assert "4 event(s) waiting" in message and "ConnectionError" in message


def test_slow_response_beyond_the_timeout_is_retried(make: Make, receiver: Receiver) -> None:
    # The client gives up after 0.5 s and retries; the receiver still accepts the first request after its
    # 1.5 s delay, so the backend ends up with every event twice. That is OTLP's at-least-once delivery:
    # a client cannot know whether a timed-out request was processed.
    proc, logger = make(flush_interval=0.2, timeout=0.5)
    receiver.delay_next(1.5)
    emit(logger, 3)
    start = time.monotonic()
    assert proc.flush(timeout=0.7) is False
    assert time.monotonic() - start < 1.0
    receiver.wait_for(6, timeout=5)
    assert proc.flush(timeout=2) is True
    assert Counter(indexes(receiver.events())) == {0: 2, 1: 2, 2: 2}
    # Both copies of an event carry the same log.record.uid, so the backend can keep one.
    assert len(receiver.uids()) == 3 and receiver.duplicates() == 3
    s = accounted(proc)
    assert (s["exported"], s["queued"], s["uncertain"], sum(s["dropped"].values())) == (3, 0, 0, 0)
    assert s["resent"] == 3  # exported after an attempt that may have been stored: counted, not dropped
    assert s["retries"] >= 1
    assert s["last_export_error"] is None


# -- permanent failures --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_permanent_failure_drops_the_batch(
    make: Make, receiver: Receiver, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.INFO, logger="sqreen_otel")
    proc, logger = make(flush_interval=0.2)
    receiver.fail_next(status)
    emit(logger, 3)
    proc.flush(timeout=2)
    s = accounted(proc)
    assert (s["dropped"]["rejected"], s["exported"], s["queued"], s["retries"]) == (3, 0, 0, 0)
    errors = [r for r in caplog.records if r.name == "sqreen_otel" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"HTTP {status}" in errors[0].getMessage()
    assert "3 event(s) dropped" in errors[0].getMessage()

    emit(logger, 2, start=3)  # the pipeline keeps working
    assert proc.flush(timeout=2) is True
    assert indexes(receiver.events()) == [3, 4]
    s = accounted(proc)
    assert (s["dropped"]["rejected"], s["exported"]) == (3, 2)


def test_413_splits_the_batch(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30)
    receiver.fail_next(413)
    emit(logger, 6)
    assert proc.flush(timeout=3) is True
    assert statuses(receiver) == [413, 200, 200]
    assert [r["records"] for r in receiver.requests()] == [6, 3, 3]
    assert indexes(receiver.events()) == list(range(6))
    s = accounted(proc)
    assert (s["exported"], sum(s["dropped"].values())) == (6, 0)


def test_413_on_a_single_event_drops_only_that_event(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30)
    receiver.fail_next(413, times=2)  # the pair, then the first alone: it cannot be split further
    emit(logger, 2)
    assert proc.flush(timeout=3) is True
    assert [(r["status"], r["records"]) for r in receiver.requests()] == [(413, 2), (413, 1), (200, 1)]
    assert indexes(receiver.events()) == [1]
    s = accounted(proc)
    assert (s["exported"], s["dropped"]["rejected"], s["queued"]) == (1, 1, 0)


def test_partial_success_counts_the_rejected(make: Make, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sqreen_otel")
    proc, logger = make(flush_interval=30)
    receiver.partial_success_next(rejected=2)
    emit(logger, 5)
    assert proc.flush(timeout=2) is True
    assert len(receiver.events()) == 3
    s = accounted(proc)
    assert (s["exported"], s["dropped"]["rejected"], s["queued"]) == (3, 2, 0)
    assert s["last_export_error"] == "rejected by test"
    assert any("rejected 2 of 5" in r.getMessage() for r in caplog.records)


# -- expiry and drop reporting -------------------------------------------------------------------


def test_events_older_than_max_event_age_expire(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30, max_event_age=0.5)
    receiver.stop()
    emit(logger, 4)
    assert proc.flush(timeout=1) is False
    time.sleep(0.6)
    assert proc.flush(timeout=1) is True  # the cycle expires them: nothing is left to send
    s = accounted(proc)
    assert (s["dropped"]["expired"], s["queued"], s["exported"]) == (4, 0, 0)

    receiver.start()
    emit(logger, 1, start=100)
    assert proc.flush(timeout=2) is True
    assert indexes(receiver.events()) == [100]  # the expired ones never arrive
    s = accounted(proc)
    assert (s["dropped"]["expired"], s["exported"]) == (4, 1)


def test_drop_warning_at_most_once_per_interval(
    make: Make, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sqreen_otel")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "since the last report" in r.getMessage()]

    proc, logger = make(flush_interval=1.0, max_queue_size=5, max_export_batch_size=5)
    emit(logger, 10)
    assert proc.flush(timeout=2) is True
    first = time.monotonic()
    assert warnings() == [
        "sqreen_otel dropped 5 event(s) since the last report; "
        "totals by reason: queue_full=5, expired=0, rejected=0, shutdown=0"
    ]

    emit(logger, 10, start=10)  # 5 more dropped within the same interval: no second warning yet
    assert proc.flush(timeout=2) is True
    assert time.monotonic() - first < 1.0  # (so the check above really was within the interval)
    assert len(warnings()) == 1

    time.sleep(max(0.0, first + 1.05 - time.monotonic()))
    emit(logger, 1, start=20)
    assert proc.flush(timeout=2) is True
    assert warnings()[1:] == [
        "sqreen_otel dropped 5 event(s) since the last report; "
        "totals by reason: queue_full=10, expired=0, rejected=0, shutdown=0"
    ]
    s = accounted(proc)
    assert (s["exported"], s["dropped"]["queue_full"]) == (11, 10)


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_emits_from_threads_are_all_accounted(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=0.02, max_queue_size=50, max_export_batch_size=20)
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(500):
            logger.emit(event_name="evt", attributes={"t": t, "i": i})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert proc.flush(timeout=10) is True
    s = accounted(proc)
    assert s["tracked"] == 4000
    assert s["queued"] == 0
    assert s["exported"] + sum(s["dropped"].values()) == 4000
    assert s["dropped"]["queue_full"] == sum(s["dropped"].values())  # only the bound drops here
    events = receiver.events()
    assert len(events) == s["exported"]
    keys = [(e["attributes"]["t"], e["attributes"]["i"]) for e in events]
    assert len(set(keys)) == len(keys)  # no event delivered twice


def test_track_from_many_asyncio_tasks(make: Make, receiver: Receiver, use_runtime: Callable[[Any], None]) -> None:
    proc, logger = make(flush_interval=0.05, scope="sqreen_otel")
    use_runtime(logger)

    async def request(k: int) -> None:
        # Each task is its own request: the user it identifies must not leak into another task's events.
        sqreen_otel.identify({"user_id": f"u{k}"})
        for step in range(3):
            await asyncio.sleep(0)
            assert sqreen_otel.track("async_evt", {"properties": {"k": k, "step": step}}) is True

    async def main() -> None:
        await asyncio.gather(*(request(k) for k in range(300)))

    asyncio.run(main())
    assert proc.flush(timeout=5) is True
    events = receiver.events()
    assert len(events) == 900
    pairs = Counter((e["attributes"]["sqreen.properties.k"], e["attributes"]["sqreen.properties.step"]) for e in events)
    assert set(pairs.values()) == {1} and len(pairs) == 900
    for e in events:
        assert e["attributes"]["sqreen.user.user_id"] == f"u{e['attributes']['sqreen.properties.k']}"
    s = accounted(proc)
    assert (s["tracked"], s["exported"]) == (900, 900)


def test_track_never_waits_on_the_network(make: Make, receiver: Receiver, use_runtime: Callable[[Any], None]) -> None:
    proc, logger = make(flush_interval=0.2, first_seen_delay=0.0, timeout=5, scope="sqreen_otel")
    use_runtime(logger)
    receiver.delay_next(2, times=50)
    assert sqreen_otel.track("slow_backend", {"properties": {"i": -1}})
    wait_until(lambda: receiver.pending_faults() == 49)  # the export thread now waits on a 2 s answer

    start = time.perf_counter()
    for i in range(200):
        sqreen_otel.track("slow_backend", {"properties": {"i": i}})
    took = time.perf_counter() - start
    assert took < 0.5, took
    assert receiver.pending_faults() == 49  # still the same request in flight: nothing else was sent
    s = accounted(proc)
    assert s["tracked"] == 201 and s["exported"] == 0

    # Let the backend come back healthy: everything is delivered, once.
    receiver.reset_faults()
    receiver.stop()  # cuts the delayed request without an answer
    receiver.start()
    assert proc.flush(timeout=5) is True
    got = sorted(e["attributes"]["sqreen.properties.i"] for e in receiver.events())
    assert got == list(range(-1, 200))
    s = accounted(proc)
    assert (s["exported"], s["queued"]) == (201, 0)


# -- shutdown and flush --------------------------------------------------------------------------


def test_shutdown_flushes_within_the_timeout(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30)
    emit(logger, 5)
    start = time.monotonic()
    proc.shutdown(timeout=2)
    assert time.monotonic() - start < 2.0
    assert indexes(receiver.events()) == [0, 1, 2, 3, 4]
    s = accounted(proc)
    assert (s["exported"], s["queued"], s["dropped"]["shutdown"]) == (5, 0, 0)


def test_shutdown_with_the_backend_down_counts_the_rest_as_shutdown(
    make: Make, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sqreen_otel")
    proc, logger = make(flush_interval=30)
    receiver.stop()
    emit(logger, 5)
    start = time.monotonic()
    proc.shutdown(timeout=0.5)
    assert time.monotonic() - start < 2.0
    s = accounted(proc)
    assert (s["dropped"]["shutdown"], s["queued"], s["exported"]) == (5, 0, 0)
    assert any("5 event(s) could not be delivered" in r.getMessage() for r in caplog.records)

    emit(logger, 1, start=5)  # after shutdown: counted, never queued
    s = accounted(proc)
    assert (s["tracked"], s["dropped"]["shutdown"], s["queued"]) == (6, 6, 0)
    receiver.start()
    assert proc.flush(timeout=1) is True
    time.sleep(0.1)
    assert receiver.requests() == []


def test_shutdown_while_a_batch_is_in_flight_accounts_for_it(make: Make, receiver: Receiver) -> None:
    # The batch is on the wire when shutdown() gives up; when that request then fails, its events must end
    # in dropped["shutdown"], not stay "queued" forever in a processor that will never send again.
    proc, logger = make(flush_interval=30, timeout=5)
    receiver.delay_next(3)
    emit(logger, 3)
    assert proc.flush(timeout=0.2) is False
    wait_until(lambda: receiver.pending_faults() == 0)
    proc.shutdown(timeout=0.2)
    receiver.stop()  # the in-flight request fails
    thread = proc._thread
    assert thread is not None
    thread.join(timeout=3)
    assert not thread.is_alive()
    s = accounted(proc)
    # The request reached the backend and the connection was cut before an answer: it may have stored
    # them, so they are "uncertain", not dropped.
    assert (s["queued"], s["exported"], s["uncertain"], s["dropped"]["shutdown"]) == (0, 0, 3, 0)


def test_flush_reports_whether_the_queue_was_delivered(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30, timeout=5)
    emit(logger, 3)
    assert proc.flush(timeout=2) is True
    assert len(receiver.events()) == 3

    receiver.delay_next(3)  # a backend that hangs: flush must give up at its timeout
    emit(logger, 2, start=3)
    start = time.monotonic()
    assert proc.flush(timeout=0.5) is False
    assert 0.45 <= time.monotonic() - start < 1.0
    accounted(proc)

    receiver.stop()  # a backend that is down
    receiver.start()
    receiver.stop()
    emit(logger, 1, start=5)
    start = time.monotonic()
    assert proc.flush(timeout=1) is False
    assert time.monotonic() - start < 1.5
    s = accounted(proc)
    assert s["queued"] == 3


# -- fork ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_does_not_resend_the_parents_queue(make: Make, receiver: Receiver) -> None:
    proc, logger = make(flush_interval=30)
    parent = os.getpid()
    emit(logger, 5, pid=parent)
    assert proc.stats()["queued"] == 5

    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            if proc.stats()["queued"] == 0:
                emit(logger, 3, start=100, pid=os.getpid())
                ok = proc.flush(timeout=5)
                s = proc.stats()
                code = 0 if ok and (s["tracked"], s["exported"], s["queued"]) == (3, 3, 0) else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)

    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert proc.flush(timeout=5) is True
    events = receiver.events()
    by_pid = Counter(e["attributes"]["pid"] for e in events)
    assert by_pid == {parent: 5, pid: 3}
    assert sorted(indexes(events)) == [0, 1, 2, 3, 4, 100, 101, 102]
    s = accounted(proc)
    assert (s["tracked"], s["exported"], s["queued"]) == (5, 5, 0)


# -- our export is not traced --------------------------------------------------------------------


def test_export_does_not_create_client_spans(make: Make, receiver: Receiver) -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        proc, logger = make(flush_interval=30)
        emit(logger, 3)
        assert proc.flush(timeout=2) is True
        assert len(receiver.events()) == 3
        assert spans.get_finished_spans() == ()

        # The instrumentation is live: an application's own request to the same endpoint is traced.
        assert requests.get(receiver.endpoint, timeout=2).status_code == 405
        finished = spans.get_finished_spans()
        assert len(finished) == 1
        assert finished[0].attributes is not None
        assert "GET" in finished[0].name
    finally:
        instrumentor.uninstrument()
