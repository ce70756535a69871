"""Sqreen-style custom security events on OpenTelemetry.

>>> import sqreen_otel
>>> sqreen_otel.configure(endpoint="http://localhost:4318/v1/logs")
>>> sqreen_otel.track("password_reset", {"properties": {"email_domain": "example.com"}})
"""

from __future__ import annotations

__version__ = "0.4.0"

import logging as _logging

from .blocking import UserBlocked, UserRedirected, block_list
from .context import RequestContext, register_request_adapter
from .exporter import OTLPEventExporter
from .integrations import install_adapters as _install_adapters
from .pipeline import Pipeline, configure, flush, shutdown, stats
from .processor import EventBatchProcessor
from .scrub import Scrubber
from .track import auth_track, identify, signup_track, track

block_user = block_list.block_user
unblock_user = block_list.unblock_user
block_ip = block_list.block_ip
unblock_ip = block_list.unblock_ip

# track(..., {"request": r}) understands Flask, Django and Starlette requests, WSGI environs and
# ASGI scopes (the frameworks themselves are imported only when such a request is seen).
_install_adapters()

# A library adds no output of its own: applications decide where "sqreen_otel" logs go.
_logging.getLogger("sqreen_otel").addHandler(_logging.NullHandler())

__all__ = [
    "EventBatchProcessor",
    "OTLPEventExporter",
    "Pipeline",
    "RequestContext",
    "Scrubber",
    "UserBlocked",
    "UserRedirected",
    "__version__",
    "auth_track",
    "block_ip",
    "block_user",
    "configure",
    "flush",
    "identify",
    "register_request_adapter",
    "shutdown",
    "signup_track",
    "stats",
    "track",
    "unblock_ip",
    "unblock_user",
]
