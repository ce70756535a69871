"""HTTPRequest from WSGI and ASGI: attributes, body parsing and caps, and the guarantee that reading
the body never takes it from the application (real Flask, Starlette and Django apps)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django
import flask
import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import EnvironBuilder

from sqreen_otel import context
from sqreen_otel import request as request_module
from sqreen_otel.clientip import parse_networks
from sqreen_otel.integrations import adapt, install_adapters
from sqreen_otel.integrations.asgi import ASGIBody, from_asgi
from sqreen_otel.integrations.django import from_django
from sqreen_otel.integrations.wsgi import _ReplayInput, from_wsgi
from sqreen_otel.request import (
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_PARAM_NAME,
    MAX_PARAMS,
    MULTIPART,
    HTTPRequest,
)
from sqreen_otel.values import TRUNCATED

if not settings.configured:
    settings.configure(
        DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[], INSTALLED_APPS=[]
    )
    django.setup()

P = "sqreen.request.params."


def environ(
    path: str = "/",
    *,
    query: str = "",
    method: str = "GET",
    data: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    peer: str = "192.0.2.10",
) -> dict[str, Any]:
    builder = EnvironBuilder(
        path,
        query_string=query,
        method=method,
        data=data,
        content_type=content_type,
        headers=headers,
        environ_base={"REMOTE_ADDR": peer},
    )
    return builder.get_environ()


def scope(
    path: str = "/",
    *,
    query: bytes = b"",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] | None = ("192.0.2.10", 4321),
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers or [],
        "client": client,
        "server": ("testserver", 80),
    }


def body_of(data: bytes, content_type: str | None, max_body_size: int = 16384) -> Any:
    return from_wsgi(environ(method="POST", data=data, content_type=content_type), max_body_size=max_body_size).body()


# --- attributes -------------------------------------------------------------------------------


def test_wsgi_attributes() -> None:
    env = environ(
        "/caf%C3%A9/x",
        query="a=1&a=2&b=%26x+y%3D&e=&q=caf%C3%A9&flag",
        headers={"User-Agent": "UA/1.0", "X-Forwarded-For": "8.8.8.8, 10.0.0.1"},
        peer="10.0.0.2",
    )
    assert dict(from_wsgi(env).attributes()) == {
        "client.address": "8.8.8.8",
        "network.peer.address": "10.0.0.2",
        "user_agent.original": "UA/1.0",
        "url.path": "/café/x",
        "http.request.method": "GET",
        P + "a": ["1", "2"],
        P + "b": "&x y=",
        P + "e": "",
        P + "q": "café",
        P + "flag": "",
    }


def test_asgi_attributes_join_repeated_header_lines() -> None:
    s = scope(
        "/café",
        query=b"a=1&a=2&a=3&sp=hello+world&pct=100%25",
        method="PUT",
        headers=[
            (b"user-agent", b"UA/2"),
            (b"x-forwarded-for", b"10.0.0.9"),
            (b"X-Forwarded-For", b"9.9.9.9"),
        ],
        client=("10.0.0.1", 5000),
    )
    request = from_asgi(s)
    assert request.headers["x-forwarded-for"] == "10.0.0.9, 9.9.9.9"
    assert dict(request.attributes()) == {
        "client.address": "9.9.9.9",
        "network.peer.address": "10.0.0.1",
        "user_agent.original": "UA/2",
        "url.path": "/café",
        "http.request.method": "PUT",
        P + "a": ["1", "2", "3"],
        P + "sp": "hello world",
        P + "pct": "100%",
    }
    assert request.body() is None


def test_client_address_policy_is_passed_through() -> None:
    headers = {"X-Forwarded-For": "6.6.6.6, 7.7.7.7"}
    trusted = parse_networks(["10.0.0.0/8"])
    behind_proxy = from_wsgi(environ(headers=headers, peer="10.1.1.1"), trusted_proxies=trusted)
    assert behind_proxy.attributes()["client.address"] == "7.7.7.7"  # the rightmost untrusted hop
    direct = from_wsgi(environ(headers=headers, peer="203.0.113.7"), trusted_proxies=trusted)
    assert direct.attributes()["client.address"] == "203.0.113.7"  # spoofed header ignored
    custom = from_wsgi(environ(headers={"X-Real-IP": "5.5.5.5"}, peer="10.1.1.1"), ip_header="X-Real-IP")
    assert custom.attributes()["client.address"] == "5.5.5.5"


def test_no_peer_and_no_headers() -> None:
    s = scope(client=None)
    attributes = from_asgi(s).attributes()
    assert "client.address" not in attributes and "network.peer.address" not in attributes
    assert attributes["url.path"] == "/"


def test_params_caps() -> None:
    names = "&".join(f"p{i:03}={i}" for i in range(100))
    long_name = "n" * 300
    request = from_wsgi(environ(query=f"{names}&{long_name}=v"))
    params = {k[len(P) :]: v for k, v in request.attributes().items() if k.startswith(P)}
    assert len(params) == MAX_PARAMS
    assert list(params) == [f"p{i:03}" for i in range(MAX_PARAMS)]  # the first ones
    long_only = from_wsgi(environ(query=f"{long_name}=v&{long_name}=w")).attributes()
    assert long_only[P + "n" * MAX_PARAM_NAME + TRUNCATED] == ["v", "w"]
    many_fields = from_wsgi(environ(query="&".join(["x=1"] * 5000))).attributes()  # no error past max_num_fields
    assert isinstance(many_fields[P + "x"], list)
    assert 1 < len(many_fields[P + "x"]) <= 512


def test_header_caps_keep_what_the_client_ip_needs() -> None:
    junk = [(f"x-junk-{i}", "v") for i in range(150)]
    env = environ(headers=[*junk, ("User-Agent", "UA"), ("X-Forwarded-For", "8.8.4.4")], peer="10.0.0.1")
    request = from_wsgi(env)
    assert len(request.headers) <= MAX_HEADERS + 12
    assert sum(name.startswith("x-junk-") for name in request.headers) < MAX_HEADERS
    assert request.attributes()["client.address"] == "8.8.4.4"
    assert request.attributes()["user_agent.original"] == "UA"

    long_ua = from_wsgi(environ(headers={"User-Agent": "u" * 20000}))
    assert long_ua.headers["user-agent"] == "u" * MAX_HEADER_VALUE
    # A padded X-Forwarded-For keeps its end, where trusted proxies append.
    padded = ", ".join(["1.1.1.1"] * 3000) + ", 4.4.4.4"
    tail = from_wsgi(
        environ(headers={"X-Forwarded-For": padded}, peer="10.0.0.1"), trusted_proxies=parse_networks(["10.0.0.0/8"])
    )
    assert len(tail.headers["x-forwarded-for"]) <= MAX_HEADER_VALUE
    assert tail.headers["x-forwarded-for"].endswith("4.4.4.4")
    assert tail.attributes()["client.address"] == "4.4.4.4"


# --- body parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        (b'{"a": 1, "b": [true, null]}', "application/json", {"a": 1, "b": [True, None]}),
        (b'[1, "two", {"three": 3}]', "application/json; charset=utf-8", [1, "two", {"three": 3}]),
        (b'{"data": {"id": "1"}}', "application/vnd.api+json", {"data": {"id": "1"}}),
        (b'{"a": 1', "application/json", '{"a": 1'),
        (b'"just a string"', "application/json", '"just a string"'),
        (b"[" * 100000, "application/json", "[" * 100000),
        (
            b"a=1&a=2&b=x+y&c=%C3%A9&d=",
            "application/x-www-form-urlencoded",
            {"a": ["1", "2"], "b": "x y", "c": "é", "d": ""},
        ),
        (
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--",
            "multipart/form-data; boundary=b",
            MULTIPART,
        ),
        (b"hello\nworld", "text/plain", "hello\nworld"),
        (b"no type", None, "no type"),
        (b"bad \xff\xfe utf8", "text/plain", "bad \ufffd\ufffd utf8"),
        (b"", "application/json", None),
    ],
)
def test_body_parsing(data: bytes, content_type: str | None, expected: Any) -> None:
    assert body_of(data, content_type, max_body_size=200000) == expected


def test_no_body() -> None:
    assert from_wsgi(environ()).body() is None
    assert from_asgi(scope(), ASGIBody(_receiver([]), scope())).body() is None


def test_truncated_body_is_text_and_not_parsed() -> None:
    data = json.dumps({"k": "v" * 50}).encode()
    assert body_of(data, "application/json", max_body_size=10) == data[:10].decode() + TRUNCATED
    assert body_of(data, "application/json", max_body_size=len(data)) == {"k": "v" * 50}  # exactly the cap
    assert body_of(data, "application/json", max_body_size=len(data) - 1) == data[:-1].decode() + TRUNCATED
    # A multi-byte character cut in half is dropped, not shown as a replacement character.
    assert body_of("aé".encode(), "text/plain", max_body_size=2) == "a" + TRUNCATED
    form = from_wsgi(
        environ(method="POST", query="q=1", data=b"a=1&b=2", content_type="application/x-www-form-urlencoded"),
        max_body_size=4,
    )
    assert form.body() == "a=1&" + TRUNCATED
    assert {k: v for k, v in form.attributes().items() if k.startswith(P)} == {P + "q": "1"}


def test_form_params_join_query_params() -> None:
    env = environ(
        method="POST", query="a=q&only=query", data=b"a=f&b=form", content_type="application/x-www-form-urlencoded"
    )
    attributes = from_wsgi(env).attributes()
    assert attributes[P + "a"] == ["q", "f"]
    assert attributes[P + "only"] == "query" and attributes[P + "b"] == "form"


def test_multipart_body_is_not_read() -> None:
    env = environ(method="POST", data=b"x" * 1000, content_type="multipart/form-data; boundary=x")
    original = env["wsgi.input"]
    assert from_wsgi(env).body() == MULTIPART
    assert original.tell() == 0


# --- WSGI replay ------------------------------------------------------------------------------


def test_replay_never_reads_past_content_length() -> None:
    stream = io.BytesIO(b"0123456789EXTRA")
    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "10", "wsgi.input": stream, "PATH_INFO": "/"}
    request = from_wsgi(env, max_body_size=4)
    assert request.body() == "0123" + TRUNCATED
    assert env["wsgi.input"].read() == b"0123456789"
    assert env["wsgi.input"].read() == b""
    assert stream.read() == b"EXTRA"


def test_no_content_length_means_no_body_unless_terminated() -> None:
    stream = io.BytesIO(b"data")
    env = {"REQUEST_METHOD": "POST", "wsgi.input": stream, "PATH_INFO": "/"}
    assert from_wsgi(env).body() is None
    assert env["wsgi.input"] is stream  # left alone
    terminated = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"chunked data"), "wsgi.input_terminated": True}
    request = from_wsgi(terminated, max_body_size=7)
    assert request.body() == "chunked" + TRUNCATED
    assert terminated["wsgi.input"].read() == b"chunked data"


def test_replay_line_reading_and_close() -> None:
    data = b"line one\nline two\nthree\n\nlast"
    closed: list[bool] = []

    class Stream(io.BytesIO):
        def close(self) -> None:
            closed.append(True)
            super().close()

    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(data)), "wsgi.input": Stream(data)}
    request = from_wsgi(env, max_body_size=12)
    assert request.body() == "line one\nlin" + TRUNCATED
    replay = env["wsgi.input"]
    assert replay.readline(4) == b"line"
    assert replay.readline() == b" one\n"
    assert replay.readline() == b"line two\n"
    assert replay.readlines() == [b"three\n", b"\n", b"last"]
    replay.close()
    assert closed == [True]

    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)}
    from_wsgi(env, max_body_size=3).body()
    assert list(env["wsgi.input"]) == data.splitlines(keepends=True)
    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)}
    from_wsgi(env, max_body_size=3).body()
    assert env["wsgi.input"].readlines(10) == [b"line one\n", b"line two\n"]


@hyp_settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"\n")),
    cap=st.integers(min_value=0, max_value=120),
    ops=st.lists(st.tuples(st.sampled_from(["read", "readline", "body"]), st.integers(-1, 70)), max_size=25),
)
def test_replay_gives_the_app_exactly_the_original_bytes(data: bytes, cap: int, ops: list[tuple[str, int]]) -> None:
    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data + b"NEXT")}
    original = env["wsgi.input"]
    http_request = from_wsgi(env, max_body_size=cap)
    if not data:  # CONTENT_LENGTH 0: nothing to replay, the server's stream is left alone
        assert env["wsgi.input"] is original and http_request.body() is None
        return
    replay = env["wsgi.input"]
    read = b""
    for op, size in ops:
        if op == "body":
            replay.snapshot(cap)
        elif op == "read":
            read += replay.read(size)
        else:
            read += replay.readline(size)
    read += replay.read()
    assert read == data
    assert replay.read() == b""
    body = http_request.body()
    if len(data) > cap:
        assert body.endswith(TRUNCATED)
        text, whole = body[: -len(TRUNCATED)], data[:cap].decode("utf-8", "replace")
        # At most an incomplete UTF-8 sequence (up to 3 bytes, each a replacement character) is dropped.
        assert whole.startswith(text) and len(whole) - len(text) <= 3
    else:
        assert body == data.decode("utf-8", "replace")


def test_replay_input_alone() -> None:
    replay = _ReplayInput(io.BytesIO(b"abcdef"), 6, 3)
    assert replay.read(2) == b"ab"
    assert replay.snapshot(4) == (b"abcd", True, True)  # pulls "cde" for the app
    assert replay.read(1) == b"c"
    assert replay.read() == b"def"
    lost = _ReplayInput(io.BytesIO(b"abcdef"), 6, 3)
    assert lost.read() == b"abcdef"
    assert lost.snapshot(5) == (b"abc", True, True)  # what passed beyond the copy is gone: marked truncated
    exact = _ReplayInput(io.BytesIO(b"abc"), 3, 1)
    assert exact.snapshot(3) == (b"abc", False, True)


def test_http_request_constructor() -> None:
    request = HTTPRequest(
        method="PATCH", path="/x", query_string=b"a=%C3%A9", headers={"User-Agent": "UA"}, peer="198.51.100.1"
    )
    assert dict(request.attributes()) == {
        "client.address": "198.51.100.1",
        "network.peer.address": "198.51.100.1",
        "user_agent.original": "UA",
        "url.path": "/x",
        "http.request.method": "PATCH",
        P + "a": "é",
    }
    assert request.body() is None
    with pytest.raises(ValueError):
        HTTPRequest(method="GET", path="/", max_body_size=-1)


def test_headers_from_a_callable_are_read_when_first_needed_and_once() -> None:
    reads: list[int] = []

    def headers() -> Iterator[tuple[str, str]]:
        reads.append(1)
        yield from (("User-Agent", "UA"), ("X-Forwarded-For", "203.0.113.9"))

    request = HTTPRequest(method="GET", path="/x", headers=headers, peer="10.0.0.1")
    assert reads == []  # a request that records nothing never copies its headers
    assert request.attributes()["client.address"] == "203.0.113.9"
    assert request.attributes()["user_agent.original"] == "UA"
    assert request.headers == {"user-agent": "UA", "x-forwarded-for": "203.0.113.9"}
    assert reads == [1]


def test_asgi_middleware_hands_the_servers_receive_only_to_body_less_requests() -> None:
    from sqreen_otel.integrations.asgi import SqreenASGIMiddleware

    given: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        given.append(receive)
        given.append(await receive())

    async def server_receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"a=1", "more_body": False}

    async def send(message: Any) -> None:
        pass

    middleware = SqreenASGIMiddleware(app)
    base = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "client": ("127.0.0.1", 1)}
    asyncio.run(middleware({**base, "headers": []}, server_receive, send))
    assert given[0] is server_receive  # HTTP/1 without a length: no body to copy
    given.clear()
    asyncio.run(middleware({**base, "headers": [(b"content-length", b"3")]}, server_receive, send))
    assert given[0] is not server_receive  # a body: replayed to the app after our copy
    assert given[1]["body"] == b"a=1"


# --- Flask: the view reads the whole body whenever body() runs --------------------------------

BIG = ("x" * 50 + "\n") * 400  # 20 KiB, over the 16 KiB default cap
SMALL_CAP = 64


def flask_app(when: str, read: str, cap: int, results: dict[str, Any]) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.post("/")
    def view() -> Any:
        request = flask.request.environ["test.request"]
        if when == "twice":
            results["first"] = request.body()
        if read == "data":
            got: Any = flask.request.get_data().decode()
        elif read == "form":
            got = flask.request.form.to_dict(flat=False)
        elif read == "json":
            got = flask.request.json
        else:
            got = b"".join(flask.request.stream).decode()
        if when in ("after", "twice"):
            results["body"] = request.body()
        return flask.jsonify(got=got)

    inner = app.wsgi_app

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        results["raw"] = environ["wsgi.input"].getvalue()  # what the client sent, byte for byte
        request = from_wsgi(environ, max_body_size=cap)
        environ["test.request"] = request
        if when == "before":
            results["body"] = request.body()
        return inner(environ, start_response)

    app.wsgi_app = middleware  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("when", ["before", "after", "twice"])
@pytest.mark.parametrize("cap", [16384, SMALL_CAP])
@pytest.mark.parametrize(
    ("read", "kwargs", "expected_got", "parsed"),
    [
        ("data", {"data": BIG, "content_type": "text/plain"}, BIG, BIG),
        ("stream", {"data": BIG, "content_type": "text/plain"}, BIG, BIG),
        ("data", {"data": "short", "content_type": "text/plain"}, "short", "short"),
        ("json", {"json": {"k": ["v"] * 40, "n": 1}}, {"k": ["v"] * 40, "n": 1}, {"k": ["v"] * 40, "n": 1}),
        (
            "form",
            {"data": {"a": ["1", "2"], "b": "x y" * 30}},
            {"a": ["1", "2"], "b": ["x y" * 30]},
            {"a": ["1", "2"], "b": "x y" * 30},
        ),
    ],
)
def test_flask_view_sees_the_whole_body(
    when: str, cap: int, read: str, kwargs: dict[str, Any], expected_got: Any, parsed: Any
) -> None:
    results: dict[str, Any] = {}
    response = flask_app(when, read, cap, results).test_client().post("/", **kwargs)
    assert response.status_code == 200
    assert response.json == {"got": expected_got}
    raw, body = results["raw"], results["body"]
    if len(raw) > cap:
        assert body == raw[:cap].decode() + TRUNCATED
    else:
        assert body == parsed
    if when == "twice":
        assert results["first"] == body


def test_flask_adapter_before_and_after_the_view_reads() -> None:
    install_adapters()
    seen: dict[str, Any] = {}
    app = flask.Flask(__name__)

    @app.post("/form")
    def form() -> Any:
        unread = context.to_request_context(flask.request)  # stream untouched: replay installed
        seen["unread"] = unread.body()
        seen["form"] = flask.request.form.to_dict(flat=False)
        seen["attributes"] = dict(context.to_request_context(flask.request).attributes())
        return "ok"

    @app.post("/parsed")
    def parsed() -> Any:
        seen["form"] = flask.request.form.to_dict(flat=False)  # parsed first, no bytes cached
        seen["late"] = context.to_request_context(flask.request).body()
        return "ok"

    @app.post("/json")
    def as_json() -> Any:
        seen["json"] = flask.request.get_json()
        seen["late"] = context.to_request_context(flask.request._get_current_object()).body()  # type: ignore[attr-defined]
        seen["environ"] = context.to_request_context(flask.request.environ).body()
        return "ok"

    client = app.test_client()
    client.post("/form?q=1", data={"a": ["1", "2"]}, headers={"User-Agent": "UA"})
    assert seen["unread"] == {"a": ["1", "2"]} and seen["form"] == {"a": ["1", "2"]}
    assert seen["attributes"][P + "a"] == ["1", "2"] and seen["attributes"][P + "q"] == "1"
    assert seen["attributes"]["user_agent.original"] == "UA"
    client.post("/parsed", data={"x": "y z"})
    assert seen["form"] == {"x": ["y z"]} and seen["late"] == {"x": "y z"}
    client.post("/json", json={"k": 1})
    assert seen["json"] == {"k": 1} and seen["late"] == {"k": 1} and seen["environ"] == {"k": 1}


def test_environ_adapter_never_installs_a_replay_mid_request() -> None:
    env = environ(method="POST", data=b"payload", content_type="text/plain")
    env.pop("werkzeug.request", None)
    original = env["wsgi.input"]
    request = adapt(env)
    assert request is not None and request.body() is None
    assert env["wsgi.input"] is original and original.tell() == 0
    from_wsgi(env)  # a middleware at request start
    assert adapt(env).body() == "payload"  # type: ignore[union-attr]
    assert env["wsgi.input"].read() == b"payload"


# --- ASGI: Starlette sees the whole body; replay keeps message boundaries and disconnects ------


def _receiver(messages: list[dict[str, Any]]) -> Callable[[], Any]:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        return {"type": "http.disconnect"}

    return receive


def asgi_wrap(app: Any, when: str, cap: int, results: dict[str, Any]) -> Any:
    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        body = ASGIBody(receive, scope, max_body_size=cap)
        await body.prefetch()
        request = from_asgi(scope, body, max_body_size=cap)
        scope["test.request"] = request
        if when == "before":
            results["body"] = request.body()
        await app(scope, body.receive, send)

    return wrapper


def starlette_app(when: str, read: str, results: dict[str, Any]) -> Starlette:
    async def endpoint(request: Request) -> JSONResponse:
        ours = request.scope["test.request"]
        if when == "twice":
            results["first"] = ours.body()
        if read == "body":
            got: Any = (await request.body()).decode()
        elif read == "json":
            got = await request.json()
        elif read == "form":
            form = await request.form()
            got = {key: form.getlist(key) for key in form}
        else:
            got = b"".join([chunk async for chunk in request.stream()]).decode()
        if when in ("after", "twice"):
            results["body"] = ours.body()
        return JSONResponse({"got": got})

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


@pytest.mark.parametrize("when", ["before", "after", "twice"])
@pytest.mark.parametrize("cap", [16384, SMALL_CAP])
@pytest.mark.parametrize(
    ("read", "kwargs", "expected_got", "parsed"),
    [
        ("body", {"content": BIG, "headers": {"content-type": "text/plain"}}, BIG, BIG),
        ("stream", {"content": BIG, "headers": {"content-type": "text/plain"}}, BIG, BIG),
        ("body", {"content": "short", "headers": {"content-type": "text/plain"}}, "short", "short"),
        ("json", {"json": {"k": ["v"] * 40, "n": 1}}, {"k": ["v"] * 40, "n": 1}, {"k": ["v"] * 40, "n": 1}),
        (
            "form",
            {"data": {"a": ["1", "2"], "b": "x y" * 30}},
            {"a": ["1", "2"], "b": ["x y" * 30]},
            {"a": ["1", "2"], "b": "x y" * 30},
        ),
    ],
)
def test_starlette_endpoint_sees_the_whole_body(
    when: str, cap: int, read: str, kwargs: dict[str, Any], expected_got: Any, parsed: Any
) -> None:
    results: dict[str, Any] = {}
    client = TestClient(asgi_wrap(starlette_app(when, read, results), when, cap, results))
    response = client.post("/", **kwargs)
    assert response.status_code == 200
    assert response.json() == {"got": expected_got}
    body = results["body"]
    too_big = len(response.request.content) > cap
    if too_big and when == "before":  # not prefetched (over the cap), not read yet: we know nothing
        assert body == TRUNCATED
    elif too_big:
        assert body == response.request.content[:cap].decode() + TRUNCATED
    else:
        assert body == parsed
    if when == "twice":
        assert results["first"] == (TRUNCATED if too_big else body)


async def _run(app: Any, s: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the app received, message by message, until it saw a disconnect."""
    receive = _receiver(messages)
    received: list[dict[str, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect":
                return

    async def send(message: dict[str, Any]) -> None:
        pass

    await app(inner)(s, receive, send)
    return received


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.request", "body": b"cd"}],
        [
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": b"d", "more_body": False},
        ],
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}],
        [{"type": "http.request", "body": b"abcd", "more_body": False}],
    ],
)
@pytest.mark.parametrize("cap", [2, 4, 100])
def test_asgi_replay_is_message_for_message(messages: list[dict[str, Any]], cap: int) -> None:
    s = scope(method="POST", headers=[(b"content-length", b"4"), (b"content-type", b"text/plain")])
    direct = asyncio.run(_run(lambda inner: inner, s, messages))
    bodies: list[ASGIBody] = []

    def wrapped(inner: Any) -> Any:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = ASGIBody(receive, scope, max_body_size=cap)
            bodies.append(body)
            await body.prefetch()
            await inner(scope, body.receive, send)

        return app

    assert asyncio.run(_run(wrapped, s, messages)) == direct
    data = b"".join(m.get("body", b"") for m in messages)
    complete = messages[-1]["type"] == "http.request"
    assert bodies[0].bytes() == (data[:cap], len(data) > cap or not complete)


