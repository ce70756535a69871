"""Live playbook evaluation in a real ``sqreen-otel serve --playbooks``: decisions served to agents with their
playbook and alert ids, simulated ones never served, lifting, hits, notifications, reloads and restarts."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from explorer_process import CLI, ENV, free_port, http, serve_process

from sqreen_otel.actions import parse_actions

PLAYBOOKS = """\
version: 1
notify:
  soc: {{webhook: "{hook}", secret: "k3y"}}
playbooks:
  - id: credential-stuffing
    when: {{event: sq.sdk.users.login, where: "properties.success == false"}}
    group_by: [client.address]
    threshold: {{count: {count}, within: 10m, distinct: {{field: user.email, min: 3}}}}
    then:
      - block_ip: {{duration: 1h}}
      - notify: [soc]
  - id: scanners
    when: {{event: scan}}
    group_by: [client.address]
    threshold: {{count: 3, within: 1m}}
    then:
      - redirect_ip: {{url: "https://example.com/sorry", duration: 10m}}
  - id: shadow
    mode: simulate
    when: {{event: sq.sdk.users.login, where: "properties.success == false"}}
    group_by: [client.address]
    threshold: {{count: 2, within: 10m}}
    then:
      - block_ip: {{duration: 1h}}
"""


class Hooks:
    """A webhook receiver on loopback."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hooks.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    return {"stringValue": v}


