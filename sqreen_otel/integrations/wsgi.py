"""WSGI middleware: ``app = SqreenWSGIMiddleware(app)`` for any WSGI application."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..blocking import UserBlocked
from ..context import request_scope
from ..request import from_wsgi
from ..track import refuse_ip
from . import request_options
from ._forbidden import REASON, STATUS, forbidden

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def forbidden_response(
    environ: dict[str, Any], start_response: Callable[..., Any], reason: str, action_id: str
) -> list[bytes]:
    content_type, body = forbidden(environ.get("HTTP_ACCEPT"), reason, action_id)
    start_response(f"{STATUS} {REASON}", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class SqreenWSGIMiddleware:
    """Makes each request current for ``track()``; refuses blocked IPs and blocked users with a 403."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = from_wsgi(environ, **request_options())
        with request_scope(request):
            entry = refuse_ip(request)
            if entry is not None:
                return forbidden_response(environ, start_response, "Your IP address is blocked", entry.action_id)
            try:
                return self.app(environ, start_response)
            except UserBlocked as exc:
                return forbidden_response(environ, start_response, "This account is blocked", exc.action_id)
