"""WSGI middleware: ``app = SqreenWSGIMiddleware(app)`` for any WSGI application."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..blocking import UserBlocked
from ..context import request_scope
from ..request import from_wsgi
from ..track import refuse_ip
from . import request_options
from ._forbidden import REASON, REDIRECT_REASON, STATUS, refusal

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def forbidden_response(
    environ: dict[str, Any], start_response: Callable[..., Any], reason: str, action_id: str, url: str | None = None
) -> list[bytes]:
    """403, or 303 to ``url`` for a redirect decision."""
    status, headers, body = refusal(environ.get("HTTP_ACCEPT"), reason, action_id, url)
    start_response(f"{status} {REASON if status == STATUS else REDIRECT_REASON}", headers)
    return [body]


class SqreenWSGIMiddleware:
    """Makes each request current for ``track()``; refuses blocked IPs and users (403) or redirects them (303)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = from_wsgi(environ, **request_options())
        with request_scope(request):
            entry = refuse_ip(request)
            if entry is not None:
                reason, action_id, url = "Your IP address is blocked", entry.action_id, entry.url
                return forbidden_response(environ, start_response, reason, action_id, url)
            try:
                return self.app(environ, start_response)
            except UserBlocked as exc:
                reason = "This account is blocked"
                return forbidden_response(environ, start_response, reason, exc.action_id, exc.redirect_url)
