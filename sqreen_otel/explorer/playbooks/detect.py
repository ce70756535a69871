"""The detections, per group of events: a sliding threshold and an ordered sequence, on event time.

Windows: an event at time ``s`` is inside the window ending at ``t`` when ``t - within < s <= t``
(an event exactly ``within`` older than the newest one is out). A group's window ends at its
newest event: events arriving out of order count if they fall inside it, and are dropped as late
otherwise (``late`` is counted). State is small and bounded: a threshold keeps at most
``max(count, CONTRIBUTORS)`` events and ``DISTINCT_CAP`` distinct values per group; a sequence
keeps one partial match per step position.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any, NamedTuple

from .fields import MISSING, EventLike, accessor, hashable
from .spec import Sequence, Threshold

CONTRIBUTORS = 256  # events remembered per group for "contributors" targets and an alert's event ids
DISTINCT_CAP = 4096


class Hit(NamedTuple):
    """What a detection remembers of an event: enough to name the alert's events and its targets."""

    time_ns: int
    id: int
    ip: str | None
    user: Any  # the identifiers dict, shared with the event (never modified)


def hit(event: EventLike) -> Hit:
    return Hit(event.time_ns, event.id, event.client_address, event.user)


class ThresholdState:
    __slots__ = ("distinct", "hits", "newest")

    def __init__(self, cap: int) -> None:
        self.hits: deque[Hit] = deque(maxlen=cap)
        self.distinct: dict[Any, int] = {}  # value -> its latest time, roughly oldest first
        self.newest = -(2**63)


class ThresholdDetector:
    """``count`` matching events (and ``distinct.min`` distinct values of a field) within ``within``."""

    def __init__(self, threshold: Threshold) -> None:
        self.count = threshold.count
        self.within_ns = int(threshold.within * 1e9)
        self.cap = max(threshold.count, CONTRIBUTORS)
        self.distinct_get = accessor(threshold.distinct.field) if threshold.distinct else None
        self.distinct_min = threshold.distinct.min if threshold.distinct else 0
        self.distinct_cap = max(DISTINCT_CAP, self.distinct_min)
        self.late = 0
        self.distinct_evictions = 0

    def new_state(self) -> ThresholdState:
        return ThresholdState(self.cap)

    def add(self, state: ThresholdState, event: EventLike) -> list[Hit] | None:
        """Add a matching event; the window's hits (oldest first) when the threshold is reached, else None."""
        t = event.time_ns
        hits = state.hits
        if t >= state.newest:
            state.newest = t
            hits.append(hit(event))
        elif t <= state.newest - self.within_ns:
            self.late += 1
            return None
        else:  # out of order, inside the window: keep the hits sorted by time
            index = bisect.bisect_right(hits, t, key=lambda h: h.time_ns)
            if len(hits) == hits.maxlen:
                if index == 0:
                    return None  # older than everything kept: the newest ``cap`` already decide
                hits.popleft()
                index -= 1
            hits.insert(index, hit(event))
        cutoff = state.newest - self.within_ns
        while hits[0].time_ns <= cutoff:
            hits.popleft()
        get = self.distinct_get
        if get is None:
            return list(hits) if len(hits) >= self.count else None
        distinct = state.distinct
        value = get(event)
        if value is not MISSING:
            value = hashable(value)
            old = distinct.pop(value, None)
            distinct[value] = t if old is None or t > old else old
            if len(distinct) > self.distinct_cap:
                del distinct[next(iter(distinct))]
                self.distinct_evictions += 1
        while distinct:
            first = next(iter(distinct))
            if distinct[first] > cutoff:
                break
            del distinct[first]
        if len(hits) >= self.count and len(distinct) >= self.distinct_min:
            return list(hits)
        return None


class _Chain(NamedTuple):
    """A partial sequence match: its first event's time and its hits, newest first (a linked list)."""

    start_ns: int
    hit: Hit
    previous: _Chain | None


class SequenceState:
    __slots__ = ("partial",)

    def __init__(self, size: int) -> None:
        self.partial: list[_Chain | None] = [None] * size


class SequenceDetector:
    """Ordered steps, each ``count`` times, within ``within`` of the first event (other events may interleave).

    Each step of count ``n`` is ``n`` positions; ``partial[j]`` is the match of positions ``0..j``
    that started latest (a later start expires later, so it is the one worth extending). An event
    matching several steps extends each, from the last position down, so it fills one position per
    step at most.
    """

    def __init__(self, sequence: Sequence) -> None:
        self.within_ns = int(sequence.within * 1e9)
        self.positions: list[int] = []  # position -> step index
        for index, step in enumerate(sequence.steps):
            self.positions += [index] * step.count
        self.size = len(self.positions)
        self.late = 0

    def new_state(self) -> SequenceState:
        return SequenceState(self.size)

    def add(self, state: SequenceState, event: EventLike, steps: list[bool]) -> list[Hit] | None:
        """Add an event with which steps it matches; the whole match's hits (oldest first) when complete."""
        t = event.time_ns
        partial = state.partial
        within = self.within_ns
        h: Hit | None = None
        for j in range(self.size - 1, -1, -1):
            if not steps[self.positions[j]]:
                continue
            h = h or hit(event)
            if j == 0:
                candidate = _Chain(t, h, None)
            else:
                before = partial[j - 1]
                if before is None:
                    continue
                if t - before.start_ns >= within:
                    partial[j - 1] = None
                    continue
                candidate = _Chain(min(before.start_ns, t), h, before)
            current = partial[j]
            if current is None or candidate.start_ns >= current.start_ns or t - current.start_ns >= within:
                partial[j] = candidate
        done = partial[-1]
        if done is None:
            return None
        state.partial = [None] * self.size
        out: list[Hit] = []
        chain: _Chain | None = done
        while chain is not None:
            out.append(chain.hit)
            chain = chain.previous
        out.reverse()
        return out
