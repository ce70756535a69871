"""WSGI: the request of an environ (``from_wsgi``, replaying ``wsgi.input`` so the app still reads every
byte), and the middleware ``app = SqreenWSGIMiddleware(app)`` for any WSGI application."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from ..blocking import UserBlocked
from ..clientip import IPNetwork
from ..context import request_scope
from ..request import DEFAULT_MAX_BODY_SIZE, MAX_QUERY, BodySource, HTTPRequest, _content_length, _fixed, _form_bytes
from ..track import refuse_ip
from . import request_options
from ._forbidden import REASON, REDIRECT_REASON, STATUS, refusal

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ReplayInput:
    """``wsgi.input`` for the app: bytes ``snapshot`` pulled from the server's stream come first, then the rest.

    Never reads past ``CONTENT_LENGTH``. Keeps a copy of the body's first bytes, whoever read them.
    """

    def __init__(self, stream: Any, length: int | None, keep: int) -> None:
        self._stream = stream
        self._left = length  # bytes the original stream may still give; None: up to its end
        self._pending = bytearray()  # pulled by snapshot(), not read by the app yet
        self._seen = bytearray()  # the body's first `_keep` bytes, in order
        self._keep = keep
        self._taken = 0  # bytes taken from the original stream
        self._eof = length == 0
        self._lock = threading.RLock()

    def _read_stream(self, size: int, *, line: bool = False) -> bytes:
        if self._eof:
            return b""
        if self._left is not None:
            size = self._left if size < 0 else min(size, self._left)
        if size == 0:
            return b""
        chunk = self._stream.readline(size) if line else self._stream.read(size)
        if not chunk:
            self._eof = True
            return b""
        chunk = bytes(chunk)
        self._taken += len(chunk)
        if self._left is not None:
            self._left -= len(chunk)
            self._eof = self._left <= 0
        if len(self._seen) < self._keep:
            self._seen += chunk[: self._keep - len(self._seen)]
        return chunk

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        with self._lock:
            if not self._pending:
                return self._read_stream(size)
            if 0 <= size <= len(self._pending):
                out = bytes(self._pending[:size])
                del self._pending[:size]
                return out
            out = bytes(self._pending)
            self._pending.clear()
            return out + self._read_stream(-1 if size < 0 else size - len(out))

    def readline(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        with self._lock:
            if not self._pending:
                return self._read_stream(size, line=True)
            end = self._pending.find(b"\n") + 1
            if end and (size < 0 or end <= size):
                out = bytes(self._pending[:end])
                del self._pending[:end]
                return out
            if 0 <= size <= len(self._pending):
                out = bytes(self._pending[:size])
                del self._pending[:size]
                return out
            out = bytes(self._pending)
            self._pending.clear()
            return out + self._read_stream(-1 if size < 0 else size - len(out), line=True)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def snapshot(self, limit: int) -> tuple[bytes, bool, bool]:
        """The body's first ``limit`` bytes and whether it is longer, pulling what the app has not read yet."""
        with self._lock:
            self._keep = max(self._keep, limit + 1)
            final = True
            if len(self._seen) == self._taken:  # nothing lost: we can complete the copy from the stream
                try:
                    while self._taken <= limit and not self._eof:
                        chunk = self._read_stream(limit + 1 - self._taken)
                        self._pending += chunk
                except Exception:  # e.g. the client went away; the app will see the error itself
                    final = False
            data = bytes(self._seen[:limit])
            return data, self._taken > len(data) or not final, final


def _wsgi_text(value: Any) -> str:
    """PEP 3333 hands bytes over as latin-1 text; the bytes are really UTF-8 (mostly)."""
    if not isinstance(value, str):
        return ""
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


def _environ_headers(environ: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in list(environ.items()):  # a copy: read lazily, maybe while the app adds keys
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-"), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            yield key.replace("_", "-"), value


def _wsgi_source(
    environ: MutableMapping[str, Any], max_body_size: int, *, install: bool, werkzeug_request: Any = None
) -> BodySource | None:
    stream = environ.get("wsgi.input")
    if isinstance(stream, _ReplayInput):
        return stream.snapshot
    werkzeug_request = werkzeug_request if werkzeug_request is not None else environ.get("werkzeug.request")
    if werkzeug_request is not None and _werkzeug_started(werkzeug_request):
        # Werkzeug already holds the server's stream: pulling from it would take bytes from the app.
        return _werkzeug_cached(werkzeug_request)
    if stream is None or not (install or werkzeug_request is not None):
        return None
    length = _content_length(environ.get("CONTENT_LENGTH"))
    if length == 0 or (length is None and not environ.get("wsgi.input_terminated")):
        return None  # no body: leave the server's stream alone
    replay = _ReplayInput(stream, length, max_body_size + 1)
    environ["wsgi.input"] = replay
    return replay.snapshot


def _werkzeug_started(request: Any) -> bool:
    state = getattr(request, "__dict__", {})
    return "stream" in state or "form" in state or state.get("_cached_data") is not None


def _werkzeug_cached(request: Any) -> BodySource | None:
    state = getattr(request, "__dict__", {})
    data = state.get("_cached_data")
    if isinstance(data, bytes):
        return _fixed(data)
    form = state.get("form")
    if form is not None and getattr(request, "mimetype", "") == "application/x-www-form-urlencoded":
        return _fixed(_form_bytes(form.items(multi=True)))
    return None


def from_wsgi(
    environ: MutableMapping[str, Any],
    *,
    ip_header: str | None = None,
    trusted_proxies: Sequence[IPNetwork] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> HTTPRequest:
    """The request of a WSGI ``environ``, at request start: installs the replaying ``wsgi.input``."""
    return _from_wsgi(environ, ip_header, trusted_proxies, max_body_size, install=True)


def _from_wsgi(
    environ: MutableMapping[str, Any],
    ip_header: str | None,
    trusted_proxies: Sequence[IPNetwork] | None,
    max_body_size: int,
    *,
    install: bool,
    werkzeug_request: Any = None,
) -> HTTPRequest:
    source = _wsgi_source(environ, max_body_size, install=install, werkzeug_request=werkzeug_request)
    return HTTPRequest(
        method=str(environ.get("REQUEST_METHOD") or ""),
        path=_wsgi_text(environ.get("SCRIPT_NAME", "")) + _wsgi_text(environ.get("PATH_INFO", "")),
        query_string=_wsgi_text(environ.get("QUERY_STRING", "")[:MAX_QUERY]),
        headers=lambda: _environ_headers(environ),
        peer=environ.get("REMOTE_ADDR"),
        body=source,
        ip_header=ip_header,
        trusted_proxies=trusted_proxies,
        max_body_size=max_body_size,
    )


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
