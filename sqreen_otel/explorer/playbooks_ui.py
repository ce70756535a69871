"""The explorer's playbook pages: Playbooks, Alerts (one incident each, with its events and decisions),
and a backtest form; server-rendered like ``ui`` (its layout, style sheet, CSP and CSRF token).

Charts are inline SVG built here, so nothing is loaded from elsewhere. Every form posts with the
page's CSRF token; lifting a decision stops serving it to agents at once (their next poll).
"""

from __future__ import annotations

import datetime as _dt
import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from . import ui
from .alerts import Records
from .store import Store
from .ui import _e, _epoch, _hidden, _href, _kv_table, _page, _plain_time, _time

if TYPE_CHECKING:
    from .live import Live
    from .playbooks.backtest import Report
    from .storage import Storage

Handler = Callable[[Request], Awaitable[Response]]
MAX_FORM = 512 * 1024  # a pasted playbook file (the engine caps files lower)
MAX_EVENTS_SHOWN = 100
MAX_BACKTEST_DAYS = 90
FORM_TIMEOUT = 30.0
DAY_NS = 86400 * 10**9


# -- pieces --------------------------------------------------------------------------------------------


def bar_chart(counts: Sequence[int], labels: Sequence[str], *, width: int = 600, height: int = 90, label: str) -> str:
    """Bars with a tooltip each (``<title>``), max and zero ticks; ``width=140, height=28`` makes a sparkline."""
    n = max(len(counts), 1)
    top = max(counts, default=0)
    small = height < 50
    left = 4.0 if small else 36.0
    pad = 2.0 if small else 6.0
    base = height - (2.0 if small else 18.0)
    step = (width - left - pad) / n
    bars = []
    for index, count in enumerate(counts):
        if not count:
            continue
        h = max(1.5, count / top * (base - pad))
        tip = f"{labels[index]}: {count:,}" if index < len(labels) else f"{count:,}"
        bars.append(
            f'<rect class="bar" x="{left + index * step + 0.5:.1f}" y="{base - h:.1f}" '
            f'width="{max(step - 1.5, 0.8):.1f}" height="{h:.1f}"><title>{_e(tip)}</title></rect>'
        )
    ticks = ""
    if not small:
        ticks = (
            f'<text class="tick" x="{left - 5}" y="{pad + 9}" text-anchor="end">{top:,}</text>'
            f'<text class="tick" x="{left - 5}" y="{base}" text-anchor="end">0</text>'
        )
        if labels:
            ticks += (
                f'<text class="tick" x="{left}" y="{height - 3}">{_e(labels[0])}</text>'
                f'<text class="tick" x="{width - pad}" y="{height - 3}" text-anchor="end">{_e(labels[-1])}</text>'
            )
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(label)}"><line class="axis" x1="{left}" y1="{base}" x2="{width - pad}" y2="{base}"/>'
        f"{''.join(bars)}{ticks}</svg>"
    )


