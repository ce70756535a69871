"""``examples/demo.py`` as the README runs it: given ports, mallory blocked through the explorer, what to look at.

The demo checks itself that mallory's refusal names the explorer's action; this test reads what it printed.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from explorer_process import ENV, HOST, free_port

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocesses and signals")

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEMO), "--no-wait", *args], capture_output=True, text=True, env=ENV,
                          timeout=120)  # fmt: skip


def test_demo_on_given_ports_blocks_mallory_through_the_explorer() -> None:
    port, app_port = free_port(), free_port()
    result = run_demo("--port", str(port), "--app-port", str(app_port))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    explorer = f"http://{HOST}:{port}"
    assert f"Event Explorer running at {explorer}/" in out
    assert f"Example Flask app at http://{HOST}:{app_port}/" in out
    blocked = re.search(r"blocked user email=mallory@example.com until unblocked \(action (\w+)\)", out)
    assert blocked, out
    action_id = blocked[1]
    assert re.search(r"blocked user mallory logs in +-> 403", out)
    # The explorer's block list holds the block the app enforced (it was "Nobody is blocked" before).
    block_list = out.split("Its block list")[1].split("What to look at:")[0]
    assert f"{action_id}  block_user email=mallory@example.com (expires never)" in block_list
    assert re.search(r"  \w+  block_ip 203\.0\.113\.66 \(expires \S+Z, playbook credential-stuffing\)", block_list)
    looks = out.split("What to look at:")[1]
    for path in ("/", "/?name=sq.sdk.users.login", "/?name=sq.action.block_user", "/actions", "/summary"):
        assert re.search(rf"^  {re.escape(explorer + path)} +\S", looks, re.M), path
    assert f"sqreen.action.id is {action_id}" in looks
    assert "read 5, sent 4, rejected 1" in out
    # The attack: blocked by the credential-stuffing playbook on its own, the app answering 403.
    attack = out.split("A credential-stuffing attack")[1].split("Importing past events")[0]
    assert "203.0.113.66 now gets 403" in attack and "with no manual step" in attack
    assert re.search(r"playbook credential-stuffing decided block_ip 203\.0\.113\.66 until \S+Z \(decision \w+", attack)
    assert "the Slack channel got: '*Playbook credential-stuffing fired" in attack
    for path in ("/playbooks", "/alerts", "/playbooks/backtest"):
        assert re.search(rf"^  {re.escape(explorer + path)} +\S", looks, re.M), path


def test_demo_on_a_busy_port_exits_3() -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        result = run_demo("--port", str(busy.getsockname()[1]))
    assert result.returncode == 3
    assert "cannot listen" in result.stderr and "demo: the Event Explorer did not start" in result.stderr
    assert "Event Explorer running" not in result.stdout
