"""Scrubbing benchmark: recall and false positives on the corpus, and the cost of a value.

    python benchmarks/scrub.py            # full run (about half a minute)
    python benchmarks/scrub.py --quick    # fewer timing rounds
    python benchmarks/scrub.py --misses   # also list what each rule set missed or over-masked

Rule sets, side by side:

* ``before``: this project's scrubber as of commit ``BASELINE`` (loaded from git, not kept as a copy);
* ``after``: the current scrubber;
* ``Sentry``: sentry-python's default ``EventScrubber`` (``DEFAULT_DENYLIST``, keys compared whole,
  lower-cased; values are not scanned), re-implemented from ``sentry_sdk/scrubber.py``;
* ``Datadog``: the tracers' default key obfuscation regex (libddwaf's ``obfuscator_key_regex``) on
  keys, the default query-string obfuscation regex (``DD_TRACE_OBFUSCATION_QUERY_STRING_REGEXP``,
  case-insensitive) on values, and the Agent's credit-card obfuscation (a whole value of 12-19 digits
  with a known issuer prefix, no Luhn check: its default), re-implemented from their published text.

Prints one Markdown table. The corpus is ``tests/scrub_corpus`` (each case cites its source). Cost is
the mean time to scrub one string value that is not in the verdict cache (``Scrubber.redact``), best
of several interleaved rounds, for typical event values and for the corpus's own values, with the
ratio after/before measured in the same run: read the ratio, the machine is shared. Sentry's and
Datadog's re-implementations are not timed (they are not their real code).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from scrub_corpus.corpus import Case, Score, load, score  # noqa: E402

from sqreen_otel import cards  # noqa: E402
from sqreen_otel.scrub import GUARDED, Scrubber  # noqa: E402
from sqreen_otel.values import clean  # noqa: E402

BASELINE = "3e9ed5b"  # main when issue 7 started
MAX_LEN = 4096

SENTRY_DENYLIST = [
    "password", "passwd", "secret", "api_key", "apikey", "auth", "credentials", "mysql_pwd", "privatekey",
    "private_key", "token", "ip_address", "session", "csrftoken", "sessionid", "remote_addr", "x_csrftoken",
    "x_forwarded_for", "set_cookie", "cookie", "authorization", "x_api_key", "x_real_ip", "aiohttp_session",
    "connect.sid", "csrf_token", "csrf", "_csrf", "_csrf_token", "PHPSESSID", "_session", "symfony",
    "user_session", "_xsrf", "XSRF-TOKEN",
]  # fmt: skip
DATADOG_KEY = re.compile(
    r"(?i)pass|pw(?:or)?d|secret|(?:api|private|public|access)[_-]?key|token|consumer[_-]?(?:id|key|secret)"
    r"|sign(?:ed|ature)|bearer|authorization|jsessionid|phpsessid|asp\.net[_-]sessionid|sid|jwt"
)
DATADOG_VALUE = re.compile(
    r"(?:(?:\"|%22)?)(?:(?:old[-_]?|new[-_]?)?p(?:ass)?w(?:or)?d(?:1|2)?|pass(?:[-_]?phrase)?|secret"
    r"|(?:api[-_]?|private[-_]?|public[-_]?|access[-_]?|secret[-_]?|app(?:lication)?[-_]?)key(?:[-_]?id)?"
    r"|token|consumer[-_]?(?:id|key|secret)|sign(?:ed|ature)?|auth(?:entication|orization)?)"
    r"(?:(?:\s|%20)*(?:=|%3D)[^&]+|(?:\"|%22)(?:\s|%20)*(?::|%3A)(?:\s|%20)*(?:\"|%22)(?:%2[^2]|%[^2]|[^\"%])+(?:\"|%22))"
    r"|(?:bearer(?:\s|%20)+[a-z0-9._\-]+|token(?::|%3A)[a-z0-9]{13}|gh[opsu]_[0-9a-zA-Z]{36}"
    r"|ey[I-L](?:[\w=-]|%3D)+\.ey[I-L](?:[\w=-]|%3D)+(?:\.(?:[\w.+/=-]|%3D|%2F|%2B)+)?"
    r"|-{5}BEGIN(?:[a-z\s]|%20)+PRIVATE(?:\s|%20)KEY-{5}[^\-]+-{5}END(?:[a-z\s]|%20)+PRIVATE(?:\s|%20)KEY(?:-{5})?(?:\n|%0A)?"
    r"|(?:ssh-(?:rsa|dss)|ecdsa-[a-z0-9]+-[a-z0-9]+)(?:\s|%20|%09)+(?:[a-z0-9/.+]|%2F|%5C|%2B){100,}(?:=|%3D)*"
    r"(?:(?:\s|%20|%09)+[a-z0-9._-]+)?)",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"[0-9][0-9 -]{10,}[0-9]")


def load_baseline() -> type[Scrubber]:
    """The Scrubber class of ``BASELINE``, from git, as a throwaway module."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BASELINE}:sqreen_otel/scrub.py"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot read the baseline scrubber from git ({BASELINE}): {exc}") from None
    source = source.replace("from .settings import Settings", "from sqreen_otel.settings import Settings")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scrub_baseline.py"
        path.write_text(source, "utf-8")
        spec = importlib.util.spec_from_file_location("scrub_baseline", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

    class Baseline(module.Scrubber):  # type: ignore[misc, name-defined]
        """The old rules, with the hooks today's value walk asks for (the old rules had no such checks)."""

        def named_value_key(self, mapping: Any) -> None:
            return None

        def nested_key(self, parent: str, key: str) -> int:
            return GUARDED

        def identifier_key(self, key: str) -> bool:
            return False

        def benign_secret_value(self, value: Any) -> bool:
            return False  # the old rules masked every value under a sensitive key

    return Baseline


def sentry(key: str, value: Any) -> Any:
    return "[Filtered]" if key.lower() in {k.lower() for k in SENTRY_DENYLIST} else value


def datadog(key: str, value: Any) -> Any:
    if DATADOG_KEY.search(key):
        return "<redacted>"
    if not isinstance(value, str):
        return value
    compact = value.replace(" ", "").replace("-", "")
    whole_card = _DIGITS.fullmatch(value) and compact.isdigit() and cards.MIN_DIGITS <= len(compact) <= cards.MAX_DIGITS
    if whole_card and cards.issuer_fits(compact):
        return "?"
    return DATADOG_VALUE.sub("<redacted>", value)


def ours(scrubber: Any) -> Callable[[str, Any], Any]:
    return lambda key, value: clean({key: value}, scrubber, MAX_LEN)[key]


def typical_values(count: int) -> list[str]:
    """Event property values as track() sees them, each one different (so never a cache hit)."""
    shapes = [
        "example{i}.com", "plan-{i}", "C{i}", "password reset {i} requested from settings page",
        "https://example.com/account/{i}?tab=billing", "alice{i}@example.com", "Mozilla/5.0 (X11; Linux x86_64) {i}",
        "order ORD-2024-{i:06d}", "/api/v1/items/{i}", "checkout step {i} completed", "user_{i}", "{i}",
        "2026-12-01T10:{m:02d}:00Z", "10.0.{a}.{b}", "The quick brown fox {i} jumps over the lazy dog",
    ]  # fmt: skip
    return [shapes[i % len(shapes)].format(i=i, m=i % 60, a=i % 250, b=i % 199) for i in range(count)]


def cost(makers: list[Callable[[], Any]], values: list[str], rounds: int) -> list[float]:
    """Best-of-``rounds`` mean microseconds per ``redact`` of a value not in the cache, for each maker.

    Rounds alternate between the makers, so that a load change on the machine hits all of them.
    """
    best = [float("inf")] * len(makers)
    for _ in range(rounds):
        for index, make in enumerate(makers):
            scrubber = make()
            redact = scrubber.redact
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                for value in values:
                    redact(value)
                best[index] = min(best[index], (time.perf_counter() - start) / len(values) * 1e6)
            finally:
                gc.enable()
    return best


def _row(name: str, result: Score) -> str:
    return (
        f"| {name} | {result.caught}/{result.secrets} | {result.recall:.1%} "
        f"| {result.masked}/{result.harmless} | {result.false_positive_rate:.1%} |"
    )


def _by_file(cases: list[Case]) -> str:
    counts: dict[str, list[int]] = {}
    for case in cases:
        pair = counts.setdefault(case.file, [0, 0])
        pair[0 if case.secret is not None else 1] += 1
    return ", ".join(f"{name}: {s} secrets + {h} harmless" for name, (s, h) in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer timing rounds")
    parser.add_argument("--misses", action="store_true", help="list each rule set's misses and over-masking")
    args = parser.parse_args()

    cases = load()
    before_class = load_baseline()
    rule_sets: list[tuple[str, Callable[[str, Any], Any]]] = [
        (f"sqreen_otel before ({BASELINE})", ours(before_class())),
        ("sqreen_otel after", ours(Scrubber())),
        ("Sentry (sentry-python defaults)", sentry),
        ("Datadog (tracer + Agent defaults)", datadog),
    ]
    rounds = 3 if args.quick else 7
    typical = typical_values(20_000 if args.quick else 50_000)
    corpus_strings = [f"{c.value} {i}" for i in range(20) for c in cases if isinstance(c.value, str)]
    costs = {
        label: cost([before_class, Scrubber], values, rounds)
        for label, values in (("typical", typical), ("corpus", corpus_strings))
    }

    print(f"Corpus: {len(cases)} cases ({_by_file(cases)})\n")
    print(
        "| rule set | secrets caught | recall | harmless masked | false-positive rate "
        "| cost per typical value (us) | cost per corpus value (us) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = []
    for index, (name, fn) in enumerate(rule_sets):
        result = score(fn, cases)
        results.append((name, result))
        timing = " | | |"
        if index < 2:  # cache misses, "before" and "after" measured in the same run, interleaved
            typical_cost, corpus_cost = costs["typical"][index], costs["corpus"][index]
            if index == 0:
                timing = f" | {typical_cost:.2f} | {corpus_cost:.2f} |"
            else:
                typical_ratio = typical_cost / costs["typical"][0]
                corpus_ratio = corpus_cost / costs["corpus"][0]
                timing = f" | {typical_cost:.2f} ({typical_ratio:.2f}x) | {corpus_cost:.2f} ({corpus_ratio:.2f}x) |"
        print(_row(name, result) + timing[2:])

    if args.misses:
        for name, result in results:
            print(f"\n## {name}")
            for case in result.missed:
                print(f"  missed      {case.file}: {case.key!r} = {str(case.value)[:100]!r}")
            for case in result.over_masked:
                print(f"  over-masked {case.file}: {case.key!r} = {str(case.value)[:100]!r}")


if __name__ == "__main__":
    main()
