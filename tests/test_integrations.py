"""The web integrations end to end: Flask (``Sqreen(app)``), Django (``SqreenMiddleware``), FastAPI and
Starlette (``SqreenASGIMiddleware``) and a plain WSGI app (``SqreenWSGIMiddleware``), through each
framework's own test client, with OpenTelemetry's real instrumentors where a mode needs them.

Every app serves one view that runs the steps named in its ``X-Do`` header (read the body, track,
identify, log in...), so that each test states what the view did and checks the events recorded
(in-process, through a real SDK LoggerProvider and an in-memory exporter) and the spans finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
import flask
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path as django_path
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OTelASGIMiddleware
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OTelWSGIMiddleware
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client as WerkzeugClient

import sqreen_otel
from sqreen_otel import context, runtime
from sqreen_otel.actions import parse_actions
from sqreen_otel.integrations import hooks
from sqreen_otel.integrations.asgi import SqreenASGIMiddleware
from sqreen_otel.integrations.flask import Sqreen
from sqreen_otel.integrations.wsgi import SqreenWSGIMiddleware
from sqreen_otel.scrub import DEFAULT_MASK
from sqreen_otel.values import TRUNCATED

if not settings.configured:
    settings.configure(
        DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[], INSTALLED_APPS=[]
    )
    django.setup()

urlpatterns: list[Any] = []  # ROOT_URLCONF when this module configured Django; each app overrides it

M = DEFAULT_MASK
P = "sqreen.request.params."
PROP = "sqreen.properties.k"
BODY = "sqreen.request.body"
UA = "UA/1.0"
PEER = "192.0.2.10"
DJANGO_MIDDLEWARE = "sqreen_otel.integrations.django.SqreenMiddleware"
FRAMEWORKS = ("flask", "django", "fastapi", "starlette", "wsgi")
ASGI = ("fastapi", "starlette")
REQUEST_KEYS = ("client.address", "network.peer.address", "user_agent.original", "url.path", "http.request.method")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


# -- what the views do --------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the view did: the steps it completed, the body it read, the spans that were current."""

    steps: list[str] = field(default_factory=list)
    body: bytes | None = None
    spans: dict[str, SpanContext] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return bool(self.steps)


def track_event(seen: Seen, label: str, collect_body: bool = False) -> None:
    seen.spans[label] = trace.get_current_span().get_span_context()
    assert sqreen_otel.track("ev", {"properties": {"k": "v"}, "collect_body": collect_body})


def parse_steps(spec: str) -> list[tuple[str, str]]:
    """``"identify:a@b.c,track"`` -> ``[("identify", "a@b.c"), ("track", "")]``."""
    steps = []
    for part in filter(None, spec.split(",")):
        name, _, arg = part.partition(":")
        steps.append((name, arg))
    return steps


def sync_step(seen: Seen, step: str, arg: str, native: Any) -> None:
    if step == "track":
        track_event(seen, "track")
    elif step == "track_body":
        track_event(seen, "track", collect_body=True)
    elif step == "identify":
        sqreen_otel.identify({"email": arg})
    elif step == "identify_full":
        sqreen_otel.identify({"user_id": "u42", "email": "alice@example.com"})
    elif step == "login":
        sqreen_otel.auth_track(True, email=arg)
    elif step == "child":
        with trace.get_tracer("test").start_as_current_span("child"):
            track_event(seen, "child")
    elif step == "track_req":
        assert sqreen_otel.track("ev", {"properties": {"k": "v"}, "request": native, "collect_body": arg == "body"})
    else:
        raise AssertionError(f"unknown step {step!r}")


def run_sync(seen: Seen, spec: str, read: Callable[[], bytes], native: Any) -> None:
    seen.steps.append("start")
    for step, arg in parse_steps(spec):
        if step == "read":
            seen.body = read()
        else:
            sync_step(seen, step, arg, native)
        seen.steps.append(step)


async def run_async(seen: Seen, spec: str, read: Callable[[], Any], native: Any) -> None:
    seen.steps.append("start")
    for step, arg in parse_steps(spec):
        if step == "read":
            seen.body = await read()
        elif step == "to_thread":
            await asyncio.to_thread(track_event, seen, "to_thread")
        elif step == "threadpool":
            await run_in_threadpool(track_event, seen, "threadpool")
        else:
            sync_step(seen, step, arg, native)
        seen.steps.append(step)


