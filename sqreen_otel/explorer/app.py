"""The Event Explorer's HTTP face: OTLP ingest, the JSON API, the actions feed and the web UI.

One Starlette application served by uvicorn (``sqreen-otel serve``, see ``server``). It listens on
loopback, where any web page the user opens is a client too, so every request goes through ``guard``:

- without a token, only ``Host`` values naming the address the request came in on, or ``localhost``,
  with the port, are served (421 otherwise): a page on a DNS-rebound name cannot read or post;
- with a token, it must come as ``Authorization: Bearer`` or as the cookie a ``?token=`` link sets
  (named per port, a MAC of the token rather than the token, HttpOnly, SameSite=Strict);
- a request that changes something (POST, DELETE) is refused (403) when the browser says it comes
  from another origin (``Sec-Fetch-Site`` other than ``same-origin``/``none``, or a foreign ``Origin``,
  which also covers another port of the same host); it must carry the right ``Content-Type`` (ingest:
  protobuf or JSON; the API: JSON; the UI's forms: urlencoded), else 415; JSON API writes from anyone
  but a bearer-token holder need the ``X-Sqreen-Otel: 1`` header, UI forms the page's CSRF token. A
  cross-origin page can send none of these without a CORS preflight, which this server never grants.

Ingest answers only after the events are committed (``writer``), 503 with ``Retry-After`` when the
queue is full or storage fails. Bodies, values, events, queue and answers are all bounded in bytes;
decoding and page or JSON rendering run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus

import anyio
import anyio.to_thread
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from . import otlp, playbooks_ui, ui
from .alerts import block_list, feed_body
from .server import tally
from .storage import Storage
from .store import Event, Filters
from .writer import StorageError, Writer

if TYPE_CHECKING:
    from .live import Live

MiB = 1024 * 1024
MAX_BODY = 8 * MiB  # compressed, as received
MAX_INFLATED = 32 * MiB  # after gunzip: a gzip bomb gets 413, not an out-of-memory
MAX_BODIES = 64 * MiB  # request bodies held at once (read, being decoded, waiting for their commit)
MAX_FORM = 64 * 1024
MAX_RESPONSE = 4 * MiB  # event pages stop there (``next``/``more`` say there is more)
MAX_SUMMARY_NAMES = 1000
BODY_TIMEOUT = 30.0  # seconds for a whole request body to arrive
DECODERS = 2  # bodies decoded at once (each can take a core and ~4x MAX_INFLATED of memory)
TOKEN_COOKIE = "sqreen_otel_token"
API_HEADER = "X-Sqreen-Otel"  # send "X-Sqreen-Otel: 1" with JSON API writes (not needed with a bearer token)
FORM = "application/x-www-form-urlencoded"
RETRY_BUSY, RETRY_FAILING = "1", "5"  # seconds: a full queue drains fast; a full disk does not
Handler = Callable[[Request], Awaitable[Response]]


class TooLarge(Exception):
    pass


class Busy(Exception):
    """Too many request bytes held already: 503, try again shortly."""


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id, "time_ns": event.time_ns, "received_ns": event.received_ns, "name": event.name,
        "user": event.user, "client_address": event.client_address, "path": event.path, "method": event.method,
        "trace_id": event.trace_id, "span_id": event.span_id, "attributes": event.attributes,
        "resource": event.resource, "scope": event.scope, "record": event.record,
    }  # fmt: skip


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # ASCII: lone surrogates in stored values must not fail the encoding of the answer.
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


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
        path=params.get("path") or None,
        user_agent=params.get("user_agent") or None,
        service=params.get("service") or None,
    )


RECENT_NS = 24 * 3600 * 10**9  # the histogram's default range, when it holds matching events


def histogram_range(store: Storage, filters: Filters, query: Mapping[str, str]) -> tuple[Filters, str]:
    """What the histogram covers, and its ``ui.events_page`` window: a time filter's range; without one, the last
    24 hours when they hold matching events (one import of old events must not squash today's into a sliver),
    else (or with ``window=all``) the matching events' own span."""
    if filters.since_ns is not None or filters.until_ns is not None:
        return filters, ""
    if query.get("window") == "all":
        return filters, ui.WINDOW_ALL
    now = time.time_ns()
    recent = dataclasses.replace(filters, since_ns=now - RECENT_NS, until_ns=now + 1)
    if store.count(recent) == 0:
        return filters, ""
    return recent, ui.WINDOW_RECENT


SPARK_NAMES, SPARK_BUCKETS = 50, 24  # sparklines for the most frequent names: one indexed query each


def sparklines(store: Storage, rows: list[dict[str, Any]]) -> tuple[dict[str, list[int]], str]:
    """Per name of the summary, its counts over a window shared by all (so that they compare): the last 24
    hours when they hold events, else the whole data's span; and that window's ``ui`` name."""
    if not rows:
        return {}, ""
    now = time.time_ns()
    if store.count(Filters(since_ns=now - RECENT_NS, until_ns=now + 1)):
        start, end, window = now - RECENT_NS, now + 1, ui.WINDOW_RECENT
    else:
        start = min(int(row["first_ns"]) for row in rows)
        end, window = max(int(row["last_ns"]) for row in rows) + 1, ui.WINDOW_ALL
    named = [row["name"] for row in rows[:SPARK_NAMES] if row["name"]]  # an empty name would filter nothing
    return {
        name: store.histogram(Filters(name=name, since_ns=start, until_ns=end), buckets=SPARK_BUCKETS)[2]
        for name in named
    }, window


def cursor_from(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    time_ns, _, event_id = raw.partition(":")
    try:
        return int(time_ns), int(event_id)
    except ValueError:
        raise ValueError(f"before must be TIME:ID, got {raw[:40]!r}") from None


class BodyBudget:
    """Bytes of request bodies held at once, across requests (event loop only: no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise Busy(f"over {self.limit} bytes of request bodies in progress")
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size


async def read_body(request: Request, limit: int, budget: BodyBudget | None = None) -> bytes:
    """The body, at most ``limit`` bytes and within ``BODY_TIMEOUT``; with ``budget``, the caller gives it back."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes is over the {limit} byte limit")
    chunks, size = [], 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"body is over the {limit} byte limit")
                if budget is not None:
                    budget.take(len(chunk))
                chunks.append(chunk)
    except BaseException:
        if budget is not None:
            budget.give(sum(map(len, chunks)))
        raise
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return otlp.media_type(request.headers.get("content-type"))


