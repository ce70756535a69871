"""Our own HTTP calls (exports, block-list polls) must not show up as the application's client spans."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context


@contextlib.contextmanager
def instrumentation_suppressed() -> Iterator[None]:
    """Tell every OpenTelemetry instrumentation (``requests``, ``urllib3``...) to stay quiet in this block."""
    token = otel_context.attach(
        otel_context.set_value(
            otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY,
            True,
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True),
        )
    )
    try:
        yield
    finally:
        otel_context.detach(token)