# -- the apps, in every mode ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    location: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class App:
    """One framework's app in one mode, and a client for it.

    Modes: ``sqreen`` (our integration), ``sqreen+otel`` (ours inside OpenTelemetry's instrumentation),
    ``otel`` (the instrumentation only: span-only mode), ``hooks`` (the instrumentation with our request
    hooks), ``bare`` (neither).
    """

    def __init__(self, kind: str, mode: str, provider: TracerProvider, stack: contextlib.ExitStack) -> None:
        self.kind, self.mode, self.provider, self.stack = kind, mode, provider, stack
        self.seen = Seen()
        self.ours = mode.startswith("sqreen")
        self.otel = mode in ("sqreen+otel", "otel", "hooks")
        self.hooked = mode == "hooks"
        self._clients: dict[str, Any] = {}
        getattr(self, "_build_" + kind)()

    # -- builders

    def _build_flask(self) -> None:
        app = flask.Flask(__name__)

        @app.route("/do", methods=["GET", "POST"])
        def do() -> Any:
            run_sync(self.seen, flask.request.headers.get("X-Do", ""), flask.request.get_data, flask.request)
            return "ok"

        if self.ours:
            Sqreen(app)
        if self.otel:
            hook = hooks.wsgi_request_hook if self.hooked else None
            FlaskInstrumentor().instrument_app(app, request_hook=hook, tracer_provider=self.provider)
            self.stack.callback(FlaskInstrumentor().uninstrument_app, app)
        self._open = self._werkzeug_open(app)

    def _build_wsgi(self) -> None:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            run_sync(self.seen, environ.get("HTTP_X_DO", ""), lambda: environ["wsgi.input"].read(length), environ)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        wsgi: Any = app
        if self.ours:
            wsgi = SqreenWSGIMiddleware(wsgi)
        if self.otel:
            hook = hooks.wsgi_request_hook if self.hooked else None
            wsgi = OTelWSGIMiddleware(wsgi, request_hook=hook, tracer_provider=self.provider)
        self._open = self._werkzeug_open(wsgi)

    def _werkzeug_open(self, app: Any) -> Callable[..., Reply]:
        client = WerkzeugClient(app)

        def open_(
            method: str, path: str, query: str, body: bytes | None, content_type: str | None, headers: Any, peer: str
        ) -> Reply:
            # The query in the path, so that REQUEST_URI/RAW_URI carry it as real servers' do.
            response = client.open(
                f"{path}?{query}" if query else path,
                method=method,
                data=body,
                content_type=content_type,
                headers=headers,
                environ_base={"REMOTE_ADDR": peer},
            )
            headers = response.headers
            return Reply(
                response.status_code, headers.get("Content-Type", ""), response.get_data(), headers.get("Location")
            )

        return open_

    def _build_django(self) -> None:
        def view(request: HttpRequest) -> HttpResponse:
            run_sync(self.seen, request.headers.get("X-Do", ""), lambda: request.body, request)
            return HttpResponse("ok", content_type="text/plain")

        urls = type("URLs", (), {"urlpatterns": [django_path("do", view)]})
        self.stack.enter_context(
            override_settings(ROOT_URLCONF=urls, MIDDLEWARE=[DJANGO_MIDDLEWARE] if self.ours else [])
        )
        if self.otel:
            hook = hooks.django_request_hook if self.hooked else None
            DjangoInstrumentor().instrument(request_hook=hook, tracer_provider=self.provider)
            self.stack.callback(DjangoInstrumentor().uninstrument)
        client = DjangoClient()  # loads MIDDLEWARE on its first request: after the instrumentor's insertion

        def open_(
            method: str, path: str, query: str, body: bytes | None, content_type: str | None, headers: Any, peer: str
        ) -> Reply:
            response = client.generic(
                method,
                f"{path}?{query}" if query else path,
                data=body or b"",
                content_type=content_type or "application/octet-stream",
                headers=headers,
                REMOTE_ADDR=peer,
            )
            return Reply(
                response.status_code, response.get("Content-Type", ""), response.content, response.get("Location")
            )

        self._open = open_

    def _build_fastapi(self) -> None:
        app = FastAPI()

        @app.api_route("/do", methods=["GET", "POST"])
        async def do(request: Request) -> PlainTextResponse:
            await run_async(self.seen, request.headers.get("X-Do", ""), request.body, request.scope)
            return PlainTextResponse("ok")

        @app.api_route("/sync", methods=["GET", "POST"])
        def do_sync(request: Request) -> PlainTextResponse:  # FastAPI runs it in its thread pool
            run_sync(self.seen, request.headers.get("X-Do", ""), lambda: b"", request.scope)
            return PlainTextResponse("ok")

        if self.ours:
            app.add_middleware(SqreenASGIMiddleware)
        if self.otel:
            hook = hooks.asgi_server_request_hook if self.hooked else None
            FastAPIInstrumentor.instrument_app(app, server_request_hook=hook, tracer_provider=self.provider)
            self.stack.callback(FastAPIInstrumentor.uninstrument_app, app)
        self._open = self._asgi_open(app)

    def _build_starlette(self) -> None:
        async def do(request: Request) -> PlainTextResponse:
            await run_async(self.seen, request.headers.get("X-Do", ""), request.body, request)
            return PlainTextResponse("ok")

        app: Any = Starlette(routes=[Route("/do", do, methods=["GET", "POST"])])
        if self.ours:
            app.add_middleware(SqreenASGIMiddleware)
        if self.otel:
            hook = hooks.asgi_server_request_hook if self.hooked else None
            app = OTelASGIMiddleware(app, server_request_hook=hook, tracer_provider=self.provider)
        self._open = self._asgi_open(app)

    def _asgi_open(self, app: Any) -> Callable[..., Reply]:
        def open_(
            method: str, path: str, query: str, body: bytes | None, content_type: str | None, headers: Any, peer: str
        ) -> Reply:
            client = self._clients.get(peer)
            if client is None:
                client = self._clients[peer] = TestClient(app, client=(peer, 1234))
            all_headers = dict(headers)
            if content_type:
                all_headers["Content-Type"] = content_type
            target = f"{path}?{query}" if query else path
            response = client.request(method, target, content=body, headers=all_headers, follow_redirects=False)
            headers = response.headers
            return Reply(
                response.status_code, headers.get("content-type", ""), response.content, headers.get("location")
            )

        return open_

    # -- requests

    def request(
        self,
        do: str = "track",
        *,
        method: str | None = None,
        path: str = "/do",
        query: str = "",
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        peer: str = PEER,
    ) -> Reply:
        self.seen = Seen()
        all_headers = {"User-Agent": UA, "X-Do": do, **(headers or {})}
        method = method or ("GET" if body is None else "POST")
        return self._open(method, path, query, body, content_type, all_headers, peer)


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_context() -> Iterator[None]:
    """identify() and hooks write the thread's context, which pytest shares between tests."""
    context.set_user(None)
    context.set_request(None)
    yield
    context.set_user(None)
    context.set_request(None)


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A fresh SDK TracerProvider as the global one (where spans.server_span() looks)."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    yield exporter
    provider.shutdown()


