"""Axes for the events histogram: time ticks on round UTC boundaries, count ticks on round numbers, log scale.

Pure functions of numbers, so the page (``ui``) only draws what they return. Time ticks step through
1-2-5 multiples of micro-, milli- and seconds, then 1, 2, 5, 10, 15, 30 minutes, 1, 2, 3, 6, 12 hours,
days, weeks, calendar months and years, choosing the smallest step that keeps at most ``max_ticks``
ticks; labels show as much as the step needs (``12:30``, ``12:30:15``, ``12:30:15.250``,
``2026-03-15``), with the date again wherever the day changes.
"""

from __future__ import annotations

import datetime as _dt
import math

_US, _MS, _S = 1_000, 1_000_000, 1_000_000_000
_MIN, _H, _D = 60 * _S, 3600 * _S, 86400 * _S
_FIXED_STEPS = (
    *(n * _US for n in (1, 2, 5, 10, 20, 50, 100, 200, 500)),
    *(n * _MS for n in (1, 2, 5, 10, 20, 50, 100, 200, 500)),
    *(n * _S for n in (1, 2, 5, 10, 15, 30)),
    *(n * _MIN for n in (1, 2, 5, 10, 15, 30)),
    *(n * _H for n in (1, 2, 3, 6, 12)),
    _D, 2 * _D, 7 * _D, 14 * _D,
)  # fmt: skip
_MONTH_STEPS = (1, 2, 3, 6)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MAX_YEAR = 9999


def utc(ns: int) -> _dt.datetime:
    """The UTC time of ``ns`` nanoseconds since the epoch, to the microsecond (clamped to datetime's years)."""
    try:
        return _EPOCH + _dt.timedelta(microseconds=ns // 1000)
    except OverflowError:
        return _dt.datetime(_MAX_YEAR, 12, 31, 23, 59, 59, tzinfo=_dt.timezone.utc) if ns > 0 else _EPOCH


def _ns(moment: _dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * _S + delta.microseconds * _US


def time_ticks(start_ns: int, end_ns: int, max_ticks: int = 8) -> list[tuple[int, str]]:
    """``(ns, label)`` for the round UTC times within ``[start_ns, end_ns]``, at most ``max_ticks`` of them."""
    span = end_ns - start_ns
    if span <= 0:
        return [(start_ns, label(start_ns, _S, None))]
    for step in _FIXED_STEPS:
        if span // step + 1 <= max_ticks:
            first = -(-start_ns // step) * step
            times = list(range(first, end_ns + 1, step))
            return _labelled(times, step)
    for months in (*_MONTH_STEPS, *(12 * n for n in _years(span, max_ticks))):
        times = _calendar(start_ns, end_ns, months)
        if len(times) <= max_ticks:
            return _labelled(times, months * 30 * _D)
    return _labelled([start_ns, end_ns], span)


def _years(span: int, max_ticks: int) -> list[int]:
    """Year steps of 1-2-5 multiples, up to one that surely fits."""
    steps: list[int] = []
    magnitude = 1
    while not steps or steps[-1] * 365 * _D * (max_ticks - 1) < span:
        steps += [magnitude, 2 * magnitude, 5 * magnitude]
        magnitude *= 10
    return steps


def _calendar(start_ns: int, end_ns: int, months: int) -> list[int]:
    """The first days of months (a multiple of ``months`` since year 0) within the range."""
    begin, finish = utc(start_ns), utc(end_ns)
    index = begin.year * 12 + begin.month - 1
    index = -(-index // months) * months
    if _dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=_dt.timezone.utc) < begin:
        index += months
    times = []
    while index // 12 <= min(finish.year, _MAX_YEAR):
        moment = _dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=_dt.timezone.utc)
        if moment > finish:
            break
        times.append(_ns(moment))
        index += months
    return times


def _labelled(times: list[int], step: int) -> list[tuple[int, str]]:
    ticks, previous = [], None
    for ns in times:
        ticks.append((ns, label(ns, step, previous)))
        previous = ns
    return ticks


def label(ns: int, step: int, previous: int | None) -> str:
    """A tick's text: the precision its step needs; the date on the first tick and when the day changes."""
    moment = utc(ns)
    if step >= 300 * _D:
        return f"{moment:%Y}"
    if step >= 28 * _D:
        return f"{moment:%Y-%m}"
    if step >= _D:
        return f"{moment:%Y-%m-%d}"
    if step >= _MIN:
        clock = f"{moment:%H:%M}"
    elif step >= _S:
        clock = f"{moment:%H:%M:%S}"
    elif step >= _MS:
        clock = f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"
    else:
        clock = f"{moment:%H:%M:%S}.{moment.microsecond:06d}"
    if previous is None or utc(previous).date() != moment.date():
        return f"{moment:%Y-%m-%d} {clock}"
    return clock


def moment_text(ns: int, width: int) -> str:
    """A bucket boundary for a tooltip: ``2026-03-15 12:30:15 UTC``, with milli- or microseconds when buckets
    are that narrow, so that the two ends of a sub-second bucket never read the same."""
    moment = utc(ns)
    if width >= _S:
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    if width >= _MS:
        return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond:06d} UTC"


def count_ticks(top: int, *, log: bool = False, max_ticks: int = 5) -> list[int]:
    """Round counts from 0 up to ``top``: 1-2-5 multiples (linear), or powers of ten from 1 (log)."""
    if top <= 0:
        return [0]
    if log:
        return [0, *(10**k for k in range(int(math.log10(top)) + 1))]
    raw = top / (max_ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    return list(range(0, top + 1, step))


def scaled(count: float, top: int, *, log: bool = False) -> float:
    """Where ``count`` sits between 0 and ``top`` on the axis, from 0.0 to 1.0 (log: ``log10(1 + n)``)."""
    if top <= 0 or count <= 0:
        return 0.0
    if log:
        return math.log10(1 + count) / math.log10(1 + top)
    return count / top
