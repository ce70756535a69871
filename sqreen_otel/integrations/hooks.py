"""Request hooks for OpenTelemetry's instrumentors, for apps that prefer them to our middleware.

    FlaskInstrumentor().instrument_app(app, request_hook=hooks.wsgi_request_hook)
    FastAPIInstrumentor.instrument_app(app, server_request_hook=hooks.asgi_server_request_hook)
    DjangoInstrumentor().instrument(request_hook=hooks.django_request_hook)

A hook makes the request current for ``track()`` (headers included, so the client-IP policy
applies) for as long as its server span is recording. Hooks cannot answer a request: refusing
blocked IPs and turning ``UserBlocked`` into a 403 needs the middleware.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span

from ..context import RequestContext, set_request, set_user
from . import request_options
from .asgi import from_asgi
from .wsgi import from_wsgi


class SpanBoundRequest:
    """A request that stops being current when its server span ends.

    Hooks cannot reset the context after the request, so a worker thread would otherwise keep
    the last request and attach it to unrelated events.
    """

    def __init__(self, request: RequestContext, span: Span) -> None:
        self.request = request
        self.span = span

    @property
    def active(self) -> bool:
        return self.span.is_recording()

    def attributes(self) -> Mapping[str, Any]:
        return self.request.attributes()

    def body(self) -> Any:
        return self.request.body()


def wsgi_request_hook(span: Span, environ: dict[str, Any]) -> None:
    """For ``FlaskInstrumentor`` and ``OpenTelemetryMiddleware`` (WSGI): ``request_hook``."""
    set_user(None)  # a new request: not the user the previous request of this worker thread identified
    set_request(SpanBoundRequest(from_wsgi(environ, **request_options()), span))


def asgi_server_request_hook(span: Span, scope: dict[str, Any]) -> None:
    """For the FastAPI, Starlette and ASGI instrumentors: ``server_request_hook``."""
    if scope.get("type") == "http":
        set_user(None)
        set_request(SpanBoundRequest(from_asgi(scope, None, **request_options()), span))


def django_request_hook(span: Span, request: Any) -> None:
    """For ``DjangoInstrumentor``: ``request_hook``."""
    from .django import from_django  # imports Django, which the other hooks' apps may not have

    set_user(None)
    set_request(SpanBoundRequest(from_django(request, **request_options()), span))
