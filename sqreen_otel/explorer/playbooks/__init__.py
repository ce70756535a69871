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

from .engine import Alert, Decision, Engine, NotifyRequest, Result
from .spec import PlaybookError, PlaybookSet, load, loads

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
