"""Web-framework glue: one module per framework, each reading that framework's request into the neutral
``request.HTTPRequest`` and doing that framework's wiring.

Every integration does the same three things: make the request current for ``track()`` and
``identify()``, refuse blocked IPs at request start, and turn ``UserBlocked`` into a 403. ``adapt``
picks the reader for ``track(..., {"request": r})``, importing a framework's module only for a request
of that framework (its class is looked up in ``sys.modules``, never imported).
"""

from __future__ import annotations

import sys
from typing import Any

from .. import runtime
from ..context import register_request_adapter
from ..request import HTTPRequest


def request_options() -> dict[str, Any]:
    """How to read requests, from the installed settings (client IP policy, body cap)."""
    rt = runtime.current
    return {
        "ip_header": rt.settings.ip_header,
        "trusted_proxies": rt.trusted_proxies,
        "max_body_size": rt.settings.max_body_size,
    }


def _instance_of(obj: Any, module: str, name: str) -> bool:
    """``isinstance`` against a framework class, without importing the framework."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(obj, cls)


def adapt(obj: Any) -> HTTPRequest | None:
    """The ``HTTPRequest`` of a WSGI environ, ASGI scope, Werkzeug/Flask, Django or Starlette request."""
    if isinstance(obj, dict):
        if "REQUEST_METHOD" in obj and "wsgi.input" in obj:
            from .wsgi import _from_wsgi

            options = request_options()
            return _from_wsgi(
                obj, options["ip_header"], options["trusted_proxies"], options["max_body_size"], install=False
            )
        if obj.get("type") == "http":
            from .asgi import from_asgi

            return from_asgi(obj, None, **request_options())
        return None
    if _instance_of(obj, "werkzeug.wrappers.request", "Request"):
        from .flask import from_werkzeug

        return from_werkzeug(obj, **request_options())
    if _instance_of(obj, "django.http.request", "HttpRequest"):
        from .django import from_django

        return from_django(obj, **request_options())
    if _instance_of(obj, "starlette.requests", "Request"):
        from .asgi import from_starlette

        return from_starlette(obj, **request_options())
    return None


def install_adapters() -> None:
    """Let ``track(..., {"request": r})`` take framework requests; calling it again does nothing."""
    register_request_adapter(adapt)
