"""What the explorer acknowledges is stored, once (issue 8, holes 7, 8 and 10 on the explorer's side).

A real ``sqreen-otel serve`` process gets real OTLP over HTTP and real faults: SIGKILL under load, a full
disk (a small tmpfs, when this test may mount one; else SQLite's page limit through a database that is
already full), a file system turned read-only under it, replays of the same batch. After each fault the
database is read back to compare with what got a 2xx.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from explorer_process import CLI, ENV, Served, free_port, http, serve_process
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from sqreen_otel.explorer.store import MIGRATIONS

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def batch(name: str, uids: list[str | None], filler: int = 0) -> bytes:
    """An OTLP request with one record per uid (``None``: a record without ``log.record.uid``)."""
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add()
    for i, uid in enumerate(uids):
        record = LogRecord(event_name=name, time_unix_nano=1_700_000_000_000_000_000 + i)
        if uid is not None:
            record.attributes.append(KeyValue(key="log.record.uid", value=AnyValue(string_value=uid)))
        if filler:
            record.attributes.append(KeyValue(key="sqreen.properties.pad", value=AnyValue(string_value="p" * filler)))
        records.log_records.append(record)
    return request.SerializeToString()


def uids(n: int) -> list[str | None]:
    return [str(uuid.uuid4()) for _ in range(n)]


def stored_uids(db: Path, name: str | None = None) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sql = "SELECT json_extract(attributes, '$.\"log.record.uid\"') FROM events"
        rows = conn.execute(sql + (" WHERE name = ?" if name else ""), (name,) if name else ())
        return [row[0] for row in rows]


def total(url: str) -> int:
    return sum(int(n["count"]) for n in http.get(url + "/api/summary", timeout=10).json()["names"])


# -- exactly once ----------------------------------------------------------------------------------


def test_a_replayed_batch_is_stored_once(tmp_path: Path) -> None:
    with serve_process(tmp_path) as served:
        ids = uids(300)
        body = batch("replayed", [*ids, None])
        for _ in range(3):  # a retry after a timeout, then a replay from a spool
            assert http.post(served.url + "/v1/logs", data=body, headers=PROTOBUF, timeout=30).status_code == 200
        halves = batch("replayed", ids[:150] + uids(10))  # a batch that overlaps with what is stored
        assert http.post(served.url + "/v1/logs", data=halves, headers=PROTOBUF, timeout=30).status_code == 200
        assert total(served.url) == 300 + 3 + 10  # the records without an id are stored each time
    stored = [u for u in stored_uids(tmp_path / "events.sqlite") if u is not None]
    assert len(stored) == len(set(stored)) == 310


# -- acknowledged means committed ------------------------------------------------------------------


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    acked: list[list[str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(served: Served) -> None:
        session = requests.Session()
        session.trust_env = False
        while not stop.is_set():
            ids = [str(u) for u in uids(512)]
            try:
                response = session.post(served.url + "/v1/logs", data=batch("killed", list(ids)), headers=PROTOBUF,
                                        timeout=10)  # fmt: skip
            except requests.RequestException:
                return  # the server is gone
            if response.status_code == 200:
                with lock:
                    acked.append(ids)

    with serve_process(tmp_path) as served:
        threads = [threading.Thread(target=sender, args=(served,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        served.proc.send_signal(signal.SIGKILL)  # mid-stream: requests are being decoded and committed
        served.proc.wait(10)
        stop.set()
        for thread in threads:
            thread.join(20)
    assert len(acked) >= 20
    stored = set(stored_uids(tmp_path / "events.sqlite", "killed"))
    missing = [uid for ids in acked for uid in ids if uid not in stored]
    assert missing == [], f"{len(missing)} acknowledged event(s) lost of {sum(map(len, acked))}"


# -- storage failures ------------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(tmp_path: Path, size_kib: int) -> Iterator[Path | None]:
    """A tmpfs of ``size_kib`` at a new directory, or ``None`` when this process may not mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        yield None
        return
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount)],
                            capture_output=True, timeout=30)  # fmt: skip
    if result.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_a_full_disk_answers_503_until_space_comes_back(tmp_path: Path) -> None:
    with small_filesystem(tmp_path, 4096) as mount:
        if mount is None:
            pytest.skip("needs to mount a small tmpfs (root)")
        ballast = mount / "ballast"
        ballast.write_bytes(os.urandom(2 * 1024 * 1024))  # freed later: "the disk has space again"
        with serve_process(tmp_path, db=mount / "events.sqlite") as served:
            acked, refused = 0, None
            for _ in range(200):
                response = http.post(served.url + "/v1/logs", data=batch("filling", uids(100), filler=500),
                                     headers=PROTOBUF, timeout=30)  # fmt: skip
                if response.status_code == 200:
                    acked += 100
                    continue
                refused = response
                break
            assert refused is not None, "the disk never filled"
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
            assert "full" in refused.text
            again = http.post(served.url + "/v1/logs", data=batch("filling", uids(100), filler=500),
                              headers=PROTOBUF, timeout=30)  # fmt: skip
            assert again.status_code == 503  # still full: still refused, never acknowledged and dropped
            assert total(served.url) == acked  # reads still work, and show exactly what was acknowledged
            ballast.unlink()
            after = http.post(served.url + "/v1/logs", data=batch("after", uids(10)), headers=PROTOBUF, timeout=30)
            assert after.status_code == 200
            assert total(served.url) == acked + 10
            log = served.log()
        assert "ERROR sqreen_otel.explorer: cannot store events" in log and "full" in log, log[-2000:]
        assert "works again" in log


def test_serve_refuses_to_start_on_a_read_only_file_system(tmp_path: Path) -> None:
    with small_filesystem(tmp_path, 8192) as mount:
        if mount is None:
            pytest.skip("needs to mount a small tmpfs (root)")
        db = mount / "events.sqlite"
        with serve_process(tmp_path, db=db) as served:
            assert http.post(served.url + "/v1/logs", data=batch("before", uids(5)), headers=PROTOBUF).ok
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, timeout=30)
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?immutable=1", uri=True)) as conn:
                assert conn.execute("SELECT count(*) FROM events").fetchone() == (5,)  # it reads fine
            result = subprocess.run([CLI, "serve", "--db", str(db), "--port", str(free_port())], capture_output=True,
                                    text=True, env=ENV, timeout=30)  # fmt: skip
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "cannot write to the database" in result.stderr or "cannot open the database" in result.stderr
    assert "Event Explorer on" not in result.stdout


def test_serve_refuses_a_read_only_database_file(tmp_path: Path) -> None:
    """A database file the server may read but not write (as root: without the capability to ignore modes)."""
    command = [CLI, "serve", "--db", str(tmp_path / "ro.sqlite"), "--port", str(free_port())]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root ignores file modes, and util-linux's setpriv is missing to drop that")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    with contextlib.closing(sqlite3.connect(tmp_path / "ro.sqlite")) as conn:  # an explorer database, version 1
        for statement in MIGRATIONS[0]:
            conn.execute(str(statement))
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    os.chmod(tmp_path / "ro.sqlite", 0o444)  # the directory stays writable: only the file is read-only
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "the database" in result.stderr and "readonly" in result.stderr, result.stderr
    assert "Event Explorer on" not in result.stdout
