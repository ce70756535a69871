"""The explorer against hostile web pages and hostile bodies (issue 8, holes 1-6 and 12).

The attacks run for real: a headless Chromium on a page served by a second local HTTP server (another
origin: another port of 127.0.0.1), a DNS-rebound name (Chromium's ``--host-resolver-rules`` maps
``evil.test`` to 127.0.0.1, as a rebinding DNS server would), and raw sockets and HTTP requests against
a real ``sqreen-otel serve``. Each test checks the explorer's state afterwards (block list, stored
events), not only the status codes, and shows first that the same request from the right place works.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from explorer_process import HOST, Served, http, serve_process
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from selenium.webdriver.remote.webdriver import WebDriver
from test_explorer_browser import CHROMEDRIVER, CHROMIUM, start_chromium

from sqreen_otel.explorer.otlp import CUT_MARKER, DROPPED_ATTRIBUTE, MAX_EVENT_BYTES, MAX_VALUE_BYTES

PROTOBUF = "application/x-protobuf"
API = {"X-Sqreen-Otel": "1"}
BLOCK_ALL = '{"action":"block_ip","ip":"0.0.0.0/0"}'
browser = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="needs Chromium")


def logs_body(name: str, n: int = 1, **attributes: str) -> bytes:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add()
    for i in range(n):
        record = LogRecord(event_name=name, time_unix_nano=1_700_000_000_000_000_000 + i)
        record.attributes.extend(KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items())
        records.log_records.append(record)
    return request.SerializeToString()


def actions(url: str, **headers: str) -> list[dict[str, Any]]:
    response = http.get(url + "/api/actions", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["actions"]
    return result


def count(url: str, name: str, **headers: str) -> int:
    names = http.get(url + "/api/summary", headers=headers, timeout=10).json()["names"]
    return next((int(n["count"]) for n in names if n["name"] == name), 0)


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_process(tmp_path_factory.mktemp("security")) as served:
        yield served


@pytest.fixture(scope="module")
def token_explorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_process(tmp_path_factory.mktemp("security-token"), "--token", "s3cret") as served:
        yield served


@pytest.fixture(autouse=True)
def no_actions_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts and ends with an empty block list (so that a leftover block cannot hide a result)."""
    yield
    for name, headers in (("explorer", API), ("token_explorer", {"Authorization": "Bearer s3cret"})):
        if name in request.fixturenames:
            served: Served = request.getfixturevalue(name)
            for action in actions(served.url, **headers):
                http.delete(f"{served.url}/api/actions/{action['id']}", headers=headers, timeout=10)


# -- an attacker's web page on another origin ------------------------------------------------------


