"""The playbooks' ``tests:``: events (inline or JSON Lines) through a fresh engine, against expectations.

An event in a test is a mapping::

    {name: sq.sdk.users.login, at: 30s, properties: {success: false}, user: {email: a@example.com},
     ip: 203.0.113.7, repeat: 20, every: 10s}

``name`` defaults to the playbook's first ``when.event``; ``at`` is the time from the test's start
(a duration), else ``time`` (ISO 8601 or epoch seconds), else one second after the previous event
(``every`` after it for each repetition). ``repeat: N`` makes N events, replacing ``{i}`` (0..N-1)
in every text value, so "twenty accounts" is ``user: {email: "victim{i}@example.com"}``. Also
``user_agent``, ``path``, ``method``, ``params``, ``resource`` and ``attributes``; a JSONL file holds
one such mapping per line: the import/export format (``timestamp``, ``user_identifiers``, ``body``,
``action``) is read as well, so an ``export`` can be a test's or a backtest's events.

``expect``: ``alerts``, ``decisions`` and ``notifications``, each a number or a list of mappings
that must each match one output (only the keys given are compared: for alerts ``playbook``,
``group``, ``count``, ``simulated``, ``severity``; for decisions ``playbook``, ``action``, ``ip``,
``user``, ``duration``, ``url``, ``simulated``, ``escalation``; for notifications ``channels`` and
``reason``), and as many as listed. A playbook's tests run that playbook alone (an ``off`` one as
``simulate``); file-level ``tests:`` run every playbook.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..store import Event
from .engine import Alert, Decision, Engine, NotifyRequest
from .fields import make_event
from .spec import Playbook, PlaybookSet, TestCase, parse_duration

BASE_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z: tests run on a fixed timeline
MAX_TEST_EVENTS = 1_000_000
MAX_LINE_BYTES = 1 << 20
_EVENT_KEYS = {
    "name", "at", "time", "timestamp", "properties", "user", "user_identifiers", "ip", "client.address",
    "user_agent", "path", "method", "params", "resource", "attributes", "repeat", "every", "body", "action",
    "user_agent.original", "url.path", "http.request.method",  # the explorer's field names work too
}  # fmt: skip


class TestInputError(ValueError):
    """A test's events cannot be read."""


@dataclass
class Outcome:
    """One test's verdict: ``problems`` says what differed (empty when it passed)."""

    playbook_id: str | None
    name: str
    problems: list[str] = field(default_factory=list)
    alerts: int = 0
    decisions: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        return f"{self.playbook_id or '(file)'} / {self.name}"


@dataclass
class Run:
    """Everything a set of events produced: alerts (final snapshots), decisions and notifications."""

    alerts: list[Alert]
    decisions: list[Decision]
    notifications: list[NotifyRequest]


def _parse_time(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise TestInputError(f"{where}: time must be ISO 8601 text or epoch seconds, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value * 1e9)
    if isinstance(value, (_dt.datetime, _dt.date)):  # YAML reads unquoted timestamps itself
        moment = value if isinstance(value, _dt.datetime) else _dt.datetime(value.year, value.month, value.day)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)
        return int(moment.timestamp() * 1e9)
    if isinstance(value, str):
        try:
            moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TestInputError(f"{where}: time must be ISO 8601 text or epoch seconds, got {value!r}") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)
        return int(moment.timestamp() * 1e9)
    raise TestInputError(f"{where}: time must be ISO 8601 text or epoch seconds, got {value!r}")


def _offset(value: Any, where: str) -> int:
    try:
        return int(parse_duration(value, allow_zero=True) * 1e9)
    except ValueError as exc:
        raise TestInputError(f"{where}: {exc}") from None


def _fill(value: Any, i: int) -> Any:
    if isinstance(value, str):
        return value.replace("{i}", str(i))
    if isinstance(value, Mapping):
        return {k: _fill(v, i) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, i) for v in value]
    return value