@dataclass(frozen=True)
class Rule:
    """What a route's requests must look like: accepted body types for writes, and the API header."""

    accepts: tuple[str, ...] = ()
    api_write: bool = False


def create_app(store: Storage, *, token: str | None = None, live: Live | None = None) -> Starlette:
    """The explorer app over ``store``. With ``token``, every request must present it.

    ``live``: the playbooks evaluated on committed events (``serve --playbooks``); their decisions join the feed.
    """
    csrf = secrets.token_urlsafe(24)
    session = None if token is None else hmac.new(token.encode(), b"sqreen_otel explorer cookie", "sha256").hexdigest()

    def port_of(request: Request) -> int | None:
        server = request.scope.get("server")
        return server[1] if server else None

    def cookie_name(request: Request) -> str:
        port = port_of(request)
        return TOKEN_COOKIE if port is None else f"{TOKEN_COOKIE}_{port}"  # two explorers on one host: two cookies

    def host_allowed(request: Request) -> bool:
        """The Host names the address this request came in on, or localhost, with the port (no DNS rebinding)."""
        host = request.headers.get("host", "").lower()
        server = request.scope.get("server")
        address, port = (server[0], server[1]) if server else ("localhost", None)
        names = {f"[{name}]" if ":" in name else name for name in (str(address).lower(), "localhost")}
        allowed = {f"{name}:{port}" for name in names}
        if port in (80, None):
            allowed |= names
        return host in allowed

    def authorisation(request: Request) -> str | None:
        """``"open"`` (no token set), ``"bearer"``, ``"cookie"``, or ``None`` (refused)."""
        if token is None or session is None:
            return "open"
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            ok = hmac.compare_digest(header[7:].strip().encode(), token.encode())
            return "bearer" if ok else None
        cookie = request.cookies.get(cookie_name(request), "")
        return "cookie" if hmac.compare_digest(cookie.encode(), session.encode()) else None

    def cross_site(request: Request) -> str | None:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"request from another site refused (Sec-Fetch-Site: {site[:20]})"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return f"request from another origin refused (Origin: {origin[:60]})"
        return None

    def token_redirect(request: Request) -> Response:
        """A shared link with ?token=...: swap it for a cookie, and drop it from the URL (the rest kept as sent)."""
        assert token is not None and session is not None
        if not hmac.compare_digest(request.query_params["token"].encode(), token.encode()):
            return PlainTextResponse("invalid token\n", status_code=401)
        raw = request.scope.get("query_string", b"").decode("latin-1")
        kept = [part for part in raw.split("&") if part and unquote_plus(part.partition("=")[0]) != "token"]
        path = "/" + request.scope.get("raw_path", b"/").decode("latin-1").lstrip("/")  # never //host
        response = RedirectResponse(path + (f"?{'&'.join(kept)}" if kept else ""), status_code=303)
        response.set_cookie(cookie_name(request), session, httponly=True, samesite="strict")
        return response

    def refusal(request: Request, rule: Rule) -> Response | None:
        if token is None and not host_allowed(request):
            return PlainTextResponse(
                "misdirected request: this explorer answers only to its own loopback address or localhost\n",
                status_code=421,
            )
        if token is not None and request.method == "GET" and request.query_params.get("token"):
            return token_redirect(request)
        how = authorisation(request)
        if how is None:
            return PlainTextResponse("missing or invalid token\n", status_code=401)
        if request.method in ("GET", "HEAD"):
            return None
        why = cross_site(request)
        if why is not None:
            return PlainTextResponse(f"{why}\n", status_code=403)
        if rule.accepts and _media_type(request) not in rule.accepts:
            shown = _media_type(request)[:40] or "none"
            return PlainTextResponse(
                f"Content-Type must be {' or '.join(rule.accepts)}, got {shown}\n", status_code=415
            )
        if rule.api_write and how != "bearer" and request.headers.get(API_HEADER) != "1":
            return PlainTextResponse(f"send the header {API_HEADER}: 1 with API writes\n", status_code=403)
        return None

    def guarded(handler: Handler, rule: Rule = Rule()) -> Handler:
        async def wrapper(request: Request) -> Response:
            refused = refusal(request, rule)
            if refused is not None:
                return refused
            try:
                return await handler(request)
            except ClientDisconnect:
                tally.note("clients disconnected before sending their whole request body")
                return Response(status_code=400)  # nobody reads it
            except TimeoutError:
                tally.note(f"request bodies not received within {BODY_TIMEOUT:g} s: answered 408")
                return PlainTextResponse("request body too slow\n", status_code=408, headers={"Connection": "close"})
            except Busy as exc:
                return PlainTextResponse(f"{exc}\n", status_code=503, headers={"Retry-After": RETRY_BUSY})
            except (TooLarge, otlp.TooLarge) as exc:
                return PlainTextResponse(f"{exc}\n", status_code=413)
            except otlp.UnsupportedContentType as exc:
                return PlainTextResponse(f"{exc}\n", status_code=415)
            except ValueError as exc:
                return PlainTextResponse(f"{exc}\n", status_code=400)

        return wrapper

    # -- OTLP ingest ------------------------------------------------------------------------------

    writer = Writer(store)
    bodies = BodyBudget(MAX_BODIES)
    decoders = anyio.CapacityLimiter(DECODERS)

    def decode(body: bytes, encoding: str | None, content_type: str) -> tuple[list[dict[str, Any]], int]:
        return otlp.decode_capped(otlp.inflate(body, encoding, MAX_INFLATED), content_type)

    async def commit(events: list[dict[str, Any]], size: int) -> Response | None:
        """Wait for the events' commit: ``None`` once stored, else the 503 to answer."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def committed(error: BaseException | None) -> None:  # on the writer's thread
            loop.call_soon_threadsafe(settle, error)
            if live is not None and error is None:
                live.nudge()  # evaluate the new events now, not at the next poll

        if not writer.submit(events, size, committed):
            return PlainTextResponse(
                "busy storing earlier events\n", status_code=503, headers={"Retry-After": RETRY_BUSY}
            )
        try:
            await done
        except StorageError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=503, headers={"Retry-After": RETRY_FAILING})
        return None

    async def ingest_logs(request: Request) -> Response:
        content_type = _media_type(request)
        body = await read_body(request, MAX_BODY, bodies)
        try:
            # In a worker thread: gunzipping and decoding a large body would stall every other request.
            events, size = await anyio.to_thread.run_sync(
                decode, body, request.headers.get("content-encoding"), content_type, limiter=decoders
            )
            if events:
                refused = await commit(events, size)
                if refused is not None:
                    return refused
        finally:
            bodies.give(len(body))
        if content_type == otlp.JSON:
            return json_response({})
        return Response(ExportLogsServiceResponse().SerializeToString(), media_type=otlp.PROTOBUF)

    async def ingest_ignored(request: Request) -> Response:
        body = await read_body(request, MAX_BODY, bodies)  # traces and metrics are accepted and dropped
        bodies.give(len(body))
        return Response(b"", media_type=_media_type(request))

    # -- reads: the store query and the rendering both in a worker thread -------------------------

    async def off_loop(render: Callable[[], Response]) -> Response:
        return await run_in_threadpool(render)

    # -- actions feed for agents (SQREEN_OTEL_ACTIONS_URL) ---------------------------------------

    records = live.records if live is not None else None  # decisions join the feed and the block list

    async def actions_feed(request: Request) -> Response:
        body = await run_in_threadpool(feed_body, store, records)  # cached between changes
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    # -- JSON API ---------------------------------------------------------------------------------

    async def api_events(request: Request) -> Response:
        filters = filters_from(request.query_params)
        limit = min(int(request.query_params.get("limit", "50") or 50), 500)
        before = cursor_from(request.query_params.get("before"))

        def render() -> Response:
            events = store.events(filters, before=before, limit=limit, max_bytes=MAX_RESPONSE)
            next_cursor = f"{events[-1].time_ns}:{events[-1].id}" if events and events.more else None
            return json_response({"events": [event_json(e) for e in events], "next": next_cursor})

        return await off_loop(render)

    async def api_event(request: Request) -> Response:
        event_id = int(request.path_params["event_id"])

        def render() -> Response:
            event = store.get(event_id)
            if event is None:
                return json_response({"error": "no such event"}, status=404)
            return json_response(event_json(event))

        return await off_loop(render)

    async def api_tail(request: Request) -> Response:
        filters = filters_from(request.query_params)
        after = int(request.query_params.get("after", "0") or 0)

        def render() -> Response:
            events = store.after(after, filters, 500, max_bytes=MAX_RESPONSE)
            return json_response({"events": [event_json(e) for e in events], "more": events.more})

        return await off_loop(render)

    async def api_histogram(request: Request) -> Response:
        filters = filters_from(request.query_params)

        def render() -> Response:
            start, width, counts = store.histogram(filters)
            return json_response({"start_ns": start, "width_ns": width, "counts": counts})

        return await off_loop(render)

    async def api_top(request: Request) -> Response:
        filters = filters_from(request.query_params)
        return await off_loop(lambda: json_response({"top": store.top_values(filters)}))

    async def api_summary(request: Request) -> Response:
        return await off_loop(lambda: json_response({"names": store.summary(limit=MAX_SUMMARY_NAMES)}))

    async def api_actions(request: Request) -> Response:
        if request.method == "GET":  # what agents enforce: hand-made entries, then playbook decisions in force
            return await off_loop(lambda: json_response({"actions": block_list(store, records)}))
        data = json.loads(await read_body(request, MAX_FORM) or b"{}")
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        action_id = await run_in_threadpool(_apply, store, data)
        answer: dict[str, Any] = {"id": action_id}
        if str(data.get("action", "")).startswith("unblock_"):
            answer["lifted"] = await run_in_threadpool(_lift_matching, live, data)
        return json_response(answer, status=201 if action_id else 200)

    async def api_action_delete(request: Request) -> Response:
        removed = await run_in_threadpool(store.remove_action, request.path_params["action_id"])
        if not removed and live is not None:  # a playbook's decision: lifted (kept, listed as lifted)
            removed = await run_in_threadpool(live.lift, request.path_params["action_id"])
        return json_response({"removed": removed}, status=200 if removed else 404)

    # -- web UI -----------------------------------------------------------------------------------

    def html(text: str, status: int = 200) -> Response:
        return Response(text.encode("utf-8"), status_code=status, media_type="text/html", headers=ui.SECURITY_HEADERS)

    async def page_events(request: Request) -> Response:
        filters = filters_from(request.query_params)
        before = cursor_from(request.query_params.get("before"))
        query = dict(request.query_params)

        def render() -> Response:
            events = store.events(filters, before=before, limit=ui.PAGE_SIZE, max_bytes=MAX_RESPONSE)
            shown, window = histogram_range(store, filters, query)
            histogram = store.histogram(shown)
            total = None if shown is filters else store.count(filters)
            top = store.top_values(filters)
            return html(ui.events_page(events, filters, histogram, query, csrf, total=total, window=window, top=top))

        return await off_loop(render)

    async def page_event(request: Request) -> Response:
        event_id = int(request.path_params["event_id"])

        def render() -> Response:
            event = store.get(event_id)
            if event is None:
                return html(ui.not_found_page(), status=404)
            return html(ui.event_page(event, csrf))

        return await off_loop(render)

    async def page_summary(request: Request) -> Response:
        def render() -> Response:
            rows = store.summary(limit=MAX_SUMMARY_NAMES)
            sparks, window = sparklines(store, rows)
            return html(ui.summary_page(rows, sparks=sparks, window=window))

        return await off_loop(render)

    async def page_actions(request: Request) -> Response:
        if request.method == "POST":
            body = await read_body(request, MAX_FORM)
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
            except UnicodeDecodeError:
                raise ValueError("the form is not UTF-8") from None
            form: dict[str, str] = {}
            for key, value in pairs:
                form.setdefault(key, value)
            if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
                return PlainTextResponse("invalid form token\n", status_code=403)
            data = ui.action_from_form(form)
            await run_in_threadpool(_apply, store, data)
            await run_in_threadpool(_lift_matching, live, data)
            back = form.get("back") or ""
            return RedirectResponse(back if _local(back) else "/actions", status_code=303)
        return await off_loop(lambda: html(ui.actions_page(block_list(store, records), csrf)))

    ingest = Rule(accepts=(otlp.PROTOBUF, otlp.JSON))
    api_write = Rule(accepts=(otlp.JSON,), api_write=True)
    routes = [
        Route("/v1/logs", guarded(ingest_logs, ingest), methods=["POST"]),
        Route("/v1/traces", guarded(ingest_ignored, ingest), methods=["POST"]),
        Route("/v1/metrics", guarded(ingest_ignored, ingest), methods=["POST"]),
        Route("/v1/actions", guarded(actions_feed), methods=["GET"]),
        Route("/api/events", guarded(api_events), methods=["GET"]),
        Route("/api/events/{event_id:int}", guarded(api_event), methods=["GET"]),
        Route("/api/tail", guarded(api_tail), methods=["GET"]),
        Route("/api/histogram", guarded(api_histogram), methods=["GET"]),
        Route("/api/top", guarded(api_top), methods=["GET"]),
        Route("/api/summary", guarded(api_summary), methods=["GET"]),
        Route("/api/actions", guarded(api_actions, api_write), methods=["GET", "POST"]),
        Route("/api/actions/{action_id}", guarded(api_action_delete, Rule(api_write=True)), methods=["DELETE"]),
        Route("/", guarded(page_events), methods=["GET"]),
        Route("/events/{event_id:int}", guarded(page_event), methods=["GET"]),
        Route("/summary", guarded(page_summary), methods=["GET"]),
        Route("/actions", guarded(page_actions, Rule(accepts=(FORM,))), methods=["GET", "POST"]),
        *playbooks_ui.routes(
            store, live, csrf=csrf, guard=guarded, guard_form=lambda h: guarded(h, Rule(accepts=(FORM,))), html=html
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(writer.close)  # store what is queued before the server stops

    return Starlette(routes=routes, lifespan=lifespan)


def _local(target: Any) -> bool:
    """Only same-site paths as redirect targets (no open redirect through the ``back`` field)."""
    return isinstance(target, str) and target.startswith("/") and not target.startswith(("//", "/\\"))


def _lift_matching(live: Live | None, data: Mapping[str, Any]) -> list[str]:
    """``unblock_user`` / ``unblock_ip`` also lift the playbooks' decisions in force on exactly that target."""
    action = data.get("action")
    if live is None or action not in ("unblock_user", "unblock_ip"):
        return []
    user, ip = data.get("user"), data.get("ip")
    if action == "unblock_user":
        ids = live.records.matching(user=user) if isinstance(user, Mapping) else []
    else:
        ids = live.records.matching(ip=ip) if isinstance(ip, str) else []
    return [decision_id for decision_id in ids if live.lift(decision_id)]


def _apply(store: Storage, data: dict[str, Any]) -> str | None:
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
