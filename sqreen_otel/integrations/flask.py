"""Flask: ``Sqreen(app)`` or ``sqreen = Sqreen(); sqreen.init_app(app)``; ``from_werkzeug`` reads a
Werkzeug/Flask request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..blocking import UserBlocked
from ..clientip import IPNetwork
from ..request import DEFAULT_MAX_BODY_SIZE, HTTPRequest
from ._forbidden import refusal
from .wsgi import SqreenWSGIMiddleware, _from_wsgi

EXTENSION = "sqreen_otel"


class Sqreen:
    """Flask extension: the WSGI middleware around ``app.wsgi_app`` plus a 403 (303 for a redirect) for ``UserBlocked``.

    Flask turns exceptions from views into 500s before a WSGI middleware sees them, hence the
    error handler.
    """

    def __init__(self, app: Any = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        if EXTENSION in app.extensions:
            return
        app.wsgi_app = SqreenWSGIMiddleware(app.wsgi_app)
        app.register_error_handler(UserBlocked, _user_blocked)
        app.extensions[EXTENSION] = self


def _user_blocked(exc: UserBlocked) -> Any:
    from flask import request

    reason = "This account is blocked"
    status, headers, body = refusal(request.headers.get("Accept"), reason, exc.action_id, exc.redirect_url)
    return body, status, headers


def from_werkzeug(
    request: Any,
    *,
    ip_header: str | None = None,
    trusted_proxies: Sequence[IPNetwork] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> HTTPRequest:
    """A Werkzeug/Flask ``Request``, at any time: the body when it is still unread or Werkzeug cached it."""
    return _from_wsgi(
        request.environ, ip_header, trusted_proxies, max_body_size, install=False, werkzeug_request=request
    )
