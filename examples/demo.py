"""The end-to-end demo: the Event Explorer, an example web app, traffic, and a past-event import.

    python examples/demo.py              # then open the printed URL; Ctrl-C to stop
    python examples/demo.py --no-wait    # run the scenario and stop (CI uses this)

1. starts ``sqreen-otel serve`` (the Event Explorer) on a free loopback port, over a temporary database;
2. serves ``examples/flask_app.py`` (login form, custom event, a blocked user) on another port,
   exporting to the explorer;
3. sends traffic: failed and successful logins, a blocked user's login, a password-reset event;
4. imports ``examples/past_events.jsonl`` (with one bad line, rejected with its reason);
5. prints what the explorer holds and the URL to open.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def traffic(app_url: str) -> None:
    def login(email: str, password: str) -> int:
        return requests.post(f"{app_url}/login", data={"email": email, "password": password}, timeout=5).status_code

    print(f"  failed login for alice            -> {login('alice@example.com', 'guess')}")
    print(f"  failed login for alice, again     -> {login('alice@example.com', 'password123')}")
    print(f"  successful login for alice        -> {login('alice@example.com', 'wonderland')}")
    print(f"  blocked user mallory logs in      -> {login('mallory@example.com', 'trustno1')}")
    reset = requests.post(f"{app_url}/reset-password?token=s3cr3t-link", data={"email": "bob@example.com"}, timeout=5)
    print(f"  password reset for bob            -> {reset.status_code}  (the ?token= is masked in the event)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-wait", action="store_true", help="stop after the scenario instead of serving on")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sqreen-otel-demo-"))
    explorer_port, app_port = free_port(), free_port()
    explorer = f"http://127.0.0.1:{explorer_port}"
    server = subprocess.Popen(
        [*sqreen_otel_command(), "serve", "--db", str(workdir / "events.sqlite"), "--port", str(explorer_port)]
    )
    web = None
    try:
        wait_until_up(f"{explorer}/api/summary")
        print(f"Event Explorer running at {explorer}/\n")

        sqreen_otel.configure(endpoint=f"{explorer}/v1/logs", flush_interval=1.0)
        web = make_server("127.0.0.1", app_port, create_app(), threaded=True, request_handler=QuietHandler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        print(f"Example Flask app at http://127.0.0.1:{app_port}/ sends its events there. Traffic:")
        traffic(f"http://127.0.0.1:{app_port}")
        sqreen_otel.flush(timeout=5)

        past = workdir / "past_events.jsonl"
        shutil.copy(HERE / "past_events.jsonl", past)
        print("\nImporting past events (one line is bad on purpose):")
        env = {**os.environ, "SQREEN_OTEL_ENDPOINT": f"{explorer}/v1/logs"}
        subprocess.run([*sqreen_otel_command(), "import", str(past)], env=env, check=False)

        summary = requests.get(f"{explorer}/api/summary", timeout=5).json()["names"]
        print("\nThe explorer now holds:")
        for row in summary:
            print(f"  {row['count']:>3}  {row['name']}")
        print(f"\nOpen {explorer}/ to explore them: filter, look at an event, block a user or an IP.")
        if not args.no_wait:
            print("Ctrl-C to stop.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sqreen_otel.shutdown(timeout=2)
        if web is not None:
            web.shutdown()
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
