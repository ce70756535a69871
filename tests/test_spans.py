"""The request from OpenTelemetry's server span: real instrumentors (Flask, ASGI middleware, Starlette,
FastAPI, Django), both semantic-convention generations, and every way track() can be away from the
server span (child span, thread with the context, asyncio task); plus ServerSpans' bookkeeping."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
import flask
import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.urls import path
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation._semconv import (
    OTEL_SEMCONV_STABILITY_OPT_IN,
    _OpenTelemetrySemanticConventionStability,
)
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.starlette import StarletteInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from sqreen_otel.clientip import parse_networks
from sqreen_otel.spans import ServerSpans, SpanRequest, ensure_registered, request_from_span, server_span

if not settings.configured:
    settings.configure(
        DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[], INSTALLED_APPS=[]
    )
    django.setup()

P = "sqreen.request.params."
PEER = "203.0.113.5"
QUERY = "a=1&a=2&q=caf%C3%A9&s=hello+world&pct=%2541"
HEADERS = {"User-Agent": "UA/1.0", "X-Forwarded-For": "8.8.8.8"}  # instrumentors do not record X-Forwarded-For
EXPECTED = {
    "client.address": PEER,
    "user_agent.original": "UA/1.0",
    "url.path": "/p/1",
    "http.request.method": "GET",
    P + "a": ["1", "2"],
    P + "q": "café",
    P + "s": "hello world",
    P + "pct": "%41",
}
SYNC_MODES = ("direct", "child", "grandchild", "copy_context_thread", "asyncio_task", "asyncio_to_thread")
ASYNC_MODES = ("direct", "child", "copy_context_thread", "asyncio_task", "asyncio_to_thread", "run_in_threadpool")

Setup = tuple[TracerProvider, InMemorySpanExporter, ServerSpans]


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    """A fresh SDK provider as the global one, with our ServerSpans registered on it."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    processor = ensure_registered()
    assert processor is not None
    yield provider, exporter, processor
    provider.shutdown()


