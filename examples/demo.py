"""The end-to-end demo: the Event Explorer, an example web app, traffic, a block, and a past-event import.

    python examples/demo.py                               # then open the printed URLs; Ctrl-C to stop
    python examples/demo.py --port 4318 --app-port 5000   # fixed ports (default: free ones)
    python examples/demo.py --no-wait                     # run the scenario and stop (CI uses this)

1. starts ``sqreen-otel serve --playbooks examples/playbooks.yaml`` (the Event Explorer, evaluating the
   example playbooks live) on loopback, over a temporary database; its Slack and webhook channels
   point at a small receiver in this script, which prints what it gets;
2. blocks mallory through the explorer (``sqreen-otel block-user``), as an operator would;
3. serves ``examples/flask_app.py`` (login form, custom event) on another port, exporting to the
   explorer and polling its block list (``actions_url``), so the app refuses mallory;
4. sends traffic: failed and successful logins, mallory's refused login, a password-reset event;
5. runs a credential-stuffing attack (failed logins for 30 accounts from 203.0.113.66): the
   ``credential-stuffing`` playbook blocks the address by itself and the app answers it 403;
6. imports ``examples/past_events.jsonl`` (with one bad line, rejected with its reason);
7. prints what the explorer holds and what to look at.

Exit status: 0 done; 1 a step failed (the message says which); 3 a port was busy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from werkzeug.serving import WSGIRequestHandler, make_server

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # so that "examples.flask_app" imports from a checkout

import sqreen_otel  # noqa: E402
from examples.flask_app import create_app  # noqa: E402


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:  # the demo prints its own lines
        pass


def wait_until_up(url: str, deadline: float = 15.0) -> None:
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered at {url} within {deadline:.0f}s")


def sqreen_otel_command() -> list[str]:
    script = shutil.which("sqreen-otel", path=str(Path(sys.executable).parent)) or shutil.which("sqreen-otel")
    return [script] if script else [sys.executable, "-m", "sqreen_otel.cli"]


MALLORY = {"email": "mallory@example.com"}


class DemoFailed(Exception):
    """A step of the scenario did not do what it should: its message, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def start_explorer(workdir: Path, port: int, hooks: str) -> tuple[subprocess.Popen[str], str]:
    """``sqreen-otel serve --playbooks``; its URL from the banner it prints once listening (so ``--port 0`` works)."""
    channels = {"SLACK_WEBHOOK_URL": hooks, "SOC_WEBHOOK_URL": hooks, "SOC_HMAC_KEY": "demo-secret"}
    playbooks = str(HERE / "playbooks.yaml")
    server = subprocess.Popen(
        [*sqreen_otel_command(), "serve", "--db", str(workdir / "events.sqlite"), "--port", str(port),
         "--playbooks", playbooks],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **channels},
    )  # fmt: skip
    assert server.stdout is not None
    banner = server.stdout.readline()  # empty when serve exits: it printed its reason on stderr
    if not banner.startswith("Event Explorer on http://"):
        status = server.wait(10)
        raise DemoFailed("the Event Explorer did not start", 3 if status == 3 else 1)
    threading.Thread(target=shutil.copyfileobj, args=(server.stdout, sys.stdout), daemon=True).start()
    return server, banner.split()[3].rstrip("/")


