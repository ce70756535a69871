"""max_concurrent_exports against a real Receiver on loopback that counts the requests it is answering."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider

from sqreen_otel.exporter import OTLPEventExporter
from sqreen_otel.ids import UID, new_uid
from sqreen_otel.processor import EventBatchProcessor
from sqreen_otel.receiver import Receiver
from sqreen_otel.settings import Settings
from sqreen_otel.spool import Spool

Make = Callable[..., tuple[EventBatchProcessor, Any]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.release()
    rx.stop()


@pytest.fixture
def make(receiver: Receiver) -> Iterator[Make]:
    made: list[EventBatchProcessor] = []

    def build(*, timeout: float = 5.0, **kwargs: Any) -> tuple[EventBatchProcessor, Any]:
        kwargs.setdefault("first_seen_delay", None)
        kwargs.setdefault("flush_interval", 60.0)
        kwargs.setdefault("max_export_batch_size", 10)
        provider = LoggerProvider(shutdown_on_exit=False)
        proc = EventBatchProcessor(OTLPEventExporter(receiver.endpoint, timeout=timeout), **kwargs)
        provider.add_log_record_processor(proc)
        made.append(proc)
        return proc, provider.get_logger("test")

    yield build
    for proc in made:
        proc.shutdown(timeout=0.5)
        assert accounted(proc)["queued"] == 0


def emit(logger: Any, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        logger.emit(event_name="evt", attributes={"i": i, UID: new_uid()})


def accounted(proc: EventBatchProcessor) -> dict[str, Any]:
    s = proc.stats()
    assert s["tracked"] == s["exported"] + s["uncertain"] + sum(s["dropped"].values()) + s["queued"], s
    return s


def arrived(receiver: Receiver) -> list[int]:
    return sorted(e["attributes"]["i"] for e in receiver.events())


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize(("setting", "expected"), [(None, 2), (1, 1), (3, 3)])
def test_requests_in_flight_at_once(make: Make, receiver: Receiver, setting: int | None, expected: int) -> None:
    kwargs = {} if setting is None else {"max_concurrent_exports": setting}
    proc, logger = make(**kwargs)
    receiver.hold_next(times=5)  # every request waits for release(): the client cannot pipeline by luck
    emit(logger, 50)  # five full batches
    wait_until(lambda: receiver.in_flight == expected)
    time.sleep(0.3)  # room for one request too many to show up (none may)
    assert receiver.max_in_flight == expected
    assert proc.stats()["queued"] == 50  # held requests are still counted, in flight
    receiver.release()
    assert proc.flush(timeout=10) is True
    assert arrived(receiver) == list(range(50))
    assert receiver.max_in_flight == expected
    s = accounted(proc)
    assert (s["exported"], s["queued"], s["retries"]) == (50, 0, 0)


def test_flush_waits_for_every_request_in_flight(make: Make, receiver: Receiver) -> None:
    proc, logger = make()
    receiver.hold_next(times=2)
    emit(logger, 20)
    wait_until(lambda: receiver.in_flight == 2)
    assert proc.flush(timeout=0.5) is False  # both requests are unanswered: not acknowledged yet
    receiver.release()
    assert proc.flush(timeout=10) is True
    assert accounted(proc)["exported"] == 20


def test_a_failure_next_to_a_success_in_flight_is_retried_and_counted_once(make: Make, receiver: Receiver) -> None:
    proc, logger = make()
    receiver.fail_next(503, retry_after="0")  # the first request fails while the second is sent
    emit(logger, 30)
    wait_until(lambda: proc.stats()["exported"] == 30, timeout=15)  # the failed batch is retried within seconds
    assert arrived(receiver) == list(range(30))
    assert receiver.duplicates() == 0
    s = accounted(proc)
    assert (s["exported"], s["retries"], s["uncertain"], s["resent"]) == (30, 1, 0, 0)
    assert s["last_export_error"] is None


def test_a_timeout_in_flight_counts_as_resent_not_lost(make: Make, receiver: Receiver) -> None:
    # The first request is answered after the client gave up (maybe delivered); the rest go meanwhile.
    proc, logger = make(timeout=0.5)
    receiver.delay_next(1.5)
    emit(logger, 30)
    wait_until(lambda: proc.stats()["exported"] == 30, timeout=15)  # retried within seconds
    wait_until(lambda: len(receiver.events()) == 40)  # the late answer stored its batch too
    assert sorted(set(arrived(receiver))) == list(range(30))
    s = accounted(proc)
    assert (s["exported"], s["resent"], s["uncertain"]) == (30, 10, 0)
    assert receiver.duplicates() == 10  # the same log.record.uid twice: a backend dedupes them


def test_permanent_rejection_and_413_split_while_another_request_flies(make: Make, receiver: Receiver) -> None:
    proc, logger = make()
    receiver.fail_next(400)
    receiver.fail_next(413)
    emit(logger, 30)
    assert proc.flush(timeout=10) is True
    s = accounted(proc)
    assert (s["exported"], s["dropped"]["rejected"], s["queued"]) == (20, 10, 0)
    assert len(receiver.events()) == 20 and receiver.duplicates() == 0


def test_backend_down_with_a_spool_then_back(make: Make, receiver: Receiver, tmp_path: Any) -> None:
    proc, logger = make(spool=Spool(str(tmp_path), 1 << 20))
    receiver.fail_next(503, times=3, retry_after="0")
    emit(logger, 40)
    wait_until(lambda: proc.stats()["exported"] == 40, timeout=20)  # failed batches went to disk, then sent
    assert arrived(receiver) == list(range(40))
    s = accounted(proc)
    assert (s["exported"], s["queued"], s["spool"]["records"]) == (40, 0, 0)


def test_fork_child_gets_its_own_senders(make: Make, receiver: Receiver) -> None:
    import os

    proc, logger = make()
    emit(logger, 20)
    assert proc.flush(timeout=10) is True
    pid = os.fork()
    if pid == 0:  # the child: new pool, new sessions, nothing of the parent's queue
        code = 1
        try:
            emit(logger, 20, start=100)
            code = 0 if proc.flush(timeout=10) and proc.stats()["exported"] == 20 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert arrived(receiver) == list(range(20)) + list(range(100, 120))


def test_setting_is_validated_naming_it() -> None:
    assert Settings.load({}).max_concurrent_exports == 2
    assert Settings.load({"SQREEN_OTEL_MAX_CONCURRENT_EXPORTS": "4"}).max_concurrent_exports == 4
    with pytest.raises(ValueError, match="SQREEN_OTEL_MAX_CONCURRENT_EXPORTS must be 1 to 8"):
        Settings.load({"SQREEN_OTEL_MAX_CONCURRENT_EXPORTS": "9"})
    with pytest.raises(ValueError, match="max_concurrent_exports must be 1 to 8"):
        Settings.load({}, max_concurrent_exports=0)
    with pytest.raises(ValueError, match="max_concurrent_exports must be an integer"):
        Settings.load({}, max_concurrent_exports="two")
    with pytest.raises(ValueError, match="max_concurrent_exports must be 1 to 8"):
        EventBatchProcessor(OTLPEventExporter("http://127.0.0.1:9/v1/logs"), max_concurrent_exports=9)