def test_asgi_prefetch_only_small_declared_bodies() -> None:
    async def check(headers: list[tuple[bytes, bytes]], cap: int) -> tuple[int, tuple[bytes, bool]]:
        calls = 0

        async def receive() -> dict[str, Any]:
            nonlocal calls
            calls += 1
            return {"type": "http.request", "body": b"abcd"}

        body = ASGIBody(receive, scope(method="POST", headers=headers), max_body_size=cap)
        await body.prefetch()
        return calls, body.bytes()

    assert asyncio.run(check([(b"content-length", b"4")], 4)) == (1, (b"abcd", False))
    assert asyncio.run(check([(b"content-length", b"4")], 3)) == (0, (b"", True))  # larger than the cap
    assert asyncio.run(check([(b"transfer-encoding", b"chunked")], 100)) == (0, (b"", True))  # unknown length
    assert asyncio.run(check([], 100)) == (0, (b"", False))  # HTTP/1.1 without a length: no body


def test_asgi_body_without_scope_learns_it_from_from_asgi() -> None:
    async def go() -> Any:
        body = ASGIBody(_receiver([{"type": "http.request", "body": b""}]))
        await body.prefetch()  # no scope: nothing known, nothing read
        return from_asgi(scope(), body).body()

    assert asyncio.run(go()) is None


