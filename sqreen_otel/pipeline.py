"""``configure()``: build the scrubber, exporter and processor, and wire them to a LoggerProvider.

Uses the global SDK LoggerProvider when the application already set one, else installs one whose
resource comes from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``. A second call replaces
the previous pipeline instead of adding a second processor.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from opentelemetry import _logs
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource

from . import blocking, runtime, signals, spans, track
from .actions import ActionsPoller
from .exporter import OTLPEventExporter
from .processor import DROP_REASONS, EventBatchProcessor
from .scrub import Scrubber
from .settings import Settings
from .spool import Spool

logger = logging.getLogger("sqreen_otel")
_lock = threading.Lock()


class _Slot(LogRecordProcessor):
    """The one processor we add to a provider; ``configure()`` swaps what it forwards to, and it
    forwards only the records of our own logger.

    OTel providers cannot remove a processor, so re-configuring changes the target instead.
    """

    def __init__(self, provider: LoggerProvider | None = None) -> None:
        self.target: EventBatchProcessor | None = None
        self._multi = getattr(provider, "_multi_log_record_processor", None)

    def direct(self, logger: Any) -> tuple[EventBatchProcessor, tuple[Any, Any]] | None:
        """Our processor and ``logger``'s (resource, scope), when no other processor would see its records.

        Then ``track()`` hands the processor a draft and skips the SDK log record only we would read;
        once the application adds a processor of its own, every record goes through the SDK again.
        """
        target = self.target
        if target is None or getattr(self._multi, "_log_record_processors", None) != (self,):
            return None
        is_enabled = getattr(logger, "_is_enabled", None)  # an SDK logger of this provider, not disabled
        if is_enabled is None or not is_enabled():
            return None
        return target, (logger._resource, logger._instrumentation_scope)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        # Only our events: the application's own logs on the same provider are not security events.
        target = self.target
        scope = log_record.instrumentation_scope
        if target is not None and scope is not None and scope.name == runtime.LOGGER_NAME:
            target.on_emit(log_record)

    def shutdown(self) -> None:
        target = self.target
        if target is not None:
            target.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.target
        return True if target is None else target.force_flush(timeout_millis)


@dataclass(frozen=True)
class Pipeline:
    """Handle on the installed pipeline."""

    settings: Settings
    provider: LoggerProvider | None
    processor: EventBatchProcessor | None
    poller: ActionsPoller | None = None

    def flush(self, timeout: float | None = None) -> bool:
        return True if self.processor is None else self.processor.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        if self.poller is not None:
            self.poller.stop()
        if self.processor is not None:
            self.processor.shutdown(timeout)

    def stats(self) -> dict[str, Any]:
        if self.processor is None:
            return _empty_stats()
        return self.processor.stats()


_current: Pipeline | None = None
_slots: weakref.WeakKeyDictionary[LoggerProvider, _Slot] = weakref.WeakKeyDictionary()


def configure(**settings: Any) -> Pipeline:
    """Install the event pipeline. Settings: keyword, else ``SQREEN_OTEL_<NAME>``, else default."""
    global _current
    resolved = Settings.load(**settings)
    rt = runtime.Runtime.build(resolved)  # validates what Settings cannot (networks, actions file)
    with _lock:
        previous = _current
        if resolved.disabled:
            runtime.install(rt)
            _current = Pipeline(resolved, None, None)
        else:
            provider = _sdk_provider()
            processor = _processor(resolved, rt.scrubber)
            slot = _slots.get(provider)
            if slot is None:
                slot = _slots[provider] = _Slot(provider)
                provider.add_log_record_processor(slot)
            slot.target = processor
            from . import __version__

            our_logger = provider.get_logger(runtime.LOGGER_NAME, __version__)
            runtime.install(dataclasses.replace(rt, logger=our_logger, slot=slot))
            spans.ensure_registered()
            _current = Pipeline(resolved, provider, processor, _poller(resolved))
    if not resolved.disabled and resolved.handle_sigterm:
        signals.install(shutdown, _flush_for_signal, _shutdown_timeout)  # checked again at every configure()
    if previous is not None:
        previous.shutdown(resolved.shutdown_timeout)  # deliver what the old pipeline held
    return _current


def _shutdown_timeout() -> float:
    pipeline = _current
    return pipeline.settings.shutdown_timeout if pipeline is not None else 5.0


def _flush_for_signal() -> None:
    flush(_shutdown_timeout())


def _processor(settings: Settings, scrubber: Scrubber) -> EventBatchProcessor:
    exporter = OTLPEventExporter(
        settings.endpoint, headers=settings.headers, timeout=settings.timeout, compression=settings.compression
    )
    spool = Spool(settings.spool_dir, settings.spool_max_bytes) if settings.spool_dir else None
    return EventBatchProcessor(
        exporter,
        flush_interval=settings.flush_interval,
        max_queue_size=settings.max_queue_size,
        max_export_batch_size=settings.max_export_batch_size,
        max_event_age=settings.max_event_age,
        first_seen_delay=settings.first_seen_delay,
        shutdown_timeout=settings.shutdown_timeout,
        max_concurrent_exports=settings.max_concurrent_exports,
        scrubber=scrubber,
        max_value_length=settings.max_value_length,
        prescrubbed_scopes=frozenset({runtime.LOGGER_NAME}),
        spool=spool,
    )


def _poller(settings: Settings) -> ActionsPoller | None:
    """Poll the shared block list every ``actions_poll_interval`` (conditional GETs), so every process applies it."""
    if not settings.actions_url:
        return None
    poller = ActionsPoller(
        settings.actions_url, blocking.block_list, token=settings.actions_token, interval=settings.actions_poll_interval
    )
    poller.start()
    return poller


def _sdk_provider() -> LoggerProvider:
    provider = _logs.get_logger_provider()
    if isinstance(provider, LoggerProvider):
        return provider
    provider = LoggerProvider(resource=Resource.create())
    _logs.set_logger_provider(provider)
    if _logs.get_logger_provider() is not provider:  # someone else won the race; use theirs if SDK
        other = _logs.get_logger_provider()
        if isinstance(other, LoggerProvider):
            return other
        logger.warning("a non-SDK LoggerProvider is installed globally; sqreen_otel uses its own")
    return provider


def _empty_stats() -> dict[str, Any]:
    return {
        "tracked": 0, "exported": 0, "dropped": dict.fromkeys(DROP_REASONS, 0),
        "uncertain": 0, "resent": 0, "queued": 0, "retries": 0, "last_export_error": None, "spool": None,
    }  # fmt: skip


def current() -> Pipeline | None:
    return _current


def flush(timeout: float | None = None) -> bool:
    """Deliver every queued event now; ``True`` when all were delivered within ``timeout``."""
    pipeline = _current
    return True if pipeline is None else pipeline.flush(timeout)


def shutdown(timeout: float | None = None) -> None:
    """Flush within ``timeout`` (default ``shutdown_timeout``) and stop the export thread."""
    pipeline = _current
    if pipeline is not None:
        pipeline.shutdown(timeout)


def stats() -> dict[str, Any]:
    """Counters of the installed pipeline, plus events that failed inside ``track()`` itself."""
    pipeline = _current
    result = _empty_stats() if pipeline is None else pipeline.stats()
    result["track_failures"] = track.failures()
    return result


@atexit.register
def _flush_at_exit() -> None:
    # The SDK provider shuts down at exit too; this covers providers created with shutdown_on_exit=False.
    shutdown()
