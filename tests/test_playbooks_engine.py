"""The engine's semantics: windows on event time, sequences, incidents, decisions, safety, bounds, determinism."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from sqreen_otel.explorer.playbooks import Engine, loads
from sqreen_otel.explorer.playbooks.expr import Where
from sqreen_otel.explorer.playbooks.fields import accessor, make_event
from sqreen_otel.explorer.store import Event

S = 10**9
T0 = 1_704_067_200 * S
LOGIN = "sq.sdk.users.login"


def book(body: str, head: str = "") -> Engine:
    return Engine(loads(f"version: 1\n{head}playbooks:\n  - id: p\n{body}"))


THRESHOLD = """\
    when: {event: sq.sdk.users.login, where: "properties.success == false"}
    group_by: [client.address]
    threshold: {count: 3, within: 10s}
    then:
      - block_ip: {duration: 1m}
"""
SEQUENCE = """\
    when: {event: sq.sdk.users.login}
    group_by: [user.email]
    sequence:
      within: 1m
      steps:
        - {where: "properties.success == false", count: 3}
        - {where: "properties.success == true"}
    then:
      - block_user: {duration: 1h}
"""


class Events:
    """Numbered events on a timeline."""

    def __init__(self) -> None:
        self.next_id = 0

    def login(self, at: float, ok: bool = False, email: str = "a@x.com", ip: str = "203.0.113.1") -> Event:
        self.next_id += 1
        return make_event(self.next_id, T0 + int(at * S), LOGIN, properties={"success": ok}, user={"email": email},
                          ip=ip)  # fmt: skip


def feed(engine: Engine, events: list[Event]) -> tuple[list[Any], list[Any]]:
    alerts: dict[str, Any] = {}
    decisions = []
    for event in events:
        result = engine.process(event)
        for alert in result.alerts_opened + result.alerts_updated:
            alerts[alert.id] = alert
        decisions += result.decisions
    return list(alerts.values()), decisions


# -- threshold windows -------------------------------------------------------------------------------


def test_threshold_fires_at_the_count_inside_the_window() -> None:
    e = Events()
    alerts, decisions = feed(book(THRESHOLD), [e.login(0), e.login(5), e.login(9.999)])
    assert len(alerts) == 1 and alerts[0].count == 3 and alerts[0].event_ids == [1, 2, 3]
    assert alerts[0].group == {"client.address": "203.0.113.1"}
    assert [(d.action, d.ip, d.duration) for d in decisions] == [("block_ip", "203.0.113.1", 60.0)]
    assert decisions[0].start == (T0 + int(9.999 * S)) / 1e9 and decisions[0].expires_at == decisions[0].start + 60


def test_an_event_exactly_one_window_older_is_outside() -> None:
    e = Events()
    alerts, _ = feed(book(THRESHOLD), [e.login(0), e.login(5), e.login(10)])
    assert alerts == []  # the window ending at 10 s is (0 s, 10 s]
    alerts, _ = feed(book(THRESHOLD), [e.login(0), e.login(5), e.login(9)])
    assert len(alerts) == 1


def test_successes_and_other_groups_do_not_count() -> None:
    e = Events()
    events = [e.login(0), e.login(1, ok=True), e.login(2, ip="203.0.113.2"), e.login(3), e.login(4, ip="203.0.113.2")]
    assert feed(book(THRESHOLD), events) == ([], [])


def test_out_of_order_events_inside_the_window_count_and_late_ones_do_not() -> None:
    e = Events()
    engine = book(THRESHOLD)
    alerts, _ = feed(engine, [e.login(20), e.login(12), e.login(15)])  # arrived out of order, all inside (10, 20]
    assert len(alerts) == 1 and sorted(alerts[0].event_ids) == [1, 2, 3]
    engine = book(THRESHOLD)
    alerts, _ = feed(engine, [e.login(20), e.login(10), e.login(19)])  # 10 s is exactly one window late
    assert alerts == [] and engine.stats()["playbooks"]["p"]["late"] == 1


def test_distinct_values_must_also_reach_their_minimum() -> None:
    distinct = "{count: 4, within: 10s, distinct: {field: user.email, min: 3}}"
    body = THRESHOLD.replace("{count: 3, within: 10s}", distinct)
    e = Events()
    same = [e.login(i, email="a@x.com" if i % 2 else "b@x.com") for i in range(6)]
    assert feed(book(body), same)[0] == []  # six events, only two accounts
    e = Events()
    alerts, _ = feed(book(body), [e.login(i, email=f"u{i % 3}@x.com") for i in range(4)])
    assert len(alerts) == 1
    e = Events()  # three accounts, but the first one's only event has left the window
    events = [e.login(0, email="u0@x.com"), *(e.login(9 + i, email=f"u{1 + i % 2}@x.com") for i in range(4))]
    alerts, _ = feed(book(body), events)
    assert alerts == []


# -- incidents and decisions -------------------------------------------------------------------------


def test_one_alert_per_incident_and_no_second_decision() -> None:
    e = Events()
    engine = book(THRESHOLD)
    events = [e.login(t) for t in range(0, 40, 2)]  # a failure every 2 s for 40 s: one incident
    alerts, decisions = feed(engine, events)
    assert len(alerts) == 1 and alerts[0].count == 20 and len(alerts[0].event_ids) == 20
    assert len(decisions) == 1
    alerts, decisions = feed(engine, [e.login(t) for t in (60, 61, 62)])  # a quiet window later: a new incident
    assert len(alerts) == 1 and alerts[0].first_ns == T0 + 60 * S
    assert decisions == []  # the block decided at 4 s lasts until 64 s: still in force at 62 s
    alerts, decisions = feed(engine, [e.login(t) for t in (80, 81, 82)])
    assert len(alerts) == 1 and [d.start for d in decisions] == [(T0 + 82 * S) / 1e9]


def test_escalation_multiplies_up_to_max_within_lookback() -> None:
    body = THRESHOLD.replace("{duration: 1m}", "{duration: 1m, escalate: {factor: 3, max: 5m, lookback: 1h}}")
    e = Events()
    engine = book(body)
    durations = []
    for start in (0, 400, 800, 1200):  # each incident after the previous block expired
        durations += [(d.duration, d.escalation) for d in feed(engine, [e.login(start + i) for i in range(3)])[1]]
    assert durations == [(60, 0), (180, 1), (300, 2), (300, 3)]  # 540 s capped at 5 min
    _, decisions = feed(engine, [e.login(4400 + i) for i in range(3)])  # 1 h after all but the last one
    assert [(d.duration, d.escalation) for d in decisions] == [(180, 1)]


def test_contributors_are_each_decided_once_up_to_max_targets() -> None:
    body = """\
    when: {event: sq.sdk.users.login, where: "properties.success == false"}
    group_by: [user.email]
    threshold: {count: 4, within: 1m, distinct: {field: client.address, min: 3}}
    then:
      - block_ip: {target: contributors, duration: 10m, max_targets: 5}
