"""The playbook pages in a real headless Chromium: Playbooks, an alert with its events and decision, lifting
it, and the backtest form, served with the explorer's CSP (the console is checked for violations).

The explorer runs for real (uvicorn on a loopback port, over a temporary SQLite file) with live evaluation
of a small playbook file; an attack is stored after start-up, so the live thread is what detects it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from test_explorer_browser import (
    HOST,
    driver,  # noqa: F401 - the fixture (ruff sees the parameter below as a redefinition)
    feed,
    free_port,
    pytestmark,  # noqa: F401 - skipped without Chromium
    screenshots,
    synthetic_events,
    wait,
)

from sqreen_otel.explorer.app import create_app
from sqreen_otel.explorer.live import Live
from sqreen_otel.explorer.store import Store

PLAYBOOKS = """\
version: 1
playbooks:
  - id: credential-stuffing
    description: Many failed logins for many accounts from one IP
    when: {event: sq.sdk.users.login, where: "properties.success == false"}
    group_by: [client.address]
    threshold: {count: 20, within: 10m, distinct: {field: user.email, min: 10}}
    then:
      - block_ip: {duration: 1h}
  - id: watch-signups
    mode: simulate
    when: {event: sq.sdk.users.signup}
    group_by: [client.address]
    threshold: {count: 50, within: 1h}
    then:
      - block_ip: {duration: 1h}
"""
ATTACKER = "203.0.113.77"


def attack(now_ns: int) -> list[dict[str, Any]]:
    return [
        {"name": "sq.sdk.users.login", "time_unix_nano": now_ns + i * 10**6, "observed_time_unix_nano": now_ns,
         "attributes": {"sqreen.user.email": f"victim{i}@example.org", "client.address": ATTACKER,
                        "sqreen.properties.success": False}, "resource": {"service.name": "shop"}}
        for i in range(25)
    ]  # fmt: skip


@pytest.fixture
def explorer(tmp_path: Path) -> Iterator[tuple[str, Store, Live]]:
    store = Store(tmp_path / "explorer.sqlite")
    store.add(synthetic_events(time.time_ns()))
    path = tmp_path / "playbooks.yaml"
    path.write_text(PLAYBOOKS)
    live = Live(store, path, poll_interval=0.05).start()
    assert live.wait_ready()
    store.add(attack(time.time_ns()))
    port = free_port()
    config = uvicorn.Config(create_app(store, live=live), host=HOST, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="explorer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the explorer did not start"
        time.sleep(0.02)
    try:
        yield f"http://{HOST}:{port}", store, live
    finally:
        server.should_exit = True
        thread.join(10)
        live.close()
        store.close()


def csp_violations(chrome: WebDriver) -> list[str]:
    return [e["message"] for e in chrome.get_log("browser") if "Content Security Policy" in e["message"]]


def test_playbook_pages_in_a_browser(
    explorer: tuple[str, Store, Live],
    driver: WebDriver,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    url, _, live = explorer
    shots = screenshots(tmp_path)
    deadline = time.monotonic() + 15
    while not any(a.get("ip") == ATTACKER for a in feed(url)):
        assert time.monotonic() < deadline, live.status()
        time.sleep(0.1)

    # Playbooks: mode, alerts over a day and a week, decisions in force, a sparkline. Two incidents: the
    # stored burst of 50 minutes ago (replayed from the longest window at start, as after a restart) and ours.
    driver.get(url + "/playbooks")
    row = driver.find_element(By.CSS_SELECTOR, 'tr.playbook[data-id="credential-stuffing"]')
    assert row.find_element(By.CSS_SELECTOR, "td.mode").text == "enforce"
    assert row.find_element(By.CSS_SELECTOR, "td.day").text == "2"
    assert row.find_element(By.CSS_SELECTOR, "td.week").text == "2"
    assert row.find_element(By.CSS_SELECTOR, "td.active").text == "2"
    assert len(row.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")) == 1
    simulated = driver.find_element(By.CSS_SELECTOR, 'tr.playbook[data-id="watch-signups"]')
    assert simulated.find_element(By.CSS_SELECTOR, "td.mode").text == "simulate"
    driver.save_screenshot(str(shots / "playbooks.png"))

    # Its alerts, then the incident: group, events, the decision and its expiry.
    row.find_element(By.LINK_TEXT, "credential-stuffing").click()
    wait(driver).until(ec.url_contains("/alerts?playbook=credential-stuffing"))
    alerts = driver.find_elements(By.CSS_SELECTOR, "table.alerts tr.alert")
    assert len(alerts) == 2 and ATTACKER in alerts[0].text and "open" in alerts[0].text  # newest first
    assert "203.0.113.66" in alerts[1].text
    alerts[0].find_element(By.LINK_TEXT, "credential-stuffing").click()
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.decisions")))
    decision = driver.find_element(By.CSS_SELECTOR, "table.decisions tr.decision")
    assert "block_ip" in decision.text and ATTACKER in decision.text and "in force, expires" in decision.text
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.contributing tbody tr")) >= 20
    alert_url = driver.current_url
    driver.save_screenshot(str(shots / "alert.png"))

    # The contributing events in the explorer's own filters.
    driver.find_element(By.CSS_SELECTOR, "a.events-link").click()
    wait(driver).until(ec.url_contains("ip="))
    listed = driver.find_elements(By.CSS_SELECTOR, "table.events tbody tr")
    assert len(listed) >= 20 and all(ATTACKER in r.text for r in listed)

    # Lift it: gone from the agents' feed, shown as lifted.
    driver.get(alert_url)
    driver.find_element(By.CSS_SELECTOR, "form.lift-all button").click()
    wait(driver).until(ec.url_contains("#lifted"))
    assert driver.find_element(By.ID, "lifted").is_displayed()
    assert "lifted" in driver.find_element(By.CSS_SELECTOR, "table.decisions tr.decision").text
    assert not any(a.get("ip") == ATTACKER for a in feed(url))

    # Backtest the file in force over the stored day: the stored burst and the new attack, per day.
    driver.get(url + "/playbooks/backtest")
    since = driver.find_element(By.NAME, "since")
    since.clear()
    since.send_keys("1d")
    driver.find_element(By.CSS_SELECTOR, "form.backtest button").click()
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.backtest")))
    result = driver.find_element(By.CSS_SELECTOR, 'tr.backtest-playbook[data-id="credential-stuffing"]')
    assert int(result.find_element(By.CSS_SELECTOR, "td.alerts").text) == 2  # 203.0.113.66 earlier, and ours
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    driver.save_screenshot(str(shots / "backtest.png"))

    # A draft with a mistake: its line and field, nothing run.
    driver.find_element(By.NAME, "playbooks").send_keys(PLAYBOOKS.replace("count: 20,", "count: many,"))
    driver.find_element(By.CSS_SELECTOR, "form.backtest button").click()
    problem = wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.problem")))
    assert "<form>:7" in problem.text and "threshold.count" in problem.text
    assert csp_violations(driver) == []
