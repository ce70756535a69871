"""The Event Explorer's web pages: escaping of hostile event data, form checking, and the pages through the app.

Render functions are fed values an attacker controls (event names, user agents, property keys, quotes in
attribute values) and the output is parsed back: only our own tags and attributes may appear. The app is
driven through Starlette's TestClient over a real SQLite store, with events as the OTLP decoder makes them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from sqreen_otel.explorer import ui
from sqreen_otel.explorer.app import create_app
from sqreen_otel.explorer.store import Event, Filters, Store

T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
SECOND = 10**9
XSS = "<script>alert(1)</script>"
QUOTES = 'x" onmouseover="alert(1)" y=\'z\''
OUR_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "main", "a", "h1", "h2", "p", "span", "b", "code",
    "pre", "time", "table", "thead", "tbody", "tr", "th", "td", "form", "label", "input", "select", "option",
    "button", "datalist", "nav", "div", "section", "svg", "line", "rect", "text", "tspan", "script", "colgroup",
    "col", "wbr",
}  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Tags, links, forms and text of a page, as a browser would parse them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.links: list[dict[str, str]] = []
        self.forms: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._script: list[str] | None = None
        self._form: dict[str, Any] | None = None
        self._select: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "a":
            self.links.append(attributes)
        elif tag == "form":
            self._form = {**attributes, "fields": {}}
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and attributes.get("name"):
            self._form["fields"][attributes["name"]] = attributes.get("value", "")
        elif tag == "select" and self._form is not None:
            self._select = attributes.get("name")
        elif tag == "option" and self._form is not None and self._select:
            self._form["fields"].setdefault(self._select, attributes.get("value", ""))  # the first option
        elif tag == "script":
            self._script = []
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)
        else:
            self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def form(self, css_class: str) -> dict[str, Any]:
        found = [f for f in self.forms if css_class in f.get("class", "").split()]
        assert len(found) == 1, f"{len(found)} forms of class {css_class}"
        return found[0]

    def event_ids(self) -> list[int]:
        return [int(a["href"].rsplit("/", 1)[1]) for a in self.links if "event-link" in a.get("class", "")]

    def older(self) -> str | None:
        hrefs = [a["href"] for a in self.links if "older" in a.get("class", "")]
        return hrefs[0] if hrefs else None


def assert_only_our_markup(text: str) -> Page:
    page = Page(text)
    for tag, attributes in page.tags:
        assert tag in OUR_TAGS, f"unexpected tag <{tag}>"
        for name, value in attributes.items():
            assert not name.startswith("on"), f"event handler attribute {name}={value!r} on <{tag}>"
            assert name not in ("style", "src", "srcdoc"), f"{name} on <{tag}>"
            if name in ("href", "action"):
                assert value.startswith(("/", "?")), f"{name}={value!r}"
    assert len(page.scripts) == 1 and page.scripts[0] == ui._SCRIPT
    assert text.count("<script") == 1 and text.count("<style") == 1
    return page


def event_dict(
    name: str,
    time_ns: int,
    *,
    user: dict[str, Any] | None = None,
    ip: str | None = None,
    path: str = "/login",
    method: str = "POST",
    props: dict[str, Any] | None = None,
    ua: str = "Mozilla/5.0",
    trace_id: str = "",
    span_id: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event as ``receiver.decode_events`` makes it."""
    attributes: dict[str, Any] = {f"sqreen.user.{k}": v for k, v in (user or {}).items()}
    attributes.update({f"sqreen.properties.{k}": v for k, v in (props or {}).items()})
    if ip:
        attributes["client.address"] = ip
    attributes.update({"url.path": path, "http.request.method": method, "user_agent.original": ua})
    attributes.update(extra or {})
    return {
        "name": name, "time_unix_nano": time_ns, "observed_time_unix_nano": time_ns, "severity_number": 9,
        "severity_text": "INFO", "trace_id": trace_id, "span_id": span_id, "attributes": attributes, "body": None,
        "resource": {"service.name": "shop", "service.version": "1.2"}, "scope": "sqreen_otel",
    }  # fmt: skip


