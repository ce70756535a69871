"""The request's data from OpenTelemetry's HTTP server span, for apps instrumented without our middleware.

OpenTelemetry's instrumentors (Flask, Django, FastAPI, Starlette, WSGI, ASGI, ``opentelemetry-instrument``)
put the request on the request's local-root SERVER span. ``track()`` may run in a child span, in a
thread that got the context (``asyncio.to_thread``, ``copy_context().run``, Starlette's
``run_in_threadpool``) or in an asyncio task: the current span is then not the server span, so
``ServerSpans`` remembers the live server spans, and the spans under them, to find it again.

Instrumentations still emit the older attribute names by default (``OTEL_SEMCONV_STABILITY_OPT_IN``
unset); ``SpanRequest`` reads both generations. What the span cannot give: request bodies, and
headers unless the app has them recorded (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``),
so by default the client address is the socket peer, not the one behind a proxy.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.trace import Span, SpanContext, SpanKind

from .clientip import DEFAULT_HEADERS, MAX_ENTRIES, IPNetwork, parse_address, resolve_client_ip
from .event import PARAMS
from .request import MAX_PATH, MAX_QUERY, parse_params

MAX_SPANS = 10_000

# Instrumentations built on the ASGI one: their ``http.target`` is the decoded path and ``http.url``
# carries the query string already percent-decoded (``urllib.parse.unquote``).
_ASGI_SCOPES = frozenset(
    {
        "opentelemetry.instrumentation.asgi",
        "opentelemetry.instrumentation.fastapi",
        "opentelemetry.instrumentation.starlette",
    }
)
_METHOD = ("http.request.method", "http.method")
_USER_AGENT = ("user_agent.original", "http.user_agent")
_CLIENT = ("client.address", "http.client_ip", "net.peer.ip", "network.peer.address", "net.sock.peer.addr")
_FORWARDED_CLIENT = ("client.address", "http.client_ip")  # may come from headers: believed from trusted peers only
_PEER = ("network.peer.address", "net.peer.ip", "net.sock.peer.addr")
_HEADER = "http.request.header."


def _is_local_root(span: Any) -> bool:
    parent = getattr(span, "parent", None)
    return getattr(span, "kind", None) is SpanKind.SERVER and (parent is None or parent.is_remote)


class ServerSpans(SpanProcessor):
    """Remembers live local-root SERVER spans, and the local spans under them, until they end.

    At most ``max_spans`` entries: past that, the least recently started or used is forgotten (a span
    that never ends must not leak). Each span start and end costs a dict operation or two under a
    short lock.
    """

    def __init__(self, max_spans: int = MAX_SPANS) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be >= 1, got {max_spans}")
        self.max_spans = max_spans
        self._lock = threading.Lock()
        # (trace id, span id) of a server span or a span under it -> (the server span, its own key)
        self._root_of: OrderedDict[tuple[int, int], tuple[SDKSpan, tuple[int, int]]] = OrderedDict()
        self._roots: dict[int, dict[int, SDKSpan]] = {}  # trace id -> span id -> the live server spans

    def __len__(self) -> int:
        return len(self._root_of)

    def on_start(self, span: SDKSpan, parent_context: otel_context.Context | None = None) -> None:
        context = span.get_span_context()
        key = (context.trace_id, context.span_id)
        parent = span.parent
        if span.kind is SpanKind.SERVER and (parent is None or parent.is_remote):
            with self._lock:
                self._root_of[key] = (span, key)
                self._roots.setdefault(context.trace_id, {})[context.span_id] = span
                if len(self._root_of) > self.max_spans:
                    self._bound()
            return
        # Unlocked first look (one dict read is atomic): most spans are under no server span we know.
        if parent is None or (parent.trace_id, parent.span_id) not in self._root_of:
            return
        with self._lock:
            entry = self._root_of.get((parent.trace_id, parent.span_id))
            if entry is not None:
                if entry[1] in self._root_of:  # in use: away from the old end, where the bound forgets
                    self._root_of.move_to_end(entry[1])
                self._root_of[key] = entry
                if len(self._root_of) > self.max_spans:
                    self._bound()

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        key = (context.trace_id, context.span_id)
        if key not in self._root_of:  # unlocked look: only this span's own end removes its key
            return
        with self._lock:
            entry = self._root_of.pop(key, None)
            if entry is not None and entry[1] == key:
                self._forget_root(key)

    def _bound(self) -> None:
        while len(self._root_of) > self.max_spans:
            key, (_, root_key) = self._root_of.popitem(last=False)
            if key == root_key:
                self._forget_root(key)

    def _forget_root(self, key: tuple[int, int]) -> None:
        roots = self._roots.get(key[0])
        if roots is not None:
            roots.pop(key[1], None)
            if not roots:
                del self._roots[key[0]]

    def root_of(self, context: SpanContext) -> SDKSpan | None:
        """The running server span above the span of ``context``; by trace id when that span is unknown.

        ``None`` when several server spans of that trace are running here and the span is not known to
        be under one of them (e.g. two requests of one distributed trace): better no data than another
        request's.
        """
        with self._lock:
            entry = self._root_of.get((context.trace_id, context.span_id))
            if entry is not None:
                root: SDKSpan | None = entry[0]
            else:
                roots = self._roots.get(context.trace_id)
                root = next(iter(roots.values())) if roots is not None and len(roots) == 1 else None
        return root if root is not None and root.is_recording() else None

    def shutdown(self) -> None:
        with self._lock:
            self._root_of.clear()
            self._roots.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_registration_lock = threading.Lock()
_registered: tuple[SDKTracerProvider, ServerSpans] | None = None


def ensure_registered() -> ServerSpans | None:
    """Add one ``ServerSpans`` to the global SDK ``TracerProvider`` (again if the provider was replaced).

    ``None`` while the global provider is not an SDK one (not set yet, or a vendor's).
    """
    global _registered
    provider = trace.get_tracer_provider()
    current = _registered
    if current is not None and current[0] is provider:
        return current[1]
    if not isinstance(provider, SDKTracerProvider):
        return None
    with _registration_lock:
        if _registered is not None and _registered[0] is provider:
            return _registered[1]
        processor = _already_added(provider)
        if processor is None:
            processor = ServerSpans()
            provider.add_span_processor(processor)
        _registered = (provider, processor)
        return processor


def _already_added(provider: SDKTracerProvider) -> ServerSpans | None:
    """A ``ServerSpans`` on ``provider`` already (added by us for an earlier registration, or by the app)."""
    active = getattr(provider, "_active_span_processor", None)
    for processor in getattr(active, "_span_processors", ()):
        if isinstance(processor, ServerSpans):
            return processor
    return None


def server_span(current: Span | None = None) -> Span | None:
    """The current request's local-root server span, if it is still running.

    ``current`` is the current span when the caller already has it (``track()`` does).
    """
    span = trace.get_current_span() if current is None else current
    context = span.get_span_context()
    if not context.is_valid:
        return None
    if _is_local_root(span) and span.is_recording():
        return span
    processor = ensure_registered()
    if processor is None or not len(processor):  # no request running here: no lock, no lookup
        return None
    return processor.root_of(context)


class SpanRequest:
    """A ``RequestContext`` from a server span's attributes: method, path, user agent, client, params.

    The client address: from forwarding headers when the app had them recorded on the span
    (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=x-forwarded-for``), with the same
    policy as ``HTTPRequest`` (``clientip.resolve_client_ip``); else from the span's client/peer
    attributes. With ``trusted_proxies``, ``client.address``/``http.client_ip`` (which an instrumentation
    may take from headers) are believed only when the span's peer address is in one of those networks;
    else the peer is the client, and a span without a peer attribute has no client address.
    """

    def __init__(
        self,
        attributes: Mapping[str, Any],
        *,
        trusted_proxies: Sequence[IPNetwork] | None = None,
        ip_header: str | None = None,
        asgi: bool = False,
    ) -> None:
        self._source = dict(attributes)
        self._trusted_proxies = trusted_proxies
        self._ip_header = ip_header
        self._asgi = asgi
        self._attributes: dict[str, Any] | None = None

    @classmethod
    def from_span(
        cls, span: Span, *, trusted_proxies: Sequence[IPNetwork] | None = None, ip_header: str | None = None
    ) -> SpanRequest:
        attributes = getattr(span, "attributes", None) or {}
        scope = getattr(getattr(span, "instrumentation_scope", None), "name", "")
        target, url = attributes.get("http.target"), attributes.get("http.url")
        # The ASGI instrumentation's tell, whatever tracer it was given: a target without the query that the URL has.
        asgi = scope in _ASGI_SCOPES or (
            isinstance(target, str) and isinstance(url, str) and "?" not in target and "?" in url
        )
        return cls(attributes, trusted_proxies=trusted_proxies, ip_header=ip_header, asgi=asgi)

    def _first(self, names: Sequence[str]) -> str | None:
        for name in names:
            value = self._source.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def _path_and_query(self) -> tuple[str | None, str | None, bool]:
        """The path, the query string, and whether that query is already percent-decoded."""
        path, query = self._first(("url.path",)), self._first(("url.query",))
        target, url = self._first(("http.target",)), self._first(("http.url",))
        decoded = False
        raw_path = None
        if target is not None:
            raw_path, has_query, target_query = target.partition("?")
            if query is None and has_query:
                query = target_query
        if url is not None and (raw_path is None or query is None):
            base, has_query, url_query = url.partition("?")
            if raw_path is None:
                raw_path = urllib.parse.urlsplit(base).path
            if query is None and has_query:
                query, decoded = url_query, self._asgi
        if path is None and raw_path:
            path = self._decode_path(raw_path)
        return path, query, decoded

    def _decode_path(self, path: str) -> str:
        return path if self._asgi else urllib.parse.unquote(path, errors="replace")

    def _captured_headers(self) -> dict[str, str]:
        """Forwarding headers the app had recorded (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``)."""
        headers: dict[str, str] = {}
        names = (*DEFAULT_HEADERS, self._ip_header.strip().lower()) if self._ip_header else DEFAULT_HEADERS
        for name in names:
            for key in (_HEADER + name, _HEADER + name.replace("-", "_")):  # stable, then as instrumentations write it
                value = self._source.get(key)
                if isinstance(value, str) and value:
                    headers[name] = value
                elif isinstance(value, (list, tuple)) and value:
                    headers[name] = ", ".join(str(item) for item in value[:MAX_ENTRIES])
                else:
                    continue
                break
        return headers

    def _client(self) -> tuple[str | None, str | None]:
        peer = self._first(_PEER)
        headers = self._captured_headers()
        if headers:
            client = resolve_client_ip(peer, headers, ip_header=self._ip_header, trusted_proxies=self._trusted_proxies)
            if client is not None:
                return client, peer
        if self._trusted_proxies is None:
            return self._first(_CLIENT), peer
        forwarded = self._first(_FORWARDED_CLIENT)
        if forwarded is not None and peer is not None and forwarded != peer:
            address = parse_address(peer)
            trusted = address is not None and any(
                address.version == network.version and address in network for network in self._trusted_proxies
            )
            return (forwarded if trusted else peer), peer
        return peer, peer

    def attributes(self) -> Mapping[str, Any]:
        if self._attributes is not None:
            return self._attributes
        path, query, decoded = self._path_and_query()
        client, peer = self._client()
        attributes: dict[str, Any] = {}
        for key, value in (
            ("client.address", client),
            ("network.peer.address", peer),
            ("user_agent.original", self._first(_USER_AGENT)),
            ("url.path", path[:MAX_PATH] if path else None),
            ("http.request.method", self._first(_METHOD)),
        ):
            if value:
                attributes[key] = value
        if query:
            params = _split_decoded(query[:MAX_QUERY]) if decoded else parse_params(query[:MAX_QUERY])
            attributes.update((PARAMS + name, value) for name, value in params.items())
        self._attributes = attributes
        return attributes

    def body(self) -> Any:
        """Spans do not carry request bodies."""
        return None


def _split_decoded(query: str) -> dict[str, str | list[str]]:
    """Parameters of a query the ASGI instrumentation already percent-decoded: split, ``+`` as space.

    Lossy, as the decoding was: an encoded ``&`` or ``=`` in a value now splits it.
    """
    return parse_params(query.replace("%", "%25"))


def request_from_span(
    current: Span | None = None, *, trusted_proxies: Sequence[IPNetwork] | None = None, ip_header: str | None = None
) -> SpanRequest | None:
    """The current request as the OpenTelemetry server span describes it; ``None`` outside one."""
    span = server_span(current)
    if span is None:
        return None
    return SpanRequest.from_span(span, trusted_proxies=trusted_proxies, ip_header=ip_header)


# Semantic-convention user attributes, from the identifier that best fits each.
_USER_ATTRIBUTES = (
    ("user.id", ("user_id", "id", "uid")),
    ("user.email", ("email",)),
    ("user.name", ("username", "login")),
)


def annotate_user(user_attributes: Mapping[str, Any]) -> None:
    """Put the identified user on the request's server span, so traces show who made the request.

    ``user_attributes`` are the event's ``sqreen.user.<key>`` attributes: already pseudonymised.
    """
    span = server_span()
    if span is None or not user_attributes:
        return
    by_key = {name.removeprefix("sqreen.user."): value for name, value in user_attributes.items()}
    attributes = dict(user_attributes)
    for name, keys in _USER_ATTRIBUTES:
        value = next((by_key[key] for key in keys if key in by_key), None)
        if value is not None:
            attributes[name] = value
    attributes.setdefault("user.id", next(iter(by_key.values())))
    span.set_attributes(attributes)
