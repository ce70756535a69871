"""ASGI: the request of a scope (``from_asgi``, its body through ``ASGIBody``, which buffers and replays
it), Starlette requests (``from_starlette``), and the middleware for Starlette, FastAPI or any ASGI app:
``app.add_middleware(SqreenASGIMiddleware)``."""

from __future__ import annotations

import builtins
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from ..blocking import UserBlocked
from ..clientip import IPNetwork
from ..context import request_scope
from ..request import DEFAULT_MAX_BODY_SIZE, MAX_QUERY, BodySource, HTTPRequest, _content_length, _fixed, _form_bytes
from ..track import refuse_ip
from . import request_options
from ._forbidden import refusal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
_SCOPE_KEY = "sqreen_otel.body"  # where from_asgi leaves the ASGIBody, for adapters called later


class ASGIBody:
    """Wraps an ASGI ``receive``: buffers small bodies before the app runs and replays them to it.

    ``await prefetch()`` reads the body when its declared ``content-length`` is at most ``max_body_size``
    (unknown-length and larger bodies are left to arrive as the app reads them). Give the app
    ``receive``: it replays the prefetched messages unchanged, then delegates to the server's
    ``receive``, keeping a copy of the body's first bytes as they pass.
    """

    def __init__(
        self,
        receive: ASGIReceive,
        scope: Mapping[str, Any] | None = None,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        if max_body_size < 0:
            raise ValueError(f"max_body_size must be >= 0, got {max_body_size}")
        self._receive = receive
        self._cap = max_body_size
        self._replay: deque[ASGIMessage] = deque()
        self._seen = bytearray()  # the body's first cap + 1 bytes
        self._taken = 0  # body bytes received from the server
        self._complete = False  # the last http.request message went by
        self._prefetched = False
        self._length: int | None = None
        self._no_body = False
        self._known = False  # the scope told us what to expect
        if scope is not None:
            self._learn(scope)

    def _learn(self, scope: Mapping[str, Any]) -> None:
        if self._known:
            return
        length, chunked = None, False
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name == b"content-length":
                length = _content_length(value)
            elif name == b"transfer-encoding":
                chunked = True
        self._length = None if chunked else length
        # Without a length HTTP/1 has no body; HTTP/2 and 3 may still send one.
        self._no_body = length == 0 or (length is None and not chunked and str(scope.get("http_version", "1.1")) < "2")
        self._known = True

    @property
    def done(self) -> bool:
        """Whether ``bytes()`` can no longer change: the body ended, or is known to pass the cap."""
        return self._complete or self._taken > self._cap or (self._known and self._no_body)

    async def prefetch(self) -> None:
        """Read the whole body now if its declared length is within the cap; else do nothing."""
        if self._prefetched or self._length is None or self._length > self._cap:
            return
        self._prefetched = True
        while True:
            message = await self._receive()
            self._replay.append(message)
            self._note(message)
            if message.get("type") != "http.request" or not message.get("more_body", False):
                return
            if self._taken > self._cap:  # more than declared: leave the rest to the app
                return

    async def receive(self) -> ASGIMessage:
        if self._replay:
            return self._replay.popleft()
        message = await self._receive()
        self._note(message)
        return message

    def _note(self, message: ASGIMessage) -> None:
        if message.get("type") != "http.request":
            return
        chunk = message.get("body", b"")
        if chunk and len(self._seen) <= self._cap:
            self._seen += chunk[: self._cap + 1 - len(self._seen)]
        self._taken += len(chunk)
        if not message.get("more_body", False):
            self._complete = True

    def bytes(self) -> tuple[builtins.bytes, bool]:
        """The body's first ``max_body_size`` bytes known so far, and whether it is (or may be) longer."""
        data = bytes(self._seen[: self._cap])
        if self._complete or self._taken > self._cap:
            return data, self._taken > self._cap
        if self._known and self._no_body:
            return b"", False
        return data, True  # still arriving, or not read at all

    def snapshot(self, limit: int) -> tuple[builtins.bytes, bool, bool]:
        """For ``HTTPRequest``: ``bytes()`` cut at ``limit``, and whether that answer is final."""
        data, truncated = self.bytes()
        return data[:limit], truncated or len(data) > limit, self.done or len(data) > limit


def from_asgi(
    scope: MutableMapping[str, Any],
    body: ASGIBody | None = None,
    *,
    ip_header: str | None = None,
    trusted_proxies: Sequence[IPNetwork] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> HTTPRequest:
    """The request of an ASGI ``http`` scope; its body through ``body``, the ``ASGIBody`` given to the app."""
    if body is None:
        found = scope.get(_SCOPE_KEY)
        body = found if isinstance(found, ASGIBody) else None
    else:
        body._learn(scope)
        with contextlib.suppress(TypeError):  # a read-only scope: adapters will just not find the body
            scope[_SCOPE_KEY] = body  # for adapters called later with this scope
    source = body.snapshot if body is not None else None
    return _asgi_request(scope, source, ip_header, trusted_proxies, max_body_size)


def _asgi_request(
    scope: Mapping[str, Any],
    source: BodySource | None,
    ip_header: str | None,
    trusted_proxies: Sequence[IPNetwork] | None,
    max_body_size: int,
) -> HTTPRequest:
    client = scope.get("client")
    query = scope.get("query_string", b"")
    return HTTPRequest(
        method=str(scope.get("method") or ""),
        path=str(scope.get("path") or ""),
        query_string=query[:MAX_QUERY].decode("utf-8", "replace") if isinstance(query, bytes) else str(query),
        headers=lambda: (
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope.get("headers", ())
            if isinstance(name, bytes) and isinstance(value, bytes)
        ),
        peer=client[0] if client else None,
        body=source,
        ip_header=ip_header,
        trusted_proxies=trusted_proxies,
        max_body_size=max_body_size,
    )


def from_starlette(
    request: Any,
    *,
    ip_header: str | None = None,
    trusted_proxies: Sequence[IPNetwork] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> HTTPRequest:
    """A Starlette ``Request``: the body when Starlette cached it (``body()``, ``json()``, ``form()``) or
    from our replay under it; never read from the server here, as the app may still do so."""
    scope = request.scope
    state = getattr(request, "__dict__", {})
    source: BodySource | None = None
    cached = state.get("_body")
    replay = getattr(state.get("_receive"), "__self__", None)
    if not isinstance(replay, ASGIBody):
        found = scope.get(_SCOPE_KEY)
        replay = found if isinstance(found, ASGIBody) else None
    if isinstance(cached, bytes):
        source = _fixed(cached)
    elif replay is not None:
        replay._learn(scope)
        source = replay.snapshot
    elif state.get("_form") is not None and _media_type(scope) == "application/x-www-form-urlencoded":
        source = _fixed(_form_bytes(state["_form"].multi_items()))
    return _asgi_request(scope, source, ip_header, trusted_proxies, max_body_size)


def _media_type(scope: Mapping[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).decode("latin-1").partition(";")[0].strip().lower()
    return ""


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

            # A request known to have no body (most GETs): nothing to copy, so the server's receive as it is.
            app_receive = receive if body.done and not body._replay else body.receive
            try:
                await self.app(scope, app_receive, tracking_send)
            except UserBlocked as exc:
                if started:  # too late for a 403: let the server end the response
                    raise
                await send_forbidden(scope, send, "This account is blocked", exc.action_id, exc.redirect_url)
