"""``sqreen-otel export``: a running explorer's events as JSON Lines in the import format.

``sqreen-otel import`` reads the file back (into another explorer, or the same one), and playbook
backtests read it as a file of events: a dataset moves with its names, times, properties, user
identifiers and requests (client IP, user agent, path, method, parameters, body). What ``track()`` makes
anew for each event is not carried: trace and span ids, the resource (``service.name`` becomes the
importer's), the record id, the peer address and user traits.

Events come in the order the explorer stored them (its ids, as ``tail`` and backtests read them), in
pages of the JSON API, up to the newest event stored when the export starts: a busy explorer cannot
make it run forever.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
from dataclasses import dataclass
from typing import IO, Any

from .explorer.client import ExplorerClient
from .importer import Rejected, import_object, parse_timestamp

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_moment(raw: str, *, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch from ``7d`` / ``24h`` / ``30m`` / ``90s`` / ``2w`` (that long ago), ISO 8601
    (naive means UTC) or epoch seconds; ``ValueError`` naming the problem."""
    text = raw.strip()
    match = _DURATION.fullmatch(text.lower())
    if match:
        now_ns = time.time_ns() if now_ns is None else now_ns
        return now_ns - int(float(match[1]) * _UNIT_SECONDS[match[2]] * 1e9)
    try:
        moment = parse_timestamp(text)
    except Rejected:
        raise ValueError(
            f"expected a duration (7d, 24h, 30m, 90s, 2w), ISO 8601 or epoch seconds, got {raw!r}"
        ) from None
    delta = moment - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@dataclass(frozen=True)
class Selection:
    name: str | None = None
    user: str | None = None
    ip: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    prop: str | None = None


def export_events(client: ExplorerClient, out: IO[bytes], selection: Selection = Selection()) -> int:
    """Write the selected events to ``out``, one import-format object a line; how many were written.

    UTF-8; a lone surrogate (which UTF-8 cannot hold) is written as its JSON escape, so the line stays valid.
    """
    last = client.newest_id()
    after, written = 0, 0
    while after < last:
        page = client.tail(
            after, name=selection.name, user=selection.user, ip=selection.ip, since_ns=selection.since_ns,
            until_ns=selection.until_ns, prop=selection.prop,
        )  # fmt: skip
        if not page:
            break
        for event in page:
            if int(event["id"]) > last:
                return written
            obj = import_object(event["name"], int(event["time_ns"]), event.get("attributes") or {})
            line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_text)
            out.write(line.encode("utf-8", "backslashreplace") + b"\n")
            written += 1
        after = int(page[-1]["id"])
    return written


def _text(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)
