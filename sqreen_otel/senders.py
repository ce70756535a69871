"""SenderPool: a few daemon threads that POST encoded requests while the export thread encodes the next.

The explorer answers only after it has committed a batch, so one request at a time leaves the app's
encoder and the server's commit waiting on each other. The pool keeps up to ``size`` requests in
flight. Its threads are daemons (unlike ``concurrent.futures``' workers, which the interpreter joins
before ``atexit`` runs, so a hanging backend would block the exit and the final flush could not
submit). The export thread alone submits and reads the results, in submission order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from .exporter import Outcome, Status


class Flight:
    """One request handed to the pool; ``wait()`` returns its ``Outcome``."""

    __slots__ = ("_done", "_outcome", "body", "count")

    def __init__(self, body: bytes, count: int) -> None:
        self.body = body
        self.count = count
        self._done = threading.Event()
        self._outcome: Outcome | None = None

    def wait(self) -> Outcome:
        self._done.wait()
        assert self._outcome is not None
        return self._outcome

    def finish(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._done.set()


class SenderPool:
    """``size`` threads calling ``send(body, count)`` (which must never raise; the exporter gives each
    thread its own HTTP session)."""

    def __init__(self, send: Callable[[bytes, int], Outcome], size: int) -> None:
        self._send = send
        self._jobs: queue.SimpleQueue[Flight | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"sqreen_otel.sender-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, body: bytes, count: int) -> Flight:
        flight = Flight(body, count)
        self._jobs.put(flight)
        return flight

    def close(self) -> None:
        """Let the threads end once the requests already submitted are answered."""
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while (flight := self._jobs.get()) is not None:
            try:
                outcome = self._send(flight.body, flight.count)
            except Exception as exc:  # never leave the export thread waiting on a lost answer
                outcome = Outcome(Status.RETRY, error=f"sender raised {exc!r}")
            flight.finish(outcome)