def _days(start_ns: int, count: int) -> list[str]:
    return [_dt.datetime.fromtimestamp((start_ns + i * DAY_NS) // 10**9, _dt.timezone.utc).strftime("%Y-%m-%d")
            for i in range(count)]  # fmt: skip


def _group_text(group: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in group.items())


def events_link(alert: Mapping[str, Any]) -> str:
    """The explorer's events view filtered on the alert's group and time span: its contributing events."""
    params: dict[str, Any] = {"since": alert["first_ns"], "until": alert["last_ns"] + 1}
    for key, value in alert["group"].items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key == "client.address":
            params["ip"] = text
        elif key.startswith("user."):
            params["user"] = text
        elif key == "name":
            params["name"] = text
        elif key.startswith("properties.") and "prop" not in params:
            params["prop"] = f"{key.removeprefix('properties.')}={text}"
    return _href("/", params)


def _target(decision: Mapping[str, Any]) -> str:
    if decision.get("ip"):
        return f'<a href="{_href("/", {"ip": decision["ip"]})}"><code>{_e(decision["ip"])}</code></a>'
    user = decision.get("user") or {}
    first = next(iter(user.values()), "")
    shown = ", ".join(f"{k}={v}" for k, v in user.items())
    return f'<a href="{_href("/", {"user": first})}"><code>{_e(shown)}</code></a>'


def _decision_state(decision: Mapping[str, Any], now: float) -> str:
    if decision["simulated"]:
        return '<span class="muted">simulated (never served)</span>'
    if decision["lifted_at"] is not None:
        return f'<span class="muted">lifted {_epoch(decision["lifted_at"], now)}</span>'
    if decision["expires_at"] <= now:
        return f'<span class="muted">expired {_epoch(decision["expires_at"], now)}</span>'
    return f"in force, expires {_epoch(decision['expires_at'], now)}"


def _decisions_table(decisions: list[dict[str, Any]], csrf: str, back: str, now: float) -> str:
    if not decisions:
        return '<p class="muted">No decisions.</p>'
    rows = []
    for d in decisions:
        lift = ""
        if d.get("in_force") and not d["simulated"]:
            lift = (
                f'<form class="inline lift" method="post" action="{_href("/decisions/" + d["id"] + "/lift")}">'
                f"{_hidden('csrf', csrf)}{_hidden('back', back)}"
                '<button type="submit" class="light">Lift</button></form>'
            )
        extra = f" \u2192 <code>{_e(d['url'])}</code>" if d.get("url") else ""
        escalation = f" (\u00d7{2 ** d['escalation']} escalated)" if d["escalation"] else ""
        rows.append(
            f'<tr class="decision" data-id="{_e(d["id"])}"><td>{_e(d["action"])}{extra}</td><td>{_target(d)}</td>'
            f'<td class="num">{d["duration"]:.0f} s{escalation}</td><td>{_decision_state(d, now)}</td>'
            f'<td class="num">{d["hits"]:,}</td><td>{lift}</td></tr>'
        )
    return (
        '<table class="actions decisions"><thead><tr><th>Decision</th><th>Target</th><th>Duration</th>'
        f"<th>State</th><th>Hits</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# -- pages ----------------------------------------------------------------------------------------------


def playbooks_page(live: Live | None, stats: Mapping[str, Mapping[str, Any]], csrf: str, now: float) -> str:
    if live is None or live.playbooks is None:
        body = (
            '<h1>Playbooks</h1><p class="empty">No playbook file: start the explorer with '
            "<code>sqreen-otel serve --playbooks playbooks.yaml</code>. You can still "
            '<a href="/playbooks/backtest">backtest a file</a> on the stored events.</p>'
        )
        return _page("Playbooks", "playbooks", body)
    status = live.status()
    days = 14
    start_ns = int(now * 1e9) - days * DAY_NS
    labels = _days(start_ns, days)
    rows = []
    for playbook in live.playbooks.playbooks:
        s = stats.get(playbook.id, {})
        per_day = list(s.get("per_day", [0] * days))
        last = s.get("last_fired_ns")
        engine_stats = ((status.get("engine") or {}).get("playbooks") or {}).get(playbook.id, {})
        rows.append(
            f'<tr class="playbook" data-id="{_e(playbook.id)}">'
            f'<td><a href="{_href("/alerts", {"playbook": playbook.id})}"><b>{_e(playbook.id)}</b></a>'
            f'<br><span class="muted">{_e(playbook.description)}</span></td>'
            f'<td class="mode">{_e(playbook.mode)}</td>'
            f'<td class="num day">{s.get("alerts_day", 0):,}</td><td class="num week">{s.get("alerts_week", 0):,}</td>'
            f"<td>{_time(last) if last else ui._NONE}</td>"
            f'<td class="num active">{s.get("active", 0):,}'
            + (f' <span class="muted">+{s["simulated_active"]} simulated</span>' if s.get("simulated_active") else "")
            + f'</td><td class="num hits">{s.get("hits", 0):,}</td>'
            f'<td class="num">{engine_stats.get("groups", 0):,}</td>'
            f"<td>{bar_chart(per_day, labels, width=140, height=28, label=f'alerts per day of {playbook.id}')}</td>"
            "</tr>"
        )
    problem = ""
    if status["last_error"]:
        problem = (
            f'<p class="empty problem">The file changed but was rejected; the last good set stays in force: '
            f"<code>{_e(status['last_error'])}</code></p>"
        )
    loaded = _epoch(status["loaded_at"], now) if status["loaded_at"] else ui._NONE
    body = (
        f'<h1>Playbooks <span class="muted">{len(live.playbooks.playbooks)} from <code>{_e(live.path)}</code>, '
        f"loaded {loaded}</span></h1>{problem}"
        '<table class="playbooks"><thead><tr><th>Playbook</th><th>Mode</th><th>Alerts 24 h</th><th>Alerts 7 d</th>'
        "<th>Last fired</th><th>Decisions in force</th><th>Hits</th><th>Groups held</th><th>Alerts per day (14 d)</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p><a href="/alerts">All alerts</a> \u00b7 <a href="/playbooks/backtest">Backtest on stored events</a></p>'
        f"{_notifications(status.get('notifications') or {})}"
    )
    return _page("Playbooks", "playbooks", body)


def _notifications(stats: Mapping[str, Mapping[str, int]]) -> str:
    """Per channel: queued, sent, retried, failed, rate-limited (the failures are in the server's log)."""
    if not stats:
        return ""
    outcomes = ("queued", "sent", "retried", "failed", "rate_limited", "queue_full", "unknown_channel")
    head = "".join(f"<th>{_e(o.replace('_', ' '))}</th>" for o in outcomes)
    rows = "".join(
        f'<tr class="channel" data-id="{_e(name)}"><td>{_e(name)}</td>'
        + "".join(f'<td class="num {o}">{counts.get(o, 0):,}</td>' for o in outcomes)
        + "</tr>"
        for name, counts in sorted(stats.items())
    )
    return (
        f'<h2>Notifications</h2><table class="notifications"><thead><tr><th>Channel</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def alerts_page(alerts: list[dict[str, Any]], playbook_id: str | None, csrf: str, now: float, more: bool) -> str:
    rows = []
    for a in alerts:
        in_force = sum(1 for d in a["decisions"] if d.get("in_force") and not d["simulated"])
        rows.append(
            f'<tr class="alert" data-id="{_e(a["id"])}"><td><a href="{_href("/alerts/" + a["id"])}">'
            f"{_e(a['playbook_id'])}</a>{' <span class=muted>(simulated)</span>' if a['simulated'] else ''}</td>"
            f"<td><code>{_e(_group_text(a['group']))}</code></td><td>{_e(a['severity'])}</td>"
            f'<td class="status">{_e(a["status"])}</td><td>{_time(a["first_ns"])}</td><td>{_time(a["last_ns"])}</td>'
            f'<td class="num"><a href="{events_link(a)}">{a["count"]:,}</a></td>'
            f'<td class="num">{len(a["decisions"])} ({in_force} in force)</td></tr>'
        )
    title = f"Alerts of {playbook_id}" if playbook_id else "Alerts"
    table = (
        '<table class="alerts"><thead><tr><th>Playbook</th><th>Group</th><th>Severity</th><th>Status</th>'
        "<th>First event</th><th>Last event</th><th>Events</th><th>Decisions</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="empty">No alerts yet.</p>'
    )
    pager = ""
    if more and alerts:
        last = alerts[-1]
        cursor = f"{last['last_ns']}:{last['id']}"
        older = _href("/alerts", {"playbook": playbook_id, "before": cursor})
        pager = f'<nav class="pager"><a class="older" href="{older}">Older \u2192</a></nav>'
    return _page(title, "alerts", f"<h1>{_e(title)}</h1>{table}{pager}")


def alert_page(alert: dict[str, Any], events: list[Any], csrf: str, now: float) -> str:
    back = "/alerts/" + alert["id"]
    in_force = [d for d in alert["decisions"] if d.get("in_force") and not d["simulated"]]
    lift_all = ""
    if in_force:
        lift_all = (
            f'<form class="inline lift-all" method="post" action="{_href(back + "/lift")}">{_hidden("csrf", csrf)}'
            f'<button type="submit" class="danger">Lift all {len(in_force)} decision(s)</button></form>'
        )
    facts = _kv_table(
        [
            (
                "Playbook",
                f'<a href="{_href("/alerts", {"playbook": alert["playbook_id"]})}">{_e(alert["playbook_id"])}</a>',
            ),
            ("Group", f"<code>{_e(_group_text(alert['group']))}</code>"),
            ("Status", _e(alert["status"]) + (" (simulated)" if alert["simulated"] else "")),
            ("Severity", _e(alert["severity"])),
            ("First event", _time(alert["first_ns"])),
            ("Last event", _time(alert["last_ns"])),
            ("Events", f'<a class="events-link" href="{events_link(alert)}">{alert["count"]:,} in the explorer</a>'),
        ]
    )
    protected = ""
    if alert["protected"]:
        items = "".join(f"<li><code>{_e(json.dumps(p, sort_keys=True))}</code></li>" for p in alert["protected"][:50])
        protected = f"<h2>Not acted on</h2><ul>{items}</ul>"
    event_rows = "".join(
        f'<tr><td><a href="{_href(f"/events/{e.id}")}">{_time(e.time_ns)}</a></td><td>{_e(e.name)}</td>'
        f"<td>{_e(', '.join(f'{k}={v}' for k, v in e.user.items()))}</td><td>{_e(e.client_address or '')}</td></tr>"
        for e in events
    )
    shown = (
        f'<table class="contributing"><thead><tr><th>Time (UTC)</th><th>Event</th><th>User</th><th>Client IP</th>'
        f"</tr></thead><tbody>{event_rows}</tbody></table>"
        if event_rows
        else '<p class="muted">The contributing events are no longer stored.</p>'
    )
    more = len(alert["event_ids"]) - len(events)
    body = (
        f'<h1>Alert <code>{_e(alert["id"])}</code></h1><p class="flash" id="lifted">Lifted: agents stop enforcing it '
        f"at their next poll.</p>{facts}<h2>Decisions</h2>{_decisions_table(alert['decisions'], csrf, back, now)}"
        f"{lift_all}{protected}<h2>Contributing events</h2>{shown}"
        + (f'<p class="muted">and {more:,} more listed, see the link above.</p>' if more > 0 else "")
    )
    return _page("Alert", "alerts", body)


def backtest_page(csrf: str, *, since: str = "7d", text: str = "", report: Report | None = None,
                  error: str | None = None, have_live: bool = False) -> str:  # fmt: skip
    form = (
        '<form class="filters backtest" method="post" action="/playbooks/backtest">'
        f"{_hidden('csrf', csrf)}"
        f'<label>Stored events of the last<input name="since" value="{_e(since)}" class="w-s"></label>'
        '<label>Playbook file (YAML; empty: the file in force)<textarea name="playbooks" rows="8" cols="80">'
        f"{_e(text)}</textarea></label>"
        '<button type="submit">Run backtest</button></form>'
    )
    if not have_live:
        form += '<p class="muted">No playbook file is in force: paste one to backtest it.</p>'
    out = [f"<h1>Backtest</h1>{form}"]
    if error:
        out.append(f'<p class="empty problem">{_e(error)}</p>')
    if report is not None:
        out.append(_report(report))
    return _page("Backtest", "playbooks", "".join(out))


def _report(report: Report) -> str:
    first, last = report.first_ns, report.last_ns
    if first is None or last is None:
        return '<p class="empty result">No stored events in that range.</p>'
    start = first - first % DAY_NS
    days = min(MAX_BACKTEST_DAYS, (last - start) // DAY_NS + 1)
    labels = _days(start, days)
    parts = [
        f'<h2 class="result">{report.events:,} events from {_e(_plain_time(first))} to {_e(_plain_time(last))}</h2>'
    ]
    totals = [0] * days
    sections = []
    for playbook_id, r in report.playbooks.items():
        counts = [r.alerts_per_day.get(day, 0) for day in labels]
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
        targets = ", ".join(f"{t.get('target', t)}" for t in r.targets[:5]) or "none"
        collateral = ", ".join(f"{c.get('target', c)}" for c in r.collateral[:5]) or "none"
        pct = r.window_counts
        sections.append(
            f'<tr class="backtest-playbook" data-id="{_e(playbook_id)}"><td><b>{_e(playbook_id)}</b>'
            f'<br><span class="muted">{_e(r.mode)}</span></td><td class="num alerts">{r.alerts:,}</td>'
            f'<td class="num decisions">{r.decisions:,}</td><td><code>{_e(targets)}</code></td>'
            f"<td><code>{_e(collateral)}</code></td>"
            f"<td>{_e(json.dumps(pct, sort_keys=True))}"
            + (f"<br>suggested count: {r.suggested_count}" if r.suggested_count else "")
            + f"</td><td>{bar_chart(counts, labels, width=160, height=28, label=f'alerts per day of {playbook_id}')}"
            "</td></tr>"
        )
    parts.append(bar_chart(totals, labels, width=900, height=110, label="alerts per day"))
    parts.append(
        '<table class="backtest"><thead><tr><th>Playbook</th><th>Alerts</th><th>Decisions</th><th>Top targets</th>'
        "<th>Collateral</th><th>Per-group counts</th><th>Alerts per day</th></tr></thead>"
        f"<tbody>{''.join(sections)}</tbody></table>"
    )
    return "".join(parts)


# -- routes ---------------------------------------------------------------------------------------------


async def read_form(request: Request, limit: int = MAX_FORM) -> dict[str, str]:
    """An urlencoded form, at most ``limit`` bytes within ``FORM_TIMEOUT``; the first value of each field."""
    chunks, size = [], 0
    with anyio.fail_after(FORM_TIMEOUT):  # a TimeoutError: the app's guard answers 408
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ValueError(f"the form is over {limit} bytes")
            chunks.append(chunk)
    try:
        pairs = parse_qsl(b"".join(chunks).decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except UnicodeDecodeError:
        raise ValueError("the form is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def routes(
    store: Storage,
    live: Live | None,
    *,
    csrf: str,
    guard: Callable[[Handler], Handler],
    guard_form: Callable[[Handler], Handler],
    html: Callable[[str], Response],
) -> list[Route]:
    """The pages' routes, wrapped in the app's guards (token, Host, cross-site, content type)."""
    records = live.records if live is not None else (Records(store) if isinstance(store, Store) else None)
    backtesting = threading.Lock()  # one backtest at a time: each reads the whole period

    def checked(form: Mapping[str, str]) -> Response | None:
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            return PlainTextResponse("invalid form token\n", status_code=403)
        return None

    async def page_playbooks(request: Request) -> Response:
        def render() -> Response:
            stats = records.playbook_stats() if records is not None else {}
            return html(playbooks_page(live, stats, csrf, time.time()))

        return await run_in_threadpool(render)

    def alerts_query(request: Request) -> tuple[str | None, tuple[int, str] | None]:
        before = None
        raw = request.query_params.get("before")
        if raw:
            ns, _, alert_id = raw.partition(":")
            if not ns.isdigit() or not alert_id:
                raise ValueError("before must be NS:ALERT_ID")
            before = (int(ns), alert_id)
        return request.query_params.get("playbook") or None, before

    async def page_alerts(request: Request) -> Response:
        playbook_id, before = alerts_query(request)

        def render() -> Response:
            alerts = records.alerts(playbook_id=playbook_id, before=before, limit=51) if records is not None else []
            return html(alerts_page(alerts[:50], playbook_id, csrf, time.time(), more=len(alerts) > 50))

        return await run_in_threadpool(render)

    async def api_alerts(request: Request) -> Response:
        """``{"alerts": [...], "next": "NS:ID" | null}``: each alert with its decisions, newest first."""
        playbook_id, before = alerts_query(request)

        def render() -> Response:
            alerts = records.alerts(playbook_id=playbook_id, before=before, limit=51) if records is not None else []
            last = alerts[49] if len(alerts) > 50 else None
            body = {"alerts": alerts[:50], "next": f"{last['last_ns']}:{last['id']}" if last else None}
            return Response(json.dumps(body, default=str).encode(), media_type="application/json")

        return await run_in_threadpool(render)

    async def page_alert(request: Request) -> Response:
        alert_id = request.path_params["alert_id"]

        def render() -> Response:
            alert = records.alert(alert_id) if records is not None else None
            if alert is None:
                return Response(ui.not_found_page().encode(), status_code=404, media_type="text/html",
                                headers=ui.SECURITY_HEADERS)  # fmt: skip
            events = [e for e in (store.get(i) for i in alert["event_ids"][:MAX_EVENTS_SHOWN]) if e is not None]
            return html(alert_page(alert, events, csrf, time.time()))

        return await run_in_threadpool(render)

    async def lift_alert(request: Request) -> Response:
        form = await read_form(request)
        refused = checked(form)
        if refused is not None:
            return refused
        alert_id = request.path_params["alert_id"]
        if live is not None:
            await run_in_threadpool(live.lift_alert, alert_id)
        elif records is not None:
            await run_in_threadpool(records.lift_alert, alert_id)
        return RedirectResponse(f"/alerts/{alert_id}#lifted", status_code=303)

    async def lift_decision(request: Request) -> Response:
        form = await read_form(request)
        refused = checked(form)
        if refused is not None:
            return refused
        decision_id = request.path_params["decision_id"]
        if live is not None:
            await run_in_threadpool(live.lift, decision_id)
        elif records is not None:
            await run_in_threadpool(records.lift, decision_id)
        back = form.get("back") or "/alerts"
        safe = back.startswith("/") and not back.startswith(("//", "/\\"))
        return RedirectResponse((back if safe else "/alerts") + "#lifted", status_code=303)

    async def page_backtest(request: Request) -> Response:
        have_live = live is not None and live.playbooks is not None
        if request.method == "GET":
            return html(backtest_page(csrf, have_live=have_live))
        form = await read_form(request)
        refused = checked(form)
        if refused is not None:
            return refused
        since, text = form.get("since", "7d").strip() or "7d", form.get("playbooks", "")

        def render() -> Response:
            from .playbooks import PlaybookError, loads
            from .playbooks.backtest import run_store
            from .playbooks.spec import parse_duration

            try:
                seconds = parse_duration(since)
                if seconds > MAX_BACKTEST_DAYS * 86400:
                    raise ValueError(f"at most {MAX_BACKTEST_DAYS}d")
            except ValueError as exc:
                return html(backtest_page(csrf, since=since, text=text, error=f"since: {exc}", have_live=have_live))
            if text.strip():
                try:
                    playbooks = loads(text, source="<form>", strict_env=False)
                except PlaybookError as exc:
                    return html(backtest_page(csrf, since=since, text=text, error=str(exc), have_live=have_live))
            elif live is not None and live.playbooks is not None:
                playbooks = live.playbooks
            else:
                return html(backtest_page(csrf, since=since, error="paste a playbook file", have_live=have_live))
            if not backtesting.acquire(blocking=False):
                busy = "another backtest is running; try again when it is done"
                return html(backtest_page(csrf, since=since, text=text, error=busy, have_live=have_live))
            try:
                report = run_store(playbooks, store, since_ns=int((time.time() - seconds) * 1e9))  # type: ignore[arg-type]
            finally:
                backtesting.release()
            return html(backtest_page(csrf, since=since, text=text, report=report, have_live=have_live))

        return await run_in_threadpool(render)

    return [
        Route("/playbooks", guard(page_playbooks), methods=["GET"]),
        Route("/playbooks/backtest", guard_form(page_backtest), methods=["GET", "POST"]),
        Route("/alerts", guard(page_alerts), methods=["GET"]),
        Route("/api/alerts", guard(api_alerts), methods=["GET"]),
        Route("/alerts/{alert_id}", guard(page_alert), methods=["GET"]),
        Route("/alerts/{alert_id}/lift", guard_form(lift_alert), methods=["POST"]),
        Route("/decisions/{decision_id}/lift", guard_form(lift_decision), methods=["POST"]),
    ]