def expand(specs: Iterator[Mapping[str, Any]] | list[Mapping[str, Any]], default_name: str | None) -> list[Event]:
    """Test event mappings into stored-like events with ids from 1, on the fixed timeline."""
    events: list[Event] = []
    clock = BASE_NS - 10**9
    for number, spec in enumerate(specs, 1):
        where = f"event {number}"
        if not isinstance(spec, Mapping):
            raise TestInputError(f"{where}: an event is a mapping, got {spec!r}")
        unknown = sorted(set(spec) - _EVENT_KEYS)
        if unknown:
            raise TestInputError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_EVENT_KEYS))})"
            )
        repeat = spec.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_TEST_EVENTS:
            raise TestInputError(f"{where}: repeat must be an integer from 1 to {MAX_TEST_EVENTS}")
        every = _offset(spec.get("every", "1s"), where)
        if "at" in spec:
            start = BASE_NS + _offset(spec["at"], where)
        elif "time" in spec or "timestamp" in spec:
            start = _parse_time(spec.get("time", spec.get("timestamp")), where)
        else:
            start = clock + 10**9
        name = spec.get("name", default_name)
        if not isinstance(name, str) or not name:
            raise TestInputError(f"{where}: give the event a name")
        for i in range(repeat):
            if len(events) >= MAX_TEST_EVENTS:
                raise TestInputError(f"a test is limited to {MAX_TEST_EVENTS} events")
            item = _fill(dict(spec), i) if repeat > 1 else spec
            clock = start + i * every
            for key in ("properties", "user", "user_identifiers", "params", "resource", "attributes"):
                if key in item and not isinstance(item[key], Mapping):
                    raise TestInputError(f"{where}: {key} must be a mapping")
            ip = item.get("ip", item.get("client.address"))
            attributes = dict(item.get("attributes") or {})
            if "body" in item:  # the import format's request body and sq.action.* details
                attributes["sqreen.request.body"] = item["body"]
            if isinstance(item.get("action"), Mapping):
                attributes |= {f"sqreen.action.{k}": v for k, v in item["action"].items()}
            events.append(
                make_event(
                    len(events) + 1,
                    clock,
                    _fill(name, i) if repeat > 1 else name,
                    properties=item.get("properties"),
                    user=item.get("user", item.get("user_identifiers")),
                    ip=None if ip is None else str(ip),
                    user_agent=item.get("user_agent", item.get("user_agent.original")),
                    path=item.get("path", item.get("url.path")),
                    method=item.get("method", item.get("http.request.method")),
                    params=item.get("params"),
                    resource=item.get("resource"),
                    attributes=attributes,
                )
            )
    return events


def read_jsonl(path: str) -> Iterator[Mapping[str, Any]]:
    """The event mappings of a JSON Lines file (blank lines skipped); ``TestInputError`` naming the line."""
    try:
        f = open(path, "rb")  # noqa: SIM115  # closed below; a generator
    except OSError as exc:
        raise TestInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                raise TestInputError(f"{path}:{number}: line over {MAX_LINE_BYTES} bytes")
            if not raw.strip():
                continue
            try:
                yield json.loads(raw)
            except ValueError as exc:
                raise TestInputError(f"{path}:{number}: not JSON ({exc})") from None


def run_events(playbooks: PlaybookSet, events: list[Event]) -> Run:
    """The events through a fresh engine, one at a time; alerts as they stand at the end."""
    engine = Engine(playbooks)
    alerts: dict[str, Alert] = {}
    decisions: list[Decision] = []
    notifications: list[NotifyRequest] = []
    for event in events:
        result = engine.process(event)
        for alert in result.alerts_opened + result.alerts_updated:
            alerts[alert.id] = alert
        decisions += result.decisions
        notifications += result.notifications
    return Run(list(alerts.values()), decisions, notifications)


