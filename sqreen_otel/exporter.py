"""OTLP/HTTP protobuf exporter that tells its processor what to do with a batch.

OTel's ``LogRecordExporter`` answers only SUCCESS or FAILURE. ``send()`` answers with an
``Outcome``: delivered, retry later (and when), rejected for good, or too large (split it), so the
processor can retry, drop or split. ``export()`` keeps the plain OTel interface too.
"""

from __future__ import annotations

import enum
import gzip
import logging
import math
import os
import random
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from urllib3.exceptions import NewConnectionError

from . import encoding
from .draft import EventDraft
from .settings import check_endpoint, parse_headers
from .suppress import instrumentation_suppressed

logger = logging.getLogger("sqreen_otel")

DEFAULT_ENDPOINT = "http://localhost:4318/v1/logs"
DEFAULT_TIMEOUT = 10.0
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 3600.0


class Status(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"
    PERMANENT = "permanent"
    TOO_LARGE = "too_large"


@dataclass(frozen=True)
class Outcome:
    status: Status
    retry_after: float | None = None  # seconds the server asked us to wait
    rejected: int = 0  # records refused by an OTLP partial success
    error: str | None = None
    # No answer came after the request was sent (read timeout, connection cut): the backend may have
    # stored the batch. A retry resends the same ``log.record.uid``s, which the backend can dedupe.
    maybe_delivered: bool = False


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_name(*names: str) -> str:
    """The first of ``names`` that is set, for error messages."""
    return next((name for name in names if os.environ.get(name)), names[-1])


def resolve_endpoint(endpoint: str | None) -> str:
    """Argument, else ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``, else the base endpoint + ``/v1/logs``.

    Checked (scheme, host, path) whatever its source, and the error names that source.
    """
    if endpoint:
        return check_endpoint("endpoint", endpoint)
    logs = _env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
    if logs:
        return check_endpoint("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs)
    base = _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    if base:
        return check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", base.rstrip("/") + "/v1/logs")
    return DEFAULT_ENDPOINT


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            import datetime as _dt

            seconds = (parsedate_to_datetime(value) - _dt.datetime.now(_dt.timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


class OTLPEventExporter(LogRecordExporter):
    """POST batches of log records as OTLP protobuf to ``endpoint`` over a keep-alive session."""

    accepts_drafts = True  # EventBatchProcessor hands it track()'s drafts as they are

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: str | None = None,
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        env_headers = _env("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
        self.headers = (
            dict(headers)
            if headers is not None
            else (
                parse_headers(_env_name("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"), env_headers)
                if env_headers
                else {}
            )
        )
        env_timeout = _env("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
        try:
            self.timeout = timeout if timeout is not None else float(env_timeout or DEFAULT_TIMEOUT)
        except ValueError:
            raise ValueError(f"OTEL_EXPORTER_OTLP_(LOGS_)TIMEOUT must be seconds, got {env_timeout!r}") from None
        if not self.timeout > 0:  # requests raises ValueError on every send otherwise
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        env_compression = _env("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
        self.compression = (compression or env_compression or "none").lower()
        if self.compression not in ("none", "gzip"):
            raise ValueError(f"compression must be 'none' or 'gzip', got {self.compression!r}")
        self._init_sessions()
        self._closed = False
        if hasattr(os, "register_at_fork"):  # weakly: a replaced exporter must be free to go
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (method := ref()) and method())

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update({"Content-Type": "application/x-protobuf", "User-Agent": "sqreen-otel"})
        session.headers.update(self.headers)
        if self.compression == "gzip":
            session.headers["Content-Encoding"] = "gzip"
        return session

    def _init_sessions(self) -> None:
        # One keep-alive session per sending thread: requests.Session is not documented thread-safe,
        # and the processor may send from a few threads at once (max_concurrent_exports).
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _thread_session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._new_session()
            with self._lock:
                self._sessions.append(session)
        return session

    def _after_fork(self) -> None:
        # The parent's pooled sockets must not be shared with a child.
        self._init_sessions()

    def send(self, batch: Sequence[ReadableLogRecord | EventDraft]) -> Outcome:
        """Export one batch; never raises."""
        try:
            body = self.encode(batch)
        except Exception as exc:  # a record the encoder cannot carry: no retry will help
            return Outcome(Status.PERMANENT, error=f"encoding failed: {exc!r}")
        return self.send_encoded(body, len(batch))

    @staticmethod
    def encode(batch: Sequence[ReadableLogRecord | EventDraft]) -> bytes:
        """The ``ExportLogsServiceRequest`` bytes of ``batch``, uncompressed (what the spool stores).

        ``track()``'s drafts are encoded from their cleaned values (``encoding``), SDK records by the SDK.
        """
        return encoding.encode(batch)

    def send_encoded(self, body: bytes, count: int) -> Outcome:
        """POST an encoded request of ``count`` records (compressed here if configured); never raises."""
        if self._closed:
            return Outcome(Status.PERMANENT, error="exporter is shut down")
        try:
            if self.compression == "gzip":
                body = gzip.compress(body, compresslevel=6)
        except Exception as exc:
            return Outcome(Status.PERMANENT, error=f"compression failed: {exc!r}")
        try:
            with instrumentation_suppressed():
                response = self._thread_session().post(self.endpoint, data=body, timeout=self.timeout)
        except requests.RequestException as exc:
            return Outcome(Status.RETRY, error=f"{type(exc).__name__}: {exc}", maybe_delivered=_maybe_sent(exc))
        return self._outcome(response, count)

    def _outcome(self, response: requests.Response, count: int) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return _partial_success(response.content, count)
        error = f"HTTP {status} from {self.endpoint}: {response.text[:200]!r}"
        if status == 413:
            return Outcome(Status.TOO_LARGE, error=error)
        if status in RETRYABLE_STATUS or status >= 500:
            return Outcome(Status.RETRY, parse_retry_after(response.headers.get("Retry-After")), error=error)
        return Outcome(Status.PERMANENT, error=error)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Plain OTel interface, for use behind OTel's own processors."""
        outcome = self.send(batch)
        ok = outcome.status is Status.SUCCESS
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self._closed = True
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _maybe_sent(exc: requests.RequestException) -> bool:
    """Whether the request may have reached the backend: not when the connection was never made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, NewConnectionError)  # refused, unreachable, no such host
    return isinstance(exc, (requests.Timeout, requests.exceptions.ChunkedEncodingError))


def _partial_success(content: bytes, count: int) -> Outcome:
    if not content:
        return Outcome(Status.SUCCESS)
    response = ExportLogsServiceResponse()
    try:
        response.ParseFromString(content)
    except DecodeError:
        logger.debug("unparseable OTLP response body ignored (%d bytes)", len(content))
        return Outcome(Status.SUCCESS)
    rejected = min(response.partial_success.rejected_log_records, count)
    if rejected or response.partial_success.error_message:
        return Outcome(Status.SUCCESS, rejected=rejected, error=response.partial_success.error_message or None)
    return Outcome(Status.SUCCESS)


def backoff(attempt: int, cap: float, base: float = 1.0) -> float:
    """Exponential backoff with full jitter in its upper half: attempt 0 waits 0.5-1 s."""
    delay = min(cap, base * (2**attempt))
    return delay * random.uniform(0.5, 1.0)
