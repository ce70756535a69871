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
the handler waits for, bounded by ``shutdown_timeout``. When the signal interrupted the main thread
inside the processor (where it may hold the queue's lock), the handler does not wait: it returns,
the main thread goes on and releases the lock, and the helper sends the signal again once done.
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
        self._ready = threading.Event()  # deferred work done: the next delivery finishes

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        work = self.flush if callable(self.previous) else self.shutdown
        if self._ready.is_set():
            self._ready.clear()
        elif _in_our_queue(frame):
            # The main thread was stopped inside the processor, maybe holding its lock: waiting here
            # for the flush would wait for ourselves. Let it go on; the helper signals again when done.
            _start(work, self._redeliver, signum)
            return
        else:
            _start(work, None, signum).join(self.timeout() + 2.0)
        if callable(self.previous):  # the application's handler decides what happens next
            self.previous(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # die of the signal, as without us

    def _redeliver(self, signum: int) -> None:
        self._ready.set()
        os.kill(os.getpid(), signum)


# Where the interrupted main thread may hold a lock the flush needs: our queue's, a logging handler's.
_LOCK_HOLDERS = frozenset({"sqreen_otel.processor", "logging", "logging.handlers"})


def _in_our_queue(frame: FrameType | None) -> bool:
    """Whether the interrupted main thread is inside code that may hold a lock the flush needs."""
    depth = 0
    while frame is not None and depth < 64:
        if frame.f_globals.get("__name__") in _LOCK_HOLDERS:
            return True
        frame, depth = frame.f_back, depth + 1
    return False


def _start(work: Callable[[], None], then: Callable[[int], None] | None, signum: int) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except Exception:  # never raise into the application's signal path
            logger.exception("sqreen_otel could not flush on SIGTERM")
        if then is not None:
            then(signum)

    thread = threading.Thread(target=run, name="sqreen_otel.sigterm", daemon=True)
    thread.start()
    return thread


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