def hostile_event() -> Event:
    return Event(
        id=7,
        time_ns=T0,
        received_ns=T0 + SECOND,
        name=XSS,
        user={"email": XSS, QUOTES: QUOTES},
        client_address=QUOTES,
        path="/a/" + XSS,
        method=XSS,
        trace_id=XSS,
        span_id=QUOTES,
        attributes={
            "user_agent.original": XSS,
            f"sqreen.properties.{XSS}": QUOTES,
            "sqreen.properties.ok": XSS,
            "sqreen.properties.nested": {XSS: [QUOTES]},
            XSS: QUOTES,
        },
        resource={"service.name": XSS, QUOTES: QUOTES},
        scope=QUOTES,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "e.sqlite") as s:
        yield s


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as c:
        yield c


def get_page(client: TestClient, url: str) -> Page:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return assert_only_our_markup(response.text)


def sample(store: Store) -> None:
    """Five events, one second apart, ids 1..5 in time order (``T0 + i s``)."""
    store.add(
        [
            event_dict("sq.sdk.users.login", T0 + 0 * SECOND, user={"email": "alice@example.com"}, ip="203.0.113.1",
                       props={"success": False}),
            event_dict("sq.sdk.users.login", T0 + 1 * SECOND, user={"email": "alice@example.com"}, ip="203.0.113.1",
                       props={"success": True}),
            event_dict("password_reset", T0 + 2 * SECOND, user={"email": "bob@example.com", "id": 42},
                       ip="198.51.100.2", props={"email_domain": "example.com"}),
            event_dict("sq.sdk.users.login", T0 + 3 * SECOND, user={"email": "mallory@example.com"},
                       ip="198.51.100.2", props={"success": False}, trace_id="ab" * 16, span_id="cd" * 8),
            event_dict("healthcheck", T0 + 4 * SECOND, path="/health", method="GET"),
        ]
    )  # fmt: skip


# -- escaping --------------------------------------------------------------------------------------


def test_event_list_escapes_hostile_values() -> None:
    event = hostile_event()
    text = ui.events_page(
        [event], Filters(name=XSS, user=QUOTES), (T0, SECOND, [1, 0, 3]), {"name": XSS, "user": QUOTES}, "c"
    )
    page = assert_only_our_markup(text)
    assert XSS not in text
    assert XSS in page.all_text  # shown as text, not markup
    assert QUOTES in page.all_text
    inputs: dict[str, Any] = {}  # the filter form's, which come first (rows have block forms too)
    for tag, a in page.tags:
        if tag == "input" and "name" in a:
            inputs.setdefault(a["name"], a.get("value"))
    assert inputs["name"] == XSS and inputs["user"] == QUOTES  # quotes stayed inside the attribute


def test_event_page_escapes_hostile_values() -> None:
    text = ui.event_page(hostile_event(), 'tok"en')
    page = assert_only_our_markup(text)
    assert XSS not in text
    assert page.all_text.count(XSS) >= 5  # name, user agent, property key and value, resource
    block = page.form("block-user")
    assert json.loads(block["fields"]["user"]) == {"email": XSS, QUOTES: QUOTES}
    assert block["fields"]["csrf"] == 'tok"en'
    assert page.form("block-ip")["fields"]["ip"] == QUOTES
    assert "<pre>{\n  &quot;&lt;script&gt;" in text  # nested values as pretty JSON


def test_summary_and_actions_pages_escape_hostile_values() -> None:
    rows = [{"name": XSS, "count": 3, "first_ns": T0, "last_ns": T0 + SECOND, "users": 2, "client_addresses": 1}]
    text = ui.summary_page(rows)
    page = assert_only_our_markup(text)
    assert XSS not in text and XSS in page.all_text
    assert any(parse_qs(urlsplit(a["href"]).query) == {"name": [XSS]} for a in page.links)
    actions = [
        {"id": "1", "action": "block_user", "user": {"email": XSS}, "expires_at": None, "created_at": 1.7e9},
        {"id": "2", "action": "block_ip", "ip": QUOTES, "expires_at": 1.7e9 + 60, "created_at": 1.7e9},
        {"id": "3", "action": "block_ip", "ip": "192.0.2.1", "expires_at": 1e15, "created_at": 1.7e9},  # far away
    ]
    text = ui.actions_page(actions, "c", now=1.7e9)
    page = assert_only_our_markup(text)
    assert XSS not in text
    unblocks = [f for f in page.forms if "unblock" in f.get("class", "")]
    assert [f["fields"]["action"] for f in unblocks] == ["unblock_user", "unblock_ip", "unblock_ip"]
    assert json.loads(unblocks[0]["fields"]["user"]) == {"email": XSS}
    assert unblocks[1]["fields"]["ip"] == QUOTES
    assert "in 1 min" in page.all_text and "never" in page.all_text
    assert_only_our_markup(ui.not_found_page())


