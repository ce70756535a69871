"""SIGTERM: deliver the queue before the process goes, without taking the signal from anyone.

``docker stop``, Kubernetes and systemd stop a process with SIGTERM, whose default action kills it
without running ``atexit``: the whole queue would be lost, uncounted. ``configure()`` calls
``install()`` from the main thread and looks at the handler in place:

- the default (``SIG_DFL``): ours shuts the pipeline down (delivering within ``shutdown_timeout``,
  counting the rest as ``shutdown``), restores the default and sends the signal again, so the
  process still dies of SIGTERM (exit status -15 / 143);
- a Python handler of the application: ours flushes, then calls it (it decides what happens next;
  a normal exit then runs the ``atexit`` flush);
- a server's handler (gunicorn, uvicorn...: they install one for their graceful shutdown): left
  alone; their workers exit normally and the ``atexit`` hook delivers;
- ``SIG_IGN`` or a handler set from C: left alone.

A handler the application installs *after* ``configure()`` replaces ours (Python keeps one handler
per signal); if it calls the one it replaced, ours runs then. The work runs in a helper thread that
the handler waits for, bounded by ``shutdown_timeout``: the interrupted main thread may hold the
processor's lock, and a handler must never deadlock the process it is stopping.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("sqreen_otel")

# Handlers of these packages belong to a server that shuts its workers down gracefully.
SERVER_MODULES = ("gunicorn", "uvicorn", "hypercorn", "granian", "waitress", "daphne", "twisted", "celery")
_warned_thread = False


class TermHandler:
    """Our SIGTERM handler: deliver, then do what the replaced handler would have done."""

    def __init__(
        self, previous: Any, shutdown: Callable[[], None], flush: Callable[[], None], timeout: Callable[[], float]
    ) -> None:
        self.previous = previous
        self.shutdown = shutdown
        self.flush = flush
        self.timeout = timeout

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if callable(self.previous):  # the application's handler decides; deliver what is queued first
            _bounded(self.flush, self.timeout())
            self.previous(signum, frame)
            return
        _bounded(self.shutdown, self.timeout())
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # die of the signal, as without us


def _bounded(work: Callable[[], None], timeout: float) -> None:
    def run() -> None:
        try:
            work()
        except Exception:  # never raise into the application's signal path
            logger.exception("sqreen_otel could not flush on SIGTERM")

    thread = threading.Thread(target=run, name="sqreen_otel.sigterm", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)


def install(shutdown: Callable[[], None], flush: Callable[[], None], timeout: Callable[[], float]) -> str:
    """Put our handler in front of SIGTERM when that is safe; returns what was done, for tests and logs."""
    global _warned_thread
    if not hasattr(signal, "SIGTERM"):
        return "unsupported"
    if threading.current_thread() is not threading.main_thread():
        if not _warned_thread:
            _warned_thread = True
            logger.warning(
                "sqreen_otel: configure() ran outside the main thread, so it cannot flush on SIGTERM "
                "(only the main thread may set signal handlers); events queued at SIGTERM may be lost. "
                "Call configure() from the main thread, or sqreen_otel.shutdown() in your own SIGTERM handler."
            )
        return "not-main-thread"
    current = signal.getsignal(signal.SIGTERM)
    if isinstance(current, TermHandler):
        return "ours"
    if current is signal.SIG_IGN or current is None:
        return "left-alone"
    if current is not signal.SIG_DFL:
        module = getattr(current, "__module__", None) or ""
        if module.split(".")[0] in SERVER_MODULES:
            logger.debug("sqreen_otel: SIGTERM belongs to %s; its graceful shutdown and atexit deliver", module)
            return "server"
    try:
        signal.signal(signal.SIGTERM, TermHandler(current, shutdown, flush, timeout))
    except (ValueError, OSError) as exc:  # not allowed here (embedded interpreter...)
        logger.warning("sqreen_otel: cannot set a SIGTERM handler: %s", exc)
        return "failed"
    return "chained" if current is not signal.SIG_DFL else "installed"