def post(url: str, *events: tuple[str, dict[str, Any]]) -> None:
    now = time.time_ns()
    records = [
        {
            "eventName": name,
            "timeUnixNano": str(now + i),
            "attributes": [{"key": k, "value": value(v)} for k, v in a.items()],
        }
        for i, (name, a) in enumerate(events)
    ]
    response = http.post(url + "/v1/logs", json={"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}, timeout=5)
    assert response.status_code == 200, response.text


def failed_logins(ip: str, n: int, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("sq.sdk.users.login", {"client.address": ip, "sqreen.user.email": f"victim{i}@example.com",
                                "sqreen.properties.success": False})
        for i in range(start, start + n)
    ]  # fmt: skip


def feed(url: str) -> dict[str, Any]:
    response = http.get(url + "/v1/actions", timeout=5)
    assert response.status_code == 200
    document = response.json()
    parse_actions(response.content, "url")  # exactly what agents accept
    return document


def wait_for(check: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def decision_of(url: str, playbook: str) -> dict[str, Any] | None:
    return next((a for a in feed(url)["actions"] if a.get("playbook") == playbook), None)


def test_decisions_are_served_with_their_ids_lifted_and_counted(tmp_path: Path, hooks: Hooks) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(PLAYBOOKS.format(hook=hooks.url, count=5))
    with serve_process(tmp_path, "--playbooks", str(path)) as served:
        url = served.url
        post(url, *failed_logins("203.0.113.7", 6))
        decision = wait_for(lambda: decision_of(url, "credential-stuffing"), "the block decision")
        assert decision["action"] == "block_ip" and decision["ip"] == "203.0.113.7"
        assert decision["alert"] and decision["expires_at"].endswith("Z")
        assert not any(a.get("playbook") == "shadow" for a in feed(url)["actions"])  # simulated: never served

        # The alert and the simulated ones are on the Alerts page; the playbook page counts them.
        alerts = http.get(url + "/alerts", timeout=5).text
        assert "credential-stuffing" in alerts and "shadow" in alerts and "(simulated)" in alerts
        listed = {a["playbook_id"]: a for a in http.get(url + "/api/alerts", timeout=5).json()["alerts"]}
        assert listed["credential-stuffing"]["id"] == decision["alert"]
        assert listed["credential-stuffing"]["group"] == {"client.address": "203.0.113.7"}
        assert listed["credential-stuffing"]["count"] == 6 and listed["credential-stuffing"]["status"] == "open"
        assert [d["id"] for d in listed["credential-stuffing"]["decisions"]] == [decision["id"]]
        assert listed["shadow"]["simulated"] and all(d["simulated"] for d in listed["shadow"]["decisions"])
        alert_page = http.get(f"{url}/alerts/{decision['alert']}", timeout=5).text
        assert "203.0.113.7" in alert_page and "victim0@example.com" in alert_page

        # The notification: a signed webhook with the decision.
        wait_for(lambda: hooks.received, "the webhook")
        headers, body = hooks.received[0]
        assert hmac.compare_digest(
            headers["X-Sqreen-Signature"], "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
        )
        payload = json.loads(body)
        assert payload["playbook"]["id"] == "credential-stuffing"
        assert payload["properties"]["ips"] == [{"ip_cidr": "203.0.113.7"}]
        assert payload["decisions"][0]["id"] == decision["id"]

        # An agent's hit (sq.action.block_ip with the decision id) counts for the playbook.
        post(url, ("sq.action.block_ip", {"client.address": "203.0.113.7", "sqreen.action.id": decision["id"]}))

        def hits() -> bool:
            page = http.get(url + "/playbooks", timeout=5).text
            row = page.split('data-id="credential-stuffing"')[1].split("</tr>")[0]
            return '<td class="num hits">1</td>' in row

        wait_for(hits, "the hit count")
        channels = http.get(url + "/playbooks", timeout=5).text.split('<table class="notifications">')[1]
        soc = channels.split('data-id="soc">')[1].split("</tr>")[0]
        assert '<td class="num sent">1</td>' in soc and '<td class="num failed">0</td>' in soc

        # Conditional polls, then the lift changes the list and its ETag.
        first = http.get(url + "/v1/actions", timeout=5)
        etag = first.headers["ETag"]
        assert http.get(url + "/v1/actions", headers={"If-None-Match": etag}, timeout=5).status_code == 304
        lifted = http.delete(f"{url}/api/actions/{decision['id']}", headers={"X-Sqreen-Otel": "1"}, timeout=5)
        assert lifted.status_code == 200 and lifted.json() == {"removed": True}
        again = http.get(url + "/v1/actions", headers={"If-None-Match": etag}, timeout=5)
        assert again.status_code == 200 and again.headers["ETag"] != etag
        assert decision_of(url, "credential-stuffing") is None
        assert "lifted" in http.get(f"{url}/alerts/{decision['alert']}", timeout=5).text

        # One alert per incident: more failures join it; the lifted target is not decided again at once.
        post(url, *failed_logins("203.0.113.7", 3, start=10))
        wait_for(
            lambda: ">9 in the explorer</a>" in http.get(f"{url}/alerts/{decision['alert']}", timeout=5).text,
            "the joined events",
        )
        assert decision_of(url, "credential-stuffing") is None


def test_a_bad_reload_keeps_the_last_good_set_and_a_good_one_applies(tmp_path: Path, hooks: Hooks) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(PLAYBOOKS.format(hook=hooks.url, count=50))
    with serve_process(tmp_path, "--playbooks", str(path)) as served:
        url = served.url
        path.write_text(PLAYBOOKS.format(hook=hooks.url, count=50).replace("count: 3,", "count: -3,"))
        wait_for(lambda: "rejected" in served.log(), "the rejected reload")
        assert f"{path}:15: playbooks[1].threshold.count" in served.log()  # the line and the field
        post(url, *[("scan", {"client.address": "198.51.100.20"})] * 4)  # the last good set still runs
        redirect = wait_for(lambda: decision_of(url, "scanners"), "the redirect decision")
        assert redirect["action"] == "redirect_ip" and redirect["url"] == "https://example.com/sorry"
        assert "was rejected" in http.get(url + "/playbooks", timeout=5).text

        path.write_text(PLAYBOOKS.format(hook=hooks.url, count=4))  # now 4 failures are enough
        wait_for(lambda: "reloaded" in served.log(), "the reload")
        post(url, *failed_logins("203.0.113.9", 4))
        assert wait_for(lambda: decision_of(url, "credential-stuffing"), "a decision of the reloaded set")["ip"] == (
            "203.0.113.9"
        )


def test_state_survives_a_restart_and_lifted_decisions_stay_lifted(tmp_path: Path, hooks: Hooks) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(PLAYBOOKS.format(hook=hooks.url, count=5))
    db = tmp_path / "events.sqlite"
    port = free_port()
    with serve_process(tmp_path, "--playbooks", str(path), db=db, port=port) as served:
        post(served.url, *failed_logins("203.0.113.30", 3))  # below the threshold
        post(served.url, *failed_logins("203.0.113.31", 6))
        lifted = wait_for(lambda: decision_of(served.url, "credential-stuffing"), "the first decision")
        http.delete(f"{served.url}/api/actions/{lifted['id']}", headers={"X-Sqreen-Otel": "1"}, timeout=5)
    with serve_process(tmp_path, "--playbooks", str(path), db=db, port=free_port()) as served:
        wait_for(lambda: "state rebuilt from" in served.log(), "the rebuild")
        post(served.url, *failed_logins("203.0.113.30", 2, start=3))  # 3 before the restart + 2 after
        decision = wait_for(lambda: decision_of(served.url, "credential-stuffing"), "the decision after restart")
        assert decision["ip"] == "203.0.113.30"
        assert all(a["id"] != lifted["id"] for a in feed(served.url)["actions"])  # not resurrected by the replay


def test_a_bad_file_at_start_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text("version: 1\nplaybooks:\n  - id: x\n    when: {event: a}\n    group_by: [client.address]\n"
                    "    threshold: {count: zero, within: 1m}\n    then: [{block_ip: {duration: 1h}}]\n")  # fmt: skip
    result = subprocess.run(
        [CLI, "serve", "--db", str(tmp_path / "e.sqlite"), "--port", str(free_port()), "--playbooks", str(path)],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{path}:6" in result.stderr and "threshold.count" in result.stderr
