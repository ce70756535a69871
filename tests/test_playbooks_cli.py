"""``sqreen-otel playbooks check|test|backtest`` through real subprocesses, and backtest == live on a real store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sqreen_otel.explorer.playbooks import Engine, load
from sqreen_otel.explorer.playbooks.backtest import run_store, stored_events
from sqreen_otel.explorer.store import Store

EXAMPLE = Path(__file__).parent.parent / "examples" / "playbooks.yaml"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sqreen_otel.cli", "playbooks", *args], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


def test_check_accepts_the_example_and_reports_line_and_field(tmp_path: Path) -> None:
    done = cli("check", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert "OK: 5 playbook(s)" in done.stdout and "credential-stuffing (enforce)" in done.stdout
    assert "SOC_HMAC_KEY is not set" in done.stderr  # a warning: check runs where secrets are not
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("within: 15m", "within: fifteen minutes", 1))
    done = cli("check", str(bad))
    assert done.returncode == 1 and done.stdout == ""
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "fifteen minutes" in text)
    assert f"{bad}:{line}: playbooks[1].threshold.within: a duration is like" in done.stderr
    done = cli("check", str(tmp_path / "missing.yaml"))
    assert done.returncode == 1 and "cannot read" in done.stderr
    moved = tmp_path / "moved.yaml"  # its benign events file is not beside it
    moved.write_text(EXAMPLE.read_text())
    done = cli("check", str(moved))
    line = next(i for i, text in enumerate(moved.read_text().splitlines(), 1) if "a day of benign traffic" in text)
    assert done.returncode == 1 and f"{moved}:{line}: tests: test 'a day of benign traffic" in done.stderr


def test_test_runs_the_examples_and_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    done = cli("test", str(EXAMPLE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "18 passed, 0 failed" in done.stdout
    wrong = tmp_path / "wrong.yaml"
    (tmp_path / "playbooks-benign.jsonl").write_bytes((EXAMPLE.parent / "playbooks-benign.jsonl").read_bytes())
    # A threshold raised beyond the attack: the attack test must now fail, and say why.
    wrong.write_text(EXAMPLE.read_text().replace("threshold: {count: 5, within: 10m}", "threshold: {count: 7, "
                                                                                      "within: 10m}"))  # fmt: skip
    done = cli("test", str(wrong))
    assert done.returncode == 1
    assert "FAIL signup-spam / six signups in a minute from one address" in done.stdout
    assert "expected 1 alerts, got 0" in done.stdout and "17 passed, 1 failed" in done.stdout
    # A benign mix that does fire fails the file-level test.
    (tmp_path / "playbooks-benign.jsonl").write_text(
        "".join(json.dumps({"name": "sq.sdk.users.signup", "at": f"{i}s", "ip": "198.51.100.3"}) + "\n"
                for i in range(8))
    )  # fmt: skip
    done = cli("test", str(wrong.with_name("wrong.yaml")))
    assert done.returncode == 1 and "FAIL (file) / a day of benign traffic fires nothing" in done.stdout


def _login(t: float, ok: bool, email: str, ip: str) -> dict[str, Any]:
    attributes = {"sqreen.properties.success": ok, "sqreen.user.email": email, "client.address": ip}
    return {"name": "sq.sdk.users.login", "time_unix_nano": int(t * 1e9), "attributes": attributes}


@pytest.fixture
def history(tmp_path: Path) -> Path:
    db = tmp_path / "events.sqlite"
    now = time.time() - 3600
    with Store(db) as store:
        # benign: a few users, some typos
        store.add([_login(now + i * 60, i % 5 != 0, f"user{i % 7}@example.com", f"198.51.100.{i % 7}")
                   for i in range(100)])  # fmt: skip
        # credential stuffing from 203.0.113.7, which also logged in successfully once (collateral)
        store.add([_login(now + 200 + i, False, f"victim{i}@example.com", "203.0.113.7") for i in range(30)])
        store.add([_login(now + 300, True, "mallory@example.com", "203.0.113.7")])
        # an old attack, outside --since 1d
        store.add([_login(now - 3 * 86400 + i, False, f"old{i}@example.com", "203.0.113.99") for i in range(30)])
        # stuffing from an allowlisted address
        store.add([_login(now + 400 + i, False, f"v{i}@example.com", "192.0.2.10") for i in range(25)])
    return db


def test_backtest_json_and_text(history: Path) -> None:
    done = cli("backtest", str(EXAMPLE), "--db", str(history), "--since", "1d", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    stuffing = report["playbooks"]["credential-stuffing"]
    assert (stuffing["alerts"], stuffing["decisions"]) == (2, 1)  # the allowlisted address alerts, is not blocked
    assert stuffing["targets"] == [{"action": "block_ip", "target": "203.0.113.7", "decisions": 1}]
    why = {c["target"]: c["why"] for c in stuffing["collateral"]}
    assert why == {"203.0.113.7": "logged in successfully", "192.0.2.10": "not acted on: allowlisted"}
    assert stuffing["window_counts"]["groups"] == 9 and stuffing["window_counts"]["max"] == 30
    assert set(report["playbooks"]) == {"credential-stuffing", "distributed-bruteforce", "signup-spam",
                                        "password-reset-abuse", "account-takeover"}  # fmt: skip
    assert all({"alerts", "decisions", "targets"} <= set(r) for r in report["playbooks"].values())
    older = json.loads(cli("backtest", str(EXAMPLE), "--db", str(history), "--since", "7d", "--json").stdout)
    assert older["playbooks"]["credential-stuffing"]["decisions"] == 2  # the old attack is now included
    done = cli("backtest", str(EXAMPLE), "--db", str(history), "--since", "1d")
    assert done.returncode == 0
    assert "credential-stuffing (enforce): 2 alert(s), 1 decision(s)" in done.stdout
    assert "collateral: 203.0.113.7: logged in successfully" in done.stdout
    with Store(history) as store:
        assert store.actions() == []  # a backtest serves nothing


def test_backtest_errors(tmp_path: Path) -> None:
    done = cli("backtest", str(EXAMPLE), "--db", str(tmp_path / "none.sqlite"))
    assert done.returncode == 1 and "no event database" in done.stderr
    assert not (tmp_path / "none.sqlite").exists()
    done = cli("backtest", str(EXAMPLE), "--since", "a week")
    assert done.returncode == 2 and "duration" in done.stderr


def test_backtest_equals_live_on_the_same_stored_events(history: Path) -> None:
    playbooks = load(EXAMPLE, strict_env=False)
    with Store(history) as store:
        events = list(stored_events(store))
        live = Engine(playbooks)
        alerts: dict[str, Any] = {}
        decisions = []
        for event in events:  # as the explorer commits them, one at a time
            result = live.process(event)
            alerts.update({a.id: a for a in result.alerts_opened + result.alerts_updated})
            decisions += result.decisions
        report = run_store(playbooks, store)
    assert report.events == len(events) == 186
    for playbook in playbooks.playbooks:
        mine = [d for d in decisions if d.playbook_id == playbook.id]
        assert report.playbooks[playbook.id].alerts == sum(a.playbook_id == playbook.id for a in alerts.values())
        assert report.playbooks[playbook.id].decisions == len(mine)
    assert len(decisions) == 2 and {d.ip for d in decisions} == {"203.0.113.7", "203.0.113.99"}


def test_backtest_reads_an_exported_events_file(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [{"name": "sq.sdk.users.signup", "timestamp": f"2024-05-01T12:00:{i:02d}Z", "user_identifiers":
              {"email": f"bot{i}@example.net"}, "ip": "198.51.100.77", "user_agent": "bot/1", "path": "/signup",
              "method": "POST", "params": {"plan": "free"}, "body": "x"} for i in range(6)]  # fmt: skip
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = cli("backtest", str(EXAMPLE), "--events", str(events), "--json")
    assert done.returncode == 0, done.stderr
    spam = json.loads(done.stdout)["playbooks"]["signup-spam"]
    assert (spam["alerts"], spam["decisions"]) == (1, 1) and spam["alerts_per_day"] == {"2024-05-01": 1}
    done = cli("backtest", str(EXAMPLE), "--events", str(events), "--since", "7d", "--json")
    assert json.loads(done.stdout)["playbooks"]["signup-spam"]["alerts"] == 0  # 2024 is not within 7 days
    events.write_text('{"name": "x", "timestamp": "2024-05-01T12:00:00Z", "colour": "red"}\n')
    done = cli("backtest", str(EXAMPLE), "--events", str(events))
    assert done.returncode == 1 and "colour" in done.stderr


def test_test_events_take_the_explorer_field_names_too(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("""\
version: 1
playbooks:
  - id: admin-probe
    when: {where: "url.path.startsWith('/admin') && http.request.method == 'POST'"}
    group_by: [client.address, user_agent.original]
    threshold: {count: 3, within: 1m}
    then:
      - block_ip: {duration: 10m}
    tests:
      - name: explorer names
        events:
          - {name: request, client.address: 203.0.113.9, url.path: /admin/users, http.request.method: POST,
             user_agent.original: curl/8, repeat: 3}
        expect: {alerts: [{group: {client.address: 203.0.113.9, user_agent.original: curl/8}}], decisions: 1}
      - name: short names
        events:
          - {name: request, ip: 203.0.113.9, path: /admin/users, method: GET, user_agent: curl/8, repeat: 3}
        expect: {alerts: 0}
""")
    done = cli("test", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 0 failed" in done.stdout
