"""The playbook engine: events in; alerts, decisions and notification requests out. Pure and event-timed.

Nothing here reads the wall clock, writes anywhere or sends anything: the explorer's live side
stores and serves what ``process`` returns, the backtest only counts it. Fed the same events in the
same order, two engines return the same outputs with the same ids (ids are hashes of the playbook,
the group and the first event), one event at a time or in batches.

Semantics (the README's "Playbooks" section says the same for users):

- An event goes to the playbooks whose ``when.event`` names it (by a dict lookup, before any CEL),
  then ``when.where``, then is grouped by the ``group_by`` fields (an event lacking one is skipped).
- One alert per incident: when a group's detection fires, an ``Alert`` opens; while the group's next
  matching event comes less than the window (``within``) after the alert's last one, it joins the
  alert (``count``, ``event_ids`` up to ``MAX_ALERT_EVENTS``) instead of opening another. After a
  quiet window the alert is over and detection starts afresh for that group.
- Decisions: each response of ``then`` acts on the group (``target: group``) or on every distinct IP
  or user among the alert's events (``contributors``, also those joining later, up to
  ``max_targets`` per alert). A target with an active decision (``expires_at`` after the current
  event time) gets no second one, from any playbook; if its decision lapses while the incident
  goes on (a block shorter than the window), the next event of the incident decides it again.
  ``escalate``: the duration is multiplied by ``factor`` for each earlier decision against the
  same target that started within ``lookback``, capped at ``max``.
- Never acted on: the allowlist (IPs and networks; users whose identifiers include an entry's),
  loopback, private, link-local, CGNAT and unspecified addresses, and the trusted proxies. The
  documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are not private here, so
  examples and tests can use them. Skipped targets are listed in ``Alert.protected``.
- Circuit breaker: with ``max_active_decisions`` decisions active, no new ones are made; the first
  refusal emits a ``NotifyRequest`` (``reason="circuit_breaker"``) and ``stats()`` counts refusals.
  It closes again when decisions expire or are lifted.
- ``simulate`` playbooks produce alerts and decisions marked ``simulated`` (with their own
  de-duplication, escalation and breaker), which must never be served; ``off`` ones do nothing.
- State is bounded: at most ``max_keys`` groups per playbook (least recently seen evicted, counted
  in ``stats()["playbooks"][id]["evictions"]``), bounded windows (see ``detect``), and escalation
  history for at most ``MAX_HISTORY_TARGETS`` targets. After a restart, feed the stored events of
  the last ``PlaybookSet.longest_window`` seconds (``process`` again: same ids, so storing by id is
  idempotent) and ``restore()`` the decisions still in force.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import ipaddress
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .detect import Hit, SequenceDetector, SequenceState, ThresholdDetector, ThresholdState
from .fields import MISSING, Accessor, EventLike, accessor
from .spec import Action, Playbook, PlaybookSet

MAX_ALERT_EVENTS = 1000
_RETRY: Any = object()  # _decide: refused by the circuit breaker, to be tried again
MAX_PROTECTED = 100
MAX_HISTORY_TARGETS = 100_000
MAX_HISTORY_PER_TARGET = 64
_NEVER_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.168.0.0/16", "255.255.255.255/32", "::/128", "::1/128", "fc00::/7", "fe80::/10",
    )
)  # fmt: skip


# -- outputs ---------------------------------------------------------------------------------------


@dataclass
class Alert:
    """One incident of one playbook for one group. Times are event times (ns since the epoch)."""

    id: str
    playbook_id: str
    group: dict[str, Any]
    first_ns: int
    last_ns: int
    event_ids: list[int]  # the contributing events, oldest first, at most MAX_ALERT_EVENTS
    count: int  # contributing events, including those beyond event_ids
    simulated: bool
    severity: str
    open_until_ns: int  # a matching event of the group before this joins the alert
    protected: list[dict[str, Any]] = field(default_factory=list)  # targets not acted on, and why


@dataclass(frozen=True)
class Decision:
    """A block or redirect; ``start`` and ``expires_at`` are event times in epoch seconds."""

    id: str
    alert_id: str
    playbook_id: str
    action: Literal["block_ip", "block_user", "redirect_ip", "redirect_user"]
    ip: str | None
    user: dict[str, Any] | None
    url: str | None
    duration: float
    start: float
    expires_at: float
    simulated: bool
    escalation: int = 0  # earlier decisions against this target within the lookback

    @property
    def target(self) -> str:
        """The IP, or the user identifiers as canonical JSON: what de-duplication and escalation key on."""
        return self.ip if self.ip is not None else json.dumps(self.user, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class NotifyRequest:
    """Ask the live side to notify ``channels`` (names from the file's ``notify:``)."""

    channels: tuple[str, ...]
    alert: Alert
    decisions: tuple[Decision, ...] = ()
    reason: Literal["alert", "circuit_breaker"] = "alert"
    message: str = ""


@dataclass
class Result:
    """What a ``process`` call produced. Alerts are snapshots taken at the end of the call."""

    alerts_opened: list[Alert] = field(default_factory=list)
    alerts_updated: list[Alert] = field(default_factory=list)  # opened earlier, joined by new events
    decisions: list[Decision] = field(default_factory=list)
    notifications: list[NotifyRequest] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.alerts_opened or self.alerts_updated or self.decisions or self.notifications)


