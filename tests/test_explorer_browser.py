"""The Event Explorer in a real headless Chromium: list, filter, detail, block and unblock, as a user clicks.

The explorer runs for real (uvicorn on a loopback port, over a temporary SQLite file) and gets events two
ways: synthetic ones stored directly, and real OTLP from a separate process that calls
``sqreen_otel.configure(endpoint=<explorer>/v1/logs)``, ``track()`` and ``flush()``. The pages are served
with their Content-Security-Policy, so the filter form's script only works if the CSP allows it; the
browser console is checked for CSP violations and no alert may ever pop up.

Screenshots go to ``$SQREEN_OTEL_SCREENSHOTS`` (default: the test's temporary directory); the list page
is also written to ``docs/explorer.png`` for the README when that file does not exist yet (delete it to
refresh it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from sqreen_otel.explorer.app import create_app
from sqreen_otel.explorer.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _install_chromium() -> None:
    """The test run installs Debian's Chromium and its driver when missing (as root, as on CI machines)."""
    if (CHROMIUM.exists() and CHROMEDRIVER.exists()) or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], env=env, check=False,
                   capture_output=True, timeout=900)  # fmt: skip


_install_chromium()
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Chromium and ChromeDriver (apt: chromium chromium-driver); installing them needs root",
)
REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TRACE_ID = "5eed0000000000000000000000c0ffee"
SPAN_ID = "00000000000000a1"
HOSTILE_UA = "<script>alert(1)</script> stuffer/1.0"

# Real OTLP from another process, so that this one's global OpenTelemetry state stays untouched.
SENDER = textwrap.dedent(
    """
    import contextvars, io, sys
    import sqreen_otel
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    sqreen_otel.configure(endpoint=sys.argv[1], first_seen_delay=None, flush_interval=60)
    span = NonRecordingSpan(SpanContext(int(sys.argv[2], 16), int(sys.argv[3], 16), False, TraceFlags(1)))

    def request(ip):
        return {"REQUEST_METHOD": "POST", "PATH_INFO": "/login", "QUERY_STRING": "", "REMOTE_ADDR": ip,
                "HTTP_USER_AGENT": sys.argv[4], "SERVER_NAME": "shop", "SERVER_PORT": "443",
                "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(b"")}

    def attack():
        with trace.use_span(span):
            sqreen_otel.identify({"email": "mallory@example.com"})
            sqreen_otel.track("credential_stuffing", {"properties": {"attempts": 40, "window": "5m"},
                                                      "request": request("198.51.100.66")})
            sqreen_otel.track("credential_stuffing", {"properties": {"attempts": 12, "window": "1m"},
                                                      "request": request("198.51.100.67")})

    contextvars.copy_context().run(attack)
    sys.exit(0 if sqreen_otel.flush(10) else 1)
    """
)


# -- the explorer ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def synthetic_events(now_ns: int) -> list[dict[str, Any]]:
    """Three hours of plausible traffic with a burst of failed logins from one address."""
    rng = random.Random(7)
    users = ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Mozilla/5.0 (Macintosh) Safari/605.1", "okhttp/4.12"]
    events = []

    def add(name: str, at_ns: int, email: str | None, ip: str, path: str, props: dict[str, Any]) -> None:
        attributes: dict[str, Any] = {f"sqreen.properties.{k}": v for k, v in props.items()}
        if email:
            attributes["sqreen.user.email"] = email
        attributes.update({"client.address": ip, "url.path": path, "http.request.method": "POST",
                           "user_agent.original": rng.choice(agents)})  # fmt: skip
        events.append({
            "name": name, "time_unix_nano": at_ns, "observed_time_unix_nano": at_ns, "severity_number": 9,
            "severity_text": "INFO", "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}", "attributes": attributes, "body": None, "scope": "sqreen_otel",
            "resource": {"service.name": "shop", "deployment.environment": "production"},
        })  # fmt: skip

    for _ in range(140):
        at = now_ns - rng.randint(60, 3 * 3600) * 10**9
        email, ip = rng.choice(users), f"192.0.2.{rng.randint(2, 40)}"
        kind = rng.random()
        if kind < 0.6:
            add("sq.sdk.users.login", at, email, ip, "/login", {"success": rng.random() < 0.85})
        elif kind < 0.75:
            add("sq.sdk.users.signup", at, email, ip, "/signup", {"plan": rng.choice(["free", "pro"])})
        elif kind < 0.9:
            add("password_reset", at, email, ip, "/password/reset", {"email_domain": "example.com"})
        else:
            add("coupon_redeemed", at, email, ip, "/cart/coupon", {"code": rng.choice(["WELCOME10", "BF2026"])})
    burst = now_ns - 50 * 60 * 10**9
    for i in range(45):
        add("sq.sdk.users.login", burst + rng.randint(0, 300) * 10**9, f"user{i}@example.net", "203.0.113.66",
            "/login", {"success": False})  # fmt: skip
    return events


