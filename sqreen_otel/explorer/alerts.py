"""Playbook alerts and decisions in the explorer's database (tables of the store's migration 3, PG's 3).

The live evaluation writes here what the engine returns, in the store's own write transactions
(``Store._write``: one writer at a time, with the events' writer). Alerts and decisions are stored by
the engine's ids, which are hashes of their inputs: replaying the same events after a restart rewrites
the same rows instead of adding new ones, and a decision lifted by hand stays lifted.

Served to agents (``GET /v1/actions``, merged with the hand-made block list): decisions that are not
simulated, not lifted and not expired (wall clock). Simulated decisions are kept for the UI and never
served. A decision the agents could not parse (an identifier over their limits, say) is stored lifted
and logged, since one bad entry would make every agent reject the whole document.

On PostgreSQL (``store_pg.PgStore``, several replicas) the same tables hold the same rows, written with
the same statements in PostgreSQL's words (``Dialect``): every replica serves the decisions of the one
that evaluates (``live.Live``'s leader), and ``record(fence=...)`` refuses to advance a cursor that
another evaluator moved, so two evaluators never both act on the same events.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..actions import MAX_ACTIONS, MAX_DOCUMENT_BYTES, parse_actions
from .storage import Storage
from .store import Store

if TYPE_CHECKING:  # the engine (CEL, YAML) is imported only where playbooks run; psycopg only for PostgreSQL
    from .playbooks import Alert, Decision
    from .store_pg import PgStore

logger = logging.getLogger("sqreen_otel.explorer")

MAX_PAGE = 200
SHARED_FEED_TTL = 1.0  # seconds a replica reuses its /v1/actions body on PostgreSQL (agents poll every 5 s)
DAY = 86400.0
_ALERT_COLUMNS = (
    "id, playbook_id, group_key, first_ns, last_ns, open_until_ns, count, event_ids, protected, simulated, severity,"
    " closed_at, created_at"
)
_DECISION_COLUMNS = (
    "id, alert_id, playbook_id, action, ip, user, url, duration, start, expires_at, escalation, simulated, lifted_at,"
    " hits, last_hit_ns, created_at"
)
_UPSERT_ALERT = (
    f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
    " ON CONFLICT (id) DO UPDATE SET last_ns = max(last_ns, excluded.last_ns),"
    " open_until_ns = max(open_until_ns, excluded.open_until_ns), count = max(count, excluded.count),"
    " event_ids = CASE WHEN excluded.count >= count THEN excluded.event_ids ELSE event_ids END,"
    " protected = excluded.protected, severity = excluded.severity"
)
_INSERT_DECISION = (
    f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?)"
    " ON CONFLICT (id) DO NOTHING"  # a replay must not resurrect a lifted decision
)
_HIT = "UPDATE decisions SET hits = hits + ?, last_hit_ns = max(coalesce(last_hit_ns, 0), ?) WHERE id = ?"
_CURSOR = (
    "INSERT INTO playbook_cursor (id, last_event_id) VALUES (1, ?)"
    " ON CONFLICT (id) DO UPDATE SET last_event_id = excluded.last_event_id"
)


class Dialect(NamedTuple):
    """The statements that differ between SQLite and PostgreSQL (placeholders, ``max(a, b)``, ``user``)."""

    mark: str  # the parameter placeholder
    decision_columns: str
    upsert_alert: str
    insert_decision: str
    hit: str
    cursor: str
    decision_stats: str

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in this dialect's (our constant SQL has no other ``?``)."""
        return text if self.mark == "?" else text.replace("?", self.mark)


SQLITE = Dialect(
    "?", _DECISION_COLUMNS, _UPSERT_ALERT, _INSERT_DECISION, _HIT, _CURSOR,
    "SELECT playbook_id, count(*), sum(hits),"
    " sum(lifted_at IS NULL AND expires_at > ? AND simulated = 0),"
    " sum(lifted_at IS NULL AND expires_at > ? AND simulated = 1) FROM decisions GROUP BY playbook_id",
)  # fmt: skip
_PG_DECISION_COLUMNS = _DECISION_COLUMNS.replace(" user,", ' "user",')
POSTGRES = Dialect(
    "%s",
    _PG_DECISION_COLUMNS,
    f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s)"
    " ON CONFLICT (id) DO UPDATE SET last_ns = greatest(alerts.last_ns, excluded.last_ns),"
    " open_until_ns = greatest(alerts.open_until_ns, excluded.open_until_ns),"
    " count = greatest(alerts.count, excluded.count),"
    " event_ids = CASE WHEN excluded.count >= alerts.count THEN excluded.event_ids ELSE alerts.event_ids END,"
    " protected = excluded.protected, severity = excluded.severity",
    f"INSERT INTO decisions ({_PG_DECISION_COLUMNS}) VALUES"
    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, NULL, %s) ON CONFLICT (id) DO NOTHING",
    "UPDATE decisions SET hits = hits + %s, last_hit_ns = greatest(coalesce(last_hit_ns, 0), %s) WHERE id = %s",
    "INSERT INTO playbook_cursor (id, last_event_id) VALUES (1, %s)"
    " ON CONFLICT (id) DO UPDATE SET last_event_id = excluded.last_event_id",
    "SELECT playbook_id, count(*), sum(hits),"
    " count(*) FILTER (WHERE lifted_at IS NULL AND expires_at > %s AND simulated = 0),"
    " count(*) FILTER (WHERE lifted_at IS NULL AND expires_at > %s AND simulated = 1)"
    " FROM decisions GROUP BY playbook_id",
)