class Notifications:
    """Where the playbooks' Slack and webhook channels post in the demo: prints each message's text."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[dict[str, object]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with contextlib.suppress(ValueError):
                    received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


ATTACKER = "203.0.113.66"  # a documentation address: public, so playbooks may block it


def credential_stuffing(app_url: str, explorer: str, notifications: Notifications, deadline: float = 30.0) -> None:
    """Failed logins for many accounts from one address, then wait for the app to refuse it, by itself."""
    headers = {"X-Forwarded-For": ATTACKER}
    started = time.monotonic()
    statuses = [
        requests.post(f"{app_url}/login", data={"email": f"user{i}@example.com", "password": "123456"},
                      headers=headers, timeout=5).status_code
        for i in range(30)
    ]  # fmt: skip
    print(f"  30 failed logins from {ATTACKER} for 30 accounts -> {sorted(set(statuses))}")
    sqreen_otel.flush(timeout=5)  # deliver the events now rather than at the next heartbeat
    stop = started + deadline
    while True:
        status = requests.get(f"{app_url}/", headers=headers, timeout=5).status_code
        if status == 403:
            break
        if time.monotonic() > stop:
            raise DemoFailed(f"the app still answered {ATTACKER} with {status} after {deadline:.0f}s")
        time.sleep(0.2)
    actions = requests.get(f"{explorer}/v1/actions", timeout=5).json()["actions"]
    decision = next(a for a in actions if a.get("ip") == ATTACKER)
    print(f"  {ATTACKER} now gets {status}, {time.monotonic() - started:.1f} s after the attack began, with no"
          f" manual step:\n  playbook {decision['playbook']} decided {decision['action']} {ATTACKER} until"
          f" {decision['expires_at']} (decision {decision['id']}, alert {decision['alert']})")  # fmt: skip
    stop = time.monotonic() + 10
    while not notifications.received and time.monotonic() < stop:
        time.sleep(0.1)
    for message in notifications.received[:1]:
        print(f"  the Slack channel got: {str(message.get('text', message))[:160]!r}")


def block_mallory(explorer: str) -> str:
    """Block mallory with the CLI, as an operator would; the id of the block action."""
    command = [*sqreen_otel_command(), "block-user", "--url", explorer, "--id", f"email={MALLORY['email']}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DemoFailed(f"sqreen-otel block-user failed: {result.stderr.strip()}")
    print(f"  $ sqreen-otel block-user --url {explorer} --id email={MALLORY['email']}\n  {result.stdout.strip()}")
    return result.stdout.rsplit("(action ", 1)[1].rstrip(")\n")


def wait_for_block(deadline: float = 15.0) -> None:
    """The app's poller fetches the explorer's block list at start-up; wait until it holds mallory."""
    stop = time.monotonic() + deadline
    while sqreen_otel.block_list.match_user(MALLORY) is None:
        if time.monotonic() > stop:
            raise DemoFailed(f"the app did not get the explorer's block list within {deadline:.0f}s")
        time.sleep(0.05)


def traffic(app_url: str) -> int:
    """Send the scenario's requests; the status of mallory's login."""

    def login(email: str, password: str) -> int:
        return requests.post(f"{app_url}/login", data={"email": email, "password": password}, timeout=5).status_code

    print(f"  failed login for alice            -> {login('alice@example.com', 'guess')}")
    print(f"  failed login for alice, again     -> {login('alice@example.com', 'password123')}")
    print(f"  successful login for alice        -> {login('alice@example.com', 'wonderland')}")
    refused = login(MALLORY["email"], "trustno1")
    print(f"  blocked user mallory logs in      -> {refused}  (the right password, refused by the block)")
    reset = requests.post(f"{app_url}/reset-password?token=s3cr3t-link", data={"email": "bob@example.com"}, timeout=5)
    print(f"  password reset for bob            -> {reset.status_code}  (the ?token= is masked in the event)")
    return refused


def what_to_look_at(explorer: str, action_id: str) -> None:
    names = {row["name"]: row["count"] for row in requests.get(f"{explorer}/api/summary", timeout=5).json()["names"]}
    print("\nThe explorer now holds:")
    for name, count in names.items():
        print(f"  {count:>3}  {name}")
    refusals = requests.get(f"{explorer}/api/events", params={"name": "sq.action.block_user"}, timeout=5).json()
    if [e["attributes"].get("sqreen.action.id") for e in refusals["events"]] != [action_id]:
        raise DemoFailed(f"expected one sq.action.block_user event naming action {action_id}, got {refusals}")
    print("\nIts block list, which every app polling /v1/actions applies (the hand-made blocks, then the playbooks'):")
    for action in requests.get(f"{explorer}/v1/actions", timeout=5).json()["actions"]:
        user = action.get("user")
        target = ",".join(f"{k}={v}" for k, v in user.items()) if user else action.get("ip")
        origin = f", playbook {action['playbook']}" if action.get("playbook") else ""
        print(f"  {action['id']}  {action['action']} {target} (expires {action.get('expires_at') or 'never'}{origin})")
    sights = [
        ("/", "every event, newest first, and the histogram over time"),
        ("/?name=sq.sdk.users.login", "alice's two failed logins, then her successful one"),
        ("/?name=sq.action.block_user", f"mallory refused: the event's sqreen.action.id is {action_id}"),
        ("/actions", "the block list: that action, with buttons to lift it"),
        ("/?name=password_reset", "open the event: the request's token parameter is [REDACTED]"),
        ("/summary", "counts per name, the imported 2018 events included"),
        ("/playbooks", "the example playbooks: mode, alerts over a day and a week, hits of their decisions"),
        ("/alerts", f"the credential-stuffing incident from {ATTACKER}, its events and its decision (Lift)"),
        ("/playbooks/backtest", "run the playbooks (or a draft) over the stored events, alerts per day"),
    ]
    width = max(len(explorer + path) for path, _ in sights)
    print("\nWhat to look at:")
    for path, what in sights:
        print(f"  {explorer + path:<{width}}  {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="the Event Explorer's port (default: a free one)")
    parser.add_argument("--app-port", type=int, default=0, help="the example app's port (default: a free one)")
    parser.add_argument("--no-wait", action="store_true", help="stop after the scenario instead of serving on")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sqreen-otel-demo-"))
    server: subprocess.Popen[str] | None = None
    web = None
    notifications = Notifications()
    try:
        server, explorer = start_explorer(workdir, args.port, notifications.url)
        print(f"Event Explorer running at {explorer}/\n")

        print("Blocking mallory through the explorer:")
        action_id = block_mallory(explorer)

        sqreen_otel.configure(endpoint=f"{explorer}/v1/logs", actions_url=f"{explorer}/v1/actions", flush_interval=1.0)
        try:
            web = make_server("127.0.0.1", args.app_port, create_app(block_mallory=False), threaded=True,
                              request_handler=QuietHandler)  # fmt: skip
        except OSError as exc:
            raise DemoFailed(f"the example app cannot listen on 127.0.0.1:{args.app_port}: {exc.strerror}", 3) from None
        threading.Thread(target=web.serve_forever, daemon=True).start()
        wait_for_block()
        app_url = f"http://127.0.0.1:{web.server_port}"
        print(f"\nExample Flask app at {app_url}/ sends its events there and polls its block list. Traffic:")
        if traffic(app_url) != 403:
            raise DemoFailed("mallory's login was not refused")
        sqreen_otel.flush(timeout=5)

        print("\nA credential-stuffing attack, and the playbook that stops it:")
        credential_stuffing(app_url, explorer, notifications)

        past = workdir / "past_events.jsonl"
        shutil.copy(HERE / "past_events.jsonl", past)
        print("\nImporting past events (one line is bad on purpose):")
        env = {**os.environ, "SQREEN_OTEL_ENDPOINT": f"{explorer}/v1/logs"}
        subprocess.run([*sqreen_otel_command(), "import", str(past)], env=env, check=False)

        what_to_look_at(explorer, action_id)
        if not args.no_wait:
            print("\nCtrl-C to stop.")
            while True:
                time.sleep(3600)
    except DemoFailed as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        pass
    finally:
        sqreen_otel.shutdown(timeout=2)
        if web is not None:
            web.shutdown()
        if server is not None:
            server.terminate()
            server.wait(10)
        notifications.server.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
