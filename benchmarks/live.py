"""Benchmark: the live side of playbooks. What agents pay for polling decisions, and whether the
explorer's live evaluation keeps up with ingest.

    python benchmarks/live.py            # 100,000 events, 2,500 decisions in the feed, 200 polls
    python benchmarks/live.py --quick    # 20,000 events, 50 polls

1. Agent side: an ``ActionsPoller`` (the agents' own class) against a real ``sqreen-otel serve`` process
   whose feed holds 2,500 block decisions (the default circuit breaker's maximum). CPU time of this
   process (where the app would run) per poll: a full fetch (200, 2,500 entries parsed and swapped in)
   against a conditional one (304, unchanged list), and what a 304 every ``actions_poll_interval``
   (5 s) costs as a share of one core. Polls run on the poller's thread, never on a request.
2. Explorer side: events stored with ``Store.add`` (ingest, batches of 500) while ``Live`` evaluates
   ``examples/playbooks.yaml`` on them from the store on its own thread; ingest alone is measured
   first, in the same run. Reported: ingest events/s alone and with live evaluation running, live
   evaluation's events/s, and how far it lags when ingest ends.

Not a test: the machine is shared and noisy, so read the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import requests  # noqa: E402
from playbooks import BATCH, traffic  # noqa: E402

from sqreen_otel.actions import ActionsPoller  # noqa: E402
from sqreen_otel.blocking import BlockList  # noqa: E402
from sqreen_otel.explorer.live import Live  # noqa: E402
from sqreen_otel.explorer.store import Store  # noqa: E402

INTERVAL = 5.0
DECISIONS = 2_500


def poll_costs(tmp: Path, polls: int) -> tuple[float, float]:
    """CPU seconds per full poll and per 304 poll, in this process."""
    db = tmp / "feed.sqlite"
    with Store(db) as store:
        for i in range(DECISIONS):
            store.add_action("block_ip", ip=f"198.51.{i // 250}.{i % 250}", duration=3600)
    port = 40_000 + os.getpid() % 20_000
    cli = str(Path(sys.executable).parent / "sqreen-otel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    server = subprocess.Popen([cli, "serve", "--db", str(db), "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/actions"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit("the explorer did not start") from None
                time.sleep(0.05)
        poller = ActionsPoller(url, BlockList(), interval=INTERVAL)
        assert poller.poll_once()
        start = time.process_time()
        for _ in range(polls):
            poller._etag = None  # forget the ETag: a full fetch every time
            assert poller.poll_once()
        full = (time.process_time() - start) / polls
        start = time.process_time()
        for _ in range(polls):
            assert not poller.poll_once()  # 304
        conditional = (time.process_time() - start) / polls
        return full, conditional
    finally:
        server.terminate()
        server.wait(10)


def live_lag(tmp: Path, n: int) -> tuple[float, float, float, float]:
    """(ingest alone ev/s, ingest with live ev/s, live ev/s, lag in s when ingest ends)."""
    records = traffic(n)
    batches = [records[i : i + BATCH] for i in range(0, n, BATCH)]
    with Store(tmp / "alone.sqlite") as store:
        start = time.perf_counter()
        for batch in batches:
            store.add(batch)
        alone = n / (time.perf_counter() - start)
    os.environ.setdefault("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/slack")  # channels must be set; never reached
    os.environ.setdefault("SOC_WEBHOOK_URL", "http://127.0.0.1:9/soc")
    os.environ.setdefault("SOC_HMAC_KEY", "k")
    store = Store(tmp / "live.sqlite")
    live = Live(store, HERE.parent / "examples" / "playbooks.yaml", max_age=None).start()
    assert live.wait_ready()
    try:
        start = time.perf_counter()
        for batch in batches:
            store.add(batch)
            live.nudge()
        ingested = time.perf_counter() - start
        last = store._conn().execute("SELECT max(id) FROM events").fetchone()[0]
        while live.status()["cursor"] < last:
            time.sleep(0.01)
        total = time.perf_counter() - start
        return alone, n / ingested, n / total, total - ingested
    finally:
        live.close()
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n, polls = (20_000, 50) if args.quick else (100_000, 200)
    with tempfile.TemporaryDirectory() as tmp:
        full, conditional = poll_costs(Path(tmp), polls)
        alone, with_live, live_rate, lag = live_lag(Path(tmp), n)
    print(f"Agent polling /v1/actions with {DECISIONS:,} decisions ({polls} polls each), CPU of the app process:")
    print(f"  {'full fetch (200, parse, swap)':<40} {full * 1e3:8.2f} ms/poll  1.00x")
    print(f"  {'conditional (304, unchanged)':<40} {conditional * 1e3:8.2f} ms/poll  {conditional / full:.3f}x")
    print(f"  {'304 every 5 s, share of one core':<40} {conditional / INTERVAL * 100:8.4f} %")
    print(f"\nLive evaluation of examples/playbooks.yaml, {n:,} events in batches of {BATCH}:")
    print(f"  {'ingest alone':<40} {alone:10,.0f} events/s  1.00x")
    print(f"  {'ingest with live evaluation running':<40} {with_live:10,.0f} events/s  {with_live / alone:.2f}x")
    print(f"  {'live evaluation (store -> engine)':<40} {live_rate:10,.0f} events/s  {live_rate / alone:.2f}x")
    print(f"  {'lag when ingest ended':<40} {lag:10.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