class AttackSite:
    """A second local web server (another origin) serving the attack pages given to ``page``."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0], "not found").encode()
                self.send_response(200 if self.path.split("?")[0] in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site() -> Iterator[AttackSite]:
    attack = AttackSite()
    try:
        yield attack
    finally:
        attack.close()


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path, "--host-resolver-rules=MAP evil.test 127.0.0.1")  # the "rebinding" DNS
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


FETCHES = """
<!doctype html><title>cute cats</title><script>
const target = %(target)s, body = %(body)s;
const forged = Uint8Array.from(atob(%(protobuf)s), c => c.charCodeAt(0));
Promise.allSettled([
  // Hole 1: a "simple" request (no preflight): text/plain, no-cors, the cookie sent along.
  fetch(target + "/api/actions", {mode: "no-cors", method: "POST", credentials: "include",
                                  headers: {"Content-Type": "text/plain"}, body: body}),
  // Hole 2: a Blob body; in no-cors mode its type is not sent: the request has no Content-Type.
  fetch(target + "/v1/logs", {mode: "no-cors", method: "POST", credentials: "include",
                              body: new Blob([forged], {type: "application/x-protobuf"})}),
  // The right headers need a CORS preflight, which the explorer never grants.
  fetch(target + "/api/actions", {method: "POST", credentials: "include",
                                  headers: {"Content-Type": "application/json", "X-Sqreen-Otel": "1"}, body: body}),
  // A beacon with a JSON Blob.
  Promise.resolve(navigator.sendBeacon(target + "/api/actions", new Blob([body], {type: "text/plain"}))),
]).then(results => { document.title = "done " + results.map(r => r.status).join(","); });
</script>
"""

FORM = """
<!doctype html><title>win a prize</title>
<form id="f" method="post" enctype="text/plain" action="%(target)s/api/actions">
<input type="hidden" name='{"action":"block_ip","ip":"0.0.0.0/0","x":"' value='"}'></form>
<script>document.getElementById("f").submit();</script>
"""


def wait_title(driver: WebDriver, prefix: str) -> str:
    deadline = time.monotonic() + 15
    while not driver.title.startswith(prefix):
        assert time.monotonic() < deadline, f"the attack page did not finish (title {driver.title!r})"
        time.sleep(0.05)
    return str(driver.title)


def same_origin_post(driver: WebDriver, url: str, path: str, body: str, headers: dict[str, str]) -> int:
    """POST from a page of the explorer itself (the control: a browser can post when it is allowed to)."""
    driver.get(url + "/api/summary")  # a page of the explorer's origin without the UI's CSP (which forbids fetch)
    status: int = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', headers: arguments[2], body: arguments[1]})"
        ".then(r => done(r.status), e => done(String(e)));",
        path,
        body,
        headers,
    )
    return status


def forged_protobuf() -> str:
    return base64.b64encode(logs_body("forged.login", 1, **{"sqreen.user.email": "victim@example.com"})).decode()


def fetch_page(target: str) -> str:
    return FETCHES % {
        "target": json.dumps(target),
        "body": json.dumps(BLOCK_ALL),
        "protobuf": json.dumps(forged_protobuf()),
    }


@browser
def test_a_page_on_another_origin_cannot_block_or_forge_events(
    explorer: Served, site: AttackSite, chrome: WebDriver
) -> None:
    url = explorer.url
    chrome.get(site.page("/cats", fetch_page(url)))
    assert wait_title(chrome, "done").startswith("done fulfilled")  # every request went out
    chrome.get(site.page("/prize", FORM % {"target": url}))
    deadline = time.monotonic() + 10
    while not chrome.current_url.startswith(url):  # the form navigated to the explorer, which answered
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert actions(url, **API) == []
    assert count(url, "forged.login") == 0
    # Control: the same block from the explorer's own page, with the JSON type and the header, goes through.
    assert same_origin_post(chrome, url, "/api/actions", BLOCK_ALL, {"Content-Type": "application/json", **API}) == 201
    assert [a["ip"] for a in actions(url, **API)] == ["0.0.0.0/0"]


@browser
def test_dns_rebinding_cannot_read_events_nor_post(explorer: Served, chrome: WebDriver) -> None:
    url = explorer.url
    port = url.rsplit(":", 1)[1]
    assert http.post(url + "/v1/logs", data=logs_body("secret.login"), headers={"Content-Type": PROTOBUF}).ok
    # The attacker's page at http://evil.test:PORT once evil.test resolves to 127.0.0.1: same origin as itself.
    chrome.get(f"http://evil.test:{port}/")
    results = chrome.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        (async () => {
          const events = await fetch("/api/events");
          const page = await fetch("/actions");
          const csrf = ((await page.text()).match(/name="csrf" value="([^"]+)"/) || [])[1] || "";
          const form = new URLSearchParams({csrf: csrf, action: "block_ip", ip: "0.0.0.0/0", duration: "forever"});
          const post = await fetch("/actions", {method: "POST", body: form});
          const api = await fetch("/api/actions", {method: "POST", body: arguments[0],
                                  headers: {"Content-Type": "application/json", "X-Sqreen-Otel": "1"}});
          return [events.status, (await events.text()).includes("secret.login"), page.status, post.status, api.status];
        })().then(done, e => done(String(e)));
        """,
        BLOCK_ALL,
    )
    assert results == [421, False, 421, 421, 421]
    assert actions(url, **API) == []
    # localhost (with the port) is fine.
    assert http.get(f"http://localhost:{port}/api/summary", timeout=10).status_code == 200