def _alert_view(alert: Alert) -> dict[str, Any]:
    return {"playbook": alert.playbook_id, "group": alert.group, "count": alert.count,
            "simulated": alert.simulated, "severity": alert.severity}  # fmt: skip


def _decision_view(decision: Decision) -> dict[str, Any]:
    return {"playbook": decision.playbook_id, "action": decision.action, "ip": decision.ip, "user": decision.user,
            "duration": decision.duration, "url": decision.url, "simulated": decision.simulated,
            "escalation": decision.escalation}  # fmt: skip


def _notification_view(n: NotifyRequest) -> dict[str, Any]:
    return {"channels": list(n.channels), "reason": n.reason, "playbook": n.alert.playbook_id}


def _matches(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    for key, want in expected.items():
        have = actual.get(key)
        if key == "duration" and not isinstance(want, (int, float)):
            try:
                want = parse_duration(want)
            except ValueError:
                return False
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            if not all(k in have and str(have[k]) == str(v) for k, v in want.items()):
                return False
        elif key == "channels" and isinstance(want, list):
            if list(want) != list(have or []):
                return False
        elif have != want and not (isinstance(have, (int, float)) and isinstance(want, (int, float)) and have == want):
            return False
    return True


def _compare(kind: str, want: Any, have: list[dict[str, Any]], problems: list[str]) -> None:
    if isinstance(want, bool) or not isinstance(want, (int, list)):
        problems.append(f"expect.{kind} must be a number or a list of mappings")
        return
    if isinstance(want, int):
        if len(have) != want:
            problems.append(f"expected {want} {kind}, got {len(have)}: {_show(have)}")
        return
    left = list(have)
    for item in want:
        if not isinstance(item, Mapping):
            problems.append(f"expect.{kind}: each item is a mapping, got {item!r}")
            continue
        found = next((a for a in left if _matches(item, a)), None)
        if found is None:
            problems.append(f"expected {kind[:-1]} {json.dumps(item, default=str)} not found in {_show(have)}")
        else:
            left.remove(found)
    if len(have) != len(want):
        problems.append(f"expected {len(want)} {kind}, got {len(have)}: {_show(have)}")


def _show(items: list[dict[str, Any]]) -> str:
    text = json.dumps(items, default=str)
    return text if len(text) <= 600 else text[:597] + "..."


def _alone(playbooks: PlaybookSet, playbook: Playbook) -> PlaybookSet:
    mode = "simulate" if playbook.mode == "off" else playbook.mode
    return dataclasses.replace(playbooks, playbooks=(dataclasses.replace(playbook, mode=mode),))


def run_test(playbooks: PlaybookSet, test: TestCase, playbook: Playbook | None) -> Outcome:
    outcome = Outcome(playbook.id if playbook else None, test.name)
    default_name = playbook.events[0] if playbook and playbook.events else None
    try:
        specs = read_jsonl(test.file) if test.file else list(test.events)
        events = expand(specs, default_name)
    except TestInputError as exc:
        outcome.problems.append(str(exc))
        return outcome
    run = run_events(_alone(playbooks, playbook) if playbook else playbooks, events)
    outcome.alerts, outcome.decisions = len(run.alerts), len(run.decisions)
    views = {
        "alerts": [_alert_view(a) for a in run.alerts],
        "decisions": [_decision_view(d) for d in run.decisions],
        "notifications": [_notification_view(n) for n in run.notifications],
    }
    for kind in ("alerts", "decisions", "notifications"):
        if kind in test.expect:
            _compare(kind, test.expect[kind], views[kind], outcome.problems)
    return outcome


def run_tests(playbooks: PlaybookSet) -> list[Outcome]:
    """Every test of the file: each playbook's, then the file-level ones."""
    outcomes = [run_test(playbooks, test, p) for p in playbooks.playbooks for test in p.tests]
    outcomes += [run_test(playbooks, test, None) for test in playbooks.tests]
    return outcomes