def test_lone_surrogates_do_not_break_a_page() -> None:
    event = Event(1, T0, T0, "x\ud800", {}, None, None, None, None, None, {"k": "\udfff"}, {}, None)
    text = ui.event_page(event, "c")
    text.encode("utf-8")
    assert "x\ufffd" in text


def test_histogram_svg() -> None:
    text = ui.events_page([], Filters(), (T0, 60 * SECOND, [2, 0, 5, 1]), {}, "c")
    page = assert_only_our_markup(text)
    bars = [a for tag, a in page.tags if tag == "rect" and a.get("class") == "bar"]
    assert len(bars) == 3  # empty buckets draw nothing
    heights = [float(b["height"]) for b in bars]
    assert max(heights) == heights[1] and heights[0] == pytest.approx(heights[1] * 2 / 5)
    assert "2023-11-14 22:15:20 UTC \u2013 2023-11-14 22:16:20 UTC: 5 events" in page.all_text  # a tooltip
    # Time ticks on round UTC minutes (the date on the first), count ticks on round numbers.
    assert '>22:14<tspan class="date"' in text and ">2023-11-14</tspan>" in text  # the date on a second row
    assert all(f">22:1{m}</text>" in text for m in (5, 6, 7))
    assert all(f">{n}</text>" in text for n in (0, 2, 4)) and ">5</text>" not in text
    zoom = [parse_qs(urlsplit(a["href"]).query) for a in page.links if "since" in a["href"]]
    assert zoom[1] == {"since": [str(T0 + 120 * SECOND)], "until": [str(T0 + 180 * SECOND)]}
    assert "8 matching" in page.all_text
    empty = Page(ui.events_page([], Filters(), (0, 1, [0] * 60), {}, "c"))
    assert not [a for t, a in empty.tags if t == "rect" and a.get("class") == "bar"] and "no events" in empty.all_text


def test_csp_allows_exactly_the_inline_script_and_style() -> None:
    for source, directive in ((ui._SCRIPT, "script-src"), (ui._STYLE, "style-src")):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in ui.CSP
    assert "unsafe-inline" not in ui.CSP and "default-src 'none'" in ui.CSP