@browser
def test_in_token_mode_a_page_on_another_port_cannot_use_the_cookie(
    token_explorer: Served, site: AttackSite, chrome: WebDriver
) -> None:
    url = token_explorer.url
    bearer = {"Authorization": "Bearer s3cret"}
    chrome.get(url + "/?token=s3cret")  # the user opens the shared link: the cookie is set
    assert chrome.current_url == url + "/"
    [cookie] = chrome.get_cookies()
    assert cookie["httpOnly"] and cookie["value"] != "s3cret"  # a MAC of the token, not the token
    chrome.get(site.page("/cats-token", fetch_page(url)))
    wait_title(chrome, "done")
    chrome.get(site.page("/prize-token", FORM % {"target": url}))
    deadline = time.monotonic() + 10
    while not chrome.current_url.startswith(url):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert actions(url, **bearer) == []
    assert count(url, "forged.login", **bearer) == 0
    # Control: the logged-in user's own page can block.
    assert same_origin_post(chrome, url, "/api/actions", BLOCK_ALL, {"Content-Type": "application/json", **API}) == 201
    assert len(actions(url, **bearer)) == 1


# -- the same rules over plain HTTP ----------------------------------------------------------------


def test_writes_need_the_right_content_type_and_header(explorer: Served) -> None:
    url = explorer.url
    body = logs_body("typed.event")
    assert http.post(url + "/v1/logs", data=body, timeout=10).status_code == 415  # no Content-Type
    assert http.post(url + "/v1/logs", data=body, headers={"Content-Type": "text/plain"}).status_code == 415
    assert http.post(url + "/v1/logs", data=body, headers={"Content-Type": PROTOBUF}).status_code == 200
    assert count(url, "typed.event") == 1
    plain = {"Content-Type": "text/plain", **API}
    assert http.post(url + "/api/actions", data=BLOCK_ALL, headers=plain, timeout=10).status_code == 415
    no_header = http.post(url + "/api/actions", data=BLOCK_ALL, headers={"Content-Type": "application/json"})
    assert no_header.status_code == 403 and "X-Sqreen-Otel" in no_header.text
    form = {"Content-Type": "application/x-www-form-urlencoded", **API}
    assert http.post(url + "/api/actions", data="action=block_ip&ip=0.0.0.0/0", headers=form).status_code == 415
    assert actions(url, **API) == []
    created = http.post(url + "/api/actions", json={"action": "block_ip", "ip": "192.0.2.1"}, headers=API, timeout=10)
    assert created.status_code == 201
    assert http.delete(f"{url}/api/actions/{created.json()['id']}", timeout=10).status_code == 403  # no header


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of the same host
    ],
)
def test_browser_requests_from_elsewhere_are_refused(explorer: Served, headers: dict[str, str]) -> None:
    url = explorer.url
    response = http.post(url + "/api/actions", json={"action": "block_ip", "ip": "192.0.2.9"},
                         headers={**API, **headers}, timeout=10)  # fmt: skip
    assert response.status_code == 403, response.text
    ingest = http.post(url + "/v1/logs", data=logs_body("elsewhere"), headers={"Content-Type": PROTOBUF, **headers})
    assert ingest.status_code == 403
    assert actions(url, **API) == [] and count(url, "elsewhere") == 0


@pytest.mark.parametrize("host", ["evil.test", "evil.test:{port}", "127.0.0.1", "127.0.0.2:{port}", "localhost"])
def test_other_host_names_are_misdirected_without_a_token(explorer: Served, host: str) -> None:
    port = explorer.url.rsplit(":", 1)[1]
    for path in ("/api/events", "/", "/v1/actions"):
        assert http.get(explorer.url + path, headers={"Host": host.format(port=port)}, timeout=10).status_code == 421
    assert http.get(explorer.url + "/", headers={"Host": f"localhost:{port}"}, timeout=10).status_code == 200


def test_token_link_redirect_keeps_the_query_exactly(token_explorer: Served) -> None:
    query = "name=a%26b%3Dc&user=x%2By+z&prop=k%3Dv%20w"
    response = http.get(f"{token_explorer.url}/?{query}&token=s3cret", allow_redirects=False, timeout=10)
    assert response.status_code == 303
    assert response.headers["location"] == f"/?{query}"
    response = http.get(f"{token_explorer.url}/?token=s3cret&{query}", allow_redirects=False, timeout=10)
    assert response.headers["location"] == f"/?{query}"