def test_asgi_form_params_once_the_body_is_known() -> None:
    form = b"a=1&a=2&b=x+y"
    headers = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"13")]

    async def go(cap: int) -> tuple[Any, Any, Any]:
        s = scope(method="POST", query=b"q=1", headers=headers)
        body = ASGIBody(_receiver([{"type": "http.request", "body": form}]), s, max_body_size=cap)
        await body.prefetch()
        request = from_asgi(s, body, max_body_size=cap)
        before = {k: v for k, v in request.attributes().items() if k.startswith(P)}
        while (await body.receive())["type"] != "http.disconnect":  # the app reads
            pass
        after = {k: v for k, v in request.attributes().items() if k.startswith(P)}
        return before, after, adapt(s).body()  # type: ignore[union-attr]

    prefetched = asyncio.run(go(100))
    assert prefetched[0] == prefetched[1] == {P + "q": "1", P + "a": ["1", "2"], P + "b": "x y"}
    assert prefetched[2] == {"a": ["1", "2"], "b": "x y"}  # the scope adapter finds the body from_asgi saw
    too_big = asyncio.run(go(5))  # over the cap: never parsed, before or after the app read it
    assert too_big[0] == too_big[1] == {P + "q": "1"}
    assert too_big[2] == "a=1&a" + TRUNCATED


