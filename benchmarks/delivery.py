"""Delivery under faults: this tree against an earlier commit (``--baseline``), same run, one table.

    python benchmarks/delivery.py                      # baseline: the commit before the delivery work
    python benchmarks/delivery.py --baseline HEAD~20   # any commit (extracted with git archive)

Each scenario runs a real interpreter process per side, exporting to a Receiver in this process:

- SIGTERM: 5,000 events queued (60 s heartbeat), then SIGTERM: how many arrived.
- slow backend: 5,000 events, exporter timeout 0.5 s, the backend answers the first 3 requests after
  1 s (it stores them): copies stored, distinct events, and what the process counted.
- always slow: every answer after the timeout, the process gives up at shutdown: stored vs counted.
- recovery: backend down, 200 events, backend back after 3 s: seconds until all arrived (60 s heartbeat).
- track() while the backend is down, memory queue vs spool (this tree only): µs per call.
Not a test: timings on a shared machine; read them side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqreen_otel.receiver import Receiver  # noqa: E402

N = 5000
BASELINE = "3e9ed5b"  # before log.record.uid, SIGTERM, spool and fast recovery


def env(tree: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SQREEN_OTEL_", "OTEL_"))}
    clean.update(PYTHONPATH=str(tree), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return clean


# The tree under test is first on PYTHONPATH; the venv's editable install must not take over.
PROLOGUE = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
)


def script(code: str) -> list[str]:
    return [sys.executable, "-c", PROLOGUE + textwrap.dedent(code)]


def sigterm(tree: Path) -> int:
    with Receiver() as rx:
        proc = subprocess.Popen(
            script(f"""
            import time, sqreen_otel
            sqreen_otel.configure(endpoint={rx.endpoint!r}, flush_interval=60, first_seen_delay=None)
            for i in range({N}):
                sqreen_otel.track("evt", {{"properties": {{"i": i}}}})
            print("ready", flush=True)
            time.sleep(60)
            """),
            env=env(tree),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        time.sleep(0.3)
        return len({e["attributes"]["sqreen.properties.i"] for e in rx.events()})


def slow_backend(tree: Path) -> dict[str, Any]:
    with Receiver() as rx:
        rx.delay_next(1.0, times=3)
        out = subprocess.run(
            script(f"""
            import json, time, sqreen_otel
            sqreen_otel.configure(endpoint={rx.endpoint!r}, timeout=0.5, flush_interval=60, first_seen_delay=None,
                                  max_export_batch_size=512)
            for i in range({N}):
                sqreen_otel.track("evt", {{"properties": {{"i": i}}}})
            deadline = time.monotonic() + 30
            while not sqreen_otel.flush(5) and time.monotonic() < deadline:
                time.sleep(0.5)
            print(json.dumps(sqreen_otel.stats()))
            """),
            env=env(tree),
            capture_output=True,
            text=True,
            timeout=120,
        )
        time.sleep(1.5)  # the delayed answers land
        stats = json.loads(out.stdout)
        events = rx.events()
        return {
            "stored": len(events),
            "distinct": len({e["attributes"]["sqreen.properties.i"] for e in events}),
            "distinct_uids": len({e["attributes"].get("log.record.uid") for e in events} - {None}),
            "exported": stats["exported"],
            "dropped": sum(stats["dropped"].values()),
            "uncertain": stats.get("uncertain", "-"),
        }


def always_slow(tree: Path) -> dict[str, Any]:
    """Every answer later than the timeout; the process gives up at shutdown: what did it count?"""
    with Receiver() as rx:
        rx.delay_next(1.0, times=1000)
        out = subprocess.run(
            script(f"""
            import json, sqreen_otel
            sqreen_otel.configure(endpoint={rx.endpoint!r}, timeout=0.3, flush_interval=60, first_seen_delay=None,
                                  max_export_batch_size=500, shutdown_timeout=2)
            for i in range(2000):
                sqreen_otel.track("evt", {{"properties": {{"i": i}}}})
            sqreen_otel.shutdown()
            print(json.dumps(sqreen_otel.stats()))
            """),
            env=env(tree),
            capture_output=True,
            text=True,
            timeout=120,
        )
        time.sleep(1.5)
        stats = json.loads(out.stdout)
        return {
            "stored (distinct)": len({e["attributes"]["sqreen.properties.i"] for e in rx.events()}),
            "counted dropped": sum(stats["dropped"].values()),
            "counted uncertain": stats.get("uncertain", "-"),
        }


def recovery(tree: Path) -> float:
    rx = Receiver().start()
    endpoint = rx.endpoint
    rx.stop()
    proc = subprocess.Popen(
        script(f"""
        import time, sqreen_otel
        sqreen_otel.configure(endpoint={endpoint!r}, flush_interval=60, first_seen_delay=None)
        for i in range(200):
            sqreen_otel.track("evt", {{"properties": {{"i": i}}}})
        sqreen_otel.flush(1)
        print("ready", flush=True)
        time.sleep(90)
        """),
        env=env(tree),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(3)
        rx.start()
        back = time.monotonic()
        try:
            rx.wait_for(200, timeout=75)
        except TimeoutError:
            return float("inf")
        return time.monotonic() - back
    finally:
        proc.kill()
        proc.wait(10)
        rx.stop()


def track_cost(spool: bool, endpoint: str = "http://127.0.0.1:9/v1/logs") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        extra = f", spool_dir={tmp!r}" if spool else ""
        out = subprocess.run(
            script(f"""
            import time, sqreen_otel
            sqreen_otel.configure(endpoint={endpoint!r}, flush_interval=60, first_seen_delay=None,
                                  shutdown_timeout=0{extra})
            props = {{"a": "x", "b": "y", "c": 1}}
            start = time.perf_counter()
            for i in range(100_000):
                sqreen_otel.track("evt", {{"properties": props}})
            print((time.perf_counter() - start) / 100_000 * 1e6)
            """),
            env=env(REPO),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return float(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help=f"git commit to compare with (default {BASELINE})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "sqreen_otel"], capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        os.chdir(tmp)  # `python -c` puts the current directory first on sys.path
        rows: list[tuple[str, str, str]] = []
        rows.append((f"SIGTERM with {N:,} queued: events delivered", str(sigterm(REPO)), str(sigterm(old))))
        new, base = slow_backend(REPO), slow_backend(old)
        for key in ("stored", "distinct", "distinct_uids", "exported", "dropped", "uncertain"):
            rows.append((f"slow backend, {N:,} events: {key}", str(new[key]), str(base[key])))
        new, base = always_slow(REPO), always_slow(old)
        for key in new:
            rows.append((f"backend always slower than the timeout, 2,000 events: {key}", str(new[key]), str(base[key])))
        rows.append(
            ("recovery after a 3 s outage (s, 60 s heartbeat)", f"{recovery(REPO):.1f}", f"{recovery(old):.1f}")
        )
        with Receiver() as rx:
            up = track_cost(False, rx.endpoint)
        memory, spooled = track_cost(False), track_cost(True)
        rows.append(("track() backend up, memory queue (µs/call)", f"{up:.2f}", "-"))
        rows.append(("track() backend down, memory queue (µs/call)", f"{memory:.2f}", f"ratio {memory / up:.2f} to up"))
        rows.append(("track() backend down, spool_dir (µs/call)", f"{spooled:.2f}", f"ratio {spooled / up:.2f} to up"))
    print(f"| measure | this tree | baseline {args.baseline} |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
