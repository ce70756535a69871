"""EventDraft: a tracked event as ``track()`` captured it, built into scrubbed attributes later.

``track()`` runs in the application's hottest handlers, so on that thread it only validates, copies
the properties, captures the trace context, the user and the request's (once per request scrubbed)
attributes, and hands a draft to the processor. Prefixing, cleaning and scrubbing the properties
happen in the export thread, in ``attributes()``, and the exporter encodes the result straight to
OTLP (``encoding``). Where a plain OTel log record is needed (another processor on the provider, an
exporter of someone else), ``to_readable()`` gives one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from .context import User
from .event import PROPERTIES, TRAITS, identifier_attributes, scrubbed
from .ids import UID
from .scrub import Scrubber

_EMPTY_RESOURCE = Resource.get_empty()


class EventDraft:
    """One event, captured on the application's thread; ``attributes()`` builds (once) what is sent."""

    __slots__ = (
        "_attributes",
        "extra",
        "max_len",
        "name",
        "observed",
        "origin",
        "properties",
        "request",
        "scrubber",
        "span_id",
        "timestamp",
        "trace_flags",
        "trace_id",
        "uid",
        "user",
    )

    def __init__(
        self,
        name: str,
        timestamp: int,
        observed: int,
        properties: Mapping[str, Any],
        user: User | None,
        request: Mapping[str, Any] | None,
        extra: Mapping[str, Any] | None,
        scrubber: Scrubber,
        max_len: int,
        trace_id: int = 0,
        span_id: int = 0,
        trace_flags: int = 0,
        uid: str | None = None,
    ) -> None:
        self.name = name
        self.timestamp = timestamp
        self.observed = observed
        self.properties = properties  # a copy the application no longer holds; values not cleaned yet
        self.user = user
        self.request = request  # already scrubbed (once per request)
        self.extra = extra
        self.scrubber = scrubber
        self.max_len = max_len
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_flags = trace_flags
        self.uid = uid  # log.record.uid, given at track() time
        # (resource, instrumentation scope) of the logger it was tracked with; set by the processor.
        self.origin: tuple[Resource, InstrumentationScope | None] = (_EMPTY_RESOURCE, None)
        self._attributes: dict[str, Any] | None = None

    def attributes(self) -> dict[str, Any]:
        """The event's attributes, scrubbed and cleaned; computed on the first call only."""
        attributes = self._attributes
        if attributes is None:
            scrubber, max_len = self.scrubber, self.max_len
            attributes = scrubbed(PROPERTIES, self.properties, scrubber, max_len)
            user = self.user
            if user is not None:
                attributes.update(identifier_attributes(user.identifiers, scrubber, max_len))
                if user.traits:
                    attributes.update(scrubbed(TRAITS, user.traits, scrubber, max_len))
            if self.request:
                attributes.update(self.request)
            if self.extra:
                attributes.update(self.extra)
            if self.uid is not None:
                attributes[UID] = self.uid
            self._attributes = attributes
        return attributes

    def to_readable(self) -> ReadableLogRecord:
        """The same event as an OTel SDK log record, for exporters that take only those."""
        record = LogRecord(
            timestamp=self.timestamp,
            observed_timestamp=self.observed,
            context=set_span_in_context(
                NonRecordingSpan(SpanContext(self.trace_id, self.span_id, False, TraceFlags(self.trace_flags)))
            ),
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            attributes=self.attributes(),
            event_name=self.name,
        )
        resource, scope = self.origin
        return ReadableLogRecord(log_record=record, resource=resource, instrumentation_scope=scope)