# -- internals -------------------------------------------------------------------------------------


class _Group:
    __slots__ = ("alert", "decided", "state", "values")

    def __init__(self, state: ThresholdState | SequenceState, values: tuple[Any, ...]) -> None:
        self.state = state
        self.values = values  # the group_by fields' values, as the first event had them
        self.alert: Alert | None = None
        self.decided: dict[int, dict[str, Decision | None]] = {}  # action index -> target -> decision (see _act)


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _canonical_user(user: Mapping[str, Any]) -> str:
    return json.dumps(dict(user), sort_keys=True, separators=(",", ":"), default=str)


class _Runner:
    """One playbook's compiled form and per-group state."""

    def __init__(self, playbook: Playbook, max_keys: int) -> None:
        self.playbook = playbook
        self.simulated = playbook.mode == "simulate"
        self.where = playbook.where
        self.group_fields = playbook.group_by
        self.group_getters: tuple[Accessor, ...] = tuple(accessor(f) for f in playbook.group_by)
        self.threshold = ThresholdDetector(playbook.threshold) if playbook.threshold else None
        self.sequence = SequenceDetector(playbook.sequence) if playbook.sequence else None
        self.steps = playbook.sequence.steps if playbook.sequence else ()
        self.within_ns = int(playbook.window * 1e9)
        self.max_keys = max_keys
        self.groups: OrderedDict[Any, _Group] = OrderedDict()
        self.stats = {"matched": 0, "ungrouped": 0, "alerts": 0, "decisions": 0, "protected": 0, "evictions": 0}

    def group_of(self, event: EventLike) -> tuple[Any, _Group] | None:
        """The event's group (made on first sight, evicting the least recently seen past ``max_keys``)."""
        getters = self.group_getters
        if len(getters) == 1:  # the common case: one field, a text value, the value itself is the key
            value = getters[0](event)
            if value.__class__ is str:
                key: Any = value
            elif value is MISSING:
                self.stats["ungrouped"] += 1
                return None
            else:
                key = _key(value)
            values: tuple[Any, ...] | None = None
        else:
            values = tuple([get(event) for get in getters])
            if any(v is MISSING for v in values):
                self.stats["ungrouped"] += 1
                return None
            key = values if all(v.__class__ is str for v in values) else tuple(_key(v) for v in values)
        group = self.groups.get(key)
        if group is None:
            detector = self.threshold or self.sequence
            assert detector is not None
            group = _Group(detector.new_state(), values or (getters[0](event),))
            self.groups[key] = group
            if len(self.groups) > self.max_keys:
                self.groups.popitem(last=False)
                self.stats["evictions"] += 1
        else:
            self.groups.move_to_end(key)
        return key, group