class FenceError(RuntimeError):
    """The cursor is not where this evaluator left it: another one (a new leader) has moved it."""


def _many(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        conn.cursor().executemany(sql, rows)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _iso(seconds: float) -> str:
    moment = _dt.datetime.fromtimestamp(max(0.0, min(seconds, 253402300799.0)), _dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def feed_entry(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A stored decision as an entry of the agents' actions document (``sqreen_otel.actions``)."""
    entry: dict[str, Any] = {"id": decision["id"], "action": decision["action"]}
    if decision["action"].endswith("_user"):
        entry["user"] = decision["user"]
    else:
        entry["ip"] = decision["ip"]
    if decision["action"].startswith("redirect_"):
        entry["url"] = decision["url"]
    entry["playbook"] = decision["playbook_id"]
    entry["alert"] = decision["alert_id"]
    entry["expires_at"] = _iso(decision["expires_at"])
    return entry


def servable(decision: Decision) -> str | None:
    """Why agents would reject this decision, or ``None`` when they would accept it."""
    row = {
        "id": decision.id, "action": decision.action, "ip": decision.ip, "user": decision.user, "url": decision.url,
        "playbook_id": decision.playbook_id, "alert_id": decision.alert_id, "expires_at": decision.expires_at,
    }  # fmt: skip
    try:
        parse_actions(json.dumps({"version": 1, "actions": [feed_entry(row)]}), "check")
    except (TypeError, ValueError) as exc:
        return str(exc).removeprefix("actions[0]: ")
    return None


class Records:
    """Alerts, decisions, hits and the live cursor, over one ``Store`` or ``PgStore``."""

    def __init__(self, store: Store | PgStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.shared = not isinstance(store, Store)  # PostgreSQL: other replicas write these tables too
        self.dialect = POSTGRES if self.shared else SQLITE
        self._clock = clock
        self._dropped_logged = False
        self.version = 0  # bumped by every write that can change what is served (decisions, lifts)
        self._version_lock = threading.Lock()
        self._feed: tuple[int, float, dict[str, Any], bytes] | None = None  # version, valid until, manual, body

    def _write(self) -> Any:
        """A write transaction (SQLite: the store's single writer; PostgreSQL: a transaction of this thread)."""
        return self.store._tx() if self.shared else self.store._write()  # type: ignore[union-attr]

    def _read(self) -> Any:
        """A read transaction: its queries see one snapshot."""
        return self.store._tx(snapshot=True) if self.shared else self.store._read()  # type: ignore[union-attr]

    # -- writing (the live evaluation's thread) -----------------------------------------------------

    def _changed(self) -> None:
        with self._version_lock:
            self.version += 1

    def record(
        self,
        alerts: Iterable[Alert],
        decisions: Iterable[Decision],
        *,
        hits: Mapping[str, tuple[int, int]] | None = None,
        cursor: int | None = None,
        fence: int | None = None,
    ) -> None:
        """Store alerts (upserted by id), new decisions, hit counts (decision id -> (n, last ns)) and the cursor.

        ``fence``: the cursor this evaluator read from; if the stored one is elsewhere, nothing is written
        and ``FenceError`` is raised (PostgreSQL: the cursor row is locked until the commit).
        """
        now = self._clock()
        alert_rows = [
            (
                a.id, a.playbook_id, _canonical(a.group), a.first_ns, a.last_ns, a.open_until_ns, a.count,
                json.dumps(a.event_ids), _canonical(a.protected), int(a.simulated), a.severity, now,
            )
            for a in alerts
        ]  # fmt: skip
        decision_rows = []
        for d in decisions:
            problem = servable(d)
            if problem is not None:
                logger.error("playbook %s: decision %s cannot be served to agents (%s); stored lifted", d.playbook_id,
                             d.id, problem)  # fmt: skip
            decision_rows.append(
                (
                    d.id, d.alert_id, d.playbook_id, d.action, d.ip, None if d.user is None else _canonical(d.user),
                    d.url, d.duration, d.start, d.expires_at, d.escalation, int(d.simulated),
                    None if problem is None else now, now,
                )
            )  # fmt: skip
        hit_rows = [(n, last_ns, decision_id) for decision_id, (n, last_ns) in (hits or {}).items()]
        if not (alert_rows or decision_rows or hit_rows or cursor is not None):
            return
        sql = self.dialect
        with self._write() as conn:
            if fence is not None:
                lock = " FOR UPDATE" if self.shared else ""
                row = conn.execute(f"SELECT last_event_id FROM playbook_cursor WHERE id = 1{lock}").fetchone()
                if row is not None and row[0] != fence:
                    raise FenceError(f"the playbook cursor is at {row[0]}, not {fence}: another evaluator moved it")
            _many(conn, sql.upsert_alert, alert_rows)
            _many(conn, sql.insert_decision, decision_rows)
            _many(conn, sql.hit, hit_rows)
            if cursor is not None:
                conn.execute(sql.cursor, (cursor,))
        if decision_rows:
            self._changed()

    def cursor(self) -> int | None:
        """The id of the last event live evaluation has acted on (``None``: never ran on this file)."""
        row = self.store._conn().execute("SELECT last_event_id FROM playbook_cursor WHERE id = 1").fetchone()
        return None if row is None else row[0]

    def lift(self, decision_id: str) -> bool:
        """Stop serving a decision (it stays listed, as lifted); ``False`` if unknown or not in force."""
        if not isinstance(decision_id, str) or len(decision_id) > 256:
            return False
        now = self._clock()
        with self._write() as conn:
            sql = self.dialect.sql(
                "UPDATE decisions SET lifted_at = ? WHERE id = ? AND lifted_at IS NULL AND expires_at > ?"
            )
            lifted = conn.execute(sql, (now, decision_id, now)).rowcount > 0
        self._changed()
        return lifted

    def lift_alert(self, alert_id: str) -> list[str]:
        """Lift every decision of an alert still in force; returns their ids."""
        now = self._clock()
        q = self.dialect.sql
        with self._write() as conn:
            sql = q("SELECT id FROM decisions WHERE alert_id = ? AND lifted_at IS NULL AND expires_at > ?")
            ids = [row[0] for row in conn.execute(sql, (alert_id, now))]
            _many(conn, q("UPDATE decisions SET lifted_at = ? WHERE id = ?"), [(now, i) for i in ids])
            conn.execute(q("UPDATE alerts SET closed_at = ? WHERE id = ? AND closed_at IS NULL"), (now, alert_id))
        self._changed()
        return ids

    def prune(self, max_age: float) -> int:
        """Forget alerts whose last event is older than ``max_age`` seconds, and decisions expired that long ago."""
        now = self._clock()
        cutoff_ns = int((now - max_age) * 1e9)
        q = self.dialect.sql
        with self._write() as conn:
            removed = conn.execute(q("DELETE FROM alerts WHERE last_ns < ?"), (cutoff_ns,)).rowcount
            removed += conn.execute(q("DELETE FROM decisions WHERE expires_at < ?"), (now - max_age,)).rowcount
        self._changed()
        return removed

    # -- reading ---------------------------------------------------------------------------------------

    def served(self) -> list[dict[str, Any]]:
        """Decisions agents must enforce now: not simulated, not lifted, not expired; oldest first."""
        sql = self.dialect.sql(
            f"SELECT {self.dialect.decision_columns} FROM decisions"
            " WHERE simulated = 0 AND lifted_at IS NULL AND expires_at > ? ORDER BY start, id"
        )
        return [_decision(row) for row in self.store._conn().execute(sql, (self._clock(),))]

    def in_force(self) -> list[Decision]:
        """Decisions not lifted nor expired, simulated ones too, as the engine's ``Decision`` (for ``restore``)."""
        from .playbooks import Decision

        sql = self.dialect.sql(
            f"SELECT {self.dialect.decision_columns} FROM decisions WHERE lifted_at IS NULL AND expires_at > ?"
            " ORDER BY start, id"
        )
        out = []
        for row in self.store._conn().execute(sql, (self._clock(),)):
            d = _decision(row)
            out.append(
                Decision(
                    d["id"], d["alert_id"], d["playbook_id"], d["action"], d["ip"], d["user"], d["url"],
                    d["duration"], d["start"], d["expires_at"], d["simulated"], d["escalation"],
                )
            )  # fmt: skip
        return out

    def matching(self, *, user: Mapping[str, Any] | None = None, ip: str | None = None) -> list[str]:
        """Ids of the served decisions (block or redirect) on exactly these identifiers or this address/network.

        What ``unblock_user`` / ``unblock_ip`` lift besides the hand-made entries: the same target, compared
        as the hand-made list compares it (identifiers as text, networks normalised).
        """
        network = None
        if ip is not None:
            try:
                network = ipaddress.ip_network(ip, strict=False)
            except ValueError:
                return []
        wanted = None if user is None else {str(k): str(v) for k, v in user.items()}
        out = []
        for d in self.served():
            if network is not None and d["ip"]:
                try:
                    same = ipaddress.ip_network(d["ip"], strict=False) == network
                except ValueError:
                    same = False
            elif wanted is not None and d["user"] is not None:
                same = {str(k): str(v) for k, v in d["user"].items()} == wanted
            else:
                same = False
            if same:
                out.append(d["id"])
        return out

    def lifted_since(self, since: float) -> list[str]:
        sql = self.dialect.sql("SELECT id FROM decisions WHERE lifted_at IS NOT NULL AND lifted_at >= ?")
        return [row[0] for row in self.store._conn().execute(sql, (since,))]

    def alerts(
        self, *, playbook_id: str | None = None, before: tuple[int, str] | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Alerts newest first (by last event time) with their decisions; ``before``: a page's last (ns, id)."""
        where: list[str] = []
        params: list[Any] = []
        if playbook_id:
            where.append("playbook_id = ?")
            params.append(playbook_id)
        if before is not None:
            where.append("(last_ns, id) < (?, ?)")
            params += [before[0], before[1]]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = self.dialect.sql(f"SELECT {_ALERT_COLUMNS} FROM alerts{clause} ORDER BY last_ns DESC, id DESC LIMIT ?")
        with self._read() as conn:
            alerts = [_alert(row) for row in conn.execute(sql, (*params, max(1, min(limit, MAX_PAGE))))]
            self._attach(conn, alerts)
        return alerts

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            sql = self.dialect.sql(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?")
            row = conn.execute(sql, (alert_id,)).fetchone()
            if row is None:
                return None
            alerts = [_alert(row)]
            self._attach(conn, alerts)
        return alerts[0]

    def _attach(self, conn: Any, alerts: list[dict[str, Any]]) -> None:
        if not alerts:
            return
        by_id = {a["id"]: a for a in alerts}
        for a in alerts:
            a["decisions"] = []
        marks = ",".join([self.dialect.mark] * len(by_id))
        columns = self.dialect.decision_columns
        sql = f"SELECT {columns} FROM decisions WHERE alert_id IN ({marks}) ORDER BY start, id"
        now = self._clock()
        for row in conn.execute(sql, list(by_id)):
            decision = _decision(row)
            decision["in_force"] = decision["lifted_at"] is None and decision["expires_at"] > now
            by_id[decision["alert_id"]]["decisions"].append(decision)
        now_ns = int(now * 1e9)
        for a in alerts:
            a["status"] = "open" if a["closed_at"] is None and a["open_until_ns"] > now_ns else "closed"

    def playbook_stats(self, *, days: int = 14) -> dict[str, dict[str, Any]]:
        """Per playbook: alerts over the last day and week, last fired, alerts per day, active decisions, hits."""
        now = self._clock()
        now_ns = int(now * 1e9)
        day_ns = int(DAY * 1e9)
        start_ns = now_ns - days * day_ns
        out: dict[str, dict[str, Any]] = {}

        def entry(playbook_id: str) -> dict[str, Any]:
            if playbook_id not in out:
                out[playbook_id] = {
                    "alerts_day": 0, "alerts_week": 0, "last_fired_ns": None, "per_day": [0] * days,
                    "active": 0, "simulated_active": 0, "hits": 0, "decisions": 0,
                }  # fmt: skip
            return out[playbook_id]

        with self._read() as conn:
            sql = self.dialect.sql("SELECT playbook_id, first_ns FROM alerts WHERE first_ns >= ?")
            for playbook_id, first_ns in conn.execute(sql, (start_ns,)):
                e = entry(playbook_id)
                age = now_ns - first_ns
                e["alerts_day"] += age <= day_ns
                e["alerts_week"] += age <= 7 * day_ns
                index = min(days - 1, max(0, (first_ns - start_ns) // day_ns))
                e["per_day"][index] += 1
            for playbook_id, last in conn.execute("SELECT playbook_id, max(first_ns) FROM alerts GROUP BY playbook_id"):
                entry(playbook_id)["last_fired_ns"] = last
            sql = self.dialect.decision_stats
            for playbook_id, count, hits, active, simulated_active in conn.execute(sql, (now, now)):
                e = entry(playbook_id)
                e.update(decisions=count, hits=hits or 0, active=active or 0, simulated_active=simulated_active or 0)
        return out


def _alert(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = _ALERT_COLUMNS.replace(" ", "").split(",")
    alert = dict(zip(keys, row, strict=True))
    alert["group"] = json.loads(alert.pop("group_key"))
    alert["event_ids"] = json.loads(alert["event_ids"])
    alert["protected"] = json.loads(alert["protected"])
    alert["simulated"] = bool(alert["simulated"])
    return alert


def _decision(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = _DECISION_COLUMNS.replace(" ", "").split(",")
    decision = dict(zip(keys, row, strict=True))
    decision["user"] = None if decision["user"] is None else json.loads(decision["user"])
    decision["simulated"] = bool(decision["simulated"])
    return decision


def feed_document(store: Storage, records: Records | None) -> dict[str, Any]:
    """The agents' actions document: the hand-made block list, then the playbooks' decisions in force.

    Kept within the agents' limits (10,000 actions, 1 MiB): the newest decisions beyond them are left
    out, with an error logged, rather than serving a document every agent would reject.
    """
    document = store.actions_document()
    if records is None:
        return document
    return _merged(document, records.served(), records)


def block_entry(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A served decision as an entry of the explorer's block list (``GET /api/actions``, ``/actions``).

    The hand-made entries' fields (epoch seconds), plus ``source: playbook``, ``playbook`` and ``alert``.
    """
    entry = feed_entry(decision)
    entry.update(expires_at=decision["expires_at"], created_at=decision["created_at"], source="playbook")
    return entry


def block_list(store: Storage, records: Records | None) -> list[dict[str, Any]]:
    """Everything agents enforce: the hand-made entries (``source: manual``), then the playbooks' decisions.

    The decisions are the ones ``/v1/actions`` serves (within the agents' limits), oldest first.
    """
    manual = [{**entry, "source": "manual"} for entry in store.actions()]
    if records is None:
        return manual
    served = records.served()
    in_feed = {a["id"] for a in _merged(store.actions_document(), served, records)["actions"]}
    in_feed -= {entry["id"] for entry in manual}
    return manual + [block_entry(d) for d in served if d["id"] in in_feed]


def _merged(document: dict[str, Any], served: list[dict[str, Any]], records: Records) -> dict[str, Any]:
    """``document`` (the hand-made list) with the served decisions appended, within the agents' limits."""
    actions: list[dict[str, Any]] = document["actions"]
    size = len(json.dumps(document))
    seen = {a["id"] for a in actions}
    left_out = 0
    for decision in served:
        entry = feed_entry(decision)
        entry_size = len(json.dumps(entry)) + 2
        if entry["id"] in seen:
            continue
        if len(actions) >= MAX_ACTIONS or size + entry_size > MAX_DOCUMENT_BYTES:
            left_out += 1
            continue
        actions.append(entry)
        seen.add(entry["id"])
        size += entry_size
    if left_out and not records._dropped_logged:
        records._dropped_logged = True
        logger.error("%d playbook decision(s) left out of /v1/actions: over the agents' limits", left_out)
    return document


def feed_body(store: Storage, records: Records | None) -> bytes:
    """``feed_document`` as the JSON that ``GET /v1/actions`` sends (sorted keys), cached between changes.

    Agents poll every few seconds; rebuilding 2,500 decisions for each poll costs about 90 ms here. The
    body is reused while no decision was added or lifted, the hand-made list is the same, and no served
    decision has expired since.
    """
    if records is None:
        return json.dumps(store.actions_document(), sort_keys=True).encode()
    manual = store.actions_document()
    now = records._clock()
    cached = records._feed
    if cached is not None and cached[0] == records.version and now < cached[1] and cached[2] == manual:
        return cached[3]
    version = records.version
    served = records.served()
    document = _merged({"version": manual["version"], "actions": list(manual["actions"])}, served, records)
    body = json.dumps(document, sort_keys=True).encode()
    valid_until = min((d["expires_at"] for d in served), default=float("inf"))
    if records.shared:  # another replica's leader may add or lift decisions: re-read at least every second
        valid_until = min(valid_until, now + SHARED_FEED_TTL)
    records._feed = (version, valid_until, manual, body)
    return body
