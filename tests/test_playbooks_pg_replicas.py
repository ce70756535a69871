"""Playbooks on two ``sqreen-otel serve --playbooks`` replicas of one PostgreSQL database.

Real processes and a real PostgreSQL server: one replica (the holder of the advisory lock) evaluates,
the other waits. A credential-stuffing run is sent half to each; the leader is SIGKILLed mid-attack,
after it has evaluated its half (its cursor is past it) and before the threshold is reached. The
survivor takes the lock, rebuilds the windows from the stored events and fires: one alert, one
decision for the address, served by the survivor's ``/v1/actions``, one notification.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from explorer_process import ENV, Served, http, serve_process
from postgres_server import Server
from test_playbooks_live import Hooks, failed_logins, feed, post, wait_for
from test_servers import REPO

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

ATTACKER = "203.0.113.66"  # a documentation address: public, so blockable
PLAYBOOKS = str(REPO / "examples" / "playbooks.yaml")


@pytest.fixture(scope="module")
def pg() -> Iterator[Server]:
    with Server() as server:
        yield server


@dataclass
class Fleet:
    """Replicas of ``serve --playbooks examples/playbooks.yaml`` on one fresh schema, their webhooks received."""

    url: str
    hooks: Hooks
    start: Callable[[], Served]


@pytest.fixture
def fleet(pg: Server, tmp_path: Path) -> Iterator[Fleet]:
    url = pg.new_url()
    hooks = Hooks()
    env = {**ENV, "SLACK_WEBHOOK_URL": hooks.url, "SOC_WEBHOOK_URL": hooks.url, "SOC_HMAC_KEY": "k"}
    with contextlib.ExitStack() as replicas:

        def start() -> Served:
            replica = serve_process(tmp_path, "--playbooks", PLAYBOOKS, db=url, env=env)  # type: ignore[arg-type]
            return replicas.enter_context(replica)

        yield Fleet(url, hooks, start)
    hooks.server.shutdown()
    hooks.server.server_close()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql))  # our constant SQL


def leads(replica: Served) -> bool:
    return "this replica is the leader" in replica.log()


def evaluated(url: str) -> bool:
    """Whether the shared cursor is at the newest stored event."""
    return bool(rows(url, "SELECT last_event_id >= (SELECT max(id) FROM events) FROM playbook_cursor")[0][0])


def kill(replica: Served) -> None:
    replica.proc.send_signal(signal.SIGKILL)
    replica.proc.wait(10)


def test_the_leader_dies_mid_attack_and_the_playbook_fires_once(fleet: Fleet) -> None:
    url = fleet.url
    one = fleet.start()
    wait_for(lambda: leads(one), "the first replica to lead")
    two = fleet.start()
    time.sleep(1.5)  # more than one election attempt: the second replica must not lead too
    assert not leads(two)

    post(one.url, *failed_logins(ATTACKER, 12))  # 12 of 20: below the threshold
    wait_for(lambda: evaluated(url), "the leader to evaluate its half")
    assert feed(one.url)["actions"] == []
    kill(one)

    post(two.url, *failed_logins(ATTACKER, 18, start=12))
    wait_for(lambda: leads(two), "the survivor to take over")
    # its windows start from the leader's half, which it never evaluated itself
    wait_for(lambda: "state rebuilt from 12 stored event(s)" in two.log(), "the rebuild")
    decision = wait_for(
        lambda: next((a for a in feed(two.url)["actions"] if a.get("ip") == ATTACKER), None),
        "the survivor to serve the decision",
    )
    assert decision["action"] == "block_ip" and decision["playbook"] == "credential-stuffing"
    wait_for(lambda: evaluated(url), "the survivor to evaluate the whole attack")
    alerts = rows(url, "SELECT id, playbook_id, count FROM alerts")
    decisions = rows(url, "SELECT id, alert_id, ip FROM decisions")
    assert [a[1] for a in alerts] == ["credential-stuffing"], two.log()
    assert alerts[0][2] >= 20  # the threshold's count, reached across the two replicas' halves
    assert decisions == [(decision["id"], alerts[0][0], ATTACKER)]
    assert [a["id"] for a in feed(two.url)["actions"]] == [decision["id"]]
    stuffing = [json.loads(body) for _, body in fleet.hooks.received]
    assert len(stuffing) == 1, stuffing  # the survivor's security-slack notification
    pages = {"/playbooks": 'data-id="credential-stuffing"', "/api/alerts": alerts[0][0],
             f"/alerts/{alerts[0][0]}": decision["id"]}  # fmt: skip
    for page, expected in pages.items():  # the UI, its statistics and lists from PostgreSQL
        reply = http.get(two.url + page, timeout=5)
        assert reply.status_code == 200 and expected in reply.text, page


def test_decisions_survive_the_leader_and_a_lift_on_any_replica_holds_for_all(fleet: Fleet) -> None:
    url = fleet.url
    one = fleet.start()
    wait_for(lambda: leads(one), "the first replica to lead")
    two = fleet.start()
    post(one.url, *failed_logins(ATTACKER, 25))
    # the follower serves what the leader decided
    decision = wait_for(lambda: next(iter(feed(two.url)["actions"]), None), "the follower to serve it")
    assert decision["ip"] == ATTACKER and not leads(two)

    kill(one)  # after the decision: the next leader restores it
    post(two.url, *failed_logins(ATTACKER, 10, start=25))
    wait_for(lambda: leads(two), "the survivor to take over")
    wait_for(lambda: evaluated(url), "the survivor to evaluate the rest of the attack")
    assert rows(url, "SELECT id FROM decisions") == [(decision["id"],)]  # not decided twice
    assert [a[0] for a in rows(url, "SELECT playbook_id FROM alerts")] == ["credential-stuffing"]
    assert [a["id"] for a in feed(two.url)["actions"]] == [decision["id"]]

    three = fleet.start()
    lifted = http.delete(f"{three.url}/api/actions/{decision['id']}", headers={"X-Sqreen-Otel": "1"}, timeout=5)
    assert lifted.status_code == 200 and lifted.json() == {"removed": True}
    assert feed(three.url)["actions"] == []
    page = http.get(f"{three.url}/playbooks", timeout=5)  # a follower's page: its engine is idle
    assert page.status_code == 200 and 'data-id="credential-stuffing"' in page.text
    # the leader's cached feed is re-read within a second
    wait_for(lambda: feed(two.url)["actions"] == [], "the leader to stop serving the lifted decision")


def test_a_page_is_not_written_when_another_evaluator_moved_the_cursor(pg: Server) -> None:
    from sqreen_otel.explorer.alerts import FenceError, Records
    from sqreen_otel.explorer.store_pg import PgStore

    url = pg.new_url()
    with PgStore(url) as store:
        records = Records(store)
        records.record((), (), cursor=10, fence=None)
        records.record((), (), cursor=20, fence=10)  # where this evaluator left it: written
        assert records.cursor() == 20
        with pytest.raises(FenceError, match="at 20, not 10"):
            records.record((), (), hits={"d": (1, 5)}, cursor=30, fence=10)  # a stale leader's page
        assert records.cursor() == 20
