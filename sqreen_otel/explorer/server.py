"""Running the explorer app under uvicorn with the limits a loopback server still needs.

uvicorn (h11) has keep-alive and concurrency limits but no timeout for a request that never finishes its
headers, and nothing stops idle connections from using up file descriptors (then every ``accept()``
fails and asyncio logs a traceback each time). So:

- at most ``max_connections`` open connections: past it, the connection idle the longest (waiting for
  request headers, or kept alive) is closed to make room, else the new one;
- request headers must arrive within ``header_timeout`` seconds (bodies: the app's own deadline);
- idle keep-alive connections close after ``keep_alive`` seconds (uvicorn's ``timeout_keep_alive``);
- ``accept()`` out of file descriptors and other noisy conditions are logged once per interval with a
  count (``Tally``), never one traceback per event.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("sqreen_otel.explorer")

MAX_CONNECTIONS = 1000
HEADER_TIMEOUT = 10.0
KEEP_ALIVE = 5
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Tally:
    """Counts of recurring conditions, logged at most once per ``interval`` seconds (the first at once)."""

    def __init__(self, interval: float = 10.0, level: int = logging.WARNING) -> None:
        self.interval = interval
        self.level = level
        self._counts: dict[str, int] = {}
        self._last = -float("inf")

    def note(self, what: str) -> None:
        self._counts[what] = self._counts.get(what, 0) + 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            counts, self._counts = self._counts, {}
            for text, count in sorted(counts.items()):
                logger.log(self.level, "%s (%d time(s) in the last %.0f s)", text, count, self.interval)


tally = Tally()


class Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a deadline for request headers."""

    max_connections = MAX_CONNECTIONS
    header_timeout = HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None
    _idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = time.monotonic()
        self._arm()
        if len(self.connections) > self.max_connections:
            idle = [c for c in self.connections if isinstance(c, Protocol) and c is not self and c._idle()]
            victim = min(idle, key=lambda c: c._idle_since) if idle else self
            tally.note(f"more than {self.max_connections} connections: closed the longest idle one")
            self.connections.discard(victim)  # counted out now: the close itself completes later
            victim.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._idle():
            self._arm()  # a new request begins (or goes on): its headers have a deadline
        super().data_received(data)
        if not self._idle():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        super().on_response_complete()

    def _idle(self) -> bool:
        """No request in progress: waiting for (the rest of) request headers, or kept alive."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = asyncio.get_running_loop().call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._idle() and not self.transport.is_closing():
            tally.note(f"closed connections that sent no complete request headers within {self.header_timeout:g} s")
            self.transport.close()


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRORS:
        tally.note(f"accept() failed: {exc.strerror or exc} (asyncio retries in a second)")
        return
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        tally.note(f"connection error: {exc.strerror or exc}")
        return
    loop.default_exception_handler(context)


def connection_limits() -> tuple[int, int]:
    """(connections, accept backlog) for the file descriptor limit, raised to its maximum first.

    asyncio accepts up to ``backlog`` connections in one go before any of them can close an idle one:
    what is left of the descriptors after ``connections`` (SQLite takes 3 per thread) must hold that many.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= 4 * MAX_CONNECTIONS:
        return MAX_CONNECTIONS, 2048
    connections = max(8, soft // 4)
    return connections, max(8, min(2048, (soft - connections - 200) // 2))


def config(app: Any, *, max_connections: int | None = None, header_timeout: float = HEADER_TIMEOUT) -> uvicorn.Config:
    """The uvicorn configuration of the explorer (``log_level`` warning: we log what matters ourselves)."""
    limit, backlog = connection_limits()
    limit = max_connections or limit
    protocol = type("ExplorerProtocol", (Protocol,), {"max_connections": limit, "header_timeout": header_timeout})
    return uvicorn.Config(
        app,
        http=protocol,
        log_level="warning",
        limit_concurrency=limit + 1,  # our own cap closes idle connections first; this one answers 503
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=10,
        backlog=backlog,
        lifespan="on",
    )


def run(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGINT/SIGTERM, with our loop exception handler."""

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(_exception_handler)
        await server.serve(sockets=[sock])

    asyncio.run(main())