# -- action_from_form ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"action": "block_user", "user": '{"email": "m@example.com"}', "duration": "3600"},
         {"action": "block_user", "user": {"email": "m@example.com"}, "duration": 3600}),
        ({"action": "block_user", "user_key": " email ", "user_value": "m@example.com", "duration": "forever"},
         {"action": "block_user", "user": {"email": "m@example.com"}, "duration": None}),
        ({"action": "block_user", "user": '{"id": 7, "email": "x"}', "duration": "86400", "csrf": "c"},
         {"action": "block_user", "user": {"id": 7, "email": "x"}, "duration": 86400}),
        ({"action": "block_ip", "ip": "203.0.113.0/24", "duration": "604800"},
         {"action": "block_ip", "ip": "203.0.113.0/24", "duration": 604800}),
        ({"action": "block_ip", "ip": " 2001:db8::1 ", "duration": "1.5"},
         {"action": "block_ip", "ip": "2001:db8::1", "duration": 1.5}),
        ({"action": "unblock_user", "user": '{"email": "m@example.com"}'},
         {"action": "unblock_user", "user": {"email": "m@example.com"}}),
        ({"action": "unblock_ip", "ip": "203.0.113.7", "duration": "ignored"},
         {"action": "unblock_ip", "ip": "203.0.113.7"}),
    ],
)  # fmt: skip
def test_action_from_form(form: dict[str, str], expected: dict[str, Any]) -> None:
    assert ui.action_from_form(form) == expected


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "action must be one of"),
        ({"action": "delete_everything"}, "action must be one of"),
        ({"action": "block_user", "duration": "3600"}, "identifier key"),
        ({"action": "block_user", "user_key": "email", "duration": "3600"}, "identifier key"),
        ({"action": "block_user", "user": "{nope", "duration": "3600"}, "JSON object"),
        ({"action": "block_user", "user": '["a"]', "duration": "3600"}, "JSON object"),
        ({"action": "block_user", "user": "{}", "duration": "3600"}, "must not be empty"),
        ({"action": "block_user", "user": '{"email": true}', "duration": "3600"}, "must be str or int"),
        ({"action": "block_user", "user": '{"email": ["a"]}', "duration": "3600"}, "must be str or int"),
        ({"action": "block_user", "user": json.dumps({"e": "x" * 300}), "duration": "3600"}, "256 characters"),
        ({"action": "block_ip", "duration": "3600"}, "IP address or CIDR network is required"),
        ({"action": "block_ip", "ip": "not-an-ip", "duration": "3600"}, "is not an IP address"),
        ({"action": "block_ip", "ip": "203.0.113.7"}, "duration is required"),
        ({"action": "block_ip", "ip": "203.0.113.7", "duration": "soon"}, "number of seconds"),
        ({"action": "block_ip", "ip": "203.0.113.7", "duration": "0"}, "from 1 second"),
        ({"action": "block_ip", "ip": "203.0.113.7", "duration": "-60"}, "from 1 second"),
        ({"action": "block_ip", "ip": "203.0.113.7", "duration": "nan"}, "from 1 second"),
        ({"action": "block_ip", "ip": "203.0.113.7", "duration": "1e12"}, "from 1 second"),
        ({"action": "block_ip", "ip": object(), "duration": "60"}, "ip must be a text field"),
        ({"action": "block_ip", "ip": "1" * 5000, "duration": "60"}, "limited to"),
    ],
)  # fmt: skip
def test_action_from_form_rejects(form: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ui.action_from_form(form)


# -- through the app -------------------------------------------------------------------------------


def test_list_newest_first_with_security_headers(store: Store, client: TestClient) -> None:
    sample(store)
    response = client.get("/")
    assert response.headers["content-security-policy"] == ui.CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    page = assert_only_our_markup(response.text)
    assert page.event_ids() == [5, 4, 3, 2, 1]
    text = page.all_text
    assert "5 matching" in text
    assert "2023-11-14 22:13:23.000" in text  # event 4, UTC
    assert "mallory@example.com" in text and "198.51.100.2" in text and "/health" in text
    assert "success=false" in text and "email_domain=example.com" in text
    assert page.older() is None  # fewer than a page


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("name=sq.sdk.users.login", [4, 2, 1]),
        ("user=alice@example.com", [2, 1]),
        ("user=42", [3]),
        ("ip=198.51.100.2", [4, 3]),
        (f"since={T0 + SECOND}&until={T0 + 3 * SECOND}", [3, 2]),
        ("prop=success=false", [4, 1]),
        ("prop=email_domain=example.com", [3]),
        ("name=sq.sdk.users.login&ip=198.51.100.2", [4]),
        ("name=sq.sdk.users.login&prop=success=false&user=alice@example.com", [1]),
        ("name=nothing", []),
    ],
)
def test_filters_narrow_and_combine(store: Store, client: TestClient, query: str, ids: list[int]) -> None:
    sample(store)
    page = get_page(client, "/?" + query)
    assert page.event_ids() == ids
    assert f"{len(ids)} matching" in page.all_text
    fields = page.form("filters")["fields"]
    for key, values in parse_qs(query).items():
        if key not in ("since", "until"):
            assert fields[key] == values[0]  # the form shows the current filter
    if "since" in query:
        assert fields["since"] == "2023-11-14T22:13:21" and fields["until"] == "2023-11-14T22:13:23"
    if not ids:
        assert "No events match these filters" in page.all_text


def test_row_links_pivot_on_values(store: Store, client: TestClient) -> None:
    sample(store)
    links = [parse_qs(urlsplit(a["href"]).query) for a in get_page(client, "/?name=password_reset").links]
    assert {"name": ["password_reset"], "user": ["bob@example.com"]} in links
    assert {"name": ["password_reset"], "ip": ["198.51.100.2"]} in links
    assert {"name": ["password_reset"], "prop": ["email_domain=example.com"]} in links
    assert {"name": ["password_reset"], "user": ["42"]} in links


