"""Several ``sqreen-otel serve`` processes on one PostgreSQL database, as behind a load balancer.

Real processes, real HTTP, a real PostgreSQL server: ingest through any replica lands once (the
same records sent to two replicas are stored once), every replica serves every event, and a block
made through one replica is in the actions feed of the other.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from explorer_process import CLI, ENV, http, serve
from postgres_server import Server

TOKEN = "replica-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def pg() -> Iterator[Server]:
    with Server() as server:
        yield server


@pytest.fixture
def replicas(pg: Server, tmp_path: Path) -> Iterator[tuple[str, str]]:
    url = pg.new_url()
    with serve(tmp_path, "--db", url, "--token", TOKEN) as one, serve(tmp_path, "--db", url, "--token", TOKEN) as two:
        yield one, two


def send(explorer: str, run: str, seqs: range) -> None:
    """OpenTelemetry Python's exporter, straight to one replica: records with a ``log.record.uid`` each."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(explorer + "/v1/logs", headers=AUTH)))
    logger = provider.get_logger("sqreen_otel")
    for seq in seqs:
        logger.emit(
            event_name="sq.sdk.users.login",
            timestamp=1_800_000_000_000_000_000 + seq,
            attributes={"sqreen.properties.run": run, "sqreen.properties.seq": seq, "log.record.uid": f"{run}-{seq}"},
        )
    assert provider.force_flush(20_000)
    provider.shutdown()


def stored(explorer: str, run: str) -> list[dict[str, Any]]:
    page = http.get(explorer + "/api/events", params={"prop": f"run={run}", "limit": "500"}, headers=AUTH, timeout=10)
    page.raise_for_status()
    events: list[dict[str, Any]] = page.json()["events"]
    return events


def test_ingest_through_any_replica_lands_once_and_is_served_by_all(replicas: tuple[str, str]) -> None:
    one, two = replicas
    run = uuid.uuid4().hex[:12]
    send(one, run, range(0, 150))
    send(two, run, range(100, 250))  # 100-149 through both: a retry that went to another replica
    for replica in (one, two):
        events = stored(replica, run)
        assert sorted(e["attributes"]["sqreen.properties.seq"] for e in events) == list(range(250))
    ids = sorted(e["id"] for e in stored(one, run))
    assert ids == list(range(ids[0], ids[0] + 250))  # one id sequence across replicas, no gaps
    summary = http.get(two + "/api/summary", headers=AUTH, timeout=10).json()["names"]
    assert [(n["name"], n["count"]) for n in summary] == [("sq.sdk.users.login", 250)]
    histogram = http.get(one + "/api/histogram", params={"prop": f"run={run}"}, headers=AUTH, timeout=10).json()
    assert sum(histogram["counts"]) == 250
    page = http.get(two + "/", params={"prop": f"run={run}"}, headers=AUTH, timeout=10)  # the UI, from PostgreSQL
    assert page.status_code == 200
    assert "sq.sdk.users.login" in page.text


def test_a_block_made_on_one_replica_is_served_by_the_other(replicas: tuple[str, str]) -> None:
    one, two = replicas
    result = subprocess.run(
        [CLI, "block-ip", "--url", one, "--token", TOKEN, "203.0.113.7", "--duration", "600"],
        capture_output=True, text=True, env=ENV, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    feed = http.get(two + "/v1/actions", headers=AUTH, timeout=10)
    assert feed.status_code == 200
    assert [(a["action"], a["ip"]) for a in feed.json()["actions"]] == [("block_ip", "203.0.113.7")]
    result = subprocess.run(
        [CLI, "unblock-ip", "--url", two, "--token", TOKEN, "203.0.113.7"], capture_output=True, text=True, env=ENV,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert http.get(one + "/v1/actions", headers=AUTH, timeout=10).json()["actions"] == []


def test_a_bad_postgresql_url_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "serve", "--port", "0", "--db", "postgresql://nobody@127.0.0.1:1/none"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot open the database postgresql://nobody@127.0.0.1:1/none" in result.stderr