# --- adapters ---------------------------------------------------------------------------------


def test_install_adapters_is_idempotent() -> None:
    install_adapters()
    install_adapters()
    assert context._adapters.count(adapt) == 1
    assert adapt(object()) is None and adapt({"type": "websocket"}) is None


def test_scope_and_starlette_request_adapters() -> None:
    install_adapters()
    seen: dict[str, Any] = {}

    async def endpoint(request: Request) -> JSONResponse:
        seen["scope"] = dict(context.to_request_context(request.scope).attributes())
        seen["unread"] = context.to_request_context(request).body()
        await request.body()
        seen["read"] = context.to_request_context(request).body()
        return JSONResponse({})

    async def form_endpoint(request: Request) -> JSONResponse:
        await request.form()
        seen["form"] = context.to_request_context(request).body()
        return JSONResponse({})

    app = Starlette(routes=[Route("/", endpoint, methods=["POST"]), Route("/form", form_endpoint, methods=["POST"])])
    client = TestClient(app, client=("203.0.113.9", 1234))
    client.post("/?a=1&a=2", json={"k": "v"}, headers={"user-agent": "UA/3"})
    assert seen["scope"] == {
        "client.address": "203.0.113.9",
        "network.peer.address": "203.0.113.9",
        "user_agent.original": "UA/3",
        "url.path": "/",
        "http.request.method": "POST",
        P + "a": ["1", "2"],
    }
    assert seen["unread"] is None and seen["read"] == {"k": "v"}
    client.post("/form", data={"x": ["1", "2"]})
    assert seen["form"] == {"x": ["1", "2"]}

    results: dict[str, Any] = {}
    wrapped = TestClient(asgi_wrap(app, "none", 100, results))
    wrapped.post("/", json={"k": "w"})
    assert seen["unread"] == {"k": "w"}  # found our replay under the Starlette request


