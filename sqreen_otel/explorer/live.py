"""Live playbook evaluation in the explorer: every committed event through the engine, on its own thread.

The thread reads the store after its cursor (the id of the last event it acted on, kept in the same
database), so ingest never waits for it and nothing committed is skipped: a slow engine only lags.
Each page of events goes through the engine; alerts, decisions, ``sq.action.*`` hit counts and the
new cursor are written in one transaction; notifications are queued to the ``Notifier``.

At start, and whenever the playbook file changes, a fresh engine is rebuilt: the decisions still in
force are restored, then the stored events of the longest window up to the cursor are replayed
without side effects (the engine's ids are hashes of its inputs, so replayed alerts and decisions
land on their own rows; lifted decisions stay lifted and are lifted in the engine too). Then events
after the cursor are evaluated for real. A bad file at start is an error; a bad file on reload is
logged with its line and field, and the last good set stays in force.

On PostgreSQL several replicas run this thread, and one evaluates: the leader (``leader.Leadership``,
a session advisory lock). The others try again every ``elect_interval`` seconds and serve what the
leader stored. A replica that takes over rebuilds its engine as at start, from the shared cursor, so
events are evaluated once across replicas: each page's alerts, decisions and cursor are committed
together, fenced on the cursor the leader read (a leader that lost its lock cannot write after the
new one), and a page cut short by a crash is evaluated again by the next leader, whose ids for the
same alerts and decisions are the same rows. A notification is sent after its commit: a leader
killed in between loses it (at most once). The leader also picks up decisions lifted on other
replicas (``lifted_since``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..blocking import ACTION_ID
from .alerts import FenceError, Records
from .notify import Notifier, SMTPConfig
from .playbooks import Engine, NotifyRequest, PlaybookError, PlaybookSet, Result, load
from .playbooks.backtest import stored_events
from .store import _COLUMNS, Event, Store, _event

if TYPE_CHECKING:
    from .leader import Leadership
    from .store_pg import PgStore

logger = logging.getLogger("sqreen_otel.explorer")

PAGE = 500
ACTION_EVENT_PREFIX = "sq.action."
ACTION_PREFIX_END = "sq.action/"  # "/" follows "." in code point order: name >= "sq.action." AND < this
MAX_NOTIFY_EVENTS = 20  # event ids listed in a notification


class Live:
    """Runs the playbooks of ``path`` over ``store``'s events as they are committed.

    ``start()`` loads the file (``PlaybookError`` if it is bad) and starts the thread; ``nudge()``
    wakes it early (after a commit); ``lift()`` stops serving a decision; ``close()`` stops.
    """

    def __init__(
        self,
        store: Store | PgStore,
        path: str | os.PathLike[str],
        *,
        trusted_proxies: Iterable[str] = (),
        notifier: Notifier | None = None,
        smtp: SMTPConfig | None = None,
        poll_interval: float = 0.25,
        reload_interval: float = 1.0,
        max_age: float | None = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
        elect_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.elect_interval = elect_interval
        self._leadership: Leadership | None = None
        if not isinstance(store, Store):  # PostgreSQL: one leader among the replicas evaluates
            from .leader import Leadership

            self._leadership = Leadership(store.url)
        self.path = os.fspath(path)
        self.records = Records(store, clock=clock)
        self.trusted_proxies = tuple(trusted_proxies)
        self.poll_interval = poll_interval
        self.reload_interval = reload_interval
        self.max_age = max_age
        self._clock = clock
        self._smtp = smtp
        self._notifier = notifier
        self.playbooks: PlaybookSet | None = None
        self.engine: Engine | None = None
        self.loaded_at: float | None = None
        self.last_error: str | None = None
        self.counters = {"events": 0, "pages": 0, "alerts": 0, "decisions": 0, "notifications": 0, "errors": 0,
                         "hits": 0, "reloads": 0, "rejected_reloads": 0}  # fmt: skip
        self._signature: tuple[int, int, int] | None = None
        self._cursor = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lifts: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- control -----------------------------------------------------------------------------------

    def start(self) -> Live:
        self.playbooks = load(self.path)  # raises PlaybookError: serve refuses to start on a bad file
        self._signature = self._stat()
        self.loaded_at = self._clock()
        if self._notifier is None:
            self._notifier = Notifier(self.playbooks.channels, smtp=self._smtp)
        self._thread = threading.Thread(target=self._run, name="sqreen_otel.explorer.playbooks", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Until the engine has been rebuilt from the stored events (tests, the CLI banner)."""
        return self._ready.wait(timeout)

    def nudge(self) -> None:
        """New events were committed: look now rather than at the next poll."""
        self._wake.set()

    def lift(self, decision_id: str) -> bool:
        """Stop serving a decision now; the engine forgets it (its target may be decided again)."""
        lifted = self.records.lift(decision_id)
        if lifted:
            self._lifts.put(decision_id)
            self._wake.set()
        return lifted

    def lift_alert(self, alert_id: str) -> list[str]:
        ids = self.records.lift_alert(alert_id)
        for decision_id in ids:
            self._lifts.put(decision_id)
        self._wake.set()
        return ids

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._notifier is not None:
            self._notifier.close(timeout)
        if self._leadership is not None:
            self._leadership.release()

    @property
    def leader(self) -> bool:
        """Whether this process evaluates (always on SQLite; on PostgreSQL, the replica holding the lock)."""
        return self._leadership is None or self._leadership.leader

    def status(self) -> dict[str, Any]:
        """For the UI and tests: the file, when it was loaded, the last reload error, counters, engine stats."""
        engine = self.engine
        return {
            "path": self.path, "loaded_at": self.loaded_at, "last_error": self.last_error, "cursor": self._cursor,
            "leader": self.leader,
            "counters": dict(self.counters), "engine": engine.stats() if engine is not None else None,
            "notifications": self._notifier.stats() if self._notifier is not None else {},
        }  # fmt: skip

    @property
    def notifier(self) -> Notifier | None:
        return self._notifier

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._elect():
                self._lead()

    def _elect(self) -> bool:
        """Until this replica leads (at once on SQLite); ``False`` when stopped first."""
        leadership = self._leadership
        if leadership is None:
            return True
        while not self._stop.is_set():
            if leadership.try_acquire():
                logger.info("playbooks: this replica is the leader; it evaluates the playbooks")
                return True
            self._stop.wait(self.elect_interval)
        return False

    def _lead(self) -> None:
        """Rebuild the engine, then evaluate until stopped (or, on PostgreSQL, until the lock is lost)."""
        try:
            self._rebuild(first=True)
        except Exception:
            logger.exception("playbooks: rebuilding from the stored events failed; starting from the newest event")
            self.counters["errors"] += 1
            self._cursor = self._max_id()
            if self.engine is None and self.playbooks is not None:  # evaluate from now on, without the history
                self.engine = Engine(self.playbooks, trusted_proxies=self.trusted_proxies)
        self._ready.set()
        next_reload = time.monotonic() + self.reload_interval
        next_prune = time.monotonic() + 60.0
        lifts_seen = self._clock()
        while not self._stop.is_set():
            self._wake.clear()  # before reading: a commit from now on wakes the next wait
            try:
                if time.monotonic() >= next_reload:
                    next_reload = time.monotonic() + self.reload_interval
                    if self._leadership is not None:
                        if not self._leadership.held():
                            self._step_down()
                            return
                        lifts_seen = self._lifted_elsewhere(lifts_seen)
                    self._maybe_reload()
                self._apply_lifts()
                if self._step():
                    continue  # more may wait: no sleep
                if self.max_age is not None and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + 3600.0
                    self.records.prune(self.max_age)
            except FenceError as exc:
                logger.error("playbooks: %s; stepping down", exc)
                self._step_down()
                return
            except Exception:  # a bug or a storage error: counted, logged, and the thread lives on
                self.counters["errors"] += 1
                logger.exception("playbooks: live evaluation failed; retrying")
                self._stop.wait(1.0)
            self._wake.wait(self.poll_interval)

    def _step_down(self) -> None:
        """Stop evaluating: another replica leads (or will); this one tries again."""
        self.engine = None
        self._ready.clear()
        if self._leadership is not None:
            self._leadership.release()
        self._stop.wait(self.elect_interval)

    def _lifted_elsewhere(self, since: float) -> float:
        """Decisions lifted through another replica since ``since``: the engine forgets them too."""
        now = self._clock()
        engine = self.engine
        if engine is not None:
            for decision_id in self.records.lifted_since(since - 5.0):  # 5 s: clocks of replicas differ a little
                engine.lift(decision_id)
        return now

    def _read(self) -> tuple[list[Event], int]:
        """The next events after the cursor that a playbook or the hit counts read, and the new cursor.

        Events of other names are skipped in SQL (the engine would drop them by name anyway, so the
        outcome is the same as feeding it everything), which saves decoding them.
        """
        names = self._names
        if names is None:
            page = self.store.after(self._cursor, limit=PAGE)
            return list(page), page[-1].id if page else self._cursor
        if self._leadership is not None:
            return self._read_pg(names)
        conn = self.store._conn()
        upto = self._max_id()
        if upto <= self._cursor:
            return [], self._cursor
        marks = ",".join("?" * len(names))
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE id > ? AND id <= ?"
            f" AND (+name IN ({marks}) OR (+name >= ? AND +name < ?)) ORDER BY id LIMIT ?"
        )  # "+name": walk the id range, never the name index (which would sort every stored event of those names)
        rows = conn.execute(sql, (self._cursor, upto, *names, ACTION_EVENT_PREFIX, ACTION_PREFIX_END, PAGE))
        events = [_event(row) for row in rows]
        return events, events[-1].id if len(events) == PAGE else upto

    def _read_pg(self, names: tuple[str, ...]) -> tuple[list[Event], int]:
        """``_read`` on PostgreSQL: the same rows, in its words (its planner walks the id range by itself)."""
        from .store_pg import _COLUMNS as PG_COLUMNS

        conn = self.store._conn()
        upto = self._max_id()
        if upto <= self._cursor:
            return [], self._cursor
        sql = (
            f"SELECT {PG_COLUMNS} FROM events WHERE id > %s AND id <= %s"
            " AND (name = ANY(%s) OR (name >= %s AND name < %s)) ORDER BY id LIMIT %s"
        )
        rows = conn.execute(sql, (self._cursor, upto, list(names), ACTION_EVENT_PREFIX, ACTION_PREFIX_END, PAGE))
        events = [_event(row) for row in rows]
        return events, events[-1].id if len(events) == PAGE else upto

    def _step(self) -> bool:
        """Evaluate the next page after the cursor; ``True`` when a full page was read (more may wait)."""
        engine = self.engine
        if engine is None:
            return False
        page, cursor = self._read()
        if cursor == self._cursor:
            return False
        result = engine.process(page)
        hits = _hits(page)
        fence = None if self._leadership is None else self._cursor
        self.records.record(
            result.alerts_opened + result.alerts_updated, result.decisions, hits=hits, cursor=cursor, fence=fence
        )
        self._cursor = cursor
        self.counters["events"] += len(page)
        self.counters["pages"] += 1
        self.counters["alerts"] += len(result.alerts_opened)
        self.counters["decisions"] += len(result.decisions)
        self.counters["hits"] += sum(n for n, _ in hits.values())
        for request in result.notifications:
            self._notify(request)
        return len(page) >= PAGE

    @property
    def _names(self) -> tuple[str, ...] | None:
        """The event names the playbooks in force read, or ``None`` when one of them reads every name."""
        playbooks = self.playbooks
        if playbooks is None:
            return None
        names: set[str] = set()
        for playbook in playbooks.playbooks:
            if playbook.mode == "off":
                continue
            if not playbook.events:
                return None
            names.update(playbook.events)
        return tuple(sorted(names))

    def _rebuild(self, *, first: bool) -> None:
        """A fresh engine for the current playbooks, its state replayed from the stored events."""
        playbooks = self.playbooks
        assert playbooks is not None
        engine = Engine(playbooks, trusted_proxies=self.trusted_proxies)
        if first:
            stored = self.records.cursor()
            self._cursor = self._max_id() if stored is None else stored
        engine.restore(self.records.in_force())
        since_ns = int((self._clock() - playbooks.longest_window) * 1e9)
        replay: list[Event] = []
        replayed = 0
        for event in stored_events(self.store, since_ns=max(0, since_ns)):
            if event.id > self._cursor:
                break
            replay.append(event)
            if len(replay) >= PAGE:
                replayed += self._replay(engine, replay)
        replayed += self._replay(engine, replay)
        for decision_id in self.records.lifted_since(0.0):
            engine.lift(decision_id)
        self.engine = engine
        self.records.record((), (), cursor=self._cursor)
        logger.info(
            "playbooks: %d playbook(s) from %s, state rebuilt from %d stored event(s); evaluating events after id %d",
            len(playbooks.playbooks), self.path, replayed, self._cursor,
        )  # fmt: skip

    def _replay(self, engine: Engine, events: list[Event]) -> int:
        """Events already acted on: their alerts and decisions are stored again by id, nothing is sent."""
        if not events:
            return 0
        result: Result = engine.process(events)
        self.records.record(result.alerts_opened + result.alerts_updated, result.decisions)
        count = len(events)
        events.clear()
        return count

    def _apply_lifts(self) -> None:
        engine = self.engine
        while True:
            try:
                decision_id = self._lifts.get_nowait()
            except queue.Empty:
                return
            if engine is not None:
                engine.lift(decision_id)

    def _maybe_reload(self) -> None:
        signature = self._stat()
        if signature == self._signature:
            return
        self._signature = signature
        try:
            playbooks = load(self.path)
        except PlaybookError as exc:
            self.counters["rejected_reloads"] += 1
            self.last_error = str(exc)
            logger.error("playbooks file %s rejected: %s; the last good set stays in force", self.path, exc)
            return
        self.playbooks = playbooks
        self._rebuild(first=False)
        if self._notifier is not None:
            self._notifier.set_channels(playbooks.channels)
        self.loaded_at = self._clock()
        self.last_error = None
        self.counters["reloads"] += 1
        logger.info("playbooks file %s reloaded", self.path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _max_id(self) -> int:
        row = self.store._conn().execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(row[0]) if row is not None else 0

    # -- notifications -----------------------------------------------------------------------------

    def _notify(self, request: NotifyRequest) -> None:
        notifier = self._notifier
        if notifier is None:
            return
        subject, text, payload = notification(request, self.playbooks)
        for channel in request.channels:
            if notifier.send(channel, subject, text, payload):
                self.counters["notifications"] += 1


def _hits(page: list[Event]) -> dict[str, tuple[int, int]]:
    """Hits reported by agents (``sq.action.<type>`` with ``sqreen.action.id``): decision id -> (count, last ns)."""
    hits: dict[str, tuple[int, int]] = {}
    for event in page:
        if event.name.startswith(ACTION_EVENT_PREFIX):
            decision_id = event.attributes.get(ACTION_ID)
            if isinstance(decision_id, str) and decision_id:
                n, last = hits.get(decision_id, (0, 0))
                hits[decision_id] = (n + 1, max(last, event.time_ns))
    return hits


def notification(request: NotifyRequest, playbooks: PlaybookSet | None) -> tuple[str, str, dict[str, Any]]:
    """``(subject, text, JSON payload)`` of a notification; the payload keeps Sqreen's webhook names."""
    alert = request.alert
    playbook = playbooks.get(alert.playbook_id) if playbooks is not None else None
    group = ", ".join(f"{key}={value}" for key, value in alert.group.items())
    simulated = "[simulated] " if alert.simulated else ""
    if request.reason == "circuit_breaker":
        subject = f"{simulated}Circuit breaker: playbook {alert.playbook_id} stopped making decisions"
    else:
        subject = f"{simulated}Playbook {alert.playbook_id} fired for {group} ({alert.severity})"
    lines = [request.message] if request.message else []
    if playbook is not None and playbook.description:
        lines.append(playbook.description)
    lines.append(f"{alert.count} matching event(s) for {group}, alert {alert.id}.")
    for d in request.decisions:
        target = d.ip if d.ip is not None else ", ".join(f"{k}={v}" for k, v in (d.user or {}).items())
        lines.append(f"{d.action} {target} for {d.duration:.0f} s (decision {d.id})")
    for p in alert.protected[:10]:
        lines.append(f"not acted on: {p}")
    payload = {
        "sqreen_payload_type": "security_response" if request.decisions else "alert",
        "reason": request.reason,
        "simulated": alert.simulated,
        "playbook": {"id": alert.playbook_id, "name": alert.playbook_id,
                     "description": playbook.description if playbook is not None else ""},
        "alert": {"id": alert.id, "group": alert.group, "count": alert.count, "severity": alert.severity,
                  "first_ns": alert.first_ns, "last_ns": alert.last_ns,
                  "event_ids": alert.event_ids[:MAX_NOTIFY_EVENTS]},
        "decisions": [{"id": d.id, "action": d.action, "ip": d.ip, "user": d.user, "url": d.url,
                       "duration": d.duration, "expires_at": d.expires_at} for d in request.decisions],
        "properties": {"ips": [{"ip_cidr": d.ip} for d in request.decisions if d.ip is not None]},
        "user_identifiers": [d.user for d in request.decisions if d.user is not None],
    }  # fmt: skip
    return subject, "\n".join(lines), payload