def test_bad_filter_is_a_400(store: Store, client: TestClient) -> None:
    assert client.get("/?since=yesterday").status_code == 400
    assert client.get("/?prop=novalue").status_code == 400


def test_paging_keeps_filters_and_never_repeats(store: Store, client: TestClient) -> None:
    # 130 events, in pairs sharing a timestamp (the keyset cursor must break ties by id), and 20 others.
    events = [event_dict("page.me", T0 + (i // 2) * SECOND, ip="203.0.113.9", props={"i": i}) for i in range(130)]
    events += [event_dict("other", T0 + i * SECOND, ip="203.0.113.9") for i in range(20)]
    store.add(events)
    seen: list[int] = []
    url: str | None = "/?name=page.me&ip=203.0.113.9"
    pages = 0
    while url:
        current = get_page(client, url)
        seen += current.event_ids()
        pages += 1
        url = current.older()
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["name"] == ["page.me"] and query["ip"] == ["203.0.113.9"]
            assert re.fullmatch(r"\d+:\d+", query["before"][0])
            assert "Newest" not in current.all_text or pages > 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 130
    assert seen == sorted(seen, reverse=True)  # ids 1..130 were given in time order
    names = {store.get(i).name for i in seen}  # type: ignore[union-attr]
    assert names == {"page.me"}


def test_event_detail(store: Store, client: TestClient) -> None:
    sample(store)
    detail = get_page(client, "/events/4")
    text = detail.all_text
    for expected in ("sq.sdk.users.login", "ab" * 16, "cd" * 8, "sqreen_otel", "service.name", "shop",
                     "service.version", "user_agent.original", "Mozilla/5.0", "sqreen.properties.success",
                     "mallory@example.com", "198.51.100.2", "POST /login", "2023-11-14 22:13:23.000",
                     str(T0 + 3 * SECOND)):  # fmt: skip
        assert expected in text, expected
    assert detail.form("block-user")["fields"]["back"] == "/events/4#blocked-user"
    assert detail.form("block-ip")["fields"]["back"] == "/events/4#blocked-ip"
    assert detail.form("block-ip")["fields"]["ip"] == "198.51.100.2"
    anonymous = get_page(client, "/events/5")
    assert not [f for f in anonymous.forms if "block-user" in f.get("class", "")]
    assert "anonymous" in anonymous.all_text
    missing = client.get("/events/999")
    assert missing.status_code == 404 and "Not found" in missing.text


def test_summary_numbers(store: Store, client: TestClient) -> None:
    sample(store)
    summary = get_page(client, "/summary")
    header = ["Event", "Count", "All time", "First seen (UTC)", "Last seen (UTC)", "Users", "Client IPs"]
    assert summary.rows[0] == header  # the events are from 2023: the sparklines span all time
    assert [row[:2] + row[3:] for row in summary.rows[1:]] == [
        ["sq.sdk.users.login", "3", "2023-11-14 22:13:20.000", "2023-11-14 22:13:23.000", "2", "2"],
        ["healthcheck", "1", "2023-11-14 22:13:24.000", "2023-11-14 22:13:24.000", "0", "0"],
        ["password_reset", "1", "2023-11-14 22:13:22.000", "2023-11-14 22:13:22.000", "1", "1"],
    ]
    # One sparkline per name over the same window: its bars add up to the name's count.
    assert summary.rows[1][2].startswith("3 over all time; at most ")
    assert summary.rows[2][2].startswith("1 over all time; at most 1 in one of 24 equal intervals")
    assert any(parse_qs(urlsplit(a["href"]).query) == {"name": ["healthcheck"]} for a in summary.links)
    assert "5 events" in summary.all_text


def test_block_and_unblock_through_the_forms(store: Store, client: TestClient) -> None:
    sample(store)
    form = get_page(client, "/events/4").form("block-user")
    fields = {**form["fields"], "duration": "86400"}
    response = client.post(form["action"], data=fields, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/events/4#blocked-user"
    feed = client.get("/v1/actions").json()
    [entry] = feed["actions"]
    assert entry["action"] == "block_user" and entry["user"] == {"email": "mallory@example.com"}
    assert entry["expires_at"] is not None

    ip_form = get_page(client, "/events/4").form("block-ip")
    assert client.post("/actions", data={**ip_form["fields"], "duration": "forever"}).status_code == 200
    actions_page = get_page(client, "/actions")
    assert "mallory@example.com" in actions_page.all_text and "198.51.100.2" in actions_page.all_text
    feed = client.get("/v1/actions").json()["actions"]
    assert [(a["action"], a["expires_at"]) for a in feed][1] == ("block_ip", None)

    # The actions page's own forms: a user by key and value, a network.
    block = [f for f in actions_page.forms if f["fields"].get("action") == "block_user" and "user_key" in f["fields"]]
    data = {**block[0]["fields"], "user_key": "id", "user_value": "42", "duration": "3600"}
    assert client.post("/actions", data=data).status_code == 200
    block_ip = [f for f in actions_page.forms if f["fields"].get("action") == "block_ip"]
    assert client.post("/actions", data={**block_ip[0]["fields"], "ip": "203.0.113.0/24"}).status_code == 200
    feed = client.get("/v1/actions").json()["actions"]
    assert {"id": "42"} in [a.get("user") for a in feed] and "203.0.113.0/24" in [a.get("ip") for a in feed]

    # Unblock every entry with its own button.
    for _ in range(4):
        unblock = [f for f in get_page(client, "/actions").forms if "unblock" in f.get("class", "")]
        response = client.post("/actions", data=unblock[0]["fields"], follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/actions"
    assert client.get("/v1/actions").json()["actions"] == []
    assert "Nobody is blocked" in get_page(client, "/actions").all_text


def test_bad_form_is_a_400_and_changes_nothing(store: Store, client: TestClient) -> None:
    csrf = get_page(client, "/actions").forms[0]["fields"]["csrf"]
    response = client.post("/actions", data={"csrf": csrf, "action": "block_ip", "ip": "nope", "duration": "60"})
    assert response.status_code == 400 and "'nope' is not an IP address" in response.text
    assert client.get("/v1/actions").json()["actions"] == []


def test_forms_need_the_csrf_token(store: Store, client: TestClient) -> None:
    form = {"action": "block_ip", "ip": "203.0.113.7", "duration": "3600", "back": "/actions"}
    assert client.post("/actions", data=form).status_code == 403
    assert client.post("/actions", data={**form, "csrf": "guess"}).status_code == 403
    assert client.get("/v1/actions").json()["actions"] == []
    csrf = get_page(client, "/actions").forms[0]["fields"]["csrf"]
    assert client.post("/actions", data={**form, "csrf": csrf, "back": "//evil.example"}, follow_redirects=False)\
        .headers["location"] == "/actions"  # fmt: skip
    assert len(client.get("/v1/actions").json()["actions"]) == 1


def test_token_mode(store: Store) -> None:
    sample(store)
    with TestClient(create_app(store, token="t")) as client:
        assert client.get("/").status_code == 401
        assert client.get("/events/1").status_code == 401
        assert client.get("/?token=wrong").status_code == 401
        response = client.get("/?token=t&name=healthcheck", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/?name=healthcheck"
        assert "sqreen_otel_token" in response.headers["set-cookie"]
        assert "httponly" in response.headers["set-cookie"].lower()
        listing = client.get("/?name=healthcheck")  # the cookie now
        assert listing.status_code == 200 and Page(listing.text).event_ids() == [5]
        assert client.get("/actions").status_code == 200
        client.cookies.clear()
        assert client.get("/summary").status_code == 401


def test_hostile_events_through_the_store(store: Store, client: TestClient) -> None:
    store.add(
        [
            event_dict(XSS, T0, user={"email": QUOTES}, ip="203.0.113.5", path="/" + XSS, ua=XSS,
                       props={"ok": XSS, "n": 3}, extra={f"sqreen.properties.{XSS}": QUOTES, "odd": "\ud800"}),
        ]
    )  # fmt: skip
    for url in ("/", "/events/1", "/summary", f"/?name={XSS}"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert XSS not in response.text
        assert XSS in assert_only_our_markup(response.text).all_text
    assert "\ufffd" in client.get("/events/1").text  # the lone surrogate, replaced
