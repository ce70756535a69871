"""The events histogram: its default window, UTC time ticks and count ticks, the log scale, and drag-to-select.

The axes' arithmetic is checked on its own; the window and the scale over real HTTP to a real explorer
(uvicorn on loopback, a temporary SQLite file); the drag in headless Chromium, with screenshots at
1280 and 800 pixels for the review.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from test_explorer_browser import CHROMEDRIVER, CHROMIUM, driver, running, screenshots, wait

from sqreen_otel.explorer import chart
from sqreen_otel.explorer.app import RECENT_NS
from sqreen_otel.explorer.store import Store

__all__ = ["driver"]  # the browser fixture, shared with the walk-through

HOST = "127.0.0.1"
S, MIN, H, D = 10**9, 60 * 10**9, 3600 * 10**9, 86400 * 10**9
T0 = 1_700_000_000 * S  # 2023-11-14 22:13:20 UTC
OLD = 1_521_124_920 * S  # 2018-03-15 14:42:00 UTC


# -- axes ------------------------------------------------------------------------------------------


def labels(start: int, end: int) -> list[str]:
    return [text for _, text in chart.time_ticks(start, end)]


def test_time_ticks_fall_on_round_utc_times_with_the_precision_the_range_needs() -> None:
    assert labels(T0, T0 + 3 * H) == ["2023-11-14 22:30", "23:00", "23:30", "2023-11-15 00:00", "00:30", "01:00"]
    assert labels(T0, T0 + 5 * S) == ["2023-11-14 22:13:20", "22:13:21", "22:13:22", "22:13:23", "22:13:24",
                                      "22:13:25"]  # fmt: skip
    # A sub-second range: milliseconds, so no two labels (and not both ends) read the same.
    sub = labels(T0 + 123_000_000, T0 + 523_000_000)
    assert sub == ["2023-11-14 22:13:20.200", "22:13:20.300", "22:13:20.400", "22:13:20.500"]
    micro = labels(T0 + 1000, T0 + 4000)
    assert len(micro) == len(set(micro)) >= 3 and micro[0] == "2023-11-14 22:13:20.000001"
    assert labels(T0, T0 + 9 * D) == ["2023-11-15", "2023-11-17", "2023-11-19", "2023-11-21", "2023-11-23"]
    assert labels(T0, T0 + 200 * D)[:3] == ["2023-12", "2024-01", "2024-02"]
    assert labels(OLD, T0) == ["2019", "2020", "2021", "2022", "2023"]
    assert labels(0, 2**63 - 1)[:2] == ["2000", "2050"]  # the widest range the store can hold
    for start, end in ((T0, T0 + 7 * H), (OLD, T0), (T0, T0 + 17 * MIN)):
        ticks = chart.time_ticks(start, end)
        assert 2 <= len(ticks) <= 8 and all(start <= ns <= end for ns, _ in ticks)


def test_count_ticks_and_log_scale() -> None:
    assert chart.count_ticks(0) == [0]
    assert chart.count_ticks(1) == [0, 1]
    assert chart.count_ticks(45) == [0, 20, 40]
    assert chart.count_ticks(1234) == [0, 500, 1000]
    assert chart.count_ticks(1234, log=True) == [0, 1, 10, 100, 1000]
    assert chart.scaled(5, 10) == 0.5 and chart.scaled(0, 10) == 0.0
    assert chart.scaled(9, 99, log=True) == pytest.approx(0.5)  # log10(10) / log10(100)


# -- a real explorer -------------------------------------------------------------------------------


def event(name: str, at_ns: int, ip: str = "203.0.113.7") -> dict[str, Any]:
    return {
        "name": name, "time_unix_nano": at_ns, "observed_time_unix_nano": at_ns, "severity_number": 9,
        "severity_text": "INFO", "trace_id": "", "span_id": "", "body": None, "scope": "sqreen_otel",
        "attributes": {"client.address": ip, "sqreen.user.email": "alice@example.com"},
        "resource": {"service.name": "shop"},
    }  # fmt: skip


@pytest.fixture
def explorer(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store(tmp_path / "explorer.sqlite")
    with running(store) as url:
        yield url, store


def page(url: str, **params: str) -> str:
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.get(url + "/", params=params)
    assert response.status_code == 200, response.text
    return response.text


def ticks(text: str) -> list[str]:
    """The time axis' labels, as ``chart.time_ticks`` wrote them (the date is drawn on a second row)."""
    found = re.findall(
        r'<text class="tick time"[^>]*>([^<]*)(?:<tspan class="date"[^>]*>([^<]*)</tspan>)?</text>', text
    )
    return [f"{date} {clock}" if date else clock for clock, date in found]


