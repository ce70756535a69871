"""Stored alerts and decisions (``explorer.alerts``) over a real SQLite store: what the feed serves, lifting,
replays, hits, per-playbook counts, and the agents' limits."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from sqreen_otel.actions import parse_actions
from sqreen_otel.explorer import alerts as alerts_module
from sqreen_otel.explorer.alerts import Records, feed_document
from sqreen_otel.explorer.playbooks import Alert, Decision
from sqreen_otel.explorer.store import Store

NOW = time.time()


def alert(alert_id: str = "al1", playbook: str = "cs", *, count: int = 20, simulated: bool = False) -> Alert:
    ns = int(NOW * 1e9)
    return Alert(alert_id, playbook, {"client.address": "203.0.113.7"}, ns - 10**9, ns, list(range(1, count + 1)),
                 count, simulated, "high", ns + 600 * 10**9)  # fmt: skip


def decision(decision_id: str, *, ip: str | None = "203.0.113.7", user: dict[str, str] | None = None,
             simulated: bool = False, start: float = NOW, duration: float = 3600, url: str | None = None,
             alert_id: str = "al1") -> Decision:  # fmt: skip
    action = ("redirect_" if url else "block_") + ("ip" if ip else "user")
    return Decision(decision_id, alert_id, "cs", action, ip, user, url, duration, start, start + duration,  # type: ignore[arg-type]
                    simulated)  # fmt: skip


@pytest.fixture
def records(tmp_path: Path) -> Records:
    return Records(Store(tmp_path / "e.sqlite"))


def test_the_feed_serves_decisions_in_force_with_their_ids(records: Records) -> None:
    manual = records.store.add_action("block_user", user={"email": "m@x.io"})
    records.record(
        [alert(), alert("al2", simulated=True)],
        [
            decision("d1"),
            decision("d2", ip=None, user={"email": "v@x.io"}, url="/verify"),
            decision("d3", ip="198.51.100.1", simulated=True, alert_id="al2"),
            decision("d4", ip="198.51.100.2", start=NOW - 7200),  # expired an hour ago
        ],
    )
    document = feed_document(records.store, records)
    assert [a["id"] for a in document["actions"]] == [manual, "d1", "d2"]
    d1, d2 = document["actions"][1:]
    assert d1 == {"id": "d1", "action": "block_ip", "ip": "203.0.113.7", "playbook": "cs", "alert": "al1",
                  "expires_at": d1["expires_at"]}  # fmt: skip
    assert d2["action"] == "redirect_user" and d2["user"] == {"email": "v@x.io"} and d2["url"] == "/verify"
    assert parse_actions(alerts_module.json.dumps(document), "url")[2].url == "/verify"  # agents accept it


def test_lifting_and_replays(records: Records) -> None:
    records.record([alert()], [decision("d1"), decision("d2", ip="203.0.113.8")])
    assert records.lift("d1") and not records.lift("d1") and not records.lift("nope")
    assert [d["id"] for d in records.served()] == ["d2"]
    records.record([alert(count=25)], [decision("d1"), decision("d2", ip="203.0.113.8")])  # the same ids replayed
    assert [d["id"] for d in records.served()] == ["d2"]  # d1 stays lifted
    (stored,) = records.alerts()
    assert stored["count"] == 25 and len(stored["event_ids"]) == 25 and stored["status"] == "open"
    assert [(d["id"], d["in_force"]) for d in stored["decisions"]] == [("d1", False), ("d2", True)]
    assert records.lift_alert("al1") == ["d2"]
    assert records.served() == [] and records.alert("al1")["status"] == "closed"  # type: ignore[index]
    assert [d.id for d in records.in_force()] == []


def test_hits_cursor_and_playbook_counts(records: Records) -> None:
    records.record([alert(), alert("al2", simulated=True)], [decision("d1"), decision("d3", simulated=True)],
                   hits={"d1": (3, 42)}, cursor=17)  # fmt: skip
    records.record([], [], hits={"d1": (2, 40), "unknown": (1, 1)})
    assert records.cursor() == 17
    stats = records.playbook_stats()["cs"]
    assert (stats["alerts_day"], stats["alerts_week"], stats["hits"], stats["active"], stats["simulated_active"]) == (
        2, 2, 5, 1, 1,
    )  # fmt: skip
    assert sum(stats["per_day"]) == 2 and stats["per_day"][-1] == 2
    (d1,) = [d for d in records.alerts()[0]["decisions"] + records.alerts()[1]["decisions"] if d["id"] == "d1"]
    assert (d1["hits"], d1["last_hit_ns"]) == (5, 42)


def test_a_decision_agents_would_reject_is_stored_lifted(records: Records, caplog: pytest.LogCaptureFixture) -> None:
    records.record([alert()], [decision("bad", ip=None, user={"email": "x" * 300}), decision("ok")])
    assert [d["id"] for d in records.served()] == ["ok"]
    assert "cannot be served to agents" in caplog.text and "limited to 256 characters" in caplog.text
    assert parse_actions(alerts_module.json.dumps(feed_document(records.store, records)), "url")


def test_the_feed_stays_within_the_agents_limits(
    records: Records, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(alerts_module, "MAX_ACTIONS", 3)
    manual = records.store.add_action("block_ip", ip="192.0.2.1")
    records.record([alert()], [decision(f"d{i}", ip=f"203.0.113.{i}", start=NOW + i) for i in range(5)])
    with caplog.at_level(logging.ERROR):
        document = feed_document(records.store, records)
    assert [a["id"] for a in document["actions"]] == [manual, "d0", "d1"]  # the newest decisions are left out
    assert "3 playbook decision(s) left out" in caplog.text


def test_prune_forgets_old_alerts_and_long_expired_decisions(records: Records) -> None:
    records.record([alert()], [decision("old", start=NOW - 40 * 86400)])
    assert records.prune(30 * 86400) == 1  # the decision; the alert's last event is recent
    assert records.alert("al1") is not None and records.alert("al1")["decisions"] == []  # type: ignore[index]


# -- live evaluation equals the backtest on the same stored events ------------------------------------


def attack_mix(now_ns: int) -> list[dict[str, object]]:
    """Benign logins and signups around credential stuffing, signup spam and a brute force with a success."""
    events: list[dict[str, object]] = []

    def add(name: str, at_s: float, ip: str, email: str, **props: object) -> None:
        attributes: dict[str, object] = {"client.address": ip, "sqreen.user.email": email}
        attributes.update({f"sqreen.properties.{k}": v for k, v in props.items()})
        at = now_ns + int(at_s * 1e9)
        events.append({"name": name, "time_unix_nano": at, "observed_time_unix_nano": at, "attributes": attributes})

    for i in range(200):  # benign: people logging in, sometimes mistyping, a few signups
        add("sq.sdk.users.login", i * 3, f"198.51.100.{i % 50}", f"user{i % 40}@example.com", success=i % 7 != 0)
        if i % 25 == 0:
            add("sq.sdk.users.signup", i * 3 + 1, f"198.51.100.{i % 50}", f"new{i}@example.com")
    for i in range(30):  # credential stuffing from two addresses
        add("sq.sdk.users.login", 100 + i, "203.0.113.5", f"victim{i}@example.com", success=False)
        add("sq.sdk.users.login", 400 + i, "203.0.113.6", f"prey{i}@example.com", success=False)
    for i in range(8):  # signup spam
        add("sq.sdk.users.signup", 200 + i * 5, "203.0.113.9", f"bot{i}@example.net")
    for i in range(6):  # failures then a success on one account: takeover
        add("sq.sdk.users.login", 300 + i * 10, f"192.0.2.{100 + i}", "ceo@example.com", success=False)
    add("sq.sdk.users.login", 370, "192.0.2.150", "ceo@example.com", success=True)
    return sorted(events, key=lambda e: e["time_unix_nano"])  # type: ignore[arg-type, return-value]


def test_live_evaluation_equals_the_backtest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqreen_otel.explorer.live import Live
    from sqreen_otel.explorer.playbooks.backtest import run_store

    for name in ("SLACK_WEBHOOK_URL", "SOC_WEBHOOK_URL"):
        monkeypatch.setenv(name, "http://127.0.0.1:9/never")
    monkeypatch.setenv("SOC_HMAC_KEY", "k")
    playbooks = Path(__file__).resolve().parents[1] / "examples" / "playbooks.yaml"
    store = Store(tmp_path / "e.sqlite")
    live = Live(store, playbooks, poll_interval=0.05).start()
    try:
        assert live.wait_ready()
        events = attack_mix(time.time_ns() - 3600 * 10**9)
        for start in range(0, len(events), 37):  # committed in uneven batches, as ingest does
            store.add(events[start : start + 37])
        last = store.count()
        deadline = time.monotonic() + 30
        while live.status()["cursor"] < last:
            assert time.monotonic() < deadline, live.status()
            time.sleep(0.02)
        stored = Records(store).alerts(limit=200)
        report = run_store(live.playbooks, store)  # type: ignore[arg-type]
    finally:
        live.close()
    by_playbook: dict[str, list[dict[str, object]]] = {}
    for a in stored:
        by_playbook.setdefault(str(a["playbook_id"]), []).append(a)
    for playbook_id, r in report.playbooks.items():
        mine = by_playbook.get(playbook_id, [])
        assert len(mine) == r.alerts, playbook_id
        decided = sorted(d["ip"] or json.dumps(d["user"], sort_keys=True, separators=(",", ":"))
                         for a in mine for d in a["decisions"])  # type: ignore[attr-defined]  # fmt: skip
        assert decided == sorted(t["target"] for t in r.targets for _ in range(t["decisions"])), playbook_id
    fired = {pid for pid, r in report.playbooks.items() if r.alerts}
    assert {"credential-stuffing", "signup-spam", "account-takeover"} <= fired


def test_the_feed_body_is_reused_until_something_changes(tmp_path: Path) -> None:
    now = [NOW]
    store = Store(tmp_path / "e.sqlite")
    records = Records(store, clock=lambda: now[0])
    records.record([alert()], [decision("d1"), decision("d2", ip="203.0.113.8", duration=60)])
    first = alerts_module.feed_body(store, records)
    assert first == json.dumps(feed_document(store, records), sort_keys=True).encode()
    assert alerts_module.feed_body(store, records) is first  # nothing changed: the same bytes, not rebuilt
    now[0] += 120  # d2 expired
    expired = alerts_module.feed_body(store, records)
    assert [a["id"] for a in json.loads(expired)["actions"]] == ["d1"]
    manual = store.add_action("block_ip", ip="192.0.2.1")
    added = alerts_module.feed_body(store, records)
    assert [a["id"] for a in json.loads(added)["actions"]] == [manual, "d1"]
    records.lift("d1")
    assert [a["id"] for a in json.loads(alerts_module.feed_body(store, records))["actions"]] == [manual]
    records.record([], [decision("d3", ip="203.0.113.9", start=now[0])])
    assert [a["id"] for a in json.loads(alerts_module.feed_body(store, records))["actions"]] == [manual, "d3"]


def test_notification_text_and_payload() -> None:
    from sqreen_otel.explorer.live import notification
    from sqreen_otel.explorer.playbooks import NotifyRequest

    request = NotifyRequest(("soc",), alert(), (decision("d1"), decision("d2", ip=None, user={"email": "v@x.io"})))
    subject, text, payload = notification(request, None)
    assert subject == "Playbook cs fired for client.address=203.0.113.7 (high)"
    assert "block_ip 203.0.113.7 for 3600 s (decision d1)" in text and "block_user email=v@x.io" in text
    assert payload["sqreen_payload_type"] == "security_response" and payload["playbook"]["id"] == "cs"
    assert payload["properties"] == {"ips": [{"ip_cidr": "203.0.113.7"}]}
    assert payload["user_identifiers"] == [{"email": "v@x.io"}]
    assert payload["alert"]["event_ids"] == list(range(1, 21))  # capped at 20
    json.dumps(payload)  # JSON as it is
    breaker = NotifyRequest(("soc",), alert(simulated=True), reason="circuit_breaker", message="2,500 decisions")
    subject, text, payload = notification(breaker, None)
    assert subject.startswith("[simulated] Circuit breaker: playbook cs") and text.startswith("2,500 decisions")
    assert payload["sqreen_payload_type"] == "alert" and payload["reason"] == "circuit_breaker"
