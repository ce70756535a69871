"""The block list views show what agents enforce: hand-made blocks and the playbooks' decisions in force.

A real ``sqreen-otel serve --playbooks`` (SQLite, then PostgreSQL) decides on an attack; ``GET /api/actions``,
the ``/actions`` page and ``sqreen-otel actions`` (a subprocess) list the decision with its playbook and alert
next to a hand-made block, never a simulated or lifted one; ``unblock-ip`` / ``unblock-user`` lift it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from explorer_process import CLI, ENV, http, serve_process
from test_playbooks_live import failed_logins, feed, post, wait_for
from test_playbooks_pg_replicas import ATTACKER, Fleet, fleet, leads, pg  # noqa: F401 - fixtures

API = {"X-Sqreen-Otel": "1"}
PLAYBOOKS = """\
version: 1
playbooks:
  - id: credential-stuffing
    when: {event: sq.sdk.users.login, where: "properties.success == false"}
    group_by: [client.address]
    threshold: {count: 5, within: 10m, distinct: {field: user.email, min: 3}}
    then:
      - block_ip: {duration: 1h}
  - id: reset-abuse
    when: {event: reset}
    group_by: [user.email]
    threshold: {count: 3, within: 10m}
    then:
      - block_user: {duration: 2h}
  - id: scanners
    when: {event: scan}
    group_by: [client.address]
    threshold: {count: 3, within: 1m}
    then:
      - redirect_ip: {url: "https://example.com/sorry", duration: 10m}
  - id: shadow
    mode: simulate
    when: {event: sq.sdk.users.login, where: "properties.success == false"}
    group_by: [client.address]
    threshold: {count: 2, within: 10m}
    then:
      - block_ip: {duration: 1h}
