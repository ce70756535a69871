"""The scrubbing corpus: real-world secrets and harmless look-alikes, each citing its public source.

Each line of ``*.jsonl`` here is ``{"key", "value", "source"}`` plus, for a secret, ``"secret"``: the
part of the value that must not survive. A secret is caught when that part is absent from the
scrubbed output; a harmless value is masked when the output differs from the input.

``wild``, ``unseen``, ``events``, ``heldout2`` and ``heldout3`` were written before the rule changes they led to and
scored as they were first run (README, "PII scrubbing"): read those first runs as the estimate for
unseen material, not the totals after the fixes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Case:
    key: str
    value: Any
    secret: str | None
    source: str
    file: str


@dataclass(frozen=True)
class Score:
    secrets: int
    caught: int
    harmless: int
    masked: int
    missed: tuple[Case, ...]
    over_masked: tuple[Case, ...]

    @property
    def recall(self) -> float:
        return self.caught / self.secrets if self.secrets else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.masked / self.harmless if self.harmless else 0.0


def load() -> list[Case]:
    cases = []
    for path in sorted(HERE.glob("*.jsonl")):
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if not row.get("source"):
                    raise ValueError(f"{path.name}:{number}: entry without a source")
                cases.append(Case(row["key"], row["value"], row.get("secret"), row["source"], path.name))
    return cases


def score(scrub: Callable[[str, Any], Any], cases: list[Case]) -> Score:
    """``scrub(key, value)`` returns what would be sent for that one property."""
    missed, over = [], []
    secrets = caught = harmless = masked = 0
    for case in cases:
        out = scrub(case.key, case.value)
        if case.secret is not None:
            secrets += 1
            if case.secret in json.dumps(out, ensure_ascii=False) or case.secret in str(out):
                missed.append(case)
            else:
                caught += 1
        else:
            harmless += 1
            if out != case.value:
                masked += 1
                over.append(case)
    return Score(secrets, caught, harmless, masked, tuple(missed), tuple(over))
