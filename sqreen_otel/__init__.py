"""Sqreen-style custom security events on OpenTelemetry.

>>> import sqreen_otel
>>> sqreen_otel.configure(endpoint="http://localhost:4318/v1/logs")
>>> sqreen_otel.track("password_reset", {"properties": {"email_domain": "example.com"}})
"""

from __future__ import annotations

__version__ = "0.1.0"

import logging as _logging

from .context import RequestContext, register_request_adapter
from .exporter import OTLPEventExporter
from .pipeline import Pipeline, configure, flush, shutdown, stats
from .processor import EventBatchProcessor
from .scrub import Scrubber
from .track import auth_track, identify, signup_track, track

# A library adds no output of its own: applications decide where "sqreen_otel" logs go.
_logging.getLogger("sqreen_otel").addHandler(_logging.NullHandler())

__all__ = [
    "EventBatchProcessor",
    "OTLPEventExporter",
    "Pipeline",
    "RequestContext",
    "Scrubber",
    "__version__",
    "auth_track",
    "configure",
    "flush",
    "identify",
    "register_request_adapter",
    "shutdown",
    "signup_track",
    "stats",
    "track",
]
