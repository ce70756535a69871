"""The "top values" panel: the 10 most frequent client IPs, users, paths and user agents of the current filter,
each a link that adds it as a filter; the path and user-agent filters it needs; ``/api/top``.

Over real HTTP to a real explorer (the histogram tests' fixture), and the store on its own for the sample cap.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from test_explorer_histogram import T0, event, explorer

from sqreen_otel.explorer.store import Filters, Store

__all__ = ["explorer"]

S = 10**9


def traffic() -> list[dict[str, Any]]:
    """A credential-stuffing picture: one address and one user agent far ahead of the rest."""
    events = []
    for i in range(40):
        e = event("sq.sdk.users.login", T0 + i * S, ip="203.0.113.66")
        e["attributes"].update({"user_agent.original": "stuffer/1.0", "url.path": "/login",
                                "sqreen.user.email": f"victim{i % 12}@example.com"})  # fmt: skip
        events.append(e)
    for i in range(15):
        e = event("sq.sdk.users.login", T0 + (100 + i) * S, ip=f"192.0.2.{i % 5 + 1}")
        e["attributes"].update({"user_agent.original": "Mozilla/5.0", "url.path": "/login"})
        events.append(e)
    for i in range(5):
        e = event("password_reset", T0 + (200 + i) * S, ip="198.51.100.7")
        e["attributes"].update({"user_agent.original": "Mozilla/5.0", "url.path": "/password/reset"})
        events.append(e)
    return events


def get(url: str, page: str, **params: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.get(url + page, params=params)
    assert response.status_code == 200, response.text
    return response


def panel(text: str) -> dict[str, list[tuple[str, int, str]]]:
    """The panel's cards: title -> [(value, count, link)]."""
    section = re.search(r'<section class="topvalues" id="top-values">(.*?)</section>', text, re.S)
    assert section, "no top-values panel"
    cards = {}
    for title, body in re.findall(r"<h2>([^<]+)</h2><table class=\"top\"><tbody>(.*?)</tbody>", section[1], re.S):
        rows = re.findall(r'<a href="([^"]+)" title="[^"]*">([^<]*)</a></td><td class="num">([\d,]+)</td>', body)
        cards[title] = [(html.unescape(value), int(n.replace(",", "")), html.unescape(link)) for link, value, n in rows]
    return cards


def test_top_values_panel_counts_the_current_filter_and_links_filter(explorer: tuple[str, Store]) -> None:
    url, store = explorer
    store.add(traffic())
    cards = panel(get(url, "/").text)
    assert list(cards) == ["Client IPs", "Users", "Paths", "User agents"]
    assert cards["Client IPs"][0][:2] == ("203.0.113.66", 40)
    assert len(cards["Client IPs"]) == 7  # the stuffer, five others and the reset's
    assert [(v, n) for v, n, _ in cards["Paths"]] == [("/login", 55), ("/password/reset", 5)]
    assert [(v, n) for v, n, _ in cards["User agents"]] == [("stuffer/1.0", 40), ("Mozilla/5.0", 20)]
    users = cards["Users"]
    assert len(users) == 10 and users[0][1] >= users[-1][1]  # the 10 most frequent of 13

    # Each value is a link that adds its filter to the current ones.
    by_name = panel(get(url, "/", name="sq.sdk.users.login").text)
    link = next(link for value, _, link in by_name["User agents"] if value == "stuffer/1.0")
    assert parse_qs(urlsplit(link).query) == {"name": ["sq.sdk.users.login"], "user_agent": ["stuffer/1.0"]}
    followed = get(url, urlsplit(link).path, **{k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}).text
    assert "40 matching" in followed and "user agent: <b>stuffer/1.0</b>" in followed
    assert '<input type="hidden" name="user_agent" value="stuffer/1.0">' in followed  # kept by the filter form
    assert panel(followed)["Client IPs"] == [("203.0.113.66", 40, panel(followed)["Client IPs"][0][2])]
    reset = panel(get(url, "/", path="/password/reset").text)
    assert [(v, n) for v, n, _ in reset["Client IPs"]] == [("198.51.100.7", 5)]

    api = get(url, "/api/top", ip="203.0.113.66").json()["top"]
    assert api["ip"] == [["203.0.113.66", 40]] and api["path"] == [["/login", 40]]
    assert get(url, "/api/events", user_agent="stuffer/1.0", limit="500").json()["events"][0]["client_address"] == (
        "203.0.113.66"
    )


def test_no_panel_without_matching_events(explorer: tuple[str, Store]) -> None:
    url, _ = explorer
    assert 'id="top-values"' not in get(url, "/").text


def test_top_values_count_over_the_newest_sample(tmp_path: Path) -> None:
    store = Store(tmp_path / "e.sqlite")
    try:
        store.add([event("x", T0 + i * S, ip="192.0.2.1") for i in range(30)])
        store.add([event("x", T0 + (100 + i) * S, ip="192.0.2.2") for i in range(10)])
        assert store.top_values(sample=15)["ip"] == [("192.0.2.2", 10), ("192.0.2.1", 5)]  # the newest 15
        assert store.top_values(Filters(ip="192.0.2.1"), limit=1) == {
            "ip": [("192.0.2.1", 30)], "user": [("alice@example.com", 30)], "path": [], "user_agent": [],
        }  # fmt: skip
    finally:
        store.close()