# -- hostile bodies --------------------------------------------------------------------------------


def test_a_small_gzip_body_cannot_become_a_huge_value(explorer: Served) -> None:
    url = explorer.url
    body = gzip.compress(logs_body("bomb.value", 1, **{"sqreen.properties.blob": "A" * (31 * 1024 * 1024)}), 9)
    assert len(body) < 64 * 1024
    headers = {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}
    for _ in range(3):
        assert http.post(url + "/v1/logs", data=body, headers=headers, timeout=60).status_code == 200
    [stored, *_] = http.get(url + "/api/events", params={"name": "bomb.value"}, timeout=30).json()["events"]
    value = stored["attributes"]["sqreen.properties.blob"]
    assert len(value.encode()) <= MAX_VALUE_BYTES
    assert value.endswith(CUT_MARKER.format(31 * 1024 * 1024 - (MAX_VALUE_BYTES - 64)))
    page = http.get(url + "/", params={"name": "bomb.value"}, timeout=30)
    assert page.status_code == 200 and len(page.content) < 256 * 1024  # no pivot link carries the value


def test_an_event_is_at_most_a_mebibyte(explorer: Served) -> None:
    url = explorer.url
    big = {f"sqreen.properties.p{i:02d}": "x" * 60_000 for i in range(40)}  # 2.4 MB of attributes
    body = gzip.compress(logs_body("wide.event", 1, **big, **{"sqreen.user.email": "w@example.com"}))
    response = http.post(url + "/v1/logs", data=body, headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    [stored] = http.get(url + "/api/events", params={"name": "wide.event"}, timeout=30).json()["events"]
    attributes = stored["attributes"]
    assert sum(len(k) + len(str(v)) for k, v in attributes.items()) <= MAX_EVENT_BYTES
    assert attributes[DROPPED_ATTRIBUTE] == 40 - len([k for k in attributes if k.startswith("sqreen.properties.")])
    assert attributes[DROPPED_ATTRIBUTE] > 0
    assert stored["user"] == {"email": "w@example.com"}  # what the explorer indexes is kept first


def test_answers_are_bounded_in_bytes(explorer: Served) -> None:
    url = explorer.url
    big = {f"sqreen.properties.p{i}": "y" * 60_000 for i in range(15)}
    for _ in range(10):  # 10 requests of 10 events of ~900 KB
        body = gzip.compress(logs_body("big.page", 10, **big))
        assert http.post(url + "/v1/logs", data=body, headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}).ok
    seen, before, pages = 0, "", 0
    while True:
        params = {"name": "big.page", "limit": "500", **({"before": before} if before else {})}
        response = http.get(url + "/api/events", params=params, timeout=30)
        assert len(response.content) < 8 * 1024 * 1024
        page = response.json()
        seen += len(page["events"])
        pages += 1
        if not page["next"]:
            break
        before = page["next"]
    assert seen == 100 and pages > 1
    tail = http.get(url + "/api/tail", params={"after": "0", "name": "big.page"}, timeout=30)
    assert len(tail.content) < 8 * 1024 * 1024 and tail.json()["more"]