@pytest.fixture(params=["default", "http"])
def semconv(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Old attribute names (the default) or the stable ones (``OTEL_SEMCONV_STABILITY_OPT_IN=http``)."""
    if request.param == "default":
        monkeypatch.delenv(OTEL_SEMCONV_STABILITY_OPT_IN, raising=False)
    else:
        monkeypatch.setenv(OTEL_SEMCONV_STABILITY_OPT_IN, request.param)
    _OpenTelemetrySemanticConventionStability._initialized = False
    _OpenTelemetrySemanticConventionStability._initialize()
    yield request.param
    _OpenTelemetrySemanticConventionStability._initialized = False  # re-read from the restored environment


def snapshot() -> dict[str, Any] | None:
    request = request_from_span()
    return None if request is None else dict(request.attributes())


def sync_views(tracer: trace.Tracer) -> dict[str, Any]:
    """``request_from_span()`` from every place a synchronous view may call track()."""
    out: dict[str, Any] = {"direct": snapshot()}
    with tracer.start_as_current_span("child"):
        out["child"] = snapshot()
        with tracer.start_as_current_span("grandchild"):
            out["grandchild"] = snapshot()
    with ThreadPoolExecutor(1) as pool:
        out["copy_context_thread"] = pool.submit(contextvars.copy_context().run, snapshot).result()
        out["no_context_thread"] = pool.submit(snapshot).result()

    async def task() -> Any:
        async def inner() -> Any:
            await asyncio.sleep(0)
            return snapshot()

        return await asyncio.create_task(inner())

    out["asyncio_task"] = asyncio.run(task())
    out["asyncio_to_thread"] = asyncio.run(asyncio.to_thread(snapshot))
    return out


async def async_views(tracer: trace.Tracer) -> dict[str, Any]:
    """``request_from_span()`` from every place an async endpoint may call track()."""
    out: dict[str, Any] = {"direct": snapshot()}
    with tracer.start_as_current_span("child"):
        out["child"] = snapshot()
    with ThreadPoolExecutor(1) as pool:
        out["copy_context_thread"] = pool.submit(contextvars.copy_context().run, snapshot).result()
        out["no_context_thread"] = pool.submit(snapshot).result()

    async def inner() -> Any:
        await asyncio.sleep(0)
        return snapshot()

    out["asyncio_task"] = await asyncio.create_task(inner())
    out["asyncio_to_thread"] = await asyncio.to_thread(snapshot)
    out["run_in_threadpool"] = await run_in_threadpool(snapshot)
    return out


def check(out: dict[str, Any], modes: tuple[str, ...], mode: str, processor: ServerSpans) -> None:
    expected = dict(EXPECTED)
    if mode == "default":  # the old names put the socket peer in net.peer.ip; the stable ones only in client.address
        expected["network.peer.address"] = PEER
    for name in modes:
        assert out[name] == expected, name
    assert out["no_context_thread"] is None  # a thread without the context is outside the request
    assert len(processor) == 0  # every span ended, nothing kept


def test_flask(otel: Setup, semconv: str) -> None:
    provider, exporter, processor = otel
    app = flask.Flask(__name__)
    tracer = provider.get_tracer("test")
    results: dict[str, Any] = {}

    @app.get("/p/<name>")
    def view(name: str) -> Any:
        results.update(sync_views(tracer))
        return "ok"

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    try:
        response = app.test_client().get(f"/p/1?{QUERY}", headers=HEADERS, environ_base={"REMOTE_ADDR": PEER})
    finally:
        FlaskInstrumentor().uninstrument_app(app)
    assert response.status_code == 200
    check(results, SYNC_MODES, semconv, processor)
    assert [s.kind for s in exporter.get_finished_spans() if s.name.startswith("GET")] == [SpanKind.SERVER]


def starlette_app(tracer: trace.Tracer, results: dict[str, Any]) -> Starlette:
    async def endpoint(request: Request) -> JSONResponse:
        results.update(await async_views(tracer))
        return JSONResponse({})

    return Starlette(routes=[Route("/p/{name}", endpoint)])


def test_asgi_middleware(otel: Setup, semconv: str) -> None:
    provider, _, processor = otel
    results: dict[str, Any] = {}
    app = OpenTelemetryMiddleware(starlette_app(provider.get_tracer("test"), results), tracer_provider=provider)
    response = TestClient(app, client=(PEER, 50000)).get(f"/p/1?{QUERY}", headers=HEADERS)
    assert response.status_code == 200
    check(results, ASYNC_MODES, semconv, processor)


def test_starlette_instrumentor(otel: Setup, semconv: str) -> None:
    provider, _, processor = otel
    results: dict[str, Any] = {}
    app = starlette_app(provider.get_tracer("test"), results)
    StarletteInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        response = TestClient(app, client=(PEER, 50000)).get(f"/p/1?{QUERY}", headers=HEADERS)
    finally:
        StarletteInstrumentor.uninstrument_app(app)
    assert response.status_code == 200
    check(results, ASYNC_MODES, semconv, processor)


def test_fastapi(otel: Setup, semconv: str) -> None:
    provider, _, processor = otel
    tracer = provider.get_tracer("test")
    results: dict[str, Any] = {}
    sync_results: dict[str, Any] = {}
    app = FastAPI()

    @app.get("/p/{name}")
    async def endpoint(name: str) -> dict[str, str]:
        results.update(await async_views(tracer))
        return {}

    @app.get("/sync/p/{name}")
    def sync_endpoint(name: str) -> dict[str, str]:  # FastAPI runs it in its thread pool
        sync_results["direct"] = snapshot()
        return {}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        client = TestClient(app, client=(PEER, 50000))
        assert client.get(f"/p/1?{QUERY}", headers=HEADERS).status_code == 200
        assert client.get(f"/sync/p/1?{QUERY}", headers=HEADERS).status_code == 200
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    check(results, ASYNC_MODES, semconv, processor)
    expected = dict(results["direct"], **{"url.path": "/sync/p/1"})
    assert sync_results["direct"] == expected


def test_django(otel: Setup, semconv: str) -> None:
    provider, _, processor = otel
    tracer = provider.get_tracer("test")
    results: dict[str, Any] = {}

    def view(request: HttpRequest, name: str) -> JsonResponse:
        results.update(sync_views(tracer))
        return JsonResponse({})

    extra = {"REMOTE_ADDR": PEER, "HTTP_USER_AGENT": HEADERS["User-Agent"], "HTTP_X_FORWARDED_FOR": "8.8.8.8"}
    if semconv == "http":
        # With the stable names the WSGI attributes give url.path/url.query only from the request line that
        # servers such as gunicorn (RAW_URI) and uWSGI (REQUEST_URI) provide; Django's test client does not.
        extra["RAW_URI"] = f"/p/1?{QUERY}"
    DjangoInstrumentor().instrument(tracer_provider=provider)
    try:
        with override_settings(ROOT_URLCONF=type("URLs", (), {"urlpatterns": [path("p/<name>", view)]})):
            response = Client().get(f"/p/1?{QUERY}", **extra)
    finally:
        DjangoInstrumentor().uninstrument()
    assert response.status_code == 200
    check(results, SYNC_MODES, semconv, processor)


def test_captured_forwarding_headers_give_the_client_behind_proxies(
    otel: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With X-Forwarded-For recorded on the span, the client-IP policy applies as for our middleware."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-forwarded-for")
    provider, exporter, _ = otel
    seen: dict[str, Any] = {}
    app = flask.Flask(__name__)

    @app.get("/")
    def view() -> Any:
        seen["default"] = snapshot()
        trusted = request_from_span(trusted_proxies=parse_networks(["10.0.0.0/8"]))
        seen["trusted"] = None if trusted is None else dict(trusted.attributes())
        return "ok"

    fastapi_app = FastAPI()

    @fastapi_app.get("/")
    async def endpoint() -> dict[str, str]:
        seen["fastapi"] = snapshot()
        return {}

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    FastAPIInstrumentor.instrument_app(fastapi_app, tracer_provider=provider)
    try:
        forwarded = {"X-Forwarded-For": "8.8.8.8, 9.9.9.9"}
        app.test_client().get("/", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.7"})
        TestClient(fastapi_app, client=("10.0.0.7", 1)).get("/", headers=forwarded)
    finally:
        FlaskInstrumentor().uninstrument_app(app)
        FastAPIInstrumentor.uninstrument_app(fastapi_app)
    recorded = {k: v for s in exporter.get_finished_spans() for k, v in (s.attributes or {}).items() if "header" in k}
    assert recorded == {"http.request.header.x_forwarded_for": ("8.8.8.8, 9.9.9.9",)}
    assert seen["default"]["client.address"] == "8.8.8.8"  # the first public address, as HTTPRequest does
    assert seen["default"]["network.peer.address"] == "10.0.0.7"
    assert seen["trusted"]["client.address"] == "9.9.9.9"  # the first untrusted hop from the right
    assert seen["fastapi"]["client.address"] == "8.8.8.8"


# --- SpanRequest from attributes --------------------------------------------------------------


def test_span_request_reads_both_generations() -> None:
    old = SpanRequest(
        {
            "http.method": "POST",
            "http.target": "/caf%C3%A9?x=1&x=2&y=a%26b",
            "http.user_agent": "UA",
            "net.peer.ip": "10.0.0.1",
            "http.client_ip": "8.8.8.8",
        }
    )
    assert dict(old.attributes()) == {
        "client.address": "8.8.8.8",
        "network.peer.address": "10.0.0.1",
        "user_agent.original": "UA",
        "url.path": "/café",
        "http.request.method": "POST",
        P + "x": ["1", "2"],
        P + "y": "a&b",
    }
    assert old.body() is None
    new = SpanRequest(
        {
            "http.request.method": "GET",
            "url.path": "/n",
            "url.query": "k=v%20w",
            "user_agent.original": "UA2",
            "client.address": "9.9.9.9",
            "network.peer.address": "10.0.0.2",
            "http.target": "/ignored?ignored=1",
        }
    )
    assert dict(new.attributes()) == {
        "client.address": "9.9.9.9",
        "network.peer.address": "10.0.0.2",
        "user_agent.original": "UA2",
        "url.path": "/n",
        "http.request.method": "GET",
        P + "k": "v w",
    }
    url_only = SpanRequest({"http.url": "http://h:8000/a%20b?z=%3D", "net.sock.peer.addr": "192.0.2.1"})
    assert dict(url_only.attributes()) == {
        "client.address": "192.0.2.1",
        "network.peer.address": "192.0.2.1",
        "url.path": "/a b",
        P + "z": "=",
    }
    assert dict(SpanRequest({}).attributes()) == {}


def test_span_request_asgi_query_is_already_decoded() -> None:
    attributes = {"http.target": "/p", "http.url": "http://h/p?pct=%41&s=a+b&u=é"}
    # Told by the shape (target without the URL's query) even when the scope name is unknown.
    request = SpanRequest.from_span(_FakeSpan(attributes, "my.own.tracer"))  # type: ignore[arg-type]
    assert request.attributes()[P + "pct"] == "%41"
    assert request.attributes()[P + "s"] == "a b"
    assert request.attributes()[P + "u"] == "é"
    wsgi = SpanRequest.from_span(_FakeSpan({"http.url": "http://h/p?pct=%41"}, "x"))  # type: ignore[arg-type]
    assert wsgi.attributes()[P + "pct"] == "A"


class _FakeSpan:
    def __init__(self, attributes: dict[str, Any], scope: str) -> None:
        self.attributes = attributes
        self.instrumentation_scope = type("Scope", (), {"name": scope})()


@pytest.mark.parametrize(
    ("attributes", "client", "peer"),
    [
        ({"client.address": "8.8.8.8", "network.peer.address": "10.1.2.3"}, "8.8.8.8", "10.1.2.3"),
        ({"client.address": "8.8.8.8", "network.peer.address": "203.0.113.1"}, "203.0.113.1", "203.0.113.1"),
        ({"http.client_ip": "8.8.8.8", "net.peer.ip": "10.1.2.3"}, "8.8.8.8", "10.1.2.3"),
        ({"http.client_ip": "8.8.8.8", "net.sock.peer.addr": "::1"}, "::1", "::1"),
        ({"http.client_ip": "8.8.8.8", "net.peer.ip": "testclient"}, "testclient", "testclient"),
        ({"net.peer.ip": "203.0.113.1"}, "203.0.113.1", "203.0.113.1"),
        ({"client.address": "8.8.8.8"}, None, None),  # no peer to vouch for it
        (
            {"http.request.header.x_forwarded_for": ("6.6.6.6, 7.7.7.7",), "net.peer.ip": "10.0.0.1"},
            "7.7.7.7",
            "10.0.0.1",
        ),
        (
            {"http.request.header.x-forwarded-for": ("7.7.7.7",), "net.peer.ip": "203.0.113.1"},
            "203.0.113.1",
            "203.0.113.1",
        ),
    ],
)
def test_span_request_trusted_proxies(attributes: dict[str, str], client: str | None, peer: str | None) -> None:
    got = SpanRequest(attributes, trusted_proxies=parse_networks(["10.0.0.0/8"])).attributes()
    assert got.get("client.address") == client
    assert got.get("network.peer.address") == peer


# --- ServerSpans ------------------------------------------------------------------------------


def _remote_parent(trace_id: int) -> otel_context.Context:
    parent = SpanContext(trace_id, 0xABC, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def test_server_spans_follow_children_and_forget_ended(otel: Setup) -> None:
    provider, _, processor = otel
    tracer = provider.get_tracer("test")
    remote = _remote_parent(0x1234)
    one = tracer.start_span("one", context=remote, kind=SpanKind.SERVER)
    two = tracer.start_span("two", context=remote, kind=SpanKind.SERVER)  # same distributed trace
    internal = tracer.start_span("not a server", kind=SpanKind.INTERNAL)
    client_root = tracer.start_span("client", kind=SpanKind.CLIENT)
    child_one = tracer.start_span("c1", context=trace.set_span_in_context(one))
    grandchild_one = tracer.start_span("g1", context=trace.set_span_in_context(child_one))
    child_two = tracer.start_span("c2", context=trace.set_span_in_context(two))
    assert processor.root_of(grandchild_one.get_span_context()) is one
    assert processor.root_of(child_two.get_span_context()) is two
    assert processor.root_of(internal.get_span_context()) is None
    assert processor.root_of(client_root.get_span_context()) is None
    # A span we never saw, in a trace with two server spans here: ambiguous, so nothing.
    unknown = SpanContext(0x1234, 0xDEF, is_remote=False)
    assert processor.root_of(unknown) is None
    for span in (grandchild_one, child_one, one):
        span.end()
    assert processor.root_of(unknown) is two  # the only one left in that trace
    for span in (child_two, two, internal, client_root):
        span.end()
    assert processor.root_of(unknown) is None
    assert len(processor) == 0


def test_server_span_only_while_running(otel: Setup) -> None:
    provider, _, _ = otel
    tracer = provider.get_tracer("test")
    assert server_span() is None and request_from_span() is None
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes={"http.method": "GET"}) as root:
        assert server_span() is root
        child = tracer.start_span("child")
        token = otel_context.attach(trace.set_span_in_context(child))
        try:
            assert server_span() is root
            request = request_from_span()
            assert request is not None and request.attributes() == {"http.request.method": "GET"}
            root.end()
            assert server_span() is None  # the request is over
        finally:
            otel_context.detach(token)
            child.end()
    with tracer.start_as_current_span("internal root"):
        assert server_span() is None


def test_server_spans_bound() -> None:
    processor = ServerSpans(max_spans=3)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    spans = [tracer.start_span(f"r{i}", kind=SpanKind.SERVER) for i in range(5)]
    assert len(processor) == 3
    assert processor.root_of(spans[0].get_span_context()) is None  # the oldest forgotten
    assert processor.root_of(spans[1].get_span_context()) is None
    assert processor.root_of(spans[4].get_span_context()) is spans[4]
    children = [tracer.start_span(f"c{i}", context=trace.set_span_in_context(spans[4])) for i in range(5)]
    assert len(processor) == 3  # a server span in use stays; its oldest children go
    assert processor.root_of(children[-1].get_span_context()) is spans[4]
    assert processor.root_of(spans[4].get_span_context()) is spans[4]
    assert processor.root_of(spans[3].get_span_context()) is None
    for span in spans + children:
        span.end()
    assert len(processor) == 0
    with pytest.raises(ValueError):
        ServerSpans(max_spans=0)


def test_server_spans_concurrently() -> None:
    processor = ServerSpans()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(300):
                root = tracer.start_span("r", kind=SpanKind.SERVER)
                child = tracer.start_span("c", context=trace.set_span_in_context(root))
                assert processor.root_of(child.get_span_context()) is root
                child.end()
                root.end()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(processor) == 0


def _server_spans_on(provider: TracerProvider) -> list[ServerSpans]:
    return [p for p in provider._active_span_processor._span_processors if isinstance(p, ServerSpans)]


def test_ensure_registered_once_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)  # the proxy: no SDK provider yet
    assert ensure_registered() is None
    first, second = TracerProvider(), TracerProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", first)
    registered = ensure_registered()
    assert registered is not None and ensure_registered() is registered
    assert _server_spans_on(first) == [registered]
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", second)  # replaced
    replacement = ensure_registered()
    assert replacement is not None and replacement is not registered
    assert _server_spans_on(second) == [replacement]
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", first)  # and back: the one already there is reused
    assert ensure_registered() is registered
    assert _server_spans_on(first) == [registered]

    class Vendor(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return trace.NoOpTracer()

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", Vendor())
    assert ensure_registered() is None


def test_server_span_when_registered_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans started before registration are unknown; the current server span itself is still found."""
    provider = TracerProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        assert server_span() is root
        with tracer.start_as_current_span("child"):
            assert server_span() is None  # no SDK provider registered: nobody remembers the root
