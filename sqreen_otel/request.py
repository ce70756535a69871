"""The HTTP request an event happened in, read from WSGI or ASGI without taking the body from the app.

``attributes()`` gives semantic-convention names (``client.address``, ``url.path``...) and each query or
form parameter as ``sqreen.request.params.<name>``, with raw values: the event pipeline scrubs them.
``body()`` reads at most ``max_body_size`` bytes, and only when an event asks for it (``collect_body``).
Either way the application still reads every byte of the body, in order: what we take from the
server's stream is replayed to it (``_ReplayInput`` for WSGI, ``ASGIBody`` for ASGI).

``from_wsgi`` and ``from_asgi`` are meant for the start of a request (middleware, request hooks),
before the application touches the body. Later, from inside a view, the adapters behind
``track(..., {"request": r})`` never read a stream someone else may still read: they use our replay
when a middleware installed it, or the body the framework already cached, else no body.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import json
import sys
import threading
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from .clientip import CHAIN_HEADERS, DEFAULT_HEADERS, IPNetwork, resolve_client_ip
from .context import register_request_adapter
from .event import PARAMS
from .values import TRUNCATED

DEFAULT_MAX_BODY_SIZE = 16384
MAX_HEADERS = 100  # distinct header names kept (plus the few in _WANTED, which are always kept)
MAX_HEADER_VALUE = 8192  # characters per header value
MAX_PARAMS = 64  # distinct parameter names, query string and form together
MAX_PARAM_NAME = 128  # characters; a longer name is cut and marked
MAX_FIELDS = 512  # name=value pairs parsed from one query string or form body
MAX_QUERY = 65536  # characters of a query string read
MAX_PATH = 8192
MAX_METHOD = 64
MULTIPART = "[multipart body not collected]"

ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
# ``source(limit)`` -> (the body's first ``limit`` bytes, whether the body is longer, whether that answer is final).
BodySource = Callable[[int], "tuple[bytes, bool, bool]"]
Params = dict[str, "str | list[str]"]

# Read by the body parser and the client-IP policy: kept even past MAX_HEADERS.
_WANTED = frozenset({"content-type", "content-length", "transfer-encoding", "user-agent", *DEFAULT_HEADERS})
# Proxies append to these: past the value cap we keep the end, where trusted proxies write.
_TAIL = frozenset(CHAIN_HEADERS)
_SCOPE_KEY = "sqreen_otel.body"  # where from_asgi leaves the ASGIBody, for adapters called later
_UNSET: Any = object()


def parse_params(query: str | bytes, into: Params | None = None) -> Params:
    """Percent-decoded parameters of a query string or form body; a repeated name gives a list.

    At most ``MAX_FIELDS`` pairs are read and ``MAX_PARAMS`` names kept (the first ones); blank values kept.
    """
    params: Params = {} if into is None else into
    text = query.decode("utf-8", "replace") if isinstance(query, bytes) else query
    fields = text[:MAX_QUERY].split("&", MAX_FIELDS)[:MAX_FIELDS]
    pairs = urllib.parse.parse_qsl(
        "&".join(fields), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="replace"
    )
    for name, value in pairs:
        if not name:
            continue
        if len(name) > MAX_PARAM_NAME:
            name = name[:MAX_PARAM_NAME] + TRUNCATED
        current = params.get(name)
        if current is None:
            if len(params) < MAX_PARAMS:
                params[name] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            params[name] = [current, value]
    return params


def collect_headers(pairs: Iterable[tuple[str, str]], ip_header: str | None = None) -> dict[str, str]:
    """Lower-cased headers, repeated ones joined with ``", "``; capped in count and in value length."""
    wanted = _WANTED | {ip_header.strip().lower()} if ip_header else _WANTED
    headers: dict[str, str] = {}
    for raw_name, value in pairs:
        if not isinstance(raw_name, str) or not isinstance(value, str):
            continue
        name = raw_name.lower()
        previous = headers.get(name)
        if previous is None:
            if len(headers) < MAX_HEADERS or name in wanted:
                headers[name] = _cap_header(name, value)
        elif name in _TAIL or len(previous) < MAX_HEADER_VALUE:
            headers[name] = _cap_header(name, f"{previous}, {value}")
    return headers


def _cap_header(name: str, value: str) -> str:
    if len(value) <= MAX_HEADER_VALUE:
        return value
    if name in _TAIL:  # cut at a comma, so that no half address is read
        return value[-MAX_HEADER_VALUE - 1 :].partition(",")[2].lstrip()
    return value[:MAX_HEADER_VALUE]


class HTTPRequest:
    """One HTTP request as events see it (a ``RequestContext``): attributes, and the body on demand.

    Both are computed once and cached, except while an ASGI body is still arriving: then the answer
    can still grow, so it is recomputed on the next call.
    """

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query_string: str | bytes = "",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        peer: str | None = None,
        body: BodySource | None = None,
        ip_header: str | None = None,
        trusted_proxies: Sequence[IPNetwork] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        if max_body_size < 0:
            raise ValueError(f"max_body_size must be >= 0, got {max_body_size}")
        self.method = method[:MAX_METHOD]
        self.path = path[:MAX_PATH]
        self.query_string = query_string[:MAX_QUERY]
        self.headers = collect_headers(headers.items() if isinstance(headers, Mapping) else headers, ip_header)
        self.peer = peer if isinstance(peer, str) and peer else None
        self.max_body_size = max_body_size
        self._source = body
        self._ip_header = ip_header
        self._trusted_proxies = trusted_proxies
        self._attributes: dict[str, Any] | None = None
        self._body: Any = _UNSET

    def __repr__(self) -> str:
        return f"<HTTPRequest {self.method} {self.path}>"

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    def attributes(self) -> Mapping[str, Any]:
        if self._attributes is not None:
            return self._attributes
        attributes: dict[str, Any] = {}
        client = resolve_client_ip(
            self.peer, self.headers, ip_header=self._ip_header, trusted_proxies=self._trusted_proxies
        )
        for key, value in (
            ("client.address", client),
            ("network.peer.address", self.peer),
            ("user_agent.original", self.headers.get("user-agent")),
            ("url.path", self.path),
            ("http.request.method", self.method),
        ):
            if value:
                attributes[key] = value
        params = parse_params(self.query_string)
        final = True
        if self.media_type == "application/x-www-form-urlencoded" and self._source is not None:
            data, truncated, final = self._source(self.max_body_size)
            if not truncated:
                parse_params(data, into=params)
        attributes.update((PARAMS + name, value) for name, value in params.items())
        if final:
            self._attributes = attributes
        return attributes

    def body(self) -> Any:
        """``None`` without a body; JSON objects/arrays and forms parsed; other bodies as text.

        A body longer than ``max_body_size`` is not parsed: its first bytes as text, then ``TRUNCATED``.
        """
        if self._body is not _UNSET:
            return self._body
        media = self.media_type
        if media == "multipart/form-data" and (
            self._source is not None or self.headers.get("content-length", "0") != "0"
        ):
            self._body = MULTIPART  # uploads: binary, and not worth reading; said without reading them
            return MULTIPART
        if self._source is None:
            self._body = None
            return None
        data, truncated, final = self._source(self.max_body_size)
        value = _parse_body(media, data, truncated)
        if final:
            self._body = value
        return value


def _parse_body(media: str, data: bytes, truncated: bool) -> Any:
    if truncated:
        # Drop a character cut in half at the end rather than show a replacement character.
        return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False) + TRUNCATED
    if not data:
        return None
    text = data.decode("utf-8", "replace")
    if media == "application/json" or media.endswith("+json"):
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):  # invalid, or nested too deep for the parser
            return text
        return parsed if isinstance(parsed, (dict, list)) else text
    if media == "application/x-www-form-urlencoded":
        return parse_params(text)
    return text


def _fixed(data: bytes) -> BodySource:
    """A body the framework already holds in full."""

    def source(limit: int) -> tuple[bytes, bool, bool]:
        return data[:limit], len(data) > limit, True

    return source


# --- WSGI ---------------------------------------------------------------------------------------


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


def _content_length(value: Any) -> int | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 18 else None


def _wsgi_text(value: Any) -> str:
    """PEP 3333 hands bytes over as latin-1 text; the bytes are really UTF-8 (mostly)."""
    if not isinstance(value, str):
        return ""
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


def _environ_headers(environ: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
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


def _form_bytes(items: Iterable[tuple[str, Any]]) -> bytes:
    """A parsed form, encoded again, for frameworks that parsed it without keeping the bytes."""
    pairs = [(name, value) for name, value in items if isinstance(value, str)]
    return urllib.parse.urlencode(pairs[:MAX_FIELDS]).encode()


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
        headers=_environ_headers(environ),
        peer=environ.get("REMOTE_ADDR"),
        body=source,
        ip_header=ip_header,
        trusted_proxies=trusted_proxies,
        max_body_size=max_body_size,
    )


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


# --- ASGI ---------------------------------------------------------------------------------------


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
        headers=(
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


# --- Adapters for track(..., {"request": r}) ----------------------------------------------------


def _instance_of(obj: Any, module: str, name: str) -> bool:
    """``isinstance`` against a framework class, without importing the framework."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(obj, cls)


def _options() -> dict[str, Any]:
    """The installed client-IP policy and body cap: the same as the middlewares use."""
    from .integrations import request_options

    return request_options()


def adapt(obj: Any) -> HTTPRequest | None:
    """The ``HTTPRequest`` of a WSGI environ, ASGI scope, Werkzeug/Flask, Django or Starlette request."""
    if isinstance(obj, dict):
        if "REQUEST_METHOD" in obj and "wsgi.input" in obj:
            options = _options()
            return _from_wsgi(
                obj, options["ip_header"], options["trusted_proxies"], options["max_body_size"], install=False
            )
        if obj.get("type") == "http":
            return from_asgi(obj, None, **_options())
        return None
    if _instance_of(obj, "werkzeug.wrappers.request", "Request"):
        return from_werkzeug(obj, **_options())
    if _instance_of(obj, "django.http.request", "HttpRequest"):
        return from_django(obj, **_options())
    if _instance_of(obj, "starlette.requests", "Request"):
        return from_starlette(obj, **_options())
    return None


def install_adapters() -> None:
    """Let ``track(..., {"request": r})`` take framework requests; calling it again does nothing."""
    register_request_adapter(adapt)
