"""Benchmark: events/s through the playbooks engine, side by side with plain store ingest, one core.

    python benchmarks/playbooks.py            # 200,000 events, 3 rounds
    python benchmarks/playbooks.py --quick    # 50,000 events, 1 round

The five playbooks of examples/playbooks.yaml over a traffic mix with 10,000 distinct group keys
(client addresses and accounts): logins (70% successes), signups, password resets and an event no
playbook reads, with a credential-stuffing run and a distributed brute force inside so that alerts
and decisions happen. Rows (process CPU time, one thread, median of alternating rounds):

- engine: ``Engine.process`` on batches of 500 stored events (what the explorer's writer hands it);
- engine, all by cel-python: the same with every ``where`` evaluated by cel-python (no native code, no cache);
- a high-cardinality ``where`` (``user.email.endsWith(...)`` over ever-new addresses, as a hostile
  client could send): evaluations/s natively, and through cel-python with the result cache (all misses);
- store ingest: ``Store.add`` of the same events (decoded OTLP dicts) into SQLite, batches of 500;
- ingest + engine: both, as the live explorer does per committed batch.

Not a test: the machine is shared and noisy, so read the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sqreen_otel.explorer.playbooks import Engine, load  # noqa: E402
from sqreen_otel.explorer.playbooks import expr as _expr  # noqa: E402
from sqreen_otel.explorer.playbooks.fields import make_event  # noqa: E402
from sqreen_otel.explorer.store import Event, Store  # noqa: E402

KEYS = 10_000
BATCH = 500
T0 = 1_704_067_200 * 10**9


def traffic(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` events as decoded OTLP dicts, over ``KEYS`` addresses and ``KEYS`` accounts, about 20 per second."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + i * 50_000_000
        key = rng.randrange(KEYS)
        ip, email = f"198.{51 + key // 62500}.{key // 250 % 250}.{key % 250}", f"user{rng.randrange(KEYS)}@example.com"
        r = rng.random()
        if i % 20_000 < 60:  # bursts: stuffing from one address, then brute force on one account
            attack = i // 20_000
            if i % 20_000 < 30:
                ip, email, r = f"203.0.113.{attack % 250}", f"victim{i % 30}@example.com", 0.0
            else:
                ip, email, r = f"203.0.{attack % 250}.{i % 30}", f"target{attack}@example.com", 0.0
        if r < 0.2:
            name, attrs = "sq.sdk.users.login", {"sqreen.properties.success": False}
        elif r < 0.65:
            name, attrs = "sq.sdk.users.login", {"sqreen.properties.success": True}
        elif r < 0.7:
            name, attrs = "sq.sdk.users.signup", {}
        elif r < 0.75:
            name, attrs = "password_reset", {"sqreen.properties.email": email}
        else:
            name, attrs = "order_placed", {"sqreen.properties.amount": rng.randint(1, 500)}
        attrs |= {"sqreen.user.email": email, "client.address": ip, "url.path": "/login", "http.request.method": "POST"}
        out.append({"name": name, "time_unix_nano": t, "attributes": attrs, "resource": {"service.name": "shop"}})
    return out


def as_events(records: list[dict[str, Any]]) -> list[Event]:
    events = []
    for i, r in enumerate(records, 1):
        a = r["attributes"]
        event = make_event(i, r["time_unix_nano"], r["name"], user={"email": a["sqreen.user.email"]},
                           ip=a["client.address"], path="/login", method="POST", resource=r["resource"])  # fmt: skip
        event.attributes.update(a)
        events.append(event)
    return events


def _cpu(run: Callable[[], None]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        run()
        return time.process_time() - start
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n, rounds = (50_000, 1) if args.quick else (200_000, 3)
    playbooks = load(os.path.join(HERE, "..", "examples", "playbooks.yaml"), strict_env=False)
    records = traffic(n)
    events = as_events(records)
    batches = [events[i : i + BATCH] for i in range(0, n, BATCH)]
    record_batches = [records[i : i + BATCH] for i in range(0, n, BATCH)]
    times: dict[str, list[float]] = {"engine": [], "uncached": [], "ingest": [], "both": [], "native": [], "cached": []}
    outputs: dict[str, Any] = {}
    uncached_n = min(n, 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            engine = Engine(playbooks)
            alerts = decisions = 0

            def run_engine(engine: Engine = engine) -> None:
                nonlocal alerts, decisions
                for batch in batches:
                    result = engine.process(batch)
                    alerts += len(result.alerts_opened)
                    decisions += len(result.decisions)

            times["engine"].append(n / _cpu(run_engine))
            outputs = {"alerts": alerts, "decisions": decisions, "stats": engine.stats()}

            saved = _expr.Where.matches
            _expr.Where.matches = _expr.Where.evaluate  # type: ignore[method-assign]
            try:
                slow = Engine(playbooks)
                few = batches[: uncached_n // BATCH]
                times["uncached"].append(uncached_n / _cpu(lambda slow=slow, few=few: [slow.process(b) for b in few]))
            finally:
                _expr.Where.matches = saved  # type: ignore[method-assign]

            fresh = [make_event(i, T0, "x", user={"email": f"u{round_}-{i}@example.com"}) for i in range(uncached_n)]
            text = 'user.email.endsWith("@example.org")'
            native = _expr.Where(text)
            times["native"].append(uncached_n / _cpu(lambda w=native, f=fresh: [w.matches(e) for e in f]))
            cached = _expr.Where(text)
            cached._native = None  # the result cache alone
            times["cached"].append(uncached_n / _cpu(lambda w=cached, f=fresh: [w.matches(e) for e in f]))

            store = Store(os.path.join(tmp, f"ingest{round_}.sqlite"))
            times["ingest"].append(n / _cpu(lambda store=store: [store.add(b) for b in record_batches]))
            store.close()

            store = Store(os.path.join(tmp, f"both{round_}.sqlite"))
            live = Engine(playbooks)

            def run_both(store: Store = store, live: Engine = live) -> None:
                for records_batch, batch in zip(record_batches, batches, strict=True):
                    store.add(records_batch)
                    live.process(batch)

            times["both"].append(n / _cpu(run_both))
            store.close()
    rate = {k: statistics.median(v) for k, v in times.items()}
    groups = sum(p["groups"] for p in outputs["stats"]["playbooks"].values())
    print(f"{n:,} events, {KEYS:,} addresses x {KEYS:,} accounts, 5 playbooks ({groups:,} groups held), "
          f"{rounds} round(s), one core (process CPU time, median)")  # fmt: skip
    print(f"alerts {outputs['alerts']}, decisions {outputs['decisions']}\n")
    print(f"{'what':<34}{'events/s':>12}  ratio")
    rows = [
        ("engine (5 playbooks)", rate["engine"], "1.00 (target >= 50,000/s)"),
        ("engine, all by cel-python", rate["uncached"], f"{rate['uncached'] / rate['engine']:.3f} of engine"),
        ("high-cardinality where, native", rate["native"], "1.00 (evaluations/s)"),
        ("high-cardinality where, cached", rate["cached"], f"{rate['cached'] / rate['native']:.3f} of native"),
        ("store ingest (Store.add)", rate["ingest"], f"{rate['ingest'] / rate['engine']:.2f} of engine"),
        ("ingest + engine", rate["both"], f"{rate['both'] / rate['ingest']:.2f} of plain ingest"),
    ]
    for what, value, ratio in rows:
        print(f"{what:<34}{value:>12,.0f}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
