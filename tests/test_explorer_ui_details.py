"""Details of the explorer's pages a person stumbles on: masked values are not filters, a block event shows its
action and offers no block of what is already blocked, list rows have one-click blocks, placeholders read as
examples, and the list fits 800 pixels (in Chromium, with screenshots for the review).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_explorer_browser import CHROMEDRIVER, CHROMIUM, driver, screenshots, wait
from test_explorer_histogram import event, explorer

from sqreen_otel.explorer import ui
from sqreen_otel.explorer.store import Event, Filters, Store

__all__ = ["driver", "explorer"]

T0 = 1_700_000_000 * 10**9


def stored(event_id: int, name: str, attributes: dict[str, Any], user: dict[str, Any] | None = None) -> Event:
    return Event(event_id, T0, T0, name, user or {}, attributes.get("client.address"), "/login", "POST", None, None,
                 attributes, {}, "sqreen_otel")  # fmt: skip


def test_masked_and_cut_values_are_not_offered_as_filters() -> None:
    props = {"password": "[REDACTED]", "note": "ab...[truncated]", "token": "Bearer [REDACTED]", "plan": "pro"}
    row = stored(1, "login", {f"sqreen.properties.{k}": v for k, v in props.items()})
    text = ui.events_page([row], Filters(), (T0, 10**9, [1]), {}, "csrf")
    links = re.findall(r'href="(/\?[^"]*prop=[^"]*)"', text)
    assert [link for link in links if "plan" in link] and not [link for link in links if "plan" not in link]
    assert "password=</span>[REDACTED]" in text  # still shown, just not a link


def test_a_block_event_shows_its_action_and_offers_no_block_of_what_is_blocked() -> None:
    eve = {"email": "eve@example.com"}
    attributes = {"client.address": "203.0.113.7", "sqreen.action.id": "a-77", "sqreen.user.email": eve["email"]}
    ip_refusal = stored(2, "sq.action.block_ip", attributes, eve)
    page = ui.event_page(ip_refusal, "csrf")
    assert '<code class="action-id">a-77</code>' in page and "This client IP was refused by action" in page
    assert 'class="inline block-ip"' not in page and 'class="inline block-user"' in page  # eve may still be blocked
    user_refusal = stored(3, "sq.action.block_user", {"client.address": "203.0.113.8", "sqreen.action.id": "a-78"},
                          {"email": "eve@example.com"})  # fmt: skip
    page = ui.event_page(user_refusal, "csrf")
    assert "This user was refused by action <code>a-78</code>" in page
    assert 'class="inline block-user"' not in page and 'class="inline block-ip"' in page
    listed = ui.events_page([ip_refusal, user_refusal], Filters(), (T0, 10**9, [2]), {}, "csrf")
    rows = listed.split("<tbody>")[1].split("</tr>")
    assert '<input type="hidden" name="action" value="block_ip">' not in rows[0]  # already a block of that IP
    assert '<input type="hidden" name="action" value="block_user">' in rows[0]
    assert '<input type="hidden" name="action" value="block_user">' not in rows[1]
    plain = ui.event_page(stored(4, "login", {"client.address": "198.51.100.1"}), "csrf")
    assert "refused by action" not in plain and 'class="action-id"' not in plain


def test_placeholders_read_as_examples() -> None:
    text = ui.events_page([], Filters(), (T0, 1, [0]), {}, "csrf")
    placeholders = re.findall(r'placeholder="([^"]*)"', text)
    assert placeholders == ["any name", "any service", "e.g. alice@example.com", "e.g. 203.0.113.7", "e.g. plan=pro"]
    assert "::placeholder{color:#a3abb8;font-style:italic" in text  # lighter and italic: not a value


@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="needs Chromium and ChromeDriver")
def test_the_list_fits_800_pixels_and_rows_block_in_one_click(
    explorer: tuple[str, Store], driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    url, store = explorer
    now = time.time_ns()
    long_props = {f"sqreen.properties.{k}": "x" * 30 for k in ("referrer", "campaign", "device")}
    store.add([{**event("sq.sdk.users.login", now - i * 60 * 10**9, ip=f"192.0.2.{i + 1}"),
                "attributes": {**event("x", 0, ip=f"192.0.2.{i + 1}")["attributes"], **long_props,
                               "url.path": "/account/settings/security/two-factor",
                               "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}}
               for i in range(12)])  # fmt: skip
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 800, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    )
    driver.get(url + "/?name=sq.sdk.users.login")
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the window"
    for cell in driver.find_elements(By.CSS_SELECTOR, "table.events td:last-child"):  # properties: not cut off
        assert cell.rect["x"] + cell.rect["width"] <= 800
    name = driver.find_element(By.CSS_SELECTOR, "#filters input[name=name]")
    assert driver.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", name)  # not cut
    driver.save_screenshot(str(screenshots(tmp_path) / "list-800.png"))

    # One click on a row's IP "block": an hour's block of that address, and back to the same list.
    first_ip = driver.find_element(By.CSS_SELECTOR, "table.events tbody tr td:nth-child(5) a").text
    driver.find_element(By.CSS_SELECTOR, "table.events tbody tr td:nth-child(5) form.rowblock button").click()
    wait(driver).until(lambda d: d.current_url.endswith("/?name=sq.sdk.users.login"))
    with httpx.Client(trust_env=False, timeout=10) as client:
        actions = client.get(url + "/v1/actions").json()["actions"]
    (block,) = [a for a in actions if a.get("ip") == first_ip]
    assert block["action"] == "block_ip" and block["expires_at"] is not None
    driver.execute_script("document.querySelector('table.events').scrollIntoView()")
    driver.save_screenshot(str(screenshots(tmp_path) / "list-800-rows.png"))


def test_the_whole_record_and_its_service_over_otlp_json(explorer: tuple[str, Store]) -> None:
    from test_import_export import PROTO_EXAMPLE  # the opentelemetry-proto example, with an event record

    url, store = explorer
    with httpx.Client(trust_env=False, timeout=10) as client:
        sent = client.post(url + "/v1/logs", content=PROTO_EXAMPLE, headers={"Content-Type": "application/json"})
        assert sent.status_code == 200, sent.text
        plain = next(e for e in store.events() if e.attributes.get("string.attribute") == "some string")
        api = client.get(f"{url}/api/events/{plain.id}").json()
        page = client.get(f"{url}/events/{plain.id}").text
        listed = client.get(url + "/", params={"service": "my.service"}).text
        other = client.get(url + "/", params={"service": "another"}).text
    assert api["record"] == {
        "observed_time_unix_nano": 1544712660300000000, "severity_number": 10, "severity_text": "Information",
        "body": "Example log record", "scope_version": "1.0.0",
        "scope_attributes": {"my.scope.attribute": "some scope attribute"},
    }  # fmt: skip
    assert "<code>Information (10)</code>" in page and "<code>Example log record</code>" in page
    assert "Observed (UTC)" in page and "version</span> <code>1.0.0</code>" in page
    assert "my.scope.attribute" in page
    assert "2 matching" in listed and '<td class="service"><a href="/?service=my.service">my.service</a>' in listed
    assert "service: <b>my.service</b>" in listed and "0 matching" in other