"""
    e = Events()
    events = [e.login(i, ip=f"198.51.100.{i % 4}") for i in range(4)]  # fires with 4 IPs
    events += [e.login(10 + i, ip=f"198.51.100.{i}") for i in range(8)]  # join: 4 more new IPs, max 5 in all
    alerts, decisions = feed(book(body), events)
    assert len(alerts) == 1 and alerts[0].count == 12
    assert [d.ip for d in decisions] == [f"198.51.100.{i}" for i in range(5)]


def test_allowlist_private_ranges_and_trusted_proxies_are_never_blocked() -> None:
    head = 'allowlist: {ips: ["198.51.100.0/24"], users: [{email: ops@x.com}]}\ntrusted_proxies: ["203.0.113.250"]\n'
    for ip, why in [
        ("198.51.100.9", "allowlisted"),
        ("127.0.0.1", "private"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fd00::1", "private"),
        ("203.0.113.250", "trusted proxy"),
    ]:
        e = Events()
        alerts, decisions = feed(book(THRESHOLD, head), [e.login(i, ip=ip) for i in range(3)])
        assert len(alerts) == 1 and decisions == [], ip
        assert why in alerts[0].protected[0]["reason"], (ip, alerts[0].protected)
    e = Events()
    engine = Engine(loads(f"version: 1\n{head}playbooks:\n  - id: p\n{THRESHOLD}"), trusted_proxies=["192.0.2.0/24"])
    assert feed(engine, [e.login(i, ip="192.0.2.7") for i in range(3)])[1] == []
    e = Events()
    body = SEQUENCE
    events = [e.login(i, email="ops@x.com") for i in range(3)] + [e.login(4, ok=True, email="ops@x.com")]
    alerts, decisions = feed(book(body, head), events)
    assert len(alerts) == 1 and decisions == [] and alerts[0].protected[0]["reason"] == "allowlisted"


def test_circuit_breaker_stops_new_blocks_and_asks_to_notify() -> None:
    head = "notify: {ops: {email: [ops@x.com]}}\nmax_active_decisions: 3\n"
    body = THRESHOLD + "      - notify: [ops]\n"
    engine = book(body, head)
    e = Events()
    notifications = []
    decisions = []
    for n in range(6):
        for _ in range(3):
            result = engine.process(e.login(n, ip=f"198.51.100.{n}"))
            decisions += result.decisions
            notifications += result.notifications
    assert len(decisions) == 3
    breaker = [n for n in notifications if n.reason == "circuit_breaker"]
    assert len(breaker) == 1 and breaker[0].channels == ("ops",) and "max_active_decisions" in breaker[0].message
    assert engine.stats()["breaker_refusals"] == 3 and engine.stats()["breaker_trips"] == 1
    # Once the blocks expire (1 min of event time), blocking resumes.
    _, later = feed(engine, [e.login(200 + i, ip="198.51.100.99") for i in range(3)])
    assert [d.ip for d in later] == ["198.51.100.99"]


def test_simulate_marks_everything_and_off_does_nothing() -> None:
    e = Events()
    events = [e.login(i) for i in range(3)]
    alerts, decisions = feed(book(THRESHOLD.replace("    when:", "    mode: simulate\n    when:")), events)
    assert [a.simulated for a in alerts] == [True] and [d.simulated for d in decisions] == [True]
    engine = book(THRESHOLD.replace("    when:", "    mode: off\n    when:"))
    assert feed(engine, events) == ([], []) and engine.stats()["playbooks"] == {}


def test_simulated_decisions_do_not_hide_real_ones() -> None:
    text = f"version: 1\nplaybooks:\n  - id: sim\n    mode: simulate\n{THRESHOLD}  - id: real\n{THRESHOLD}"
    engine = Engine(loads(text))
    e = Events()
    _, decisions = feed(engine, [e.login(i) for i in range(3)])
    assert sorted((d.playbook_id, d.simulated) for d in decisions) == [("real", False), ("sim", True)]
    assert len(engine.active_decisions()) == 1 and len(engine.active_decisions(simulated=True)) == 1


def test_a_target_blocked_by_one_playbook_is_not_decided_again_by_another() -> None:
    text = f"version: 1\nplaybooks:\n  - id: one\n{THRESHOLD}  - id: two\n{THRESHOLD}"
    e = Events()
    alerts, decisions = feed(Engine(loads(text)), [e.login(i) for i in range(3)])
    assert len(alerts) == 2 and [d.playbook_id for d in decisions] == ["one"]


def test_lift_lets_a_target_be_decided_again() -> None:
    engine = book(THRESHOLD)
    e = Events()
    _, (first,) = feed(engine, [e.login(i) for i in range(3)])
    assert engine.lift(first.id) and not engine.lift(first.id)
    _, again = feed(engine, [e.login(20 + i) for i in range(3)])
    assert len(again) == 1 and again[0].id != first.id


def test_restore_keeps_decisions_made_before_a_restart() -> None:
    e = Events()
    first = book(THRESHOLD)
    _, decisions = feed(first, [e.login(i) for i in range(3)])
    second = book(THRESHOLD)
    second.restore(decisions)
    assert feed(second, [e.login(20 + i) for i in range(3)])[1] == []


# -- sequences ---------------------------------------------------------------------------------------


def test_sequence_failures_then_success() -> None:
    e = Events()
    events = [e.login(i) for i in range(3)] + [e.login(5, ok=True)]
    alerts, decisions = feed(book(SEQUENCE), events)
    assert len(alerts) == 1 and alerts[0].event_ids == [1, 2, 3, 4]
    assert [(d.action, d.user) for d in decisions] == [("block_user", {"email": "a@x.com"})]


@pytest.mark.parametrize(
    "timeline",
    [
        [(0, False), (1, False), (2, True)],  # too few failures
        [(0, True), (1, False), (2, False), (3, False)],  # success first
        [(0, False), (1, False), (2, False), (60, True)],  # exactly one span after the first failure
    ],
)
def test_sequence_does_not_match(timeline: list[tuple[float, bool]]) -> None:
    e = Events()
    assert feed(book(SEQUENCE), [e.login(t, ok) for t, ok in timeline]) == ([], [])


def test_sequence_slides_to_the_latest_failures() -> None:
    e = Events()  # a failure long ago, then three recent ones and a success: the recent three count
    events = [e.login(0), e.login(100), e.login(101), e.login(102), e.login(103, ok=True)]
    alerts, _ = feed(book(SEQUENCE), events)
    assert len(alerts) == 1 and alerts[0].event_ids == [2, 3, 4, 5]
    e = Events()  # interleaved events of another account do not break it
    events = [e.login(0), e.login(1, email="b@x.com"), e.login(2), e.login(3), e.login(4, ok=True, email="b@x.com"),
              e.login(5, ok=True)]  # fmt: skip
    alerts, _ = feed(book(SEQUENCE), events)
    assert [a.group for a in alerts] == [{"user.email": "a@x.com"}]


# -- fields and where ----------------------------------------------------------------------------------


def test_fields_read_what_the_store_keeps() -> None:
    event = make_event(1, T0, "x", properties={"a": 1, "nested": {"b": "c"}}, user={"email": "u@x.com"},
                       ip="203.0.113.5", user_agent="curl/8", path="/login", method="POST", params={"q": "z"},
                       resource={"service.name": "shop"})  # fmt: skip
    expected = {
        "name": "x",
        "properties.a": 1,
        "properties.nested.b": "c",
        "user.email": "u@x.com",
        "client.address": "203.0.113.5",
        "user_agent.original": "curl/8",
        "url.path": "/login",
        "http.request.method": "POST",
        "params.q": "z",
        "resource.service.name": "shop",
    }
    for name, value in expected.items():
        assert accessor(name)(event) == value, name
    assert not accessor("properties.none")(event)


def test_where_is_cel_with_missing_fields_unmatched_and_types_kept_apart() -> None:
    where = Where("properties.success == false")
    no = make_event(1, T0, "x", properties={"success": True})
    yes = make_event(2, T0, "x", properties={"success": False})
    zero = make_event(3, T0, "x", properties={"success": 0})  # 0 is not false in CEL, even after false was cached
    missing = make_event(4, T0, "x")
    assert [where.matches(ev) for ev in (yes, no, zero, missing, yes)] == [True, False, False, False, True]
    assert where.errors >= 1  # the missing key and the int/bool comparison are errors, counted
    assert where.native and where.evaluations == 1  # only the int/bool comparison went to cel-python
    cached = Where("properties.success == false ? true : false")  # a ternary: cel-python, cached
    assert not cached.native
    assert [cached.matches(ev) for ev in (yes, no, zero, missing, yes)] == [True, False, False, False, True]
    assert cached.evaluations == 4  # the second `yes` was a cache hit
    rich = Where('user.email.endsWith("@x.com") && has(params.q) && http.request.method in ["POST", "PUT"]')
    hit = make_event(5, T0, "x", user={"email": "a@x.com"}, params={"q": "1"}, method="PUT")
    assert rich.matches(hit) and not rich.matches(dataclasses.replace(hit, method="GET"))
    whole = Where("size(properties) > 1")
    assert whole.fields is None and whole.matches(make_event(6, T0, "x", properties={"a": 1, "b": 2}))


# -- bounds ------------------------------------------------------------------------------------------


def test_state_is_capped_per_playbook_and_evictions_counted() -> None:
    engine = Engine(loads(f"version: 1\nmax_keys: 100\nplaybooks:\n  - id: p\n{THRESHOLD}"))
    e = Events()
    feed(engine, [e.login(i / 1000, ip=f"198.51.{i // 250}.{i % 250}") for i in range(1000)])
    stats = engine.stats()["playbooks"]["p"]
    assert stats["groups"] == 100 and stats["evictions"] == 900


# -- determinism: live == backtest -------------------------------------------------------------------


def _traffic(seed: int, n: int) -> list[Event]:
    rng = random.Random(seed)
    e = Events()
    events = []
    for i in range(n):
        at = i * 0.5 + rng.uniform(-3, 3)  # some out of order
        ip = f"198.51.100.{rng.randrange(12)}"
        email = f"u{rng.randrange(15)}@x.com"
        events.append(e.login(at, ok=rng.random() < 0.3, email=email, ip=ip))
    return events


def _outputs(engine: Engine, batches: list[list[Event]]) -> tuple[Any, ...]:
    alerts: dict[str, Any] = {}
    decisions, notifications = [], []
    for batch in batches:
        result = engine.process(batch)
        for alert in result.alerts_opened + result.alerts_updated:
            alerts[alert.id] = alert
        decisions += result.decisions
        notifications += [(n.channels, n.alert.id, n.reason) for n in result.notifications]
    return sorted(alerts.items()), decisions, notifications


def test_one_by_one_equals_batches_equals_a_replay() -> None:
    example = loads(open("examples/playbooks.yaml").read(), strict_env=False)  # noqa: SIM115
    text = f"version: 1\nnotify: {{n: {{email: [a@x.com]}}}}\nplaybooks:\n  - id: t\n{THRESHOLD}  - id: s\n{SEQUENCE}"
    for playbooks in (example, loads(text)):
        events = _traffic(7, 3000)
        one = _outputs(Engine(playbooks), [[ev] for ev in events])
        chunks = _outputs(Engine(playbooks), [events[i : i + 97] for i in range(0, len(events), 97)])
        whole = _outputs(Engine(playbooks), [events])
        assert one == chunks == whole
    assert one[0] and one[1]  # the traffic did fire something to compare


def test_a_reload_keeps_the_state_of_unchanged_playbooks() -> None:
    text = f"version: 1\nplaybooks:\n  - id: a\n{THRESHOLD}  - id: b\n{THRESHOLD}"
    engine = Engine(loads(text))
    e = Events()
    feed(engine, [e.login(0), e.login(1)])  # two of three failures, in both playbooks
    changed = text.replace("  - id: b\n" + THRESHOLD, "  - id: b\n" + THRESHOLD.replace("1m}", "2m}"))
    reloaded = engine.reloaded(loads(changed))
    alerts, decisions = feed(reloaded, [e.login(2)])
    assert [a.playbook_id for a in alerts] == ["a"]  # b changed: its windows started again
    assert [d.playbook_id for d in decisions] == ["a"]
    again = reloaded.reloaded(loads(changed))
    assert feed(again, [e.login(3 + i) for i in range(3)])[1] == []  # the block of a is still in force


def test_a_block_that_lapses_during_the_incident_is_decided_again_escalated() -> None:
    body = THRESHOLD.replace("within: 10s", "within: 10m").replace(
        "{duration: 1m}", "{duration: 1m, escalate: {factor: 2}}"
    )
    e = Events()
    alerts, decisions = feed(book(body), [e.login(t) for t in range(0, 301, 20)])  # one incident, 5 minutes
    assert len(alerts) == 1 and alerts[0].count == 16
    assert [(d.start - T0 / 1e9, d.duration, d.alert_id) for d in decisions] == [
        (40, 60, alerts[0].id),
        (100, 120, alerts[0].id),
        (220, 240, alerts[0].id),
    ]
    assert len({d.id for d in decisions}) == 3