def test_histogram_defaults_to_the_last_24_hours_when_they_hold_events(explorer: tuple[str, Store]) -> None:
    url, store = explorer
    now = time.time_ns()
    store.add([event("old.import", OLD + i * MIN) for i in range(100)])
    # Only old events: the histogram spans them (2018), whatever the time now.
    only_old = page(url)
    assert "last 24 hours" not in only_old and ticks(only_old)[0].startswith("2018-03-15")
    store.add([event("login", now - (3 + i) * MIN) for i in range(5)])
    recent = page(url)
    assert "105 matching" in recent  # the count is of every matching event, not of the window
    assert "last 24 hours" in recent and "show all time" in recent
    start = int(re.search(r'data-start="(\d+)"', recent)[1])  # type: ignore[index]
    end = int(re.search(r'data-end="(\d+)"', recent)[1])  # type: ignore[index]
    assert end - start >= RECENT_NS and now - RECENT_NS - 60 * S <= start <= now - RECENT_NS + 60 * S
    assert recent.count('class="bar"') >= 1 and not ticks(recent)[0].startswith("2018")
    # window=all: the data's own span again, with a way back.
    everything = page(url, window="all")
    assert "all time" in everything and "show the last 24 hours" in everything
    assert ticks(everything)[0] in ("2019", "2020") or ticks(everything)[0].startswith("2018")
    # A filter on name narrows the default too: old.import has nothing in the last 24 hours.
    assert "last 24 hours" not in page(url, name="old.import")
    # An explicit range is the range.
    ranged = page(url, since=str(OLD), until=str(OLD + 100 * MIN))
    assert "last 24 hours" not in ranged and "100 matching" in ranged


def test_log_scale_toggle(explorer: tuple[str, Store]) -> None:
    url, store = explorer
    store.add([event("burst", T0 + i * 1000) for i in range(1000)] + [event("burst", T0 + 3 * H)])  # one bucket
    linear = page(url)
    assert "log scale</a>" in linear
    counts = re.findall(r'<text class="tick count"[^>]*>([^<]*)</text>', linear)
    assert counts == ["0", "500", "1,000"]
    log = page(url, scale="log")
    assert re.findall(r'<text class="tick count"[^>]*>([^<]*)</text>', log) == ["0", "1", "10", "100", "1,000"]
    assert "linear scale</a>" in log
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', log)]
    assert min(heights) == pytest.approx(max(heights) * 0.1, abs=0.1)  # log10(1 + 1) / log10(1 + 1000)
    linear_heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', linear)]
    assert min(linear_heights) == 1.5  # a sliver: the smallest bar drawn
    zoom = re.search(r'<a href="(/\?[^"]*since=[^"]*)"><rect class="bar"', log)
    assert zoom and "scale=log" in zoom[1]  # zooming keeps the scale


# -- in a browser ----------------------------------------------------------------------------------


pytestmark_browser = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="needs Chromium and ChromeDriver"
)


