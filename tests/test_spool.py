"""The durable spool (``spool_dir``): real processes, a real Receiver, real files.

What a process could not export survives its exit (and a SIGKILL once spilled), is sent once by the
next process, by one process only when several share the directory, and damaged files are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord

import sqreen_otel
from sqreen_otel.exporter import OTLPEventExporter
from sqreen_otel.ids import UID, new_uid
from sqreen_otel.processor import EventBatchProcessor
from sqreen_otel.receiver import Receiver
from sqreen_otel.spool import Spool

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
DOWN = "http://127.0.0.1:9/v1/logs"  # discard port: connection refused

SCRIPT = """
import json, logging, os, signal, sys
import sqreen_otel
logging.basicConfig(level=logging.WARNING)
endpoint, spool, tag, count, mode = sys.argv[1:6]
sqreen_otel.configure(endpoint=endpoint, spool_dir=spool, flush_interval=60, first_seen_delay=None,
                      shutdown_timeout=1, max_export_batch_size=100)
for i in range(int(count)):
    sqreen_otel.track("spool_evt", {"properties": {"tag": tag, "i": i}})
ok = sqreen_otel.flush(5)
print(json.dumps({"flushed": ok, **sqreen_otel.stats()}), flush=True)
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))}
    env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return env


def launch(endpoint: str, spool: Path, tag: str, count: int, mode: str = "exit") -> subprocess.Popen[str]:
    args = [sys.executable, "-c", textwrap.dedent(SCRIPT), endpoint, str(spool), tag, str(count), mode]
    return subprocess.Popen(args, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], status: int = 0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    stats: dict[str, Any] = json.loads(out)
    return stats


def run(endpoint: str, spool: Path, tag: str, count: int, mode: str = "exit", status: int = 0) -> dict[str, Any]:
    return finish(launch(endpoint, spool, tag, count, mode), status)


def received(receiver: Receiver) -> dict[str, list[int]]:
    assert receiver.duplicates() == 0, "an event was sent twice"
    by_tag: dict[str, list[int]] = {}
    for event in receiver.events():
        attributes = event["attributes"]
        by_tag.setdefault(attributes["sqreen.properties.tag"], []).append(attributes["sqreen.properties.i"])
    return {tag: sorted(ids) for tag, ids in by_tag.items()}


class _Collect(LogRecordProcessor):
    def __init__(self) -> None:
        self.records: list[ReadableLogRecord] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        self.records.append(ReadableLogRecord(record, log_record.resource, log_record.instrumentation_scope))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def records(tag: str, indexes: range) -> list[ReadableLogRecord]:
    """SDK log records as our events look on the wire (with their uid)."""
    provider = LoggerProvider(shutdown_on_exit=False)
    collect = _Collect()
    provider.add_log_record_processor(collect)
    logger = provider.get_logger("sqreen_otel")
    for i in indexes:
        attributes = {"sqreen.properties.tag": tag, "sqreen.properties.i": i, UID: new_uid()}
        logger.emit(event_name="spool_evt", attributes=attributes)
    return collect.records


def segments(spool: Path) -> list[Path]:
    return sorted(spool.glob("seg-*"))


