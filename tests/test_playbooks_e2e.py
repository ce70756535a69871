"""End to end: a credential-stuffing run against a real gunicorn app, detected by the explorer's playbook,
blocked with no manual step; the app answers 403 within the 5 s bound of ``actions_poll_interval``.

Processes: ``sqreen-otel serve --playbooks examples/playbooks.yaml`` and gunicorn (2 forked workers)
serving ``examples/flask_app.py``, which exports its events to the explorer and polls ``/v1/actions``.
The attacker's address comes in ``X-Forwarded-For`` (a documentation address: public, so blockable).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests
from explorer_process import ENV, serve_process
from test_servers import REPO, free_port, gunicorn, server_env
from test_servers import serve as serve_app

from sqreen_otel.receiver import Receiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX servers and signals")

ATTACKER = "203.0.113.66"
BYSTANDER = "198.51.100.20"
CONTRACT = 5.0  # seconds: the default actions_poll_interval
ROUND_TRIP = 1.0  # seconds for the poll's own request to complete, generous: CI machines are shared and busy


def test_credential_stuffing_is_blocked_within_the_poll_interval(tmp_path: Path) -> None:
    client = requests.Session()
    client.trust_env = False
    with Receiver() as hooks:  # the playbook file's notification channels need URLs: a local receiver
        explorer_env = {
            **ENV, "SLACK_WEBHOOK_URL": hooks.endpoint, "SOC_WEBHOOK_URL": hooks.endpoint, "SOC_HMAC_KEY": "k",
        }  # fmt: skip
        playbooks = str(REPO / "examples" / "playbooks.yaml")
        with serve_process(tmp_path, "--playbooks", playbooks, env=explorer_env) as explorer:
            port, log = free_port(), tmp_path / "gunicorn.log"
            env = server_env(hooks, SQREEN_OTEL_ENDPOINT=f"{explorer.url}/v1/logs",
                             SQREEN_OTEL_ACTIONS_URL=f"{explorer.url}/v1/actions")  # fmt: skip
            with serve_app(gunicorn(port), env, port, log):
                app = f"http://127.0.0.1:{port}"
                # The attack: failed logins for many accounts from one address.
                for i in range(30):
                    form = {"email": f"victim{i}@example.com", "password": "guess"}
                    reply = client.post(f"{app}/login", data=form, headers={"X-Forwarded-For": ATTACKER}, timeout=5)
                    assert reply.status_code in (401, 403)

                # The explorer decides on its own (the events' export time is not part of the contract)...
                decision = None
                deadline = time.monotonic() + 30
                while decision is None:
                    assert time.monotonic() < deadline, f"no decision:\n{explorer.log()}"
                    actions = client.get(f"{explorer.url}/v1/actions", timeout=5).json()["actions"]
                    decision = next((a for a in actions if a.get("ip") == ATTACKER), None)
                    time.sleep(0.05)
                seen = time.monotonic()
                assert decision["action"] == "block_ip" and decision["playbook"] == "credential-stuffing"

                # ...and within the poll interval every worker refuses the attacker: the first 403 comes before the
                # deadline, and after it (plus one request's round trip) every request is refused, whichever
                # worker takes it.
                attacker = {"X-Forwarded-For": ATTACKER, "Accept": "application/json"}
                while client.get(f"{app}/", headers=attacker, timeout=5).status_code != 403:
                    waited = time.monotonic() - seen
                    assert waited < CONTRACT + ROUND_TRIP, f"still served {waited:.1f} s after the decision"
                    time.sleep(0.05)
                time.sleep(max(0.0, seen + CONTRACT + ROUND_TRIP - time.monotonic()))
                replies = [client.get(f"{app}/", headers=attacker, timeout=5) for _ in range(8)]
                assert [r.status_code for r in replies] == [403] * 8
                assert {r.json()["action_id"] for r in replies} == {decision["id"]}
                bystander = client.get(f"{app}/", headers={"X-Forwarded-For": BYSTANDER}, timeout=5)
                assert bystander.status_code == 200

                # The refusals come back as sq.action.block_ip hits and count for the playbook.
                deadline = time.monotonic() + 20
                while True:
                    page = client.get(f"{explorer.url}/playbooks", timeout=5).text
                    row = page.split('data-id="credential-stuffing"')[1].split("</tr>")[0]
                    if '<td class="num hits">0</td>' not in row:
                        break
                    assert time.monotonic() < deadline, "no hits counted"
                    time.sleep(0.2)
