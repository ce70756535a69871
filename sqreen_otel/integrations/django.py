"""Django: add ``"sqreen_otel.integrations.django.SqreenMiddleware"`` to ``MIDDLEWARE``; ``from_django``
reads a Django ``HttpRequest``.

Put it after OpenTelemetry's middleware (if any). Call ``identify()`` from views (or view decorators):
Django turns an exception raised in a middleware into a 500 before this one sees it, so only a
``UserBlocked`` raised by a view becomes a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse

from ..blocking import UserBlocked
from ..clientip import IPNetwork
from ..context import request_scope
from ..request import DEFAULT_MAX_BODY_SIZE, MAX_QUERY, BodySource, HTTPRequest, _fixed
from ..track import refuse_ip
from . import request_options
from ._forbidden import refusal
from .wsgi import _environ_headers, _ReplayInput, _wsgi_text


def _forbidden(request: HttpRequest, reason: str, action_id: str, url: str | None = None) -> HttpResponse:
    """403, or 303 to ``url`` for a redirect decision."""
    status, headers, body = refusal(request.headers.get("Accept"), reason, action_id, url)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        if name != "Content-Length":
            response[name] = value
    return response


def _cache_small_body(request: HttpRequest, limit: int) -> None:
    """Read a small body now, while the stream is untouched: Django caches it and the view reads the copy.

    Events can then carry form parameters and ``collect_body`` even before the view reads the body.
    """
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.isdigit() or not 0 < int(length) <= limit or request.content_type.startswith("multipart/"):
        return
    try:
        request.body  # noqa: B018 - read for its caching side effect
    except Exception:  # RequestDataTooBig, a client that hung up...: the view will meet it, not us
        return


class SqreenMiddleware:
    """Makes each request current for ``track()``; refuses blocked IPs and users (403) or redirects them (303)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        options = request_options()
        _cache_small_body(request, options["max_body_size"])
        sqreen_request = from_django(request, **options)
        with request_scope(sqreen_request):
            entry = refuse_ip(sqreen_request)
            if entry is not None:
                return _forbidden(request, "Your IP address is blocked", entry.action_id, entry.url)
            return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, UserBlocked):
            return _forbidden(request, "This account is blocked", exception.action_id, exception.redirect_url)
        return None


def from_django(
    request: Any,
    *,
    ip_header: str | None = None,
    trusted_proxies: Sequence[IPNetwork] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> HTTPRequest:
    """A Django ``HttpRequest``: the body only if Django already read it, or our WSGI replay sits under it."""
    meta = request.META
    source: BodySource | None = None
    if isinstance(getattr(request, "__dict__", {}).get("_body"), bytes):
        source = _fixed(request._body)
    elif isinstance(meta.get("wsgi.input"), _ReplayInput):  # Django's own stream wraps ours
        source = meta["wsgi.input"].snapshot
    else:  # a middleware runs before the view reads the body: look again when an event asks
        source = _django_read_later(request)
    headers = getattr(request, "headers", None)
    return HTTPRequest(
        method=str(request.method or ""),
        path=str(request.path or ""),
        query_string=_wsgi_text(meta.get("QUERY_STRING", "")[:MAX_QUERY]),
        headers=((str(k), str(v)) for k, v in headers.items()) if headers is not None else _environ_headers(meta),
        peer=meta.get("REMOTE_ADDR"),
        body=source,
        ip_header=ip_header,
        trusted_proxies=trusted_proxies,
        max_body_size=max_body_size,
    )


def _django_read_later(request: Any) -> BodySource:
    """Django's body once the app has read it (``request.body``, ``request.POST``); nothing until then."""

    def source(limit: int) -> tuple[bytes, bool, bool]:
        data = getattr(request, "__dict__", {}).get("_body")
        if isinstance(data, bytes):
            return data[:limit], len(data) > limit, True
        return b"", False, False  # not final: asked again later

    return source
