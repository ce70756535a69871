"""Backtests: stored history through a fresh engine, reported per playbook. Nothing is served or stored.

Events are replayed in the store's commit order (by id), as the live engine saw them, so a backtest
over the events a live engine processed gives the same alerts and decisions. Per playbook: alerts,
decisions, the top targets, "collateral" (decided targets that also logged in successfully in the
same history, and targets skipped as allowlisted, private or trusted proxies), and the
distribution over groups of the busiest window (the largest number of matching events of one
group within ``within``), to choose a threshold from.
"""

from __future__ import annotations

import json
import math
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..storage import Storage
from ..store import Event, Filters, Store
from .engine import Decision, Engine
from .fields import MISSING, Accessor, EventLike, accessor, hashable
from .spec import Playbook, PlaybookSet

LOGIN_EVENT = "sq.sdk.users.login"
PAGE = 500
MAX_GROUPS = 100_000
MAX_SUCCESSES = 1_000_000
TOP = 10


@dataclass
class PlaybookReport:
    id: str
    mode: str
    alerts: int = 0
    decisions: int = 0
    simulated: bool = False
    targets: list[dict[str, Any]] = field(default_factory=list)  # most decided first
    collateral: list[dict[str, Any]] = field(default_factory=list)
    window_counts: dict[str, Any] = field(default_factory=dict)  # percentiles of each group's busiest window
    suggested_count: int | None = None
    alerts_per_day: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "decisions": self.decisions,
            "targets": self.targets,
            "collateral": self.collateral,
            "mode": self.mode,
            "simulated": self.simulated,
            "window_counts": self.window_counts,
            "suggested_count": self.suggested_count,
            "alerts_per_day": self.alerts_per_day,
        }


@dataclass
class Report:
    events: int
    playbooks: dict[str, PlaybookReport]
    first_ns: int | None = None
    last_ns: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """``{"playbooks": {"<id>": {"alerts": N, "decisions": N, "targets": [...], ...}}, "events": N, ...}``."""
        return {
            "playbooks": {pid: report.as_dict() for pid, report in self.playbooks.items()},
            "events": self.events,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
        }


class _Windows:
    """Per group, the most matching events seen inside one window: what a threshold's count compares to."""

    def __init__(self, playbook: Playbook) -> None:
        self.names = frozenset(playbook.events)
        self.where = playbook.where
        self.getters: tuple[Accessor, ...] = tuple(accessor(f) for f in playbook.group_by)
        self.within_ns = int(playbook.window * 1e9)
        self.groups: dict[Any, tuple[deque[int], list[int]]] = {}

    def add(self, event: EventLike) -> None:
        if self.names and event.name not in self.names:
            return
        if self.where is not None and not self.where.matches(event):
            return
        values = tuple(get(event) for get in self.getters)
        if MISSING in values:
            return
        key = tuple(hashable(v) for v in values)
        entry = self.groups.get(key)
        if entry is None:
            if len(self.groups) >= MAX_GROUPS:
                return
            entry = self.groups[key] = (deque(), [0])
        times, best = entry
        times.append(event.time_ns)
        while times[0] <= event.time_ns - self.within_ns:
            times.popleft()
        best[0] = max(best[0], len(times))

    def percentiles(self) -> dict[str, Any]:
        counts = sorted(best[0] for _, best in self.groups.values())
        if not counts:
            return {"groups": 0}

        def pick(q: float) -> int:
            return counts[min(len(counts) - 1, math.ceil(q * len(counts)) - 1)]

        return {"groups": len(counts), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": counts[-1]}


def _user_pairs(user: Any) -> Iterator[tuple[str, str]]:
    if isinstance(user, dict):
        for key, value in user.items():
            yield str(key), str(value)


def run(playbooks: PlaybookSet, events: Iterable[EventLike]) -> Report:
    """Backtest ``events`` (in the order given) through a fresh engine."""
    engine = Engine(playbooks)
    active = [p for p in playbooks.playbooks if p.mode != "off"]
    windows = {p.id: _Windows(p) for p in active}
    reports = {p.id: PlaybookReport(p.id, p.mode, simulated=p.mode == "simulate") for p in playbooks.playbooks}
    decisions: list[Decision] = []
    protected: dict[str, list[dict[str, Any]]] = {p.id: [] for p in active}
    success_ips: set[str] = set()
    success_users: set[tuple[str, str]] = set()
    count, first, last = 0, None, None
    batch: list[EventLike] = []

    def flush() -> None:
        result = engine.process(batch)
        batch.clear()
        for alert in result.alerts_opened:
            report = reports[alert.playbook_id]
            report.alerts += 1
            day = _day(alert.first_ns)
            report.alerts_per_day[day] = report.alerts_per_day.get(day, 0) + 1
        for alert in result.alerts_opened + result.alerts_updated:
            protected[alert.playbook_id] += alert.protected
        decisions.extend(result.decisions)

    for event in events:
        count += 1
        first = event.time_ns if first is None else min(first, event.time_ns)
        last = event.time_ns if last is None else max(last, event.time_ns)
        for w in windows.values():
            w.add(event)
        if event.name == LOGIN_EVENT and event.attributes.get("sqreen.properties.success") is True:
            if event.client_address and len(success_ips) < MAX_SUCCESSES:
                success_ips.add(event.client_address)
            if len(success_users) < MAX_SUCCESSES:
                success_users.update(_user_pairs(event.user))
        batch.append(event)
        if len(batch) >= PAGE:
            flush()
    flush()

    by_playbook: dict[str, list[Decision]] = {}
    for decision in decisions:
        by_playbook.setdefault(decision.playbook_id, []).append(decision)
    for playbook in active:
        report = reports[playbook.id]
        mine = by_playbook.get(playbook.id, [])
        report.decisions = len(mine)
        tally = Counter((d.action, d.target) for d in mine)
        report.targets = [
            {"action": action, "target": target, "decisions": n} for (action, target), n in tally.most_common(TOP)
        ]
        seen: set[str] = set()
        for d in mine:
            if d.target in seen:
                continue
            logged_in = (d.ip in success_ips) if d.ip is not None else all(
                pair in success_users for pair in _user_pairs(d.user)
            )  # fmt: skip
            if logged_in:
                seen.add(d.target)
                report.collateral.append({"action": d.action, "target": d.target, "why": "logged in successfully"})
        for item in protected[playbook.id]:
            target = item["ip"] if "ip" in item else json.dumps(item.get("user"), sort_keys=True)
            if target not in seen:
                seen.add(target)
                report.collateral.append({"target": target, "why": f"not acted on: {item['reason']}"})
        report.window_counts = windows[playbook.id].percentiles()
        if "p99" in report.window_counts:
            report.suggested_count = max(2, math.ceil(report.window_counts["p99"] * 1.5))
    return Report(count, reports, first, last)


def _day(ns: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ns // 10**9, _dt.timezone.utc).strftime("%Y-%m-%d")


def stored_events(store: Storage, since_ns: int | None = None, until_ns: int | None = None) -> Iterator[Event]:
    """The stored events with ``since_ns <= time < until_ns``, in commit order (by id), a page at a time."""
    filters = Filters(since_ns=since_ns, until_ns=until_ns)
    last = 0
    while True:
        page = store.after(last, filters, limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        last = page[-1].id


def run_store(playbooks: PlaybookSet, store: Store, since_ns: int | None = None, until_ns: int | None = None) -> Report:
    """Backtest the stored history from ``since_ns`` on."""
    return run(playbooks, stored_events(store, since_ns, until_ns))