def test_django_request_adapter() -> None:
    from django.test import RequestFactory

    install_adapters()
    factory = RequestFactory()
    request = factory.post(
        "/p/é?a=1&a=2", data=b'{"k": [1]}', content_type="application/json", HTTP_USER_AGENT="UA/4",
        REMOTE_ADDR="198.51.100.7",
    )  # fmt: skip
    # adapt(), not context.to_request_context(): on Python < 3.12 the latter's isinstance() check against
    # the runtime-checkable RequestContext protocol may evaluate Django's ``body`` property, which reads it.
    unread = adapt(request)
    assert unread is not None
    assert dict(unread.attributes()) == {
        "client.address": "198.51.100.7",
        "network.peer.address": "198.51.100.7",
        "user_agent.original": "UA/4",
        "url.path": "/p/é",
        "http.request.method": "POST",
        P + "a": ["1", "2"],
    }
    assert unread.body() is None  # Django's stream is Django's: not read by us
    assert request.body == b'{"k": [1]}'  # the app still reads it
    assert context.to_request_context(request).body() == {"k": [1]}

    form = factory.post("/f", data={"x": "1"})
    assert form.POST["x"] == "1"
    assert from_django(form).body() == MULTIPART  # RequestFactory encodes forms as multipart


def test_django_sees_our_replay_under_it() -> None:
    from django.core.handlers.wsgi import WSGIRequest

    env = environ("/d", method="POST", data=b"a=1&b=2", content_type="application/x-www-form-urlencoded")
    from_wsgi(env, max_body_size=3).body()  # a WSGI middleware read ahead of Django
    request = WSGIRequest(env)
    assert from_django(request, max_body_size=5).body() == "a=1&b" + TRUNCATED
    assert request.POST.dict() == {"a": "1", "b": "2"}


