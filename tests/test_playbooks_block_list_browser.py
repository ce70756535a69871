"""The block list page (``/actions``) in a real headless Chromium, with a playbook's decision in force: marked
with its playbook, linked to its alert, lifted with its button (gone from the page and the agents' feed)."""

from __future__ import annotations

import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from test_explorer_browser import (
    driver,  # noqa: F401 - the fixture
    feed,
    pytestmark,  # noqa: F401 - skipped without Chromium
    screenshots,
    wait,
)
from test_playbooks_browser import ATTACKER, csp_violations, explorer  # noqa: F401 - the fixture

from sqreen_otel.explorer.live import Live
from sqreen_otel.explorer.store import Store


def test_the_block_list_page_shows_and_lifts_a_decision(
    explorer: tuple[str, Store, Live],  # noqa: F811 - the fixture
    driver: WebDriver,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    url, store, live = explorer
    shots = screenshots(tmp_path)
    store.add_action("block_ip", ip="198.51.100.0/24", duration=3600)
    deadline = time.monotonic() + 15
    while not any(a.get("ip") == ATTACKER for a in feed(url)):
        assert time.monotonic() < deadline, live.status()
        time.sleep(0.1)
    decision = next(a for a in feed(url) if a.get("ip") == ATTACKER)

    driver.get(url + "/actions")
    manual = driver.find_element(By.CSS_SELECTOR, "table.actions tr.manual")
    assert "198.51.100.0/24" in manual.text and "manual" in manual.text
    row = driver.find_element(By.CSS_SELECTOR, f'table.actions tr.decision[data-id="{decision["id"]}"]')
    assert ATTACKER in row.text and "credential-stuffing" in row.text
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.actions tr.decision")) == 2  # the stored burst's too
    driver.save_screenshot(str(shots / "block-list.png"))

    # The playbook id links to the decision's alert.
    row.find_element(By.CSS_SELECTOR, "td.source a.playbook").click()
    wait(driver).until(ec.url_contains(f"/alerts/{decision['alert']}"))
    assert ATTACKER in driver.find_element(By.CSS_SELECTOR, "table.decisions tr.decision").text

    # Lift: back on the block list, the row gone, the agents' feed without it, the alert page says lifted.
    driver.get(url + "/actions")
    row = driver.find_element(By.CSS_SELECTOR, f'tr.decision[data-id="{decision["id"]}"]')
    row.find_element(By.CSS_SELECTOR, "form.lift button").click()
    wait(driver).until(ec.url_contains("/actions#lifted"))
    assert driver.find_element(By.ID, "lifted").is_displayed()
    assert not driver.find_elements(By.CSS_SELECTOR, f'tr.decision[data-id="{decision["id"]}"]')
    assert driver.find_elements(By.CSS_SELECTOR, "table.actions tr.manual")
    assert not any(a["id"] == decision["id"] for a in feed(url))
    driver.get(f"{url}/alerts/{decision['alert']}")
    assert "lifted" in driver.find_element(By.CSS_SELECTOR, "table.decisions tr.decision").text
    assert csp_violations(driver) == []
