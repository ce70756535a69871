"""ASGI middleware for Starlette, FastAPI or any ASGI app: ``app.add_middleware(SqreenASGIMiddleware)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..blocking import UserBlocked
from ..context import request_scope
from ..request import ASGIBody, from_asgi
from ..track import refuse_ip
from . import request_options
from ._forbidden import refusal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_forbidden(scope: Scope, send: Send, reason: str, action_id: str, url: str | None = None) -> None:
    """403, or 303 to ``url`` for a redirect decision."""
    accept = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"accept"), None)
    status, headers, body = refusal(accept, reason, action_id, url)
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class SqreenASGIMiddleware:
    """Makes each HTTP request current for ``track()``; refuses blocked IPs and users (403) or redirects them (303).

    The request body is buffered up to ``max_body_size`` so that ``collect_body`` can read it
    without taking it from the application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        options = request_options()
        body = ASGIBody(receive, scope, max_body_size=options["max_body_size"])
        await body.prefetch()
        request = from_asgi(scope, body, **options)
        with request_scope(request):
            entry = refuse_ip(request)
            if entry is not None:
                await send_forbidden(scope, send, "Your IP address is blocked", entry.action_id, entry.url)
                return
            started = False

            async def tracking_send(message: Message) -> None:
                nonlocal started
                started = started or message.get("type") == "http.response.start"
                await send(message)

            try:
                await self.app(scope, body.receive, tracking_send)
            except UserBlocked as exc:
                if started:  # too late for a 403: let the server end the response
                    raise
                await send_forbidden(scope, send, "This account is blocked", exc.action_id, exc.redirect_url)
