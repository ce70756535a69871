"""The HTTP request an event happened in, framework-neutral: ``HTTPRequest`` and the limits it applies.

``attributes()`` gives semantic-convention names (``client.address``, ``url.path``...) and each query or
form parameter as ``sqreen.request.params.<name>``, with raw values: the event pipeline scrubs them.
``body()`` reads at most ``max_body_size`` bytes through a ``BodySource``, and only when an event asks
for it (``collect_body``).

Reading a framework's request into one is each integration's job, as in sentry-python's
``integrations/``: ``integrations.wsgi`` (WSGI environs, replaying ``wsgi.input``), ``integrations.flask``
(Werkzeug/Flask requests), ``integrations.django``, ``integrations.asgi`` (ASGI scopes, ``ASGIBody``,
Starlette requests); ``integrations.adapt`` picks one for ``track(..., {"request": r})``. The old names
here (``from_wsgi``, ``ASGIBody``...) still import, from those modules, when first used.
"""

from __future__ import annotations

import codecs
import importlib
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .clientip import CHAIN_HEADERS, DEFAULT_HEADERS, IPNetwork, resolve_client_ip
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

# ``source(limit)`` -> (the body's first ``limit`` bytes, whether the body is longer, whether that answer is final).
BodySource = Callable[[int], "tuple[bytes, bool, bool]"]
Params = dict[str, "str | list[str]"]

# Read by the body parser and the client-IP policy: kept even past MAX_HEADERS.
_WANTED = frozenset({"content-type", "content-length", "transfer-encoding", "user-agent", *DEFAULT_HEADERS})
# Proxies append to these: past the value cap we keep the end, where trusted proxies write.
_TAIL = frozenset(CHAIN_HEADERS)
_UNSET: Any = object()


def parse_params(query: str | bytes, into: Params | None = None) -> Params:
    """Percent-decoded parameters of a query string or form body; a repeated name gives a list.

    At most ``MAX_FIELDS`` pairs are read and ``MAX_PARAMS`` names kept (the first ones); blank values kept.
    """
    params: Params = {} if into is None else into
    if not query:  # most requests: no query string, no form
        return params
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
                headers[name] = value if len(value) <= MAX_HEADER_VALUE else _cap_header(name, value)
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

    ``headers`` may be given as a callable, read when first needed. Attributes and body are computed once
    and cached, except while an ASGI body is still arriving: then the answer can still grow, so it is
    recomputed on the next call.
    """

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query_string: str | bytes = "",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | Callable[[], Iterable[tuple[str, str]]] = (),
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
        # A callable is read only when the headers are first needed (an event, a block check): most
        # requests record nothing, and then their headers are never copied.
        self._headers: dict[str, str] | None = None
        self._read_headers: Callable[[], Iterable[tuple[str, str]]] | None = None
        if callable(headers) and not isinstance(headers, Mapping):
            self._read_headers = headers
        else:
            self._headers = collect_headers(headers.items() if isinstance(headers, Mapping) else headers, ip_header)
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
    def headers(self) -> dict[str, str]:
        """Lower-cased and capped (``collect_headers``), read once."""
        headers = self._headers
        if headers is None:  # two threads racing here both read the same source: same answer
            assert self._read_headers is not None
            headers = self._headers = collect_headers(self._read_headers(), self._ip_header)
        return headers

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


def _content_length(value: Any) -> int | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 18 else None


def _form_bytes(items: Iterable[tuple[str, Any]]) -> bytes:
    """A parsed form, encoded again, for frameworks that parsed it without keeping the bytes."""
    pairs = [(name, value) for name, value in items if isinstance(value, str)]
    return urllib.parse.urlencode(pairs[:MAX_FIELDS]).encode()


# Moved to the integration of their framework; still importable from here (PEP 562), without importing
# any framework until one of them is used.
_MOVED = {
    "from_wsgi": "wsgi",
    "from_werkzeug": "flask",
    "from_django": "django",
    "from_asgi": "asgi",
    "from_starlette": "asgi",
    "ASGIBody": "asgi",
    "adapt": "__init__",
    "install_adapters": "__init__",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    package = __name__.rpartition(".")[0] + ".integrations"
    return getattr(importlib.import_module(package if module == "__init__" else f"{package}.{module}"), name)