def test_frameworks_are_not_imported_by_our_modules() -> None:
    code = (
        "import sys, sqreen_otel.request, sqreen_otel.spans, sqreen_otel.integrations.hooks, "
        "sqreen_otel.integrations.wsgi, sqreen_otel.integrations.asgi, sqreen_otel.integrations.flask; "
        "sqreen_otel.track('x', {'request': {'REQUEST_METHOD': 'GET', 'wsgi.input': None}}); "
        "print(sorted(m for m in ('flask', 'werkzeug', 'django', 'starlette', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_request_module_is_framework_neutral_and_the_moved_readers_still_import_from_it() -> None:
    # The readers live in the integration of their framework (as sentry-python's integrations/ do)...
    assert from_wsgi.__module__ == "sqreen_otel.integrations.wsgi"
    assert (from_asgi.__module__, ASGIBody.__module__) == ("sqreen_otel.integrations.asgi",) * 2
    assert from_django.__module__ == "sqreen_otel.integrations.django"
    assert adapt.__module__ == "sqreen_otel.integrations"
    source = Path(request_module.__file__ or "").read_text()
    for reader in ("def from_", "class ASGIBody", "class _ReplayInput", "def adapt", "environ.get", "scope.get"):
        assert reader not in source, reader
    # ...and the old names still work for code that imported them from sqreen_otel.request.
    from sqreen_otel.integrations.asgi import from_starlette
    from sqreen_otel.integrations.flask import from_werkzeug
    from sqreen_otel.request import ASGIBody as OldASGIBody
    from sqreen_otel.request import adapt as old_adapt
    from sqreen_otel.request import from_django as old_from_django
    from sqreen_otel.request import from_starlette as old_from_starlette
    from sqreen_otel.request import from_werkzeug as old_from_werkzeug
    from sqreen_otel.request import from_wsgi as old_from_wsgi

    assert (old_from_wsgi, old_from_werkzeug, old_from_django, old_from_starlette, OldASGIBody, old_adapt) == (
        from_wsgi,
        from_werkzeug,
        from_django,
        from_starlette,
        ASGIBody,
        adapt,
    )
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        request_module.nothing  # noqa: B018


@pytest.fixture(autouse=True)
def _no_request_leak() -> Iterator[None]:
    yield
    assert context.current_request() is None
