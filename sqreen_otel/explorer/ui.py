"""The Event Explorer's web pages: plain server-rendered HTML, one small inline script, nothing loaded from elsewhere.

Event data is attacker-controlled (user agents, paths, property keys and values, even event names), so
every value reaches the page through ``_e`` (``html.escape`` with quotes, for text and attribute values
alike) and every link is built with ``urlencode`` before being escaped. ``_e`` also shows invisible
characters as ``[U+XXXX]`` (bidi overrides and isolates, zero-width and other format characters,
controls, line separators): ``exe.png`` written with U+202E must not read as a picture's name. Form
fields (``_raw``) keep values exact, so that blocking and filtering act on the real value.

The inline style sheet and script are constants: ``CSP`` allows exactly them by hash, so an injected
``<script>``, ``style=`` attribute or event handler would not run even if escaping were ever missed.
``SECURITY_HEADERS`` goes on every page.

Times are shown in UTC. The filter form's "from"/"until" fields are ``datetime-local`` inputs read as UTC;
the script turns them into the ``since``/``until`` nanoseconds the server filters on and leaves empty
fields out of the URL, so a filtered view is a short URL that can be shared.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import json
import math
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from ..blocking import check_identifiers, check_network
from . import chart
from .store import MAX_FILTER_LENGTH, PROPERTIES_PREFIX, TOP_SAMPLE, Event, Filters

PAGE_SIZE = 50
WINDOW_RECENT, WINDOW_ALL = "last 24 hours", "all time"  # the histogram's range without a time filter
FILTER_KEYS = ("name", "service", "user", "ip", "since", "until", "prop", "path", "user_agent")
ACTIONS = ("block_user", "block_ip", "unblock_user", "unblock_ip")
DURATIONS = (("3600", "1 hour"), ("86400", "1 day"), ("604800", "7 days"), ("forever", "forever"))
MAX_DURATION = 100 * 365 * 86400  # seconds; longer is "forever"
MAX_FIELD = 4096
IDENTIFIER_KEYS = ("email", "id", "username", "name")
_PROP_KEY = re.compile(r"[A-Za-z0-9_.\-]+")  # what Filters accepts as a property key
_SURROGATE = re.compile("[\ud800-\udfff]")
_YEAR_10000 = 253_402_300_800  # epoch seconds: datetime's limit
_SHORT = 80  # characters of a value shown in the event list
_NONE = '<span class="muted">\u2014</span>'
_NAV = (
    ("events", "/", "Events"), ("summary", "/summary", "Summary"), ("actions", "/actions", "Block list"),
    ("playbooks", "/playbooks", "Playbooks"), ("alerts", "/alerts", "Alerts"),
)  # fmt: skip

_STYLE = """
:root{--fg:#1d2330;--muted:#667085;--line:#e3e6eb;--bg:#f6f7f9;--accent:#2f5fd0;--danger:#c0362c}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;gap:1.4rem;align-items:baseline;padding:.65rem 1.5rem;background:#1d2330}
header a{color:#b9c2d3;text-decoration:none}
header a:hover,header a.on{color:#fff}
header .brand{color:#fff;font-weight:600;margin-right:.6rem}
main{padding:1rem 1.5rem 2rem}
h1{font-size:1.3rem;margin:.1rem 0 .8rem}
h1 .muted{font-size:.95rem;font-weight:400}
h2{font-size:1.05rem;margin:1.3rem 0 .5rem}
a{color:var(--accent)}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{padding:.38rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#f0f2f5;font-weight:600;font-size:11.5px;color:var(--muted);text-transform:uppercase;
letter-spacing:.04em}
tbody tr:hover{background:#f4f7ff}
td a{text-decoration:none}
td a:hover{text-decoration:underline}
.mono,code,pre,time{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{margin:0;white-space:pre-wrap;word-break:break-all}
code{white-space:pre-wrap;word-break:break-all}
.muted{color:var(--muted)}
.nowrap{white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem .7rem;align-items:flex-end;background:#fff;
border:1px solid var(--line);padding:.7rem .8rem;margin-bottom:.8rem}
label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:.15rem}
input,select,button{font:inherit;font-size:13.5px;padding:.3rem .45rem;border:1px solid #c5ccd6;border-radius:4px;
background:#fff;color:var(--fg)}
button{background:var(--accent);border-color:var(--accent);color:#fff;cursor:pointer}
button.danger{background:var(--danger);border-color:var(--danger)}
button.light{background:#fff;color:var(--danger);border-color:#e5b5b1}
.chips{margin:-.2rem 0 .7rem}
.chip{display:inline-block;background:#e8eefc;border-radius:12px;padding:.05rem .6rem;margin-right:.4rem;
font-size:12.5px}
.chip a{text-decoration:none;margin-left:.3rem}
.hist{display:block;width:100%;height:auto;background:#fff;border:1px solid var(--line);margin-bottom:.8rem}
.bar{fill:#6b90e3}
a:hover .bar{fill:var(--accent)}
.axis{stroke:#c5ccd6}
.grid{stroke:#eef0f3}
.sel{fill:rgba(47,95,208,.18);stroke:var(--accent);pointer-events:none}
.hist{cursor:crosshair;user-select:none}
.histhead{display:flex;justify-content:space-between;font-size:12px;margin:0 0 .2rem}
.histhead .links a{margin-left:.8rem}
.sparkline{display:block;width:6rem;height:1.3rem}
.spark{fill:#6b90e3}
.topvalues{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:.8rem;margin:0 0 .9rem}
.topvalues .card{padding:.2rem .7rem .5rem}
.topvalues h2{font-size:.85rem;margin:.3rem 0 .2rem}
table.top{border:0;table-layout:fixed;font-size:12.5px}
table.top td{padding:.02rem .2rem;border:0;line-height:1.35;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
table.top td.num{width:3.6rem}
@media (max-width:1000px){.topvalues{grid-template-columns:repeat(2,minmax(0,1fr))}}
.tick{fill:var(--muted);font-size:11px;font-family:system-ui,sans-serif}
.prop{display:inline-block;margin-right:.6rem}
.prop .k,.ident .k{color:var(--muted)}
.method{font-weight:600;font-size:11.5px;margin-right:.3rem}
.pager{margin:.8rem 0;display:flex;gap:1.2rem}
.grid{display:grid;grid-template-columns:minmax(0,3fr) minmax(16rem,1fr);gap:1rem;align-items:start}
.card{background:#fff;border:1px solid var(--line);padding:.4rem .9rem .8rem}
.kv th{width:13rem;font-weight:500;color:var(--muted);background:#fafbfc}
.kv td{word-break:break-all}
form.inline{display:flex;gap:.5rem;align-items:flex-end;flex-wrap:wrap;margin:.5rem 0}
form.inline>span{align-self:center}
.what{margin:.8rem 0 .2rem}
.flash{display:none;background:#e7f6ec;border:1px solid #a6dcb6;border-radius:4px;padding:.4rem .6rem;margin:.4rem 0}
.flash:target{display:block}
table.actions td{vertical-align:middle}
.cards{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin-top:1rem}
h1 code{font-size:inherit}
.w-l{width:13rem}
.w-m{width:11rem}
.w-s{width:8.6rem}
::placeholder{color:#a3abb8;font-style:italic;opacity:1}
form.rowblock{display:inline;margin-left:.35rem}
form.rowblock button{font-size:11px;padding:0 .35rem;line-height:1.5}
table.events{table-layout:fixed}
table.events td{overflow-wrap:anywhere}
.c-time{width:12.2rem}.c-name{width:14%}.c-service{width:8%}.c-user{width:17%}.c-ip{width:8.8rem}.c-req{width:13%}
@media (max-width:900px){main{padding:.8rem .7rem 2rem}th,td{padding:.32rem .4rem}
table.events td.nowrap{white-space:normal}.c-time{width:6.6rem}.c-ip{width:7.4rem}.c-user{width:16%}
.c-service{width:9%}}
input[type=datetime-local]{width:13.4rem}
.empty{background:#fff;border:1px dashed #c5ccd6;padding:1.2rem;text-align:center;color:var(--muted)}
"""

_SCRIPT = """
var form = document.getElementById("filters");
if (form) form.addEventListener("submit", function (event) {
  event.preventDefault();
  var query = new URLSearchParams();
  Array.prototype.forEach.call(form.elements, function (field) {
    var value = field.name ? field.value.trim() : "";
    if (value && field.type === "datetime-local") {
      var ms = Date.parse(value + "Z");
      value = isNaN(ms) ? "" : (BigInt(ms) * 1000000n).toString();
    }
    if (value) query.append(field.name, value);
  });
  var text = query.toString();
  window.location.assign(form.getAttribute("action") + (text ? "?" + text : ""));
});
var chart = document.getElementById("histogram");
if (chart) (function () {
  var box = document.getElementById("selection"), from = null, to = null, dragged = false;
  var left = Number(chart.dataset.left), right = Number(chart.dataset.right);
  function x(event) {
    var point = chart.createSVGPoint();
    point.x = event.clientX; point.y = event.clientY;
    return Math.min(right, Math.max(left, point.matrixTransform(chart.getScreenCTM().inverse()).x));
  }
  function draw() {
    box.setAttribute("x", Math.min(from, to)); box.setAttribute("width", Math.abs(to - from));
  }
  function ns(at) {
    var start = BigInt(chart.dataset.start), span = BigInt(chart.dataset.end) - start;
    return (start + BigInt(Math.round(Number(span) * (at - left) / (right - left)))).toString();
  }
  chart.addEventListener("mousedown", function (event) {
    if (event.button !== 0) return;
    event.preventDefault(); from = to = x(event); dragged = false; draw();
  });
  window.addEventListener("mousemove", function (event) {
    if (from === null) return;
    to = x(event); dragged = dragged || Math.abs(to - from) > 3; draw();
  });
  window.addEventListener("mouseup", function (event) {
    if (from === null) return;
    to = x(event);
    var low = Math.min(from, to), high = Math.max(from, to);
    from = null;
    if (!dragged) { box.setAttribute("width", 0); return; }
    var query = new URLSearchParams(window.location.search);
    query.delete("before"); query.set("since", ns(low)); query.set("until", ns(high));
    window.location.assign("/?" + query.toString());
  });
  chart.addEventListener("click", function (event) {  // the end of a drag over a bar is not a click on it
    if (dragged) { event.preventDefault(); dragged = false; }
  }, true);
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only our own style sheet and script, forms posting back here, nothing else loaded, never framed.
CSP = "; ".join(
    (
        "default-src 'none'",
        f"script-src {_sha256(_SCRIPT)}",
        f"style-src {_sha256(_STYLE)}",
        "img-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chrome sends "Origin: null" on our own form posts, which
    # the cross-site guard (rightly) refuses; other sites still get no referrer.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# -- small pieces -----------------------------------------------------------------------------------


_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})
_KEPT = frozenset("\n\t")


def _visible(text: str) -> str:
    """Invisible and direction-changing characters as ``[U+202E]``; everything else as it is."""
    if text.isprintable():  # nearly always: no character is Cc, Cf, Zl, Zp (nor Zs beyond space, Co, Cn, Cs)
        return text
    return "".join(f"[U+{ord(c):04X}]" if c not in _KEPT and unicodedata.category(c) in _INVISIBLE else c for c in text)


def _e(value: Any) -> str:
    """Escaped text with invisible characters shown, safe in element content and in quoted attribute values."""
    return html.escape(_visible(value if isinstance(value, str) else str(value)), quote=True)


def _raw(value: Any) -> str:
    """Escaped exactly (form field values: what is submitted must be the real value)."""
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _href(path: str, params: Mapping[str, Any] | None = None) -> str:
    """An escaped same-site URL: ``path`` is ours, ``params`` anything."""
    query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
    return _e(path + ("?" + query if query else ""))


def _datetime(ns: int) -> _dt.datetime:
    seconds = max(ns, 0) // 10**9
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=seconds)


def _time(ns: int) -> str:
    """``2026-05-04 10:30:00.123`` in a ``<time>`` whose ``datetime`` is the full ISO 8601 UTC time."""
    moment = _datetime(ns)
    rest = max(ns, 0) % 10**9
    iso = f"{moment:%Y-%m-%dT%H:%M:%S}.{rest:09d}Z"
    return f'<time datetime="{iso}" title="{iso}">{moment:%Y-%m-%d %H:%M:%S}.{rest // 10**6:03d}</time>'


def _plain_time(ns: int) -> str:
    return f"{_datetime(ns):%Y-%m-%d %H:%M:%S} UTC"


def _epoch(seconds: float | None, now: float) -> str:
    """An action's time (epoch seconds): UTC and how far from now."""
    if seconds is None:
        return '<span class="muted">never</span>'
    if not 0 <= seconds < _YEAR_10000:
        return f'<span class="muted">{seconds:.0f} s since 1970</span>'
    moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=int(seconds))
    delta = seconds - now
    relative = f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"
    shown = f'<time datetime="{moment:%Y-%m-%dT%H:%M:%SZ}">{moment:%Y-%m-%d %H:%M:%S}</time>'
    return f'{shown} <span class="muted">({relative})</span>'


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _local_input(ns: int | None) -> str:
    """The value of a ``datetime-local`` input (read as UTC) for a time in nanoseconds."""
    return "" if ns is None else f"{_datetime(ns):%Y-%m-%dT%H:%M:%S}"


def _scalar(value: Any) -> str:
    """A value as short text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _cut(text: str, limit: int = _SHORT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _pretty(value: Any) -> str:
    """An attribute value for the detail page: text as text, nested values as indented JSON."""
    if isinstance(value, str):
        return f"<code>{_e(value)}</code>"
    if isinstance(value, (dict, list)):
        return f"<pre>{_e(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str))}</pre>"
    return f"<code>{_e(_scalar(value))}</code>"


def _kv_table(items: Iterable[tuple[str, str]], empty: str = "none") -> str:
    """Rows of (escaped key text, ready HTML)."""
    rows = "".join(f"<tr><th>{key}</th><td>{value}</td></tr>" for key, value in items)
    return f'<table class="kv"><tbody>{rows}</tbody></table>' if rows else f'<p class="muted">{_e(empty)}</p>'


def _page(title: str, active: str, body: str) -> str:
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} \u00b7 Sqreen Event Explorer</title><style>{_STYLE}</style></head><body>"
        '<header><a class="brand" href="/">Sqreen Event Explorer</a>'
        + "".join(f'<a href="{href}"{" class=on" if key == active else ""}>{label}</a>' for key, href, label in _NAV)
        + f"</header><main>{body}</main><script>{_SCRIPT}</script></body></html>\n"
    )
    try:
        document.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from some JSON: show U+FFFD rather than fail the page
        document = _SURROGATE.sub("\ufffd", document)
    return document


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{_raw(name)}" value="{_raw(value)}">'


def _duration_select() -> str:
    options = "".join(f'<option value="{value}">{label}</option>' for value, label in DURATIONS)
    return f'<label>for<select name="duration">{options}</select></label>'


def _block_form(csrf: str, back: str, action: str, field: str, value: str) -> str:
    """The event page's "Block user/IP for [duration]" button.

    It comes back to ``back#blocked-user`` (or ``-ip``): the page's ``:target`` rule shows a confirmation.
    """
    label = "Block user" if action == "block_user" else "Block IP"
    options = "".join(f'<option value="{v}">{text}</option>' for v, text in DURATIONS)
    anchor = "blocked-user" if action == "block_user" else "blocked-ip"
    return (
        f'<form class="inline {action.replace("_", "-")}" method="post" action="/actions">'
        + _hidden("csrf", csrf)
        + _hidden("back", f"{back}#{anchor}")
        + _hidden("action", action)
        + _hidden(field, value)
        + f'<button type="submit" class="danger">{label}</button><span class="muted">for</span>'
        + f'<select name="duration" aria-label="block duration">{options}</select></form>'
    )


def _properties(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k[len(PROPERTIES_PREFIX) :]: v for k, v in sorted(attributes.items()) if k.startswith(PROPERTIES_PREFIX)}


# -- the event list ---------------------------------------------------------------------------------


def events_page(
    events: list[Event],
    filters: Filters,
    histogram: tuple[int, int, list[int]],
    query: dict[str, str],
    csrf: str,
    *,
    total: int | None = None,
    window: str = "",
    top: Mapping[str, list[tuple[str, int]]] | None = None,
) -> str:
    """``/``: the filter form, the histogram, a page of events (newest first) and the link to older ones.

    ``total``: how many events match (default: the histogram's sum, when it covers them all); ``window``:
    the histogram's range when it is not the filter's (``last 24 hours``).
    """
    current = {key: query[key] for key in FILTER_KEYS if query.get(key)}
    total = sum(histogram[2]) if total is None else total
    parts = [
        f'<h1>Events <span class="muted">{total:,} matching</span></h1>',
        _filter_form(events, filters, current),
        _chips(current),
        _histogram(histogram, current, log=query.get("scale") == "log", window=window),
    ]
    if top and total:
        parts.append(_top_values(top, current, total))
    if events:
        parts.append(
            '<table class="events"><colgroup><col class="c-time"><col class="c-name"><col class="c-service">'
            '<col class="c-user"><col class="c-ip"><col class="c-req"><col></colgroup>'
            "<thead><tr><th>Time (UTC)</th><th>Event</th><th>Service</th><th>User</th><th>Client IP</th>"
            "<th>Request</th><th>Properties</th></tr></thead><tbody>"
            + "".join(_event_row(event, current, csrf) for event in events)
            + "</tbody></table>"
        )
    elif current:
        parts.append('<p class="empty">No events match these filters. <a href="/">Clear them</a>.</p>')
    else:
        parts.append(
            '<p class="empty">No events yet. Point an application at this server\'s <code>/v1/logs</code>: '
            '<code>sqreen_otel.configure(endpoint="http://HOST:PORT/v1/logs")</code>.</p>'
        )
    pager = []
    if query.get("before"):
        pager.append(f'<a href="{_href("/", current)}">\u2190 Newest</a>')
    if events and (len(events) >= PAGE_SIZE or getattr(events, "more", False)):  # more: cut short by bytes
        last = events[-1]
        older = _href("/", {**current, "before": f"{last.time_ns}:{last.id}"})
        pager.append(f'<a class="older" rel="next" href="{older}">Older \u2192</a>')
    pager.append(f'<a class="muted" href="{_href("/api/events", current)}">JSON</a>')
    parts.append(f'<nav class="pager">{"".join(pager)}</nav>')
    return _page("Events", "events", "".join(parts))


def _filter_form(events: list[Event], filters: Filters, current: Mapping[str, str]) -> str:
    names = sorted({event.name for event in events} | ({filters.name} if filters.name else set()))
    # Suggestions show their value as it is: only names without invisible characters are suggested.
    options = "".join(f'<option value="{_raw(name)}">' for name in names if _visible(name) == name)

    def text(label: str, name: str, placeholder: str, extra: str = "") -> str:
        value = _raw(current.get(name, ""))
        return (
            f'<label>{label}<input type="text" name="{name}" value="{value}" placeholder="{placeholder}"{extra}>'
            "</label>"
        )

    return (
        '<form class="filters" id="filters" method="get" action="/">'
        + text("Event name", "name", "any name", ' list="event-names" class="w-l"')
        + f'<datalist id="event-names">{options}</datalist>'
        + text("Service", "service", "any service", ' class="w-s"')
        + text("User identifier", "user", "e.g. alice@example.com", ' class="w-m"')
        + text("Client IP", "ip", "e.g. 203.0.113.7", ' class="w-s"')
        + _time_input("From (UTC)", "since", filters.since_ns)
        + _time_input("Until (UTC)", "until", filters.until_ns)
        + text("Property", "prop", "e.g. plan=pro", ' class="w-s"')
        + "".join(_hidden(key, current[key]) for key in ("path", "user_agent") if current.get(key))
        + '<button type="submit">Filter</button><a href="/">clear</a></form>'
    )


def _time_input(label: str, name: str, ns: int | None) -> str:
    """A ``datetime-local`` input, read as UTC; the script sends it as nanoseconds."""
    return f'<label>{label}<input type="datetime-local" step="1" name="{name}" value="{_local_input(ns)}"></label>'


def _chips(current: Mapping[str, str]) -> str:
    if not current:
        return ""
    labels = {"name": "event", "user": "user", "ip": "IP", "since": "from", "until": "until", "prop": "property",
              "path": "path", "user_agent": "user agent", "service": "service"}  # fmt: skip
    chips = []
    for key, value in current.items():
        shown = value
        if key in ("since", "until") and value.isdigit():
            shown = _plain_time(int(value))
        rest = {k: v for k, v in current.items() if k != key}
        chips.append(
            f'<span class="chip">{labels[key]}: <b>{_e(_cut(shown, 60))}</b>'
            f'<a href="{_href("/", rest)}" title="remove this filter">\u2715</a></span>'
        )
    return f'<div class="chips">{"".join(chips)}</div>'


def _histogram(
    histogram: tuple[int, int, list[int]], current: Mapping[str, str], *, log: bool = False, window: str = ""
) -> str:
    """Events over time as an inline SVG bar chart with UTC time ticks and count ticks (linear or log).

    Each bar is a link that zooms into its time range; dragging across the chart (the page's script)
    selects a range and sets From/Until. ``window`` says which range is shown when no time filter is set.
    """
    start, width, counts = histogram
    total, top, n = sum(counts), max(counts, default=0), max(len(counts), 1)
    chart_w, chart_h, left, right, top_pad = 1000.0, 110.0, 52.0, 992.0, 8.0
    base = top_pad + chart_h
    step = (right - left) / n
    end_ns = start + width * len(counts)
    keep = {**current, **({"scale": "log"} if log else {}), **({"window": "all"} if window == WINDOW_ALL else {})}
    bars = []
    for index, count in enumerate(counts):
        if not count:
            continue
        height = max(1.5, chart.scaled(count, top, log=log) * chart_h)
        begin, finish = start + index * width, start + (index + 1) * width
        label = (
            f"{chart.moment_text(begin, width)} \u2013 {chart.moment_text(finish, width)}: "
            f"{count:,} event{'s' if count != 1 else ''}"
        )
        zoom = _href("/", {**keep, "since": begin, "until": finish})
        bars.append(
            f'<a href="{zoom}"><rect class="bar" x="{left + index * step + 0.5:.1f}" y="{base - height:.1f}" '
            f'width="{max(step - 1.5, 0.8):.1f}" height="{height:.1f}"><title>{_e(label)}</title></rect></a>'
        )
    marks = []
    if total:
        for value in chart.count_ticks(top, log=log):
            y = base - chart.scaled(value, top, log=log) * chart_h
            marks.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
            marks.append(f'<text class="tick count" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,}</text>')
        span = max(end_ns - start, 1)
        for ns, text in chart.time_ticks(start, end_ns):
            x = left + (ns - start) / span * (right - left)
            anchor = "start" if x < left + 30 else "end" if x > right - 30 else "middle"
            date, _, clock = text.rpartition(" ")  # the date, where the day changes, on a second row
            marks.append(f'<line class="axis" x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}"/>')
            marks.append(
                f'<text class="tick time" x="{x:.1f}" y="{base + 17}" text-anchor="{anchor}">{_e(text)}</text>'
                if not date
                else f'<text class="tick time" x="{x:.1f}" y="{base + 17}" text-anchor="{anchor}">{_e(clock)}'
                f'<tspan class="date" x="{x:.1f}" dy="14">{_e(date)}</tspan></text>'
            )
    else:
        marks.append(f'<text class="tick" x="{chart_w / 2}" y="{base / 2 + 8}" text-anchor="middle">no events</text>')
    other = {k: v for k, v in keep.items() if k != "scale"}
    links = [f'<a class="scale" href="{_href("/", other if log else {**other, "scale": "log"})}">'
             f'{"linear scale" if log else "log scale"}</a>']  # fmt: skip
    if window == WINDOW_RECENT:
        links.insert(0, f'<a class="window" href="{_href("/", {**keep, "window": "all"})}">show all time</a>')
    elif window == WINDOW_ALL:
        recent = {k: v for k, v in keep.items() if k != "window"}
        links.insert(0, f'<a class="window" href="{_href("/", recent)}">show the last 24 hours</a>')
    dot = " \u00b7 "
    shown = f"{_e(window)}{dot}" if window else ""
    scale = f"{dot}log scale" if log else ""
    return (
        f'<div class="histhead"><span class="muted">{shown}UTC{scale}{dot}drag across the chart to select a time '
        f'range</span><span class="links">{"".join(links)}</span></div>'
        f'<svg class="hist" id="histogram" viewBox="0 0 {chart_w:.0f} {base + 38:.0f}" role="img" '
        f'aria-label="{total:,} events over time" data-start="{start}" data-end="{end_ns}" data-left="{left}" '
        f'data-right="{right}">'
        f'<line class="axis" x1="{left}" y1="{base}" x2="{right}" y2="{base}"/>'
        f'<line class="axis" x1="{left}" y1="{top_pad}" x2="{left}" y2="{base}"/>'
        f"{''.join(marks)}{''.join(bars)}"
        f'<rect class="sel" id="selection" x="0" y="{top_pad}" width="0" height="{chart_h}"/></svg>'
    )


_TOP_TITLES = (("ip", "Client IPs"), ("user", "Users"), ("path", "Paths"), ("user_agent", "User agents"))


def _top_values(top: Mapping[str, list[tuple[str, int]]], current: Mapping[str, str], total: int) -> str:
    """The most frequent values of the matching events, each a link that adds it as a filter: the picture a
    person needs to choose a playbook's threshold (how many failed logins does the busiest address make?)."""
    cards = []
    for field, title in _TOP_TITLES:
        rows = top.get(field) or []
        items = "".join(
            f'<tr><td><a href="{_href("/", {**current, field: value})}" title="{_e(value)}">{_e(_cut(value, 48))}</a>'
            f'</td><td class="num">{count:,}</td></tr>'
            for value, count in rows
        )
        body = items or '<tr><td class="muted" colspan="2">none</td></tr>'
        cards.append(f'<div class="card"><h2>{title}</h2><table class="top"><tbody>{body}</tbody></table></div>')
    sampled = (
        f'<p class="muted">Counted over the newest {TOP_SAMPLE:,} of the {total:,} matching events.</p>'
        if total > TOP_SAMPLE
        else ""
    )
    return f'<section class="topvalues" id="top-values">{"".join(cards)}</section>{sampled}'


_MASKED = ("[REDACTED]", "...[truncated]")  # the agent's default mask and cut marker


def _filterable(value: str) -> bool:
    """Not a value the scrubber masked or cut: filtering on it would find other events' masks, never this value."""
    return not any(marker in value for marker in _MASKED)


def _row_block(csrf: str, back: str, action: str, field: str, value: str) -> str:
    """A list row's one-click block, for an hour (the event page offers other durations)."""
    what = "this user" if action == "block_user" else "this IP"
    return (
        f'<form class="rowblock" method="post" action="/actions">{_hidden("csrf", csrf)}{_hidden("back", back)}'
        f"{_hidden('action', action)}{_hidden(field, value)}{_hidden('duration', '3600')}"
        f'<button type="submit" class="light" title="block {what} for an hour">block</button></form>'
    )


def _event_row(event: Event, current: Mapping[str, str], csrf: str = "") -> str:
    def pivot(key: str, value: str) -> str:
        return _href("/", {k: v for k, v in {**current, key: value}.items() if k != "before"})

    def link(key: str, value: str, shown: str, css: str = "") -> str:
        """A link filtering on ``value``, unless no filter could hold it: then the text alone (a 64 KiB
        value in each link made pages of hundreds of megabytes)."""
        if len(value) > MAX_FILTER_LENGTH:
            return shown
        return f'<a{css} href="{pivot(key, value)}">{shown}</a>'

    user = " ".join(
        f'<span class="ident"><span class="k">{_e(key)}=</span>'
        + link("user", _scalar(value), _e(_cut(_scalar(value), 60)))
        + "</span>"
        for key, value in sorted(event.user.items())
    )
    ip = link("ip", event.client_address, _e(event.client_address)) if event.client_address else ""
    request = ""
    if event.method or event.path:
        method, path = _e(event.method or ""), _e(_cut(event.path or ""))
        request = f'<span class="method">{method}</span><span class="mono">{path}</span>'
    props = []
    for key, value in _properties(event.attributes).items():
        text = f'<span class="k">{_e(_cut(key, 40))}=</span>{_e(_cut(_scalar(value)))}'
        if _PROP_KEY.fullmatch(key) and not isinstance(value, (dict, list)) and _filterable(_scalar(value)):
            text = link("prop", f"{key}={_scalar(value)}", text)
        props.append(f'<span class="prop">{text}</span>')
    # Long dotted names (sq.sdk.users.login) break after a dot in a narrow column, not inside a word.
    name = link("name", event.name, _e(_cut(event.name or "(no name)")).replace(".", ".<wbr>"), ' class="name"')
    if csrf:  # one-click blocks, except where the event is itself a block of that user or address
        back = "/?" + urlencode(current) if current else "/"
        if event.user and event.name not in _USER_REFUSALS:
            identifiers = json.dumps(event.user, sort_keys=True, default=str)
            user += " " + _row_block(csrf, back, "block_user", "user", identifiers)
        if event.client_address and event.name not in _IP_REFUSALS:
            ip += " " + _row_block(csrf, back, "block_ip", "ip", event.client_address)
    service_name = event.resource.get("service.name")
    service = link("service", service_name, _e(_cut(service_name, 40))) if isinstance(service_name, str) else _NONE
    return (
        f'<tr><td class="nowrap"><a class="event-link" href="/events/{event.id}">{_time(event.time_ns)}</a></td>'
        f'<td>{name}</td><td class="service">{service}</td>'
        f'<td>{user or _NONE}</td><td class="mono">{ip}</td><td>{request}</td>'
        f'<td class="props">{"".join(props)}</td></tr>'
    )


# -- one event --------------------------------------------------------------------------------------


def _scope(event: Event) -> str:
    """The instrumentation scope: its name, version and attributes."""
    version = event.record.get("scope_version")
    attributes = event.record.get("scope_attributes")
    if not event.scope and not version and not attributes:
        return ""
    text = f"<code>{_e(event.scope or '')}</code>"
    if version:
        text += f' <span class="muted">version</span> <code>{_e(version)}</code>'
    if attributes:
        text += f"<pre>{_e(json.dumps(attributes, indent=1, sort_keys=True, default=str))}</pre>"
    return text


def _record_fields(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The rest of the OTLP record: observed time, severity, body (events stored before schema 4 have none)."""
    fields = []
    observed = record.get("observed_time_unix_nano")
    if isinstance(observed, int) and observed:
        fields.append(("Observed (UTC)", f'{_time(observed)} <span class="muted mono">{observed} ns</span>'))
    number, text = record.get("severity_number"), record.get("severity_text")
    if number or text:
        shown = " ".join(part for part in (str(text or ""), f"({number})" if number else "") if part)
        fields.append(("Severity", f"<code>{_e(shown)}</code>"))
    if record.get("body") is not None:
        fields.append(("Body", _pretty(record["body"])))
    return fields


_ACTION_ID = "sqreen.action.id"
_USER_REFUSALS = frozenset({"sq.action.block_user", "sq.action.redirect_user"})  # the agent refused that user
_IP_REFUSALS = frozenset({"sq.action.block_ip", "sq.action.redirect_ip"})  # ... or that client address


def event_page(event: Event, csrf: str) -> str:
    """``/events/ID``: every field and attribute, and forms to block the event's user or client IP."""
    back = f"/events/{event.id}"
    user_text = ", ".join(f"{k}={_scalar(v)}" for k, v in sorted(event.user.items()))
    request = " ".join(part for part in (event.method, event.path) if part)
    fields = [
        ("Event id", f'<span class="mono">{event.id}</span>'),
        ("Name", f"<code>{_e(event.name)}</code>"),
        ("Time (UTC)", f'{_time(event.time_ns)} <span class="muted mono">{event.time_ns} ns</span>'),
        ("Received (UTC)", f'{_time(event.received_ns)} <span class="muted mono">{event.received_ns} ns</span>'),
        ("User", f"<code>{_e(user_text)}</code>" if user_text else '<span class="muted">anonymous</span>'),
        ("Client IP", f"<code>{_e(event.client_address)}</code>" if event.client_address else ""),
        ("Request", f"<code>{_e(request)}</code>" if request else ""),
        ("Trace id", f'<code class="trace-id">{_e(event.trace_id)}</code>' if event.trace_id else "\u2014"),
        ("Span id", f'<code class="span-id">{_e(event.span_id)}</code>' if event.span_id else "\u2014"),
        ("Scope", _scope(event)),
        *_record_fields(event.record),
    ]
    action_id = event.attributes.get(_ACTION_ID)
    if isinstance(action_id, str) and action_id:
        fields.insert(2, ("Action", f'<code class="action-id">{_e(action_id)}</code> \u00b7 '
                                    '<a href="/actions">block list</a>'))  # fmt: skip
    respond = []
    if event.name in _USER_REFUSALS or event.name in _IP_REFUSALS:
        what = "user" if event.name in _USER_REFUSALS else "client IP"
        respond.append(
            f'<p class="what">This {what} was refused by action <code>{_e(action_id or "?")}</code>: lift or change '
            'it on the <a href="/actions">block list</a>.</p>'
        )
    if event.user and event.name not in _USER_REFUSALS:
        first = _scalar(next(iter(sorted(event.user.items())))[1])
        respond.append(
            f'<p class="what">User <code>{_e(_cut(user_text, 120))}</code> \u00b7 '
            f'<a href="{_href("/", {"user": first})}">their events</a></p>'
            + _block_form(csrf, back, "block_user", "user", json.dumps(event.user, sort_keys=True, default=str))
        )
    if event.client_address and event.name not in _IP_REFUSALS:
        respond.append(
            f'<p class="what">Client IP <code>{_e(event.client_address)}</code> \u00b7 '
            f'<a href="{_href("/", {"ip": event.client_address})}">events from this IP</a></p>'
            + _block_form(csrf, back, "block_ip", "ip", event.client_address)
        )
    if not respond:
        respond.append('<p class="muted">No user and no client IP on this event: nothing to block.</p>')
    respond.append('<p class="muted">Applications polling <a href="/v1/actions">/v1/actions</a> apply blocks.</p>')
    for anchor, what in (("blocked-user", "User"), ("blocked-ip", "IP")):
        respond.insert(
            0, f'<p class="flash" id="{anchor}">{what} blocked. <a href="/actions">See the block list</a>.</p>'
        )
    attributes = [(_e(key), _pretty(value)) for key, value in sorted(event.attributes.items())]
    resource = [(_e(key), _pretty(value)) for key, value in sorted(event.resource.items())]
    body = (
        f'<p><a href="/">\u2190 Events</a></p><h1><code>{_e(event.name)}</code> '
        f'<span class="muted">{_plain_time(event.time_ns)}</span></h1>'
        '<div class="grid"><section>'
        + _kv_table((label, value) for label, value in fields if value)
        + f'</section><section class="card"><h2>Respond</h2>{"".join(respond)}</section></div>'
        + f"<h2>Attributes ({len(attributes)})</h2>"
        + _kv_table(attributes, "no attributes")
        + f"<h2>Resource ({len(resource)})</h2>"
        + _kv_table(resource, "no resource attributes")
        + f'<p class="muted"><a href="/api/events/{event.id}">JSON</a></p>'
    )
    return _page(event.name or "Event", "events", body)


# -- summary, actions, 404 --------------------------------------------------------------------------


def summary_page(rows: list[dict[str, Any]], *, sparks: Mapping[str, list[int]] | None = None, window: str = "") -> str:
    """``/summary``: per event name, how many, first and last seen, distinct users and client IPs, and a
    sparkline of its counts over ``window`` (the same for every name, so that they compare)."""
    if not rows:
        return _page("Summary", "summary", '<h1>Summary</h1><p class="empty">No events yet.</p>')
    sparks = sparks or {}
    body = "".join(
        f'<tr><td><a href="{_href("/", {"name": row["name"]})}">{_e(row["name"] or "(no name)")}</a></td>'
        f'<td class="num">{int(row["count"]):,}</td><td>{_sparkline(sparks.get(row["name"]), window)}</td>'
        f'<td class="nowrap">{_time(int(row["first_ns"]))}</td><td class="nowrap">{_time(int(row["last_ns"]))}</td>'
        f'<td class="num">{int(row.get("users") or 0):,}</td>'
        f'<td class="num">{int(row.get("ips", row.get("client_addresses")) or 0):,}</td></tr>'
        for row in rows
    )
    table = (
        '<table class="summary"><thead><tr><th>Event</th><th class="num">Count</th>'
        f"<th>{_e(window.capitalize() if window else 'Trend')}</th><th>First seen (UTC)</th>"
        '<th>Last seen (UTC)</th><th class="num">Users</th><th class="num">Client IPs</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
    total = sum(int(row["count"]) for row in rows)
    return _page("Summary", "summary", f'<h1>Summary <span class="muted">{total:,} events</span></h1>{table}')


def _sparkline(counts: list[int] | None, window: str) -> str:
    """A name's counts as small bars, scaled to its own peak; its total and peak in the tooltip."""
    if not counts:
        return _NONE
    top, width = max(counts), 4.0
    bars = "".join(
        f'<rect class="spark" x="{i * width:.0f}" y="{20 - max(1.0, n / top * 20):.1f}" width="{width - 1:.0f}" '
        f'height="{max(1.0, n / top * 20):.1f}"/>'
        for i, n in enumerate(counts)
        if n
    )
    where = f"in the {window}" if window == WINDOW_RECENT else "over all time"
    title = f"{sum(counts):,} {where}; at most {top:,} in one of {len(counts)} equal intervals"
    return (
        f'<svg class="sparkline" viewBox="0 0 {len(counts) * width:.0f} 20" role="img" aria-label="{_e(title)}">'
        f"<title>{_e(title)}</title>{bars}</svg>"
    )


def actions_page(actions: list[dict[str, Any]], csrf: str, *, now: float | None = None) -> str:
    """``/actions``: what agents enforce, with an Unblock (hand-made entries) or Lift (playbook decisions)
    button per entry, and forms to block a user or an IP.

    Entries of ``alerts.block_list``: hand-made ones, then the playbooks' decisions in force, marked with
    their playbook and a link to their alert.
    """
    now = time.time() if now is None else now
    rows = []
    for entry in actions:
        action = str(entry.get("action", ""))
        if action.endswith("_user"):
            user = entry.get("user") or {}
            kind, target = "User", ", ".join(f"{k}={_scalar(v)}" for k, v in sorted(user.items()))
            unblock = _hidden("action", "unblock_user") + _hidden(
                "user", json.dumps(user, ensure_ascii=False, sort_keys=True)
            )
        else:
            kind, target = "IP", str(entry.get("ip", ""))
            unblock = _hidden("action", "unblock_ip") + _hidden("ip", target)
        if action.startswith("redirect_"):
            kind += f' <span class="muted">redirected to</span> <code>{_e(entry.get("url", ""))}</code>'
        playbook = entry.get("playbook")
        if playbook is not None:  # a decision: lifted (kept on its alert's page as lifted), not deleted
            source = f'<a class="playbook" href="{_href("/alerts/" + str(entry.get("alert", "")))}">{_e(playbook)}</a>'
            button = (
                f'<form method="post" action="{_href("/decisions/" + str(entry["id"]) + "/lift")}" class="lift">'
                f"{_hidden('csrf', csrf)}{_hidden('back', '/actions')}"
                '<button type="submit" class="light">Lift</button></form>'
            )
        else:
            source = '<span class="muted">manual</span>'
            button = (
                f'<form method="post" action="/actions" class="unblock">{_hidden("csrf", csrf)}'
                f'{_hidden("back", "/actions")}{unblock}<button type="submit" class="light">Unblock</button></form>'
            )
        rows.append(
            f'<tr class="{"decision" if playbook is not None else "manual"}" data-id="{_e(entry.get("id", ""))}">'
            f'<td>{kind}</td><td><code class="target">{_e(target)}</code></td><td class="source">{source}</td>'
            f"<td>{_epoch(entry.get('expires_at'), now)}</td><td>{_epoch(entry.get('created_at'), now)}</td>"
            f"<td>{button}</td></tr>"
        )
    if rows:
        table = (
            '<table class="actions"><thead><tr><th>Kind</th><th>Target</th><th>Source</th><th>Expires (UTC)</th>'
            f"<th>Created (UTC)</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        table = '<p class="empty">Nobody is blocked.</p>'
    keys = "".join(f'<option value="{key}">' for key in IDENTIFIER_KEYS)
    forms = (
        '<div class="cards"><section class="card"><h2>Block a user</h2>'
        '<form class="inline" method="post" action="/actions">'
        + _hidden("csrf", csrf)
        + _hidden("back", "/actions")
        + _hidden("action", "block_user")
        + '<label>Identifier<input name="user_key" value="email" list="identifier-keys" size="9" required></label>'
        f'<datalist id="identifier-keys">{keys}</datalist>'
        '<label>Value<input name="user_value" placeholder="mallory@example.com" size="24" required></label>'
        + _duration_select()
        + '<button type="submit" class="danger">Block user</button></form></section>'
        '<section class="card"><h2>Block an IP or network</h2><form class="inline" method="post" action="/actions">'
        + _hidden("csrf", csrf)
        + _hidden("back", "/actions")
        + _hidden("action", "block_ip")
        + '<label>IP or CIDR<input name="ip" placeholder="203.0.113.0/24" size="20" required></label>'
        + _duration_select()
        + '<button type="submit" class="danger">Block IP</button></form></section></div>'
    )
    intro = (
        '<p class="muted">Applications with <code>SQREEN_OTEL_ACTIONS_URL</code> set to this server\'s '
        '<a href="/v1/actions">/v1/actions</a> fetch this list at each heartbeat. Entries from a playbook '
        "link to their alert; lifting one stops it at the agents' next poll.</p>"
        '<p class="flash" id="lifted">Lifted: agents stop enforcing it at their next poll.</p>'
    )
    return _page("Block list", "actions", f"<h1>Block list</h1>{intro}{table}{forms}")


def not_found_page() -> str:
    body = '<h1>Not found</h1><p>No such event (it may have expired). <a href="/">Back to the events</a></p>'
    return _page("Not found", "", body)


# -- forms ------------------------------------------------------------------------------------------


def action_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """A block or unblock request from a posted form, checked; ``ValueError`` says what is wrong.

    Fields: ``action`` (``block_user``, ``block_ip``, ``unblock_user``, ``unblock_ip``); for users either
    ``user`` (JSON object of identifiers) or ``user_key`` + ``user_value``; for IPs ``ip`` (address or
    CIDR network); for blocks ``duration`` (seconds, or ``forever``).
    """
    action = _field(form, "action")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {_cut(action, 40)!r}")
    result: dict[str, Any] = {"action": action}
    if action.endswith("_user"):
        result["user"] = _user(form)
    else:
        ip = _field(form, "ip")
        if not ip:
            raise ValueError("an IP address or CIDR network is required")
        try:
            check_network(ip)
        except (TypeError, ValueError):
            raise ValueError(f"{_cut(ip, 60)!r} is not an IP address or CIDR network") from None
        result["ip"] = ip
    if action.startswith("block_"):
        result["duration"] = _duration(_field(form, "duration"))
    return result


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a text field")
    if len(value) > MAX_FIELD:
        raise ValueError(f"{name} is limited to {MAX_FIELD} characters")
    return value.strip()


def _user(form: Mapping[str, Any]) -> dict[str, Any]:
    raw = _field(form, "user")
    if raw:
        try:
            user = json.loads(raw)
        except ValueError:
            user = None
        if not isinstance(user, dict):
            raise ValueError('user must be a JSON object of identifiers, like {"email": "mallory@example.com"}')
    else:
        key, value = _field(form, "user_key"), _field(form, "user_value")
        if not key or not value:
            raise ValueError("a user identifier key (such as email) and its value are required")
        user = {key: value}
    try:
        check_identifiers(user)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    return user


def _duration(raw: str) -> int | float | None:
    if raw.lower() in ("forever", "never"):
        return None
    if not raw:
        raise ValueError("duration is required: a number of seconds, or forever")
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"duration must be a number of seconds or forever, got {_cut(raw, 40)!r}") from None
    if not (math.isfinite(seconds) and 1 <= seconds <= MAX_DURATION):
        raise ValueError(f"duration must be from 1 second to {MAX_DURATION} seconds (100 years), or forever")
    return int(seconds) if seconds.is_integer() else seconds