"""
IP = "203.0.113.7"
SCANNER = "203.0.113.99"
VICTIM = "mallory@example.com"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=ENV, timeout=60)


def listed(url: str) -> list[dict[str, Any]]:
    response = http.get(url + "/api/actions", timeout=5)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["actions"]
    return entries


def from_playbook(url: str, playbook: str) -> dict[str, Any] | None:
    return next((a for a in listed(url) if a.get("playbook") == playbook), None)


def test_decisions_in_force_are_listed_and_unblock_lifts_them(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(PLAYBOOKS)
    with serve_process(tmp_path, "--playbooks", str(path)) as served:
        url = served.url
        manual = http.post(url + "/api/actions", json={"action": "block_ip", "ip": "198.51.100.0/24"}, headers=API)
        assert manual.status_code == 201, manual.text
        post(url, *failed_logins(IP, 6))
        post(url, *[("reset", {"sqreen.user.email": VICTIM, "client.address": "198.51.100.9"})] * 3)
        by_ip = wait_for(lambda: from_playbook(url, "credential-stuffing"), "the block_ip decision")
        post(url, *[("scan", {"client.address": SCANNER})] * 3)
        by_user = wait_for(lambda: from_playbook(url, "reset-abuse"), "the block_user decision")
        redirect = wait_for(lambda: from_playbook(url, "scanners"), "the redirect_ip decision")
        served_ids = {a["id"] for a in feed(url)["actions"]}

        # The API: the hand-made entry first, then the decisions agents are served, with playbook and alert.
        entries = listed(url)
        assert entries[0]["id"] == manual.json()["id"] and entries[0]["source"] == "manual"
        assert "playbook" not in entries[0]
        assert by_ip["source"] == "playbook" and by_ip["action"] == "block_ip" and by_ip["ip"] == IP
        assert by_user["action"] == "block_user" and by_user["user"] == {"email": VICTIM}
        assert isinstance(by_ip["expires_at"], float) and by_ip["alert"]
        assert redirect["action"] == "redirect_ip" and redirect["url"] == "https://example.com/sorry"
        assert {a["id"] for a in entries} == served_ids  # exactly what agents enforce
        assert not any(a.get("playbook") == "shadow" for a in entries)  # simulated: stored, never listed
        alert_page = http.get(f"{url}/alerts/{by_ip['alert']}", timeout=5)
        assert alert_page.status_code == 200 and IP in alert_page.text

        # The page: each decision's playbook links to its alert, with a Lift form; hand-made ones keep Unblock.
        page = http.get(url + "/actions", timeout=5).text
        row = page.split(f'<tr class="decision" data-id="{by_ip["id"]}">')[1].split("</tr>")[0]
        assert f'href="/alerts/{by_ip["alert"]}">credential-stuffing</a>' in row
        assert f'action="/decisions/{by_ip["id"]}/lift"' in row and ">Lift</button>" in row
        row = page.split(f'<tr class="decision" data-id="{redirect["id"]}">')[1].split("</tr>")[0]
        assert "redirected to" in row and "https://example.com/sorry" in row and ">scanners</a>" in row
        manual_row = page.split(f'<tr class="manual" data-id="{manual.json()["id"]}">')[1].split("</tr>")[0]
        assert ">manual<" in manual_row and ">Unblock</button>" in manual_row

        # The CLI: a source column (manual, or the playbook id), and the same entries as JSON.
        out = cli("actions", "--url", url)
        assert out.returncode == 0, out.stderr
        lines = {line.split()[0]: line for line in out.stdout.splitlines()}
        assert lines[by_ip["id"]].split()[1] == "credential-stuffing"
        assert f"block_ip {IP} (expires 20" in lines[by_ip["id"]]
        assert lines[by_user["id"]].split()[1] == "reset-abuse"
        assert lines[manual.json()["id"]].split()[1] == "manual"
        as_json = json.loads(cli("actions", "--url", url, "--json").stdout)
        assert [a["id"] for a in as_json] == [a["id"] for a in entries]

        # unblock-ip / unblock-user also lift the decisions in force on exactly that target (--help says so).
        assert "lift the playbook decisions" in cli("unblock-ip", "--help").stdout
        assert "lift the playbook decisions" in cli("unblock-user", "--help").stdout
        out = cli("unblock-ip", IP, "--url", url)
        assert (out.returncode, out.stdout) == (0, f"unblocked {IP} (1 playbook decision(s) lifted: {by_ip['id']})\n")
        assert from_playbook(url, "credential-stuffing") is None
        assert by_ip["id"] not in {a["id"] for a in feed(url)["actions"]}
        assert "lifted" in http.get(f"{url}/alerts/{by_ip['alert']}", timeout=5).text
        out = cli("unblock-user", "--id", f"email={VICTIM}", "--url", url)
        assert out.returncode == 0, out.stderr
        assert "1 playbook decision(s) lifted" in out.stdout
        out = cli("unblock-ip", SCANNER, "--url", url)  # a redirect is lifted too: the target is left alone
        assert (out.returncode, out.stdout) == (
            0,
            f"unblocked {SCANNER} (1 playbook decision(s) lifted: {redirect['id']})\n",
        )
        assert [a["id"] for a in listed(url)] == [manual.json()["id"]]
        assert [a["id"] for a in feed(url)["actions"]] == [manual.json()["id"]]


def test_an_address_inside_a_decided_network_reports_the_decision_still_blocking(tmp_path: Path) -> None:
    """``unblock-ip`` of a network lifts only exact targets: a decision on an address in it is listed, exit 1."""
    path = tmp_path / "playbooks.yaml"
    path.write_text(PLAYBOOKS)
    with serve_process(tmp_path, "--playbooks", str(path)) as served:
        post(served.url, *failed_logins(IP, 6))
        decision = wait_for(lambda: from_playbook(served.url, "credential-stuffing"), "the decision")
        out = cli("unblock-ip", "203.0.113.0/24", "--url", served.url)
        assert out.returncode == 1
        assert f"still blocked by action {decision['id']} (credential-stuffing)" in out.stderr
        assert from_playbook(served.url, "credential-stuffing") is not None


def test_on_postgresql_a_follower_lists_the_leaders_decision_and_the_cli_lifts_it(fleet: Fleet) -> None:  # noqa: F811
    one = fleet.start()
    wait_for(lambda: leads(one), "the first replica to lead")
    two = fleet.start()
    post(one.url, *failed_logins(ATTACKER, 25))
    decision = wait_for(lambda: from_playbook(two.url, "credential-stuffing"), "the follower to list it")
    assert decision["ip"] == ATTACKER and decision["source"] == "playbook" and not leads(two)
    page = http.get(two.url + "/actions", timeout=5).text
    assert f'href="/alerts/{decision["alert"]}">credential-stuffing</a>' in page
    out = cli("actions", "--url", two.url)
    assert out.returncode == 0 and f"{decision['id']}  credential-stuffing  block_ip {ATTACKER}" in out.stdout
    out = cli("unblock-ip", ATTACKER, "--url", two.url)  # on the follower: every replica stops serving it
    assert out.returncode == 0 and f"lifted: {decision['id']}" in out.stdout, out.stdout + out.stderr
    assert listed(two.url) == []
    wait_for(lambda: listed(one.url) == [] and feed(one.url)["actions"] == [], "the leader to stop listing it")
