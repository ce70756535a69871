"""The Event Explorer's HTTP face: OTLP ingest, the JSON API, the actions feed and the web UI.

One Starlette application served by uvicorn (``sqreen-otel serve``). Every request passes the
token check when a token is set; UI forms also carry a per-server CSRF token, since a browser
would otherwise let any web page post to a loopback server.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from . import otlp, ui
from .store import Event, Filters, Store
from .writer import Writer

MiB = 1024 * 1024
MAX_BODY = 8 * MiB  # compressed, as received
MAX_INFLATED = 32 * MiB  # after gunzip: a gzip bomb gets 413, not an out-of-memory
MAX_FORM = 64 * 1024
TOKEN_COOKIE = "sqreen_otel_token"
Handler = Callable[[Request], Awaitable[Response]]


class TooLarge(Exception):
    pass


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id, "time_ns": event.time_ns, "received_ns": event.received_ns, "name": event.name,
        "user": event.user, "client_address": event.client_address, "path": event.path, "method": event.method,
        "trace_id": event.trace_id, "span_id": event.span_id, "attributes": event.attributes,
        "resource": event.resource, "scope": event.scope,
    }  # fmt: skip


def filters_from(params: Any) -> Filters:
    """Filters from a query string (the UI's URL, so that a view can be shared); ValueError if bad."""

    def number(name: str) -> int | None:
        """Nanoseconds since the epoch, or ISO 8601 text (UTC when naive: the form without JavaScript)."""
        raw = params.get(name) or None
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            moment = datetime.datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{name} must be nanoseconds since the epoch or ISO 8601, got {raw[:40]!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000

    prop = None
    if params.get("prop"):
        key, sep, value = params["prop"].partition("=")
        if not sep:
            raise ValueError("prop must be key=value")
        prop = (key.strip(), value)
    return Filters(
        name=params.get("name") or None,
        user=params.get("user") or None,
        ip=params.get("ip") or None,
        since_ns=number("since"),
        until_ns=number("until"),
        prop=prop,
    )


def cursor_from(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    time_ns, _, event_id = raw.partition(":")
    try:
        return int(time_ns), int(event_id)
    except ValueError:
        raise ValueError(f"before must be TIME:ID, got {raw[:40]!r}") from None


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes is over the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(store: Store, *, token: str | None = None) -> Starlette:
    """The explorer app over ``store``. With ``token``, every request must present it."""
    csrf = secrets.token_urlsafe(24)

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        presented = request.cookies.get(TOKEN_COOKIE, "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            presented = header[7:].strip()
        return hmac.compare_digest(presented.encode(), token.encode())

    def guarded(handler: Handler) -> Handler:
        async def wrapper(request: Request) -> Response:
            if token is not None and request.query_params.get("token") and request.method == "GET":
                # A shared link with ?token=...: swap it for a cookie and drop it from the URL.
                if not hmac.compare_digest(request.query_params["token"].encode(), token.encode()):
                    return PlainTextResponse("invalid token\n", status_code=401)
                query = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items() if k != "token")
                response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return response
            if not authorised(request):
                return PlainTextResponse("missing or invalid token\n", status_code=401)
            try:
                return await handler(request)
            except TooLarge as exc:
                return PlainTextResponse(f"{exc}\n", status_code=413)
            except otlp.TooLarge as exc:
                return PlainTextResponse(f"{exc}\n", status_code=413)
            except otlp.UnsupportedContentType as exc:
                return PlainTextResponse(f"{exc}\n", status_code=415)
            except ValueError as exc:
                return PlainTextResponse(f"{exc}\n", status_code=400)

        return wrapper

    # -- OTLP ingest ------------------------------------------------------------------------------

    writer = Writer(store)

    def inflate_decode(body: bytes, encoding: str | None, content_type: str) -> list[dict[str, Any]]:
        return otlp.decode(otlp.inflate(body, encoding, MAX_INFLATED), content_type)

    async def query(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A store read, after the writer committed every acknowledged event (read-after-write)."""

        def call() -> Any:
            writer.wait_idle()
            return method(*args, **kwargs)

        return await run_in_threadpool(call)

    async def ingest_logs(request: Request) -> Response:
        body = await read_body(request, MAX_BODY)
        content_type = request.headers.get("content-type", "application/x-protobuf")
        # In a worker thread: gunzipping and decoding a large body takes long enough to stall every
        # other request (UI, tail, actions feed) if done on the event loop.
        events = await run_in_threadpool(inflate_decode, body, request.headers.get("content-encoding"), content_type)
        if events and not writer.submit(events):
            return PlainTextResponse("busy storing earlier events\n", status_code=503, headers={"Retry-After": "1"})
        if otlp.media_type(content_type) == otlp.JSON:
            return JSONResponse({})
        return Response(ExportLogsServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    async def ingest_ignored(request: Request) -> Response:
        await read_body(request, MAX_BODY)  # traces and metrics are accepted and dropped
        return Response(b"", media_type=request.headers.get("content-type", "application/x-protobuf"))

    # -- actions feed for agents (SQREEN_OTEL_ACTIONS_URL) ---------------------------------------

    async def actions_feed(request: Request) -> Response:
        document = await query(store.actions_document)
        body = json.dumps(document, sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    # -- JSON API ---------------------------------------------------------------------------------

    async def api_events(request: Request) -> Response:
        filters = filters_from(request.query_params)
        limit = min(int(request.query_params.get("limit", "50") or 50), 500)
        before = cursor_from(request.query_params.get("before"))
        events = await query(store.events, filters, before=before, limit=limit)
        next_cursor = f"{events[-1].time_ns}:{events[-1].id}" if len(events) == limit else None
        return JSONResponse({"events": [event_json(e) for e in events], "next": next_cursor})

    async def api_event(request: Request) -> Response:
        event = await query(store.get, int(request.path_params["event_id"]))
        if event is None:
            return JSONResponse({"error": "no such event"}, status_code=404)
        return JSONResponse(event_json(event))

    async def api_tail(request: Request) -> Response:
        filters = filters_from(request.query_params)
        after = int(request.query_params.get("after", "0") or 0)
        events = await query(store.after, after, filters, 500)
        return JSONResponse({"events": [event_json(e) for e in events]})

    async def api_histogram(request: Request) -> Response:
        start, width, counts = await query(store.histogram, filters_from(request.query_params))
        return JSONResponse({"start_ns": start, "width_ns": width, "counts": counts})

    async def api_summary(request: Request) -> Response:
        return JSONResponse({"names": await query(store.summary)})

    async def api_actions(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"actions": await query(store.actions)})
        data = json.loads(await read_body(request, MAX_FORM) or b"{}")
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        action_id = await run_in_threadpool(_apply, store, data)
        return JSONResponse({"id": action_id}, status_code=201 if action_id else 200)

    async def api_action_delete(request: Request) -> Response:
        removed = await run_in_threadpool(store.remove_action, request.path_params["action_id"])
        return JSONResponse({"removed": removed}, status_code=200 if removed else 404)

    # -- web UI -----------------------------------------------------------------------------------

    async def page_events(request: Request) -> Response:
        filters = filters_from(request.query_params)
        before = cursor_from(request.query_params.get("before"))
        events = await query(store.events, filters, before=before, limit=ui.PAGE_SIZE)
        histogram = await query(store.histogram, filters)
        return HTMLResponse(
            ui.events_page(events, filters, histogram, dict(request.query_params), csrf), headers=ui.SECURITY_HEADERS
        )

    async def page_event(request: Request) -> Response:
        event = await query(store.get, int(request.path_params["event_id"]))
        if event is None:
            return HTMLResponse(ui.not_found_page(), status_code=404, headers=ui.SECURITY_HEADERS)
        return HTMLResponse(ui.event_page(event, csrf), headers=ui.SECURITY_HEADERS)

    async def page_summary(request: Request) -> Response:
        rows = await query(store.summary)
        return HTMLResponse(ui.summary_page(rows), headers=ui.SECURITY_HEADERS)

    async def page_actions(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form(max_files=0, max_fields=16)
            if not hmac.compare_digest(str(form.get("csrf", "")).encode(), csrf.encode()):
                return PlainTextResponse("invalid form token\n", status_code=403)
            await run_in_threadpool(_apply, store, ui.action_from_form(form))
            return RedirectResponse(str(form.get("back") or "/actions") if _local(form.get("back")) else "/actions",
                                    status_code=303)  # fmt: skip
        actions = await query(store.actions)
        return HTMLResponse(ui.actions_page(actions, csrf), headers=ui.SECURITY_HEADERS)

    routes = [
        Route("/v1/logs", guarded(ingest_logs), methods=["POST"]),
        Route("/v1/traces", guarded(ingest_ignored), methods=["POST"]),
        Route("/v1/metrics", guarded(ingest_ignored), methods=["POST"]),
        Route("/v1/actions", guarded(actions_feed), methods=["GET"]),
        Route("/api/events", guarded(api_events), methods=["GET"]),
        Route("/api/events/{event_id:int}", guarded(api_event), methods=["GET"]),
        Route("/api/tail", guarded(api_tail), methods=["GET"]),
        Route("/api/histogram", guarded(api_histogram), methods=["GET"]),
        Route("/api/summary", guarded(api_summary), methods=["GET"]),
        Route("/api/actions", guarded(api_actions), methods=["GET", "POST"]),
        Route("/api/actions/{action_id}", guarded(api_action_delete), methods=["DELETE"]),
        Route("/", guarded(page_events), methods=["GET"]),
        Route("/events/{event_id:int}", guarded(page_event), methods=["GET"]),
        Route("/summary", guarded(page_summary), methods=["GET"]),
        Route("/actions", guarded(page_actions), methods=["GET", "POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(writer.close)  # store what was acknowledged before the server stops

    return Starlette(routes=routes, lifespan=lifespan)


def _local(target: Any) -> bool:
    """Only same-site paths as redirect targets (no open redirect through the ``back`` field)."""
    return isinstance(target, str) and target.startswith("/") and not target.startswith("//")


def _apply(store: Store, data: dict[str, Any]) -> str | None:
    """Apply a block or unblock request: ``{"action": "block_user", "user": {...}, "duration": 3600}``."""
    action = data.get("action")
    duration = data.get("duration")
    if duration is not None and not isinstance(duration, (int, float)):
        raise ValueError("duration must be a number of seconds")
    try:
        if action in ("block_user", "block_ip"):
            return store.add_action(action, user=data.get("user"), ip=data.get("ip"), duration=duration)
        if action in ("unblock_user", "unblock_ip"):
            store.remove_matching(action.replace("unblock", "block"), user=data.get("user"), ip=data.get("ip"))
            return None
    except TypeError as exc:  # JSON of the wrong type ("user": "alice"): the client's mistake, 400 not 500
        raise ValueError(str(exc)) from None
    raise ValueError("action must be block_user, block_ip, unblock_user or unblock_ip")
