"""Security automation playbooks: detect attacks in stored events and respond by themselves.

The public API, for the explorer's live evaluation, the CLI and tests::

    from sqreen_otel.explorer.playbooks import load, Engine, PlaybookError

    playbooks = load("playbooks.yaml")          # PlaybookError(line, field) when the file is bad
    engine = Engine(playbooks, trusted_proxies=["192.0.2.0/29"])
    result = engine.process(events)             # store.Event objects (or anything shaped like one)
    result.alerts_opened, result.alerts_updated, result.decisions, result.notifications

- ``spec``: the file format (dataclasses, ``load``/``loads``, durations, ``${ENV}``).
- ``fields``: reading ``properties.x``, ``user.email``, ``client.address``... on a stored event.
- ``expr``: ``where`` expressions (CEL, compiled at load time).
- ``detect``: the threshold and sequence detectors (per-group state).
- ``engine``: the pure engine (events in; alerts, decisions and notification requests out; event time only).
- ``backtest``: stored history through a fresh engine, with a report.
- ``testing``: the runner of the playbooks' ``tests:``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Alert, Decision, Engine, NotifyRequest, Result
    from .spec import PlaybookError, PlaybookSet, load, loads

# Imported on first use: the CLI builds its parser from ``commands`` without loading CEL and YAML.
_HOMES = {"Alert": "engine", "Decision": "engine", "Engine": "engine", "NotifyRequest": "engine", "Result": "engine",
          "PlaybookError": "spec", "PlaybookSet": "spec", "load": "spec", "loads": "spec"}  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = [
    "Alert",
    "Decision",
    "Engine",
    "NotifyRequest",
    "PlaybookError",
    "PlaybookSet",
    "Result",
    "load",
    "loads",
]