def plain(value: Any) -> Any:
    """Attributes as compared here: the SDK stores sequences as tuples and maps as read-only mappings.
    Each event's own ``log.record.uid`` is left out (tests/test_ids.py checks it)."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items() if key != "log.record.uid"}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


class Events:
    """The events recorded, through a real SDK LoggerProvider and an in-memory exporter."""

    def __init__(self) -> None:
        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider()
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.configured = False

    def install(self, settings_: Any = None) -> None:
        logger = self.provider.get_logger(runtime.LOGGER_NAME)
        if settings_ is None:
            runtime.install(runtime.Runtime(logger=logger, configured=True))
        else:
            runtime.install(runtime.Runtime.build(settings_, logger=logger))

    def configure(self, **settings_: Any) -> None:
        """``sqreen_otel.configure()`` for real, then its settings with our in-memory logger."""
        pipeline = sqreen_otel.configure(endpoint="http://127.0.0.1:9/v1/logs", **settings_)
        self.configured = True
        self.install(pipeline.settings)

    def records(self) -> list[Any]:
        return [r.log_record for r in self.exporter.get_finished_logs()]

    def named(self, name: str | None = None) -> list[dict[str, Any]]:
        return [plain(r.attributes) for r in self.records() if name is None or r.event_name == name]

    def names(self) -> list[str]:
        return [r.event_name for r in self.records()]

    def one(self, name: str = "ev") -> dict[str, Any]:
        (attributes,) = self.named(name)
        return attributes

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def events() -> Iterator[Events]:
    previous = runtime.current
    sqreen_otel.block_list.clear()
    capture = Events()
    capture.install()
    try:
        yield capture
    finally:
        if capture.configured:
            sqreen_otel.shutdown()
        runtime.install(previous)
        sqreen_otel.block_list.clear()
        capture.provider.shutdown()


@pytest.fixture
def make(spans: InMemorySpanExporter, events: Events) -> Iterator[Callable[[str, str], App]]:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    with contextlib.ExitStack() as stack:
        yield lambda kind, mode="sqreen": App(kind, mode, provider, stack)


@pytest.fixture(params=FRAMEWORKS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def expected(
    *,
    method: str = "GET",
    peer: str = PEER,
    client: str | None = None,
    path: str = "/do",
    params: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    attributes = {
        "client.address": client or peer,
        "network.peer.address": peer,
        "user_agent.original": UA,
        "url.path": path,
        "http.request.method": method,
        PROP: "v",
    }
    attributes.update((P + name, value) for name, value in (params or {}).items())
    attributes.update(extra)
    return attributes


def django_before_read(kind: str, order: str, *, within_cap: bool = True) -> bool:
    """Design: Django's middleware reads (and Django caches) bodies up to max_body_size before the view; a
    larger body is seen by an event only once the view has read it."""
    return kind == "django" and order.startswith("track") and not within_cap


def server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    return span


# -- request attributes and scrubbing --------------------------------------------------------------

QUERY = "a=1&a=2&token=abc&q=ok"
FORM_BODY = b"password=hunter2&f=v&f=w"
PARAMS = {"a": ["1", "2"], "token": M, "q": "ok", "password": M, "f": ["v", "w"]}


@pytest.mark.parametrize("order", ["read,track", "track,read"])
def test_track_carries_the_request_scrubbed(make: Callable[..., App], events: Events, kind: str, order: str) -> None:
    app = make(kind)
    reply = app.request(order, query=QUERY, body=FORM_BODY, content_type=FORM)
    assert reply.status == 200
    assert app.seen.body == FORM_BODY  # the view read the whole form, whoever read it first
    if django_before_read(kind, order):
        assert events.one() == expected(method="POST", params={"a": ["1", "2"], "token": M, "q": "ok"})
    else:
        assert events.one() == expected(method="POST", params=PARAMS)
    assert "abc" not in repr(events.named()) and "hunter2" not in repr(events.named())


def test_get_without_body(make: Callable[..., App], events: Events, kind: str) -> None:
    app = make(kind)
    assert app.request("track", query="token=abc&q=ok&empty=").status == 200
    assert events.one() == expected(params={"token": M, "q": "ok", "empty": ""})


# -- request bodies --------------------------------------------------------------------------------

JSON_OBJECT = {"user": "bob", "nested": {"password": "s3cret-pw", "ok": 1}, "list": [1, "two"]}
JSON_ARRAY = [{"password": "s3cret-pw", "a": 1}, 2, "three"]
BODIES: dict[str, tuple[bytes, str, Any]] = {
    "json_object": (
        json.dumps(JSON_OBJECT).encode(),
        JSON,
        {"user": "bob", "nested": {"password": M, "ok": 1}, "list": [1, "two"]},
    ),
    "json_array": (json.dumps(JSON_ARRAY).encode(), JSON, [{"password": M, "a": 1}, 2, "three"]),
    "form": (b"name=bob&password=s3cret-pw&tag=a&tag=b", FORM, {"name": "bob", "password": M, "tag": ["a", "b"]}),
    # Not valid JSON: kept as text, where the pairs of sensitive keys are still masked.
    "invalid_json": (b'{"password": "s3cret-pw", "n": 1,}', JSON, '{"password": ' + M + ', "n": 1,}'),
}


@pytest.mark.parametrize("order", ["read,track_body", "track_body,read"])
@pytest.mark.parametrize("shape", list(BODIES))
def test_collect_body(make: Callable[..., App], events: Events, kind: str, shape: str, order: str) -> None:
    data, content_type, parsed = BODIES[shape]
    app = make(kind)
    assert app.request(order, body=data, content_type=content_type).status == 200
    assert app.seen.body == data
    attributes = events.one()
    assert "s3cret-pw" not in repr(attributes)
    if django_before_read(kind, order):
        assert attributes == expected(method="POST")
        return
    assert attributes[BODY] == parsed
    if content_type == FORM:  # the form's fields are parameters too
        assert attributes[P + "tag"] == ["a", "b"] and attributes[P + "password"] == M


def test_no_body_without_collect_body(make: Callable[..., App], events: Events, kind: str) -> None:
    data, content_type, _ = BODIES["json_object"]
    app = make(kind)
    assert app.request("track,read", body=data, content_type=content_type).status == 200
    assert app.seen.body == data
    assert BODY not in events.one()
    assert events.one() == expected(method="POST")


@pytest.mark.parametrize("content_type", [JSON, FORM])
@pytest.mark.parametrize("order", ["read,track_body", "track_body,read"])
def test_body_larger_than_max_body_size(
    make: Callable[..., App], events: Events, kind: str, order: str, content_type: str
) -> None:
    events.configure(max_body_size=64)
    if content_type == JSON:
        data = json.dumps({"password": "s3cret-pw", "data": "x" * 3000, "end": "tail"}).encode()
        shown = data[:64].decode().replace('"s3cret-pw"', M)  # the first 64 bytes, the secret masked
    else:
        data = b"password=s3cret-pw&data=" + b"x" * 3000
        shown = data[:64].decode().replace("s3cret-pw", M)
    app = make(kind)
    assert app.request(order, body=data, content_type=content_type).status == 200
    assert app.seen.body == data  # the app got every byte
    attributes = events.one()
    assert "s3cret-pw" not in repr(attributes)
    assert not any(key.startswith(P) for key in attributes)  # a cut form is not parsed into parameters
    body = attributes.get(BODY)
    if kind in ASGI and order.startswith("track"):
        # Design: ASGI bodies past the cap are not buffered ahead of the app; nothing of it has arrived yet.
        assert body == TRUNCATED
    elif django_before_read(kind, order, within_cap=False):
        assert body is None
    else:
        assert body == shown + TRUNCATED


# -- one context per request -----------------------------------------------------------------------


def test_identify_does_not_leak_into_the_next_request(make: Callable[..., App], events: Events, kind: str) -> None:
    app = make(kind)
    assert app.request("identify:alice@example.com,track").status == 200
    assert app.request("track").status == 200
    first, second = events.named("ev")
    assert first["sqreen.user.email"] == "alice@example.com"
    assert second == expected()
    assert context.current_user() is None and context.current_request() is None


# -- blocking users --------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [JSON, "text/html,application/xhtml+xml", None])
@pytest.mark.parametrize("how", ["login", "identify"])
def test_blocked_user_gets_403(
    make: Callable[..., App], events: Events, kind: str, how: str, accept: str | None
) -> None:
    action_id = sqreen_otel.block_user({"email": "bad@x.y"})
    app = make(kind)
    headers = {} if accept is None else {"Accept": accept}
    reply = app.request(f"{how}:bad@x.y,track", headers=headers)
    assert reply.status == 403
    assert app.seen.steps == ["start"]  # stopped in identify: nothing after it ran
    if accept == JSON:
        assert reply.content_type == "application/json"
        assert reply.json() == {"error": "forbidden", "reason": "This account is blocked", "action_id": action_id}
    else:
        assert reply.content_type == "text/html; charset=utf-8"
        assert reply.body.startswith(b"<!doctype html>") and action_id.encode() in reply.body
    assert events.names() == ["sq.action.block_user"]
    assert events.one("sq.action.block_user") == {
        **{k: v for k, v in expected().items() if k != PROP},
        "sqreen.user.email": "bad@x.y",
        "sqreen.action.id": action_id,
    }

    events.clear()
    assert sqreen_otel.unblock_user({"email": "bad@x.y"}) == 1
    reply = app.request(f"{how}:bad@x.y,track", headers=headers)
    assert reply.status == 200 and reply.body == b"ok"
    assert "sq.action.block_user" not in events.names()
    assert events.one()["sqreen.user.email"] == "bad@x.y"


def test_other_users_pass(make: Callable[..., App], events: Events, kind: str) -> None:
    sqreen_otel.block_user({"email": "bad@x.y"})
    app = make(kind)
    assert app.request("login:good@x.y,track").status == 200
    assert events.names() == ["sq.sdk.users.login", "ev"]


# -- blocking IPs ----------------------------------------------------------------------------------


def test_blocked_ip_gets_403_before_the_view(make: Callable[..., App], events: Events, kind: str) -> None:
    single = sqreen_otel.block_ip("203.0.113.7")
    network = sqreen_otel.block_ip("198.51.100.0/24")
    v6 = sqreen_otel.block_ip("2001:db8::/32")
    app = make(kind)
    cases = [
        ("203.0.113.7", "203.0.113.7", single, JSON),
        ("198.51.100.9", "198.51.100.9", network, "text/html"),
        ("2001:db8::5", "2001:db8::5", v6, JSON),
        ("::ffff:203.0.113.7", "203.0.113.7", single, JSON),  # IPv4-mapped: the same host
    ]
    for peer, client, action_id, accept in cases:
        events.clear()
        reply = app.request("track", peer=peer, headers={"Accept": accept})
        assert reply.status == 403, peer
        assert not app.seen.ran
        if accept == JSON:
            assert reply.json() == {
                "error": "forbidden",
                "reason": "Your IP address is blocked",
                "action_id": action_id,
            }
        else:
            assert reply.content_type == "text/html; charset=utf-8" and b"Your IP address is blocked" in reply.body
        assert events.one("sq.action.block_ip") == {
            **{k: v for k, v in expected(peer=peer, client=client).items() if k != PROP},
            "sqreen.action.id": action_id,
        }
        assert events.names() == ["sq.action.block_ip"]
    events.clear()
    assert app.request("track", peer="198.51.101.9").status == 200  # next to the network, not in it
    assert app.seen.ran
    assert sqreen_otel.unblock_ip("203.0.113.7") == 1
    assert app.request("track", peer="203.0.113.7").status == 200
    assert events.names() == ["ev", "ev"]


# -- redirect decisions (redirect_ip, redirect_user) -----------------------------------------------


def test_redirect_decisions_answer_303_and_record_their_hit(
    make: Callable[..., App], events: Events, kind: str
) -> None:
    document = {"version": 1, "actions": [
        {"id": "d-ip", "action": "redirect_ip", "ip": "203.0.113.0/24", "url": "https://example.com/sorry?x=1",
         "playbook": "scanners", "alert": "al-1"},
        {"id": "d-user", "action": "redirect_user", "user": {"email": "bad@x.y"}, "url": "/verify",
         "playbook": "account-takeover", "alert": "al-2"},
        {"id": "d-block", "action": "block_ip", "ip": "198.51.100.7", "playbook": "credential-stuffing"},
    ]}  # fmt: skip
    sqreen_otel.block_list.replace_source("url", parse_actions(json.dumps(document), "url"))
    app = make(kind)

    reply = app.request("track", peer="203.0.113.9", headers={"Accept": JSON})
    assert (reply.status, reply.location, reply.body) == (303, "https://example.com/sorry?x=1", b"")
    assert not app.seen.ran
    assert events.names() == ["sq.action.redirect_ip"]
    hit = events.one("sq.action.redirect_ip")
    assert hit["client.address"] == "203.0.113.9"
    assert {k: v for k, v in hit.items() if k.startswith("sqreen.action.")} == {
        "sqreen.action.id": "d-ip", "sqreen.action.playbook": "scanners", "sqreen.action.alert": "al-1",
        "sqreen.action.url": "https://example.com/sorry?x=1",
    }  # fmt: skip

    events.clear()
    reply = app.request("login:bad@x.y,track")
    assert (reply.status, reply.location) == (303, "/verify")
    assert app.seen.steps == ["start"]  # stopped in auth_track: nothing after it ran
    hit = events.one("sq.action.redirect_user")
    assert (hit["sqreen.user.email"], hit["sqreen.action.id"], hit["sqreen.action.alert"]) == (
        "bad@x.y",
        "d-user",
        "al-2",
    )

    events.clear()
    reply = app.request("track", peer="198.51.100.7", headers={"Accept": JSON})
    assert reply.status == 403 and reply.location is None and reply.json()["action_id"] == "d-block"
    assert events.one("sq.action.block_ip")["sqreen.action.playbook"] == "credential-stuffing"

    events.clear()
    assert app.request("login:good@x.y,track", peer="192.0.2.1").status == 200  # others pass
    assert events.names() == ["sq.sdk.users.login", "ev"]


def test_user_redirected_is_a_user_blocked() -> None:
    exc = sqreen_otel.UserRedirected({"email": "a@b.c"}, "d1", "/away")
    assert isinstance(exc, sqreen_otel.UserBlocked)
    assert (exc.action_id, exc.redirect_url, str(exc)) == ("d1", "/away", "user redirected by action d1")
    assert sqreen_otel.UserBlocked({}, "d2").redirect_url is None


# -- the client address behind proxies -------------------------------------------------------------


def test_forwarded_for_without_trusted_proxies(make: Callable[..., App], events: Events, kind: str) -> None:
    app = make(kind)
    assert app.request("track", peer="10.0.0.5", headers={"X-Forwarded-For": "1.2.3.4"}).status == 200
    assert events.one() == expected(peer="10.0.0.5", client="1.2.3.4")
    # The default believes the header: a spoofed one dodges a block on the real peer (why trusted_proxies exists).
    sqreen_otel.block_ip("10.0.0.5")
    assert app.request("track", peer="10.0.0.5", headers={"X-Forwarded-For": "1.2.3.4"}).status == 200


def test_forwarded_for_with_trusted_proxies(make: Callable[..., App], events: Events, kind: str) -> None:
    events.configure(trusted_proxies=["10.0.0.0/8"])
    app = make(kind)
    spoofed = {"X-Forwarded-For": "1.2.3.4"}
    assert app.request("track", peer="192.0.2.20", headers=spoofed).status == 200  # peer not a proxy: ignored
    chain = {"X-Forwarded-For": "1.2.3.4, 5.6.7.8, 10.1.1.1"}
    assert app.request("track", peer="10.0.0.5", headers=chain).status == 200  # right-most untrusted wins
    first, second = events.named("ev")
    assert first == expected(peer="192.0.2.20")
    assert second == expected(peer="10.0.0.5", client="5.6.7.8")

    events.clear()
    direct = sqreen_otel.block_ip("192.0.2.20")
    behind = sqreen_otel.block_ip("5.6.7.8")
    assert app.request("track", peer="192.0.2.20", headers=spoofed).status == 403  # the header cannot dodge it
    assert not app.seen.ran
    assert app.request("track", peer="10.0.0.5", headers={"X-Forwarded-For": "5.6.7.8"}).status == 403
    assert not app.seen.ran
    blocked = events.named("sq.action.block_ip")
    assert [(e["client.address"], e["sqreen.action.id"]) for e in blocked] == [
        ("192.0.2.20", direct),
        ("5.6.7.8", behind),
    ]
    # A client behind the proxies naming the blocked address on the left of its own entry is not blocked.
    assert app.request("track", peer="10.0.0.5", headers={"X-Forwarded-For": "5.6.7.8, 9.9.9.9"}).status == 200


# -- with OpenTelemetry's instrumentation too ------------------------------------------------------


def test_with_the_instrumentor(
    make: Callable[..., App], events: Events, spans: InMemorySpanExporter, kind: str
) -> None:
    app = make(kind, "sqreen+otel")
    reply = app.request("identify_full,track,child", query="q=ok", headers={"X-Forwarded-For": "1.2.3.4"})
    assert reply.status == 200
    server = server_span(spans)
    (child,) = [s for s in spans.get_finished_spans() if s.name == "child"]
    assert child.parent is not None and child.parent.span_id == server.context.span_id

    direct, in_child = events.records()
    assert (direct.trace_id, direct.span_id) == (server.context.trace_id, server.context.span_id)
    assert app.seen.spans["track"].span_id == server.context.span_id  # the active span is the server span
    assert (in_child.trace_id, in_child.span_id) == (child.context.trace_id, child.context.span_id)
    assert [e.name for e in server.events] == ["ev"]
    assert [e.name for e in child.events] == ["ev"]
    assert server.events[0].attributes is not None and server.events[0].attributes["client.address"] == "1.2.3.4"

    # Our middleware's request (headers, so the X-Forwarded-For policy) wins over the span's.
    users = {"sqreen.user.user_id": "u42", "sqreen.user.email": "alice@example.com"}
    assert plain(direct.attributes) == expected(peer=PEER, client="1.2.3.4", params={"q": "ok"}, **users)
    assert server.attributes is not None
    assert {k: v for k, v in server.attributes.items() if k.startswith(("user.", "sqreen."))} == {
        "user.id": "u42",
        "user.email": "alice@example.com",
        **users,
    }


def test_blocked_user_with_the_instrumentor(
    make: Callable[..., App], events: Events, spans: InMemorySpanExporter, kind: str
) -> None:
    action_id = sqreen_otel.block_user({"email": "bad@x.y"})
    app = make(kind, "sqreen+otel")
    assert app.request("login:bad@x.y", headers={"Accept": JSON}).status == 403
    server = server_span(spans)
    (record,) = events.records()
    assert record.event_name == "sq.action.block_user"
    assert record.attributes["sqreen.action.id"] == action_id
    assert record.span_id == server.context.span_id
    assert [e.name for e in server.events] == ["sq.action.block_user"]
    assert server.attributes is not None and server.attributes["sqreen.user.email"] == "bad@x.y"


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            "flask",
            marks=pytest.mark.xfail(
                strict=True,
                reason="Flask's server span starts in before_request, inside Sqreen(app)'s WSGI middleware: "
                "a request refused there has no span, and its block_ip event no trace context",
            ),
        ),
        *FRAMEWORKS[1:],
    ],
)
def test_blocked_ip_with_the_instrumentor(
    make: Callable[..., App], events: Events, spans: InMemorySpanExporter, kind: str
) -> None:
    action_id = sqreen_otel.block_ip("203.0.113.7")
    app = make(kind, "sqreen+otel")
    assert app.request("track", peer="203.0.113.7").status == 403
    assert not app.seen.ran
    (record,) = events.records()
    assert record.event_name == "sq.action.block_ip" and record.attributes["sqreen.action.id"] == action_id
    server = server_span(spans)
    assert (record.trace_id, record.span_id) == (server.context.trace_id, server.context.span_id)
    assert [e.name for e in server.events] == ["sq.action.block_ip"]


# -- span-only mode: OpenTelemetry's instrumentation without our integration -----------------------


def span_expected(kind: str, **extra: Any) -> dict[str, Any]:
    return expected(params={"a": ["1", "2"], "token": M, "q": "ok"}, **extra)


def test_span_only(make: Callable[..., App], events: Events, spans: InMemorySpanExporter, kind: str) -> None:
    events.configure()  # as an app does at start-up: registers ServerSpans before the first request
    app = make(kind, "otel")
    steps = "track,child" + (",to_thread,threadpool" if kind in ASGI else "")
    assert app.request(steps, query=QUERY).status == 200
    server = server_span(spans)
    records = events.records()
    assert len(records) == len(parse_steps(steps))
    for record in records:
        assert plain(record.attributes) == span_expected(kind)
        assert record.trace_id == server.context.trace_id
    assert records[0].span_id == server.context.span_id
    (child,) = [s for s in spans.get_finished_spans() if s.name == "child"]
    assert records[1].span_id == child.context.span_id
    assert [e.name for e in child.events] == ["ev"]
    assert [e.name for e in server.events] == ["ev"] * (len(records) - 1)  # the others ran under the server span


def test_span_only_sync_fastapi_endpoint(make: Callable[..., App], events: Events, spans: InMemorySpanExporter) -> None:
    events.configure()
    app = make("fastapi", "otel")
    assert app.request("track", path="/sync", query=QUERY).status == 200
    (record,) = events.records()
    assert plain(record.attributes) == span_expected("fastapi", path="/sync")
    assert record.span_id == server_span(spans).context.span_id


# -- hooks mode --------------------------------------------------------------------------------------


def test_hooks(make: Callable[..., App], events: Events, spans: InMemorySpanExporter, kind: str) -> None:
    app = make(kind, "hooks")
    reply = app.request("track", query=QUERY, peer="10.0.0.5", headers={"X-Forwarded-For": "1.2.3.4"})
    assert reply.status == 200
    assert events.one() == expected(peer="10.0.0.5", client="1.2.3.4", params={"a": ["1", "2"], "token": M, "q": "ok"})
    assert events.records()[0].span_id == server_span(spans).context.span_id

    events.clear()
    assert sqreen_otel.track("outside")  # same thread, after the request: no request any more
    assert not set(events.one("outside")) & {*REQUEST_KEYS, P + "q"}


def test_hooks_identify_does_not_leak(make: Callable[..., App], events: Events, kind: str) -> None:
    app = make(kind, "hooks")
    assert app.request("identify:alice@example.com,track").status == 200
    assert app.request("track").status == 200
    first, second = events.named("ev")
    assert first["sqreen.user.email"] == "alice@example.com"
    assert "sqreen.user.email" not in second


def test_hooks_user_does_not_outlive_the_request(make: Callable[..., App], events: Events, kind: str) -> None:
    """On a WSGI worker thread nothing resets the context after a hooked request: the user must not stay."""
    app = make(kind, "hooks")
    assert app.request("identify:alice@example.com,track").status == 200
    assert sqreen_otel.track("outside")
    assert "sqreen.user.email" not in events.one("outside")


def test_hooks_request_does_not_inherit_a_user_identified_outside(
    make: Callable[..., App], events: Events, kind: str
) -> None:
    sqreen_otel.identify({"email": "script@example.com"})  # outside any request, on this thread
    app = make(kind, "hooks")
    assert app.request("track").status == 200
    assert "sqreen.user.email" not in events.one()


def test_hooks_form_params_wsgi(make: Callable[..., App], events: Events, kind: str) -> None:
    if kind in ASGI:
        pytest.skip("the ASGI hook sees no body: form fields need the middleware")
    app = make(kind, "hooks")
    assert app.request("read,track_body", query=QUERY, body=FORM_BODY, content_type=FORM).status == 200
    assert app.seen.body == FORM_BODY
    attributes = events.one()
    assert attributes == expected(method="POST", params=PARAMS, **{BODY: {"password": M, "f": ["v", "w"]}})


# -- actions file ------------------------------------------------------------------------------------


def write_actions(path: Path, actions: list[dict[str, Any]] | str, mtime: float) -> None:
    path.write_text(actions if isinstance(actions, str) else json.dumps({"version": 1, "actions": actions}))
    os.utime(path, (mtime, mtime))


def test_actions_file(
    make: Callable[..., App], events: Events, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    actions = tmp_path / "actions.json"
    block = {"id": "file-1", "action": "block_user", "user": {"email": "bad@x.y"}}
    write_actions(actions, [block], 1_700_000_000)
    events.configure(actions_file=str(actions))
    apps = [make(kind) for kind in FRAMEWORKS]

    def statuses() -> list[int]:
        return [app.request("login:bad@x.y", headers={"Accept": JSON}).status for app in apps]

    assert statuses() == [403] * len(apps)
    assert {e["sqreen.action.id"] for e in events.named("sq.action.block_user")} == {"file-1"}

    write_actions(actions, "{not json", 1_700_000_100)
    time.sleep(1.05)  # requests stat the file at most once a second
    with caplog.at_level(logging.ERROR, logger="sqreen_otel"):
        assert statuses() == [403] * len(apps)  # the last good list stays
    errors = [r for r in caplog.records if r.name == "sqreen_otel" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(actions) in errors[0].getMessage()

    write_actions(actions, [{"id": "file-2", "action": "block_ip", "ip": "203.0.113.0/24"}], 1_700_000_200)
    time.sleep(1.05)
    assert statuses() == [200] * len(apps)
    assert [app.request("track", peer="203.0.113.9").status for app in apps] == [403] * len(apps)


# -- track(..., {"request": r}) outside our integration ----------------------------------------------


def test_request_option(make: Callable[..., App], events: Events, kind: str) -> None:
    """Flask request, Django HttpRequest, FastAPI's ASGI scope, Starlette Request, WSGI environ."""
    app = make(kind, "bare")
    assert app.request("track_req", query=QUERY, peer="10.0.0.5", headers={"X-Forwarded-For": "1.2.3.4"}).status == 200
    assert events.one() == expected(peer="10.0.0.5", client="1.2.3.4", params={"a": ["1", "2"], "token": M, "q": "ok"})


def test_request_option_with_body_the_view_read(make: Callable[..., App], events: Events, kind: str) -> None:
    data, content_type, parsed = BODIES["json_object"]
    app = make(kind, "bare")
    assert app.request("read,track_req:body", body=data, content_type=content_type).status == 200
    assert app.seen.body == data
    attributes = events.one()
    if kind in ("flask", "django", "starlette"):  # the framework cached the body it read
        assert attributes == expected(method="POST", **{BODY: parsed})
    else:  # a raw environ or scope: the stream was the app's, nothing kept
        assert attributes == expected(method="POST")


def test_request_option_outside_any_request(events: Events) -> None:
    """No integration, no span: the request comes only from the option."""
    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/x",
        "query_string": b"token=abc&q=1",
        "headers": [(b"user-agent", UA.encode())],
        "client": ("192.0.2.99", 1),
    }
    assert sqreen_otel.track("ev", {"properties": {"k": "v"}, "request": scope})
    assert sqreen_otel.track("bare")
    assert events.one() == expected(method="PUT", path="/x", peer="192.0.2.99", params={"token": M, "q": "1"})
    assert not set(events.one("bare")) & set(REQUEST_KEYS)