def test_json_severity_number_out_of_range_is_a_400(explorer: Served) -> None:
    body = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"sev","severityNumber":1e400}]}]}]}'
    response = http.post(explorer.url + "/v1/logs", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert count(explorer.url, "sev") == 0


def test_times_up_to_2554_keep_their_value(explorer: Served) -> None:
    year_2500 = 16_725_225_600 * 10**9
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.append(LogRecord(event_name="far.future", time_unix_nano=year_2500))
    records.append(LogRecord(event_name="far.future", time_unix_nano=2**64 - 1))
    response = http.post(explorer.url + "/v1/logs", data=request.SerializeToString(),
                         headers={"Content-Type": PROTOBUF}, timeout=10)  # fmt: skip
    assert response.status_code == 200
    stored = http.get(explorer.url + "/api/events", params={"name": "far.future"}, timeout=10).json()["events"]
    assert sorted(e["time_ns"] for e in stored) == [year_2500, 2**64 - 1]
    page = http.get(f"{explorer.url}/events/{stored[0]['id']}", timeout=10).text
    assert f"{stored[0]['time_ns']} ns" in page


def test_bidi_overrides_are_shown_not_applied(explorer: Served) -> None:
    import re

    name = "invoice\u202egnp.exe"
    body = logs_body(name, 1, **{"sqreen.properties.file": "cat\u2066\u200b.png"})
    assert http.post(explorer.url + "/v1/logs", data=body, headers={"Content-Type": PROTOBUF}).ok
    for path in ("/?name=invoice%E2%80%AEgnp.exe", "/summary"):
        page = http.get(explorer.url + path, timeout=10).text
        assert "invoice[U+202E]gnp.exe" in page
        # Only form fields keep the exact value (what the filter and block forms must send).
        shown = re.sub(r'value="[^"]*"', "", page)
        assert "\u202e" not in shown and "\u2066" not in shown and "\u200b" not in shown
    page = http.get(explorer.url + "/?name=invoice%E2%80%AEgnp.exe", timeout=10).text
    assert "cat[U+2066][U+200B].png" in page
    assert "name=invoice%E2%80%AEgnp.exe" in page  # pivot links carry the real value, percent-encoded


# -- connections, timeouts, disconnects ------------------------------------------------------------


def test_disconnects_mid_body_are_counted_not_tracebacks(explorer: Served) -> None:
    port = int(explorer.url.rsplit(":", 1)[1])
    for _ in range(30):
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(
                f"POST /v1/logs HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {PROTOBUF}\r\n"
                "Content-Length: 100000\r\n\r\n".encode()
                + b"\x0a" * 100
            )
    time.sleep(0.5)
    assert http.get(explorer.url + "/api/summary", timeout=10).status_code == 200
    log = explorer.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if "disconnected before sending" in line]
    assert 1 <= len(lines) <= 3, log[-3000:]


def test_idle_connections_cannot_exhaust_file_descriptors(tmp_path: Path) -> None:
    import resource

    def low_limit() -> None:  # in the server process: 1024 file descriptors, a common default
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    start = time.monotonic()
    with serve_process(tmp_path, preexec_fn=low_limit) as served, contextlib.ExitStack() as stack:
        port = int(served.url.rsplit(":", 1)[1])
        idle = [stack.enter_context(socket.create_connection((HOST, port), timeout=10)) for _ in range(1500)]
        assert len(idle) == 1500  # more than the server may keep: it closes the idle ones first
        for _ in range(3):  # fresh clients are still served
            assert http.get(served.url + "/api/summary", timeout=10).status_code == 200
        time.sleep(0.5)
        log = served.log()
        assert served.proc.poll() is None
    assert "Traceback" not in log and "Too many open files" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if "connections" in line]
    assert 1 <= len(lines) <= 2 + (time.monotonic() - start) / 10, log[-3000:]  # once per 10 s at most


def test_a_body_that_never_comes_is_timed_out(tmp_path: Path) -> None:
    """Headers that never end and a body that stalls are cut (in-process server with short timeouts)."""
    code = """
import socket, sys, uvicorn
from sqreen_otel.explorer import app, server
from sqreen_otel.explorer.store import Store
app.BODY_TIMEOUT = 1.0
store = Store(sys.argv[1])
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(64)
print(sock.getsockname()[1], flush=True)
server.run(uvicorn.Server(server.config(app.create_app(store), header_timeout=1.0)), sock)
"""
    import sys

    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "t.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with socket.create_connection((HOST, port), timeout=10) as headers_only:
            headers_only.sendall(f"GET /api/summary HTTP/1.1\r\nHost: {HOST}:{port}\r\n".encode())
            start = time.monotonic()
            assert headers_only.recv(100) == b""  # closed by the server
            assert time.monotonic() - start < 8
        with socket.create_connection((HOST, port), timeout=10) as slow_body:
            slow_body.sendall(
                f"POST /v1/logs HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {PROTOBUF}\r\n"
                "Content-Length: 1000\r\n\r\n".encode()
            )
            answer = slow_body.recv(1000)
            assert answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        proc.terminate()
        proc.wait(10)