def test_events_survive_a_restart_and_are_sent_once(receiver: Receiver, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = run(DOWN, spool, "a", 1000)
    assert first["flushed"] is False
    # Nothing lost, nothing dropped: every event is on disk, counted as queued.
    assert (first["tracked"], first["exported"], first["queued"], sum(first["dropped"].values())) == (1000, 0, 1000, 0)
    assert first["spool"]["records"] == 1000
    assert len(segments(spool)) >= 10  # one per batch of 100 (more when a spill raced track())
    assert all(p.stat().st_mode & 0o077 == 0 for p in segments(spool))  # events hold PII: owner only

    second = run(receiver.endpoint, spool, "b", 0)
    assert second["flushed"] is True
    assert second["spool"]["recovered"] == 1000
    assert received(receiver) == {"a": list(range(1000))}
    assert segments(spool) == []
    assert [p.name for p in spool.iterdir()] == []  # no lock files left behind either

    third = run(receiver.endpoint, spool, "c", 0)  # nothing is sent a second time
    assert third["spool"]["recovered"] == 0
    assert received(receiver) == {"a": list(range(1000))}


def test_what_was_spilled_survives_sigkill(receiver: Receiver, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    killed = run(DOWN, spool, "k", 600, mode="kill", status=-9)
    assert killed["spool"]["records"] == 600  # the failed flush put them on disk before the kill
    run(receiver.endpoint, spool, "next", 0)
    assert received(receiver) == {"k": list(range(600))}


def test_processes_sharing_a_spool_send_each_event_once(receiver: Receiver, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    writers = [launch(DOWN, spool, f"w{n}", 300) for n in range(3)]  # at the same time, one directory
    for proc in writers:
        assert finish(proc)["spool"]["records"] == 300
    assert len(segments(spool)) >= 9
    # Two processes start together on the same leftovers: each segment is sent by one of them.
    readers = [launch(receiver.endpoint, spool, f"r{n}", 0) for n in range(2)]
    recovered = [finish(proc)["spool"]["recovered"] for proc in readers]
    assert sum(recovered) == 900
    assert received(receiver) == {f"w{n}": list(range(300)) for n in range(3)}
    assert segments(spool) == []


def test_a_live_process_keeps_its_own_segments(receiver: Receiver, tmp_path: Path) -> None:
    # The segments of a process still running are its own to send: another process leaves them alone.
    provider = LoggerProvider(shutdown_on_exit=False)
    spool_dir = tmp_path / "spool"
    proc = EventBatchProcessor(
        OTLPEventExporter(DOWN, timeout=1), flush_interval=60, first_seen_delay=None, spool=Spool(str(spool_dir), 10**7)
    )
    provider.add_log_record_processor(proc)
    logger = provider.get_logger("test")
    try:
        for i in range(50):
            logger.emit(event_name="live", attributes={"sqreen.properties.tag": "live", "sqreen.properties.i": i})
        assert proc.flush(3) is False
        assert proc.stats()["spool"]["records"] == 50
        other = run(receiver.endpoint, spool_dir, "other", 0)
        assert other["spool"]["recovered"] == 0
        assert receiver.events() == []
        assert len(segments(spool_dir)) == 1
    finally:
        proc.shutdown(timeout=0.5)
    # Gone now (its lock released): the next process sends them.
    run(receiver.endpoint, spool_dir, "next", 0)
    assert received(receiver) == {"live": list(range(50))}


def test_damaged_segments_are_skipped_counted_and_logged(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    writer = Spool(str(spool), 10**7)  # a process that wrote three batches of 100, then went away
    for batch in range(3):
        body = OTLPEventExporter.encode(records("d", range(batch * 100, batch * 100 + 100)))
        assert writer.write(body, 100, False)[0]
    writer.close()
    files = segments(spool)
    assert len(files) == 3
    files[0].write_bytes(files[0].read_bytes()[:-10])  # truncated (a crash mid-write, a full disk)
    files[1].write_bytes(b"SQS1" + b"\x00" * 12 + b"garbage")  # header fine, payload not
    (spool / f"seg-{'0' * 20}-{new_uid().replace('-', '')}-00000001").write_bytes(b"no")  # too short
    with caplog.at_level(logging.WARNING, logger="sqreen_otel"):
        processor = EventBatchProcessor(
            OTLPEventExporter(receiver.endpoint, timeout=2), first_seen_delay=None, spool=Spool(str(spool), 10**7)
        )
        assert processor.flush(5) is True
        stats = processor.stats()
        processor.shutdown()
    assert stats["spool"]["corrupt"] == 3
    assert stats["spool"]["recovered"] == 100
    assert received(receiver) == {"d": list(range(200, 300))}  # the intact third batch only
    skipped = [r.getMessage() for r in caplog.records if "skipped and removed" in r.getMessage()]
    assert len(skipped) == 3
    assert segments(spool) == []


def test_spool_is_bounded_in_bytes_and_every_event_accounted(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    bound = 60_000
    provider = LoggerProvider(shutdown_on_exit=False)
    proc = EventBatchProcessor(
        OTLPEventExporter(DOWN, timeout=1),
        flush_interval=60,
        first_seen_delay=None,
        max_export_batch_size=100,
        spool=Spool(str(spool_dir), bound),
    )
    provider.add_log_record_processor(proc)
    logger = provider.get_logger("test")
    try:
        for i in range(2000):
            logger.emit(event_name="bounded", attributes={"i": i, UID: new_uid(), "pad": "x" * 100})
        assert proc.flush(5) is False
        s = proc.stats()
    finally:
        proc.shutdown(timeout=0.5)
    on_disk = sum(p.stat().st_size for p in spool_dir.iterdir())
    assert 0 < on_disk <= bound
    assert s["spool"]["bytes"] == on_disk
    assert s["dropped"]["queue_full"] > 0  # the oldest segments made room
    assert s["queued"] == s["spool"]["records"] > 0
    assert s["tracked"] == s["exported"] + s["uncertain"] + sum(s["dropped"].values()) + s["queued"] == 2000


def test_unusable_spool_dir_is_refused_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"^spool_dir '.*a-file/spool' is not a writable directory"):
        sqreen_otel.configure(endpoint=DOWN, spool_dir=str(blocker / "spool"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_spools_as_its_own_owner(receiver: Receiver, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    provider = LoggerProvider(shutdown_on_exit=False)
    proc = EventBatchProcessor(
        OTLPEventExporter(DOWN, timeout=1), flush_interval=60, first_seen_delay=None, spool=Spool(str(spool_dir), 10**7)
    )
    provider.add_log_record_processor(proc)
    logger = provider.get_logger("test")

    def emit(tag: str, count: int) -> None:
        for i in range(count):
            logger.emit(
                event_name="fork", attributes={"sqreen.properties.tag": tag, "sqreen.properties.i": i, UID: new_uid()}
            )

    emit("parent", 20)
    pid = os.fork()
    if pid == 0:  # the child: starts empty, spools its own events under its own lock, exits hard
        try:
            emit("child", 30)
            proc.flush(3)
            status = 0 if proc.stats()["spool"]["records"] == 30 and proc.stats()["tracked"] == 30 else 1
        finally:
            os._exit(locals().get("status", 2))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    try:
        assert proc.flush(3) is False
        assert proc.stats()["spool"]["records"] == 20  # the parent's, not the child's
    finally:
        proc.shutdown(timeout=0.5)
    run(receiver.endpoint, spool_dir, "next", 0)
    assert received(receiver) == {"parent": list(range(20)), "child": list(range(30))}


def test_an_outage_longer_than_the_memory_queue_loses_nothing(receiver: Receiver, tmp_path: Path) -> None:
    # 2,000 events through a memory queue of 200 while the backend is down: the spool takes them all.
    endpoint = receiver.endpoint
    receiver.stop()
    provider = LoggerProvider(shutdown_on_exit=False)
    proc = EventBatchProcessor(
        OTLPEventExporter(endpoint, timeout=1),
        flush_interval=60,
        first_seen_delay=None,
        max_queue_size=200,
        max_export_batch_size=50,
        spool=Spool(str(tmp_path / "spool"), 10**8),
    )
    provider.add_log_record_processor(proc)
    logger = provider.get_logger("test")
    try:
        for chunk in range(20):  # an application tracking steadily during the outage
            for i in range(chunk * 100, chunk * 100 + 100):
                attributes = {"sqreen.properties.tag": "outage", "sqreen.properties.i": i, UID: new_uid()}
                logger.emit(event_name="outage", attributes=attributes)
            deadline = time.monotonic() + 10
            while proc.stats()["queued"] - proc.stats()["spool"]["records"] > 100:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        s = proc.stats()
        assert s["dropped"]["queue_full"] == 0 and s["tracked"] == 2000
        receiver.start()
        deadline = time.monotonic() + 15
        while proc.stats()["exported"] < 2000:  # the next probe (within 5 s) sends the spool
            assert time.monotonic() < deadline, proc.stats()
            time.sleep(0.05)
    finally:
        proc.shutdown(timeout=2)
    assert received(receiver) == {"outage": list(range(2000))}
    s = proc.stats()
    assert (s["exported"], sum(s["dropped"].values()), s["queued"], s["spool"]["records"]) == (2000, 0, 0, 0)
