"""``sqreen-otel playbooks check|test|backtest FILE``: the terminal side of playbooks.

Exit status: 0 good (valid file; every test passed; backtest done), 1 a bad file (its line and
field on stderr), a failed test, or a database that cannot be read; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import PlaybookSet


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_db: str) -> None:
    """The ``playbooks`` command and its subcommands, on the main parser's subparsers."""
    p = sub.add_parser("playbooks", help="check, test and backtest a playbooks file")
    commands = p.add_subparsers(dest="playbooks_command", required=True)
    c = commands.add_parser("check", help="validate a playbooks file (errors give the line and field)")
    c.add_argument("file")
    c = commands.add_parser("test", help="run the tests: of each playbook and of the file")
    c.add_argument("file")
    c.add_argument("-v", "--verbose", action="store_true", help="also list the tests that pass")
    c = commands.add_parser("backtest", help="replay stored events through the playbooks (nothing is served)")
    c.add_argument("file")
    source = c.add_mutually_exclusive_group()
    source.add_argument("--db", default=default_db, help=f"the explorer's SQLite file (default: {default_db})")
    source.add_argument("--events", metavar="FILE.jsonl", help="events in the import format (sqreen-otel export)")
    c.add_argument("--since", type=_since, help="history to replay: a duration back from now (default: 7d of "
                                                "the database, all of an --events file)")  # fmt: skip
    c.add_argument("--json", action="store_true", help='as JSON: {"playbooks": {"<id>": {"alerts": N, ...}}}')


def _since(raw: str) -> float:
    from .spec import parse_duration

    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(path: str) -> PlaybookSet | None:
    from .spec import PlaybookError, load

    try:
        return load(path, strict_env=False)
    except PlaybookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    playbooks = _load(args.file)
    if playbooks is None:
        return 1
    if args.playbooks_command == "check":
        return _check(playbooks)
    if args.playbooks_command == "test":
        return _test(playbooks, args.verbose)
    return _backtest(playbooks, args)


def _check(playbooks: PlaybookSet) -> int:
    tests = [(p.id, t) for p in playbooks.playbooks for t in p.tests] + [("tests", t) for t in playbooks.tests]
    missing = [(where, t) for where, t in tests if t.file is not None and not os.path.isfile(t.file)]
    for where, test in missing:
        print(f"error: {playbooks.source}:{test.line}: {where}: test {test.name!r}: no events file {test.file}",
              file=sys.stderr)  # fmt: skip
    if missing:
        return 1
    for name in playbooks.missing_env:
        print(f"warning: {playbooks.source}: environment variable {name} is not set (the server needs it)",
              file=sys.stderr)  # fmt: skip
    ids = ", ".join(f"{p.id} ({p.mode})" for p in playbooks.playbooks) or "none"
    print(f"{playbooks.source}: OK: {len(playbooks.playbooks)} playbook(s): {ids}; {len(tests)} test(s)")
    return 0


def _test(playbooks: PlaybookSet, verbose: bool) -> int:
    from .testing import run_tests

    outcomes = run_tests(playbooks)
    failed = [o for o in outcomes if not o.passed]
    for outcome in outcomes:
        if not outcome.passed:
            print(f"FAIL {outcome.label}")
            for problem in outcome.problems:
                print(f"    {problem}")
        elif verbose:
            print(f"ok   {outcome.label} ({outcome.alerts} alert(s), {outcome.decisions} decision(s))")
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _backtest(playbooks: PlaybookSet, args: argparse.Namespace) -> int:
    from ..store import Store
    from .backtest import run_store

    since = args.since if args.since is not None else (None if args.events else 7 * 86400.0)
    since_ns = None if since is None else max(0, int((time.time() - since) * 1e9))
    if args.events:
        from .backtest import run
        from .testing import TestInputError, expand, read_jsonl

        try:
            events = [e for e in expand(read_jsonl(args.events), None) if since_ns is None or e.time_ns >= since_ns]
        except TestInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        report = run(playbooks, events)
    else:
        if not os.path.isfile(args.db):
            print(f"error: no event database at {args.db} (give --db or --events)", file=sys.stderr)
            return 1
        try:
            with Store(args.db) as store:
                report = run_store(playbooks, store, since_ns)
        except Exception as exc:  # sqlite3 errors, a newer schema...
            print(f"error: cannot read {args.db}: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return 0
    start = (
        "the start"
        if since_ns is None
        else f"{_dt.datetime.fromtimestamp(since_ns / 1e9, _dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    )
    print(f"backtest of {report.events} event(s) since {start} (nothing served)")
    for playbook_id, r in report.playbooks.items():
        print(f"\n{playbook_id} ({r.mode}): {r.alerts} alert(s), {r.decisions} decision(s)")
        for target in r.targets:
            print(f"  {target['action']} {target['target']}: {target['decisions']} decision(s)")
        for item in r.collateral:
            print(f"  collateral: {item['target']}: {item['why']}")
        w = r.window_counts
        if w.get("groups"):
            playbook = playbooks.get(playbook_id)
            within = f"{playbook.window:g} s" if playbook else "window"
            print(f"  busiest {within} per group ({w['groups']} groups): p50 {w['p50']}, p90 {w['p90']}, "
                  f"p99 {w['p99']}, max {w['max']}; a count of {r.suggested_count} spares 99% of groups")  # fmt: skip
    return 0