def _key(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return (type(value).__name__, value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


# -- the engine ------------------------------------------------------------------------------------


class Engine:
    """Runs a ``PlaybookSet`` over events. Not thread-safe: feed it from one thread (the explorer's writer).

    ``trusted_proxies`` adds to the file's ``trusted_proxies``; ``max_active_decisions`` and
    ``max_keys`` override the file's.
    """

    def __init__(
        self,
        playbooks: PlaybookSet,
        *,
        trusted_proxies: Iterable[str] = (),
        max_active_decisions: int | None = None,
        max_keys: int | None = None,
    ) -> None:
        self.playbooks = playbooks
        self._max_active_arg, self._max_keys_arg = max_active_decisions, max_keys
        self._extra_proxies = tuple(trusted_proxies)
        self.max_active = max_active_decisions or playbooks.max_active_decisions
        self.max_keys = max_keys or playbooks.max_keys
        self._protected_networks = (
            *_NEVER_BLOCKED,
            *playbooks.trusted_proxies,
            *(ipaddress.ip_network(p, strict=False) for p in trusted_proxies),
        )
        self._allow_networks = playbooks.allow_ips
        self._allow_users = tuple(dict(u) for u in playbooks.allow_users)
        self._runners: dict[str, _Runner] = {}
        self._by_name: dict[str, list[_Runner]] = {}
        self._any_name: list[_Runner] = []
        for playbook in playbooks.playbooks:
            if playbook.mode != "off":
                self._add_runner(_Runner(playbook, self.max_keys))
        self.now_ns = 0  # the newest event time seen: the engine's clock
        # Per namespace (False: enforced, True: simulated): target -> decision, expiry heap, history.
        self._active: dict[bool, dict[str, Decision]] = {False: {}, True: {}}
        self._expiry: dict[bool, list[tuple[float, str, str]]] = {False: [], True: []}
        self._history: dict[bool, OrderedDict[str, list[float]]] = {False: OrderedDict(), True: OrderedDict()}
        self._breaker_open = {False: False, True: False}
        self._result = Result()
        self._updated: dict[str, Alert] = {}
        self.counters = {"events": 0, "breaker_refusals": 0, "breaker_trips": 0, "already_blocked": 0}

    def _add_runner(self, runner: _Runner) -> None:
        self._runners[runner.playbook.id] = runner
        if runner.playbook.events:
            for name in runner.playbook.events:
                self._by_name.setdefault(name, []).append(runner)
        else:
            self._any_name.append(runner)

    # -- public ------------------------------------------------------------------------------------

    def process(self, events: EventLike | Iterable[EventLike]) -> Result:
        """Run events (in the order given: the store's commit order) through every playbook."""
        if hasattr(events, "time_ns"):
            events = (events,)  # type: ignore[assignment]
        self._result = result = Result()
        self._updated = {}
        by_name, any_name = self._by_name, self._any_name
        feed = self._feed
        count = 0
        for event in events:  # type: ignore[union-attr]
            count += 1
            if event.time_ns > self.now_ns:
                self.now_ns = event.time_ns
            runners = by_name.get(event.name)
            if runners:
                for runner in runners:
                    feed(runner, event)
            for runner in any_name:
                feed(runner, event)
        self.counters["events"] += count
        opened = {a.id for a in result.alerts_opened}
        result.alerts_opened = [_snapshot(a) for a in result.alerts_opened]
        result.alerts_updated = [_snapshot(a) for a in self._updated.values() if a.id not in opened]
        snapshots = {a.id: a for a in result.alerts_opened}
        result.notifications = [
            dataclasses.replace(n, alert=snapshots.get(n.alert.id) or _snapshot(n.alert)) for n in result.notifications
        ]
        return result

    def reloaded(self, playbooks: PlaybookSet) -> Engine:
        """A new engine for a reloaded file that keeps what this one knows.

        Playbooks whose definition is unchanged keep their groups, windows and open alerts; changed
        or new ones start empty; decisions in force and escalation history carry over. The live
        side calls this when the file changes and loads (and keeps this engine when it does not).
        """
        engine = Engine(playbooks, max_active_decisions=self._max_active_arg, max_keys=self._max_keys_arg,
                        trusted_proxies=self._extra_proxies)  # fmt: skip
        for playbook_id, runner in engine._runners.items():
            old = self._runners.get(playbook_id)
            if old is not None and old.playbook == runner.playbook and old.max_keys == runner.max_keys:
                engine._runners[playbook_id] = old
        engine._by_name, engine._any_name = {}, []
        for runner in list(engine._runners.values()):
            engine._add_runner(runner)
        engine.now_ns = self.now_ns
        engine._active, engine._expiry, engine._history = self._active, self._expiry, self._history
        engine.counters = dict(self.counters)
        return engine

    def restore(self, decisions: Iterable[Decision]) -> None:
        """Decisions still in force after a restart: they block duplicates and count for the breaker."""
        for decision in decisions:
            self._record(decision)

    def lift(self, decision_id: str) -> bool:
        """Forget an active decision lifted by hand (its target may be decided again, without escalation)."""
        for simulated in (False, True):
            for target, decision in list(self._active[simulated].items()):
                if decision.id == decision_id:
                    del self._active[simulated][target]
                    starts = self._history[simulated].get(target)
                    if starts and decision.start in starts:
                        starts.remove(decision.start)
                    return True
        return False

    def active_decisions(self, simulated: bool = False) -> list[Decision]:
        """Decisions in force at the engine's clock (the newest event time seen)."""
        self._expire(simulated)
        return list(self._active[simulated].values())

    def open_alerts(self) -> list[Alert]:
        """Alerts still open at the engine's clock, as snapshots."""
        out = []
        for runner in self._runners.values():
            for group in runner.groups.values():
                if group.alert is not None and group.alert.open_until_ns > self.now_ns:
                    out.append(_snapshot(group.alert))
        return out

    def stats(self) -> dict[str, Any]:
        """Counters: per playbook (groups held, evictions, matched events, alerts, decisions...) and overall."""
        playbooks = {}
        for playbook_id, runner in self._runners.items():
            detector = runner.threshold or runner.sequence
            where_errors = runner.where.errors if runner.where else 0
            playbooks[playbook_id] = {
                **runner.stats,
                "groups": len(runner.groups),
                "late": detector.late if detector else 0,
                "where_errors": where_errors + sum(s.where.errors for s in runner.steps if s.where),
            }
        return {
            **self.counters,
            "active_decisions": len(self._active[False]),
            "simulated_active_decisions": len(self._active[True]),
            "playbooks": playbooks,
        }

    # -- evaluation --------------------------------------------------------------------------------

    def _feed(self, runner: _Runner, event: EventLike) -> None:
        where = runner.where
        if where is not None and not where.matches(event):
            return
        steps: list[bool] | None = None
        if runner.sequence is not None:
            steps = [
                (not s.event or event.name in s.event) and (s.where is None or s.where.matches(event))
                for s in runner.steps
            ]
            if not any(steps):
                return
        found = runner.group_of(event)
        if found is None:
            return
        key, group = found
        runner.stats["matched"] += 1
        t = event.time_ns
        alert = group.alert
        if alert is not None:
            if t < alert.open_until_ns:
                self._join(runner, group, alert, event)
                return
            group.alert = None
            group.decided = {}
        if runner.threshold is not None:
            hits = runner.threshold.add(group.state, event)  # type: ignore[arg-type]
        else:
            assert runner.sequence is not None and steps is not None
            hits = runner.sequence.add(group.state, event, steps)  # type: ignore[arg-type]
        if hits is not None:
            self._open(runner, key, group, hits, t)

    def _open(self, runner: _Runner, key: Any, group: _Group, hits: list[Hit], t: int) -> None:
        playbook = runner.playbook
        group.state = (runner.threshold or runner.sequence).new_state()  # type: ignore[union-attr]
        first, last = hits[0].time_ns, max(h.time_ns for h in hits)
        values = dict(zip(runner.group_fields, group.values, strict=True))
        alert = Alert(
            id=_digest("alert", playbook.id, key, hits[0].id, first),
            playbook_id=playbook.id,
            group=values,
            first_ns=first,
            last_ns=max(last, t),
            event_ids=[h.id for h in hits[-MAX_ALERT_EVENTS:]],
            count=len(hits),
            simulated=runner.simulated,
            severity=playbook.severity,
            open_until_ns=max(last, t) + runner.within_ns,
        )
        group.alert = alert
        group.decided = {}
        runner.stats["alerts"] += 1
        self._result.alerts_opened.append(alert)
        decisions = self._act(runner, group, alert, hits)
        if playbook.notify:
            self._result.notifications.append(NotifyRequest(playbook.notify, alert, tuple(decisions)))

    def _join(self, runner: _Runner, group: _Group, alert: Alert, event: EventLike) -> None:
        alert.count += 1
        if event.time_ns > alert.last_ns:
            alert.last_ns = event.time_ns
            alert.open_until_ns = event.time_ns + runner.within_ns
        if len(alert.event_ids) < MAX_ALERT_EVENTS:
            alert.event_ids.append(event.id)
        self._updated[alert.id] = alert
        if runner.playbook.actions:  # new contributors, and targets whose decision lapsed meanwhile
            self._act(runner, group, alert, [Hit(event.time_ns, event.id, event.client_address, event.user)])

    # -- decisions ---------------------------------------------------------------------------------

    def _act(self, runner: _Runner, group: _Group, alert: Alert, hits: list[Hit]) -> list[Decision]:
        """Decisions for the alert's targets among ``hits`` (or its group).

        ``group.decided`` remembers, per response, each target met in this incident: the decision in
        force for it (ours or another playbook's) or ``None`` when it is spared. A target whose
        decision lapsed while the incident goes on is decided again (escalated); one refused by the
        circuit breaker is tried again on the next event.
        """
        made: list[Decision] = []
        now = self.now_ns / 1e9
        for index, action in enumerate(runner.playbook.actions):
            decided = group.decided.setdefault(index, {})
            if action.target == "group":
                targets = [_group_target(action, alert.group)]
            else:
                targets = [_hit_target(action, h) for h in hits]
            for ip, user in targets:
                if ip is None and not user:
                    continue
                name = ip if ip is not None else _canonical_user(user or {})
                if name in decided:
                    known = decided[name]
                    if known is None or known.expires_at > now:
                        continue
                elif len(decided) >= action.max_targets:
                    continue
                outcome = self._decide(runner, alert, action, ip, user, name)
                if outcome is not _RETRY:
                    decided[name] = outcome
                    if outcome is not None and outcome.alert_id == alert.id and outcome.start == now:
                        made.append(outcome)
        return made

    def _decide(
        self, runner: _Runner, alert: Alert, action: Action, ip: str | None, user: dict[str, Any] | None, name: str
    ) -> Any:
        """A new decision; the one already in force for the target; None when it is spared; _RETRY (breaker)."""
        reason = self._protection(ip, user)
        if reason is not None:
            runner.stats["protected"] += 1
            if len(alert.protected) < MAX_PROTECTED:
                target: dict[str, Any] = {"ip": ip} if ip is not None else {"user": user}
                alert.protected.append({**target, "reason": reason})
            return None
        simulated = runner.simulated
        scope_name = ("ip:" if ip is not None else "user:") + name
        now = self.now_ns / 1e9
        self._expire(simulated)
        active = self._active[simulated]
        if scope_name in active:
            self.counters["already_blocked"] += 1
            return active[scope_name]
        if len(active) >= self.max_active:
            self.counters["breaker_refusals"] += 1
            if not self._breaker_open[simulated]:
                self._breaker_open[simulated] = True
                self.counters["breaker_trips"] += 1
                channels = runner.playbook.notify or tuple(self.playbooks.channels)
                message = (
                    f"circuit breaker: {len(active)} decisions active (max_active_decisions {self.max_active}); "
                    f"playbook {runner.playbook.id} makes no new decisions until some expire or are lifted"
                )
                self._result.notifications.append(NotifyRequest(channels, alert, (), "circuit_breaker", message))
            return _RETRY
        self._breaker_open[simulated] = False
        duration, previous = action.duration, 0
        if action.escalate is not None:
            starts = [s for s in self._history[simulated].get(scope_name, ()) if now - s < action.escalate.lookback]
            previous = len(starts)
            duration = min(duration * action.escalate.factor**previous, action.escalate.max or float("inf"))
            duration = min(duration, 366 * 86400.0)
        decision = Decision(
            id=_digest("decision", alert.id, action.type, scope_name, self.now_ns),
            alert_id=alert.id,
            playbook_id=runner.playbook.id,
            action=action.type,  # type: ignore[arg-type]
            ip=ip,
            user=dict(user) if user is not None else None,
            url=action.url,
            duration=duration,
            start=now,
            expires_at=now + duration,
            simulated=simulated,
            escalation=previous,
        )
        self._record(decision)
        runner.stats["decisions"] += 1
        self._result.decisions.append(decision)
        return decision

    def _record(self, decision: Decision) -> None:
        simulated = decision.simulated
        scope_name = ("ip:" if decision.ip is not None else "user:") + decision.target
        self._active[simulated][scope_name] = decision
        heapq.heappush(self._expiry[simulated], (decision.expires_at, scope_name, decision.id))
        history = self._history[simulated]
        starts = history.pop(scope_name, [])
        starts.append(decision.start)
        history[scope_name] = starts[-MAX_HISTORY_PER_TARGET:]
        if len(history) > MAX_HISTORY_TARGETS:
            history.popitem(last=False)

    def _expire(self, simulated: bool) -> None:
        now = self.now_ns / 1e9
        heap, active = self._expiry[simulated], self._active[simulated]
        while heap and heap[0][0] <= now:
            _, scope_name, decision_id = heapq.heappop(heap)
            current = active.get(scope_name)
            if current is not None and current.id == decision_id:
                del active[scope_name]

    def _protection(self, ip: str | None, user: dict[str, Any] | None) -> str | None:
        """Why this target must not be acted on, or None."""
        if ip is not None:
            try:
                address = ipaddress.ip_address(ip.strip())
            except ValueError:
                return "not an IP address"
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if any(address in n for n in self._allow_networks):
                return "allowlisted"
            if any(address in n for n in self._protected_networks[: len(_NEVER_BLOCKED)]):
                return "private or loopback address"
            if any(address in n for n in self._protected_networks[len(_NEVER_BLOCKED) :]):
                return "trusted proxy"
            return None
        for entry in self._allow_users:  # an entry holds when the user has each of its identifiers
            if user and all(k in user and str(user[k]) == v for k, v in entry.items()):
                return "allowlisted"
        return None


def _group_target(action: Action, group: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    if action.scope == "ip":
        value = group.get("client.address")
        return (str(value) if value is not None else None), None
    return None, {k[5:]: v for k, v in group.items() if k.startswith("user.")}


def _hit_target(action: Action, h: Hit) -> tuple[str | None, dict[str, Any] | None]:
    if action.scope == "ip":
        return h.ip, None
    return None, (dict(h.user) if h.user else None)


def _snapshot(alert: Alert) -> Alert:
    return dataclasses.replace(alert, group=dict(alert.group), event_ids=list(alert.event_ids),
                               protected=list(alert.protected))  # fmt: skip