@pytest.fixture
def explorer(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store(tmp_path / "explorer.sqlite")
    store.add(synthetic_events(time.time_ns()))
    with running(store) as url:
        yield url, store


@contextlib.contextmanager
def running(store: Store) -> Iterator[str]:
    """The explorer over ``store`` on a loopback port, in this process; its URL. Closes the store at the end."""
    port = free_port()
    config = uvicorn.Config(create_app(store), host=HOST, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="explorer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the explorer did not start"
        time.sleep(0.02)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def send_otlp(url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))}
    env.update(OTEL_SERVICE_NAME="checkout", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    command = [sys.executable, "-c", SENDER, f"{url}/v1/logs", TRACE_ID, SPAN_ID, HOSTILE_UA]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_chromium(tmp_path: Path, *arguments: str) -> WebDriver:
    """A headless Chromium with its own profile under ``tmp_path``, browser console logs kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--no-proxy-server", "--window-size=1280,800",
                     f"--user-data-dir={tmp_path / 'chromium'}", *arguments):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    chrome = start_chromium(tmp_path)
    chrome.set_page_load_timeout(20)
    # A 1280x800 page, whatever room the headless window's own frame takes.
    chrome.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        yield chrome
    finally:
        chrome.quit()


# -- helpers ---------------------------------------------------------------------------------------


def screenshots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("SQREEN_OTEL_SCREENSHOTS") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, 10)


def rows(driver: WebDriver) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in driver.find_elements(By.CSS_SELECTOR, "table.events tbody tr")
    ]


def feed(url: str) -> list[dict[str, Any]]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.get(f"{url}/v1/actions")
    response.raise_for_status()
    actions: list[dict[str, Any]] = response.json()["actions"]
    return actions


def assert_no_alert(driver: WebDriver) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.dismiss()


# -- the walk through ------------------------------------------------------------------------------


def test_explorer_in_a_browser(explorer: tuple[str, Store], driver: WebDriver, tmp_path: Path) -> None:
    url, store = explorer
    shots = screenshots(tmp_path)
    sender = send_otlp(url)
    output, _ = sender.communicate(timeout=30)
    assert sender.returncode == 0, output
    assert store.count() == 187

    # The list: newest first (the two OTLP events), the histogram, the filter form.
    driver.get(url + "/")
    table = rows(driver)
    assert len(table) == 50
    assert [r[1] for r in table[:2]] == ["credential_stuffing", "credential_stuffing"]
    assert table[0][2] == "checkout"  # the service (OTEL_SERVICE_NAME of the sender)
    assert "mallory@example.com" in table[0][3] and table[0][4] == "198.51.100.67 block"  # a one-click block
    assert "attempts=12" in table[0][6]
    bars = driver.find_elements(By.CSS_SELECTOR, "svg#histogram rect.bar")
    assert 6 <= len(bars) <= 10  # three hours of traffic in the default window, the last 24 hours (60 buckets)
    assert "last 24 hours" in driver.find_element(By.CSS_SELECTOR, ".histhead").text
    assert "187 matching" in driver.find_element(By.TAG_NAME, "h1").text
    assert driver.find_elements(By.CSS_SELECTOR, "a.older")
    driver.save_screenshot(str(shots / "explorer.png"))
    docs = REPO / "docs" / "explorer.png"
    if not docs.exists():
        docs.parent.mkdir(exist_ok=True)
        shutil.copyfile(shots / "explorer.png", docs)

    # Filter by name: the script leaves empty fields out of the URL.
    name = driver.find_element(By.CSS_SELECTOR, "#filters input[name=name]")
    name.send_keys("credential_stuffing")
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(driver).until(ec.url_contains("name=credential_stuffing"))
    assert parse_qs(urlsplit(driver.current_url).query) == {"name": ["credential_stuffing"]}
    assert [r[1] for r in rows(driver)] == ["credential_stuffing", "credential_stuffing"]

    # A time range typed as UTC becomes nanoseconds in the URL; the filters combine.
    since = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=30)
    since_input = driver.find_element(By.CSS_SELECTOR, "#filters input[name=since]")
    driver.execute_script("arguments[0].value = arguments[1]", since_input, since.strftime("%Y-%m-%dT%H:%M:%S"))
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(driver).until(ec.url_contains("since="))
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query == {"name": ["credential_stuffing"], "since": [str(int(since.timestamp()) * 10**9)]}
    assert len(rows(driver)) == 2
    shown = driver.find_element(By.CSS_SELECTOR, "#filters input[name=since]").get_attribute("value")
    assert shown == since.strftime("%Y-%m-%dT%H:%M:%S")

    # Open the older of the two events: attributes, trace id, the hostile user agent as text.
    driver.find_elements(By.CSS_SELECTOR, "a.event-link")[1].click()
    wait(driver).until(ec.url_matches(r"/events/\d+$"))
    event_path = urlsplit(driver.current_url).path
    assert driver.find_element(By.CSS_SELECTOR, "code.trace-id").text == TRACE_ID
    assert driver.find_element(By.CSS_SELECTOR, "code.span-id").text == SPAN_ID
    body = driver.find_element(By.TAG_NAME, "body").text
    for expected in ("sqreen.properties.attempts", "40", "user_agent.original", HOSTILE_UA, "service.name",
                     "checkout", "198.51.100.66", "POST /login", "mallory@example.com"):  # fmt: skip
        assert expected in body, expected
    assert_no_alert(driver)
    assert not driver.find_element(By.ID, "blocked-user").is_displayed()
    driver.save_screenshot(str(shots / "explorer-event.png"))

    # Block the user for a day: back on the event page; the block list and the agents' feed have it.
    form = driver.find_element(By.CSS_SELECTOR, "form.block-user")
    Select(form.find_element(By.NAME, "duration")).select_by_visible_text("1 day")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(ec.staleness_of(form))
    assert urlsplit(driver.current_url).path == event_path
    assert driver.find_element(By.ID, "blocked-user").is_displayed()  # the confirmation
    assert not driver.find_element(By.ID, "blocked-ip").is_displayed()
    [action] = feed(url)
    assert action["action"] == "block_user" and action["user"] == {"email": "mallory@example.com"}
    expires = dt.datetime.fromisoformat(action["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - dt.datetime.now(dt.timezone.utc)).total_seconds() - 86400) < 60

    driver.get(url + "/actions")
    [entry] = driver.find_elements(By.CSS_SELECTOR, "table.actions tbody tr")
    assert "mallory@example.com" in entry.text and "(in 24 h)" in entry.text
    driver.save_screenshot(str(shots / "explorer-actions.png"))

    # Unblock it.
    entry.find_element(By.CSS_SELECTOR, "form.unblock button").click()
    wait(driver).until(ec.staleness_of(entry))
    assert urlsplit(driver.current_url).path == "/actions"
    assert "Nobody is blocked" in driver.find_element(By.TAG_NAME, "main").text
    assert feed(url) == []

    # The pages ran under their CSP without a single violation (the filter script above needed it).
    violations = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == [], json.dumps(violations, indent=1)