@pytestmark_browser
@pytest.mark.parametrize("width", [1280, 800])
def test_drag_across_the_histogram_sets_from_and_until(
    explorer: tuple[str, Store], driver: Any, tmp_path: Path, width: int
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, store = explorer
    store.add([event("login", T0 + i * MIN, ip=f"192.0.2.{i % 9 + 1}") for i in range(120)])  # two hours
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    )
    driver.get(url + "/?name=login")
    svg = driver.find_element(By.ID, "histogram")
    box = svg.rect
    start = int(svg.get_attribute("data-start"))
    end = int(svg.get_attribute("data-end"))
    left, right = float(svg.get_attribute("data-left")), float(svg.get_attribute("data-right"))
    scale = box["width"] / 1000  # the viewBox is 1000 wide

    def x_at(fraction: float) -> int:  # from the centre of the element, as ActionChains offsets are
        return round((left + fraction * (right - left)) * scale - box["width"] / 2)

    actions = ActionChains(driver)
    actions.move_to_element_with_offset(svg, x_at(0.25), 0).click_and_hold()
    actions.move_to_element_with_offset(svg, x_at(0.5), 0).move_to_element_with_offset(svg, x_at(0.75), 0)
    actions.perform()
    selection = driver.find_element(By.ID, "selection")
    assert float(selection.get_attribute("width")) > 100  # the range is drawn while dragging
    driver.save_screenshot(str(screenshots(tmp_path) / f"histogram-drag-{width}.png"))
    ActionChains(driver).release().perform()
    wait(driver).until(lambda d: "since=" in d.current_url)
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query["name"] == ["login"]
    since, until = int(query["since"][0]), int(query["until"][0])
    span = end - start
    assert abs(since - (start + span // 4)) < span // 50 and abs(until - (start + 3 * span // 4)) < span // 50
    # The filter form shows the range (UTC, to the second); the chart now covers it.
    shown_since = driver.find_element(By.CSS_SELECTOR, "#filters input[name=since]").get_attribute("value")
    assert dt.datetime.fromisoformat(shown_since) == chart.utc(since).replace(microsecond=0, tzinfo=None)
    svg = driver.find_element(By.ID, "histogram")
    assert int(svg.get_attribute("data-start")) == since
    matching = int(re.search(r"([\d,]+) matching", driver.find_element(By.TAG_NAME, "h1").text)[1])  # type: ignore[index]
    assert 50 <= matching <= 70  # about half of the two hours
    # A plain click on a bar still zooms into that bar.
    bars = driver.find_elements(By.CSS_SELECTOR, "svg#histogram rect.bar")
    bars[len(bars) // 2].click()
    wait(driver).until(lambda d: parse_qs(urlsplit(d.current_url).query).get("since") != [str(since)])
    zoomed = parse_qs(urlsplit(driver.current_url).query)
    assert since < int(zoomed["since"][0]) < int(zoomed["until"][0]) <= until
    driver.save_screenshot(str(screenshots(tmp_path) / f"histogram-zoomed-{width}.png"))
    logs = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and entry["source"] != "network"]
    assert not logs, logs  # no CSP violation, no script error


def test_summary_sparklines_share_the_last_24_hours(explorer: tuple[str, Store]) -> None:
    url, store = explorer
    now = time.time_ns()
    store.add([event("login", now - (1 + i % 3) * H) for i in range(30)] + [event("reset", now - 20 * H)])
    store.add([event("old.import", OLD)])  # outside the window: an empty sparkline, not a rescaled one
    with httpx.Client(trust_env=False, timeout=10) as client:
        text = client.get(url + "/summary").text
    assert "<th>Last 24 hours</th>" in text
    lines = dict(re.findall(r'<a href="/\?name=([^"]+)">[^<]*</a></td><td class="num">[\d,]+</td><td>(.*?)</td>', text))
    assert set(lines) == {"login", "reset", "old.import"}
    assert "30 in the last 24 hours; at most " in lines["login"] and lines["login"].count('class="spark"') == 3
    assert "1 in the last 24 hours" in lines["reset"] and lines["reset"].count('class="spark"') == 1
    assert "0 in the last 24 hours" in lines["old.import"] and 'class="spark"' not in lines["old.import"]
    # The bars of login (three hours) sit at the right end, reset's (20 hours ago) near the left.
    login_x = [float(x) for x in re.findall(r'class="spark" x="([\d.]+)"', lines["login"])]
    reset_x = [float(x) for x in re.findall(r'class="spark" x="([\d.]+)"', lines["reset"])]
    assert min(login_x) >= 80 and reset_x[0] < 20  # 24 bars, 4 units apart
