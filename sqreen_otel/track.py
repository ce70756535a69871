"""The SDK calls: ``track``, ``identify``, ``auth_track``, ``signup_track``.

Argument errors raise, as Sqreen's agent did. Everything after validation (building, scrubbing,
emitting) is guarded: a failure there is logged and counted, never raised into the application.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import Event as SDKEvent
from opentelemetry.sdk.trace import Span as SDKSpan

from . import blocking, context, runtime, spans
from .blocking import BlockEntry, UserBlocked, UserRedirected
from .draft import EventDraft
from .event import body_attribute, identifier_attributes, scrub_attributes, span_attributes
from .ids import UID, new_uid
from .scrub import Scrubber
from .values import UnconvertibleValue, clean_entry

logger = logging.getLogger("sqreen_otel")

RESERVED_PREFIX = "sq."
MAX_PROPERTIES = 16
TRACK_OPTIONS = frozenset({"properties", "user_identifiers", "timestamp", "collect_body", "request"})
LOGIN_EVENT = "sq.sdk.users.login"
SIGNUP_EVENT = "sq.sdk.users.signup"
BLOCK_USER_EVENT = "sq.action.block_user"
BLOCK_IP_EVENT = "sq.action.block_ip"
ACTION_EVENT_PREFIX = "sq.action."
ACTION_ID = blocking.ACTION_ID
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_PLAIN = frozenset({str, int, float, bool, type(None)})
_failures = 0
_failures_lock = threading.Lock()
_warned_unconfigured = False


def track(event_name: str, options: Mapping[str, Any] | None = None) -> bool:
    """Record a custom security event; ``True`` when it was recorded.

    >>> track("password_reset", {"properties": {"email_domain": "example.com"}})
    True
    """
    if not isinstance(event_name, str):
        raise TypeError(f"event name must be a str, not {type(event_name).__name__}")
    if not event_name:
        raise ValueError("event name must not be empty")
    if event_name.startswith(RESERVED_PREFIX):
        logger.warning("event names starting with %r are reserved; event %r was ignored", RESERVED_PREFIX, event_name)
        return False
    return _record(event_name, options)


def identify(user_identifiers: Mapping[str, str | int], traits: Mapping[str, Any] | None = None) -> None:
    """Attach a user to the current request (thread or asyncio task): later events carry it."""
    identifiers = _check_identifiers("user_identifiers", user_identifiers)
    if traits is not None:
        _check_properties("traits", traits)
    context.set_user(context.User(identifiers, dict(traits or {}), spans.server_span()))
    rt = runtime.current
    if rt.disabled:
        return
    try:
        spans.annotate_user(identifier_attributes(identifiers, rt.scrubber, rt.settings.max_value_length))
    except Exception:  # the span is a nicety; never fail identify() over it
        logger.exception("sqreen_otel could not annotate the request span")
    entry = _blocked_user(identifiers)
    if entry is not None:
        hit = {"user_identifiers": identifiers}
        _record(ACTION_EVENT_PREFIX + entry.action, hit, internal=True, extra=entry.event_attributes())
        if entry.url is not None:
            raise UserRedirected(identifiers, entry.action_id, entry.url)
        raise UserBlocked(identifiers, entry.action_id)


def refuse_ip(request: context.RequestContext) -> BlockEntry | None:
    """The entry refusing (or redirecting) this request's client address, recorded as ``sq.action.<type>``."""
    rt = runtime.current
    if rt.disabled:
        return None
    rt.refresh_actions()
    if not blocking.block_list.blocks_ips():
        return None
    address = request.attributes().get("client.address")
    entry = blocking.block_list.match_ip(address if isinstance(address, str) else None)
    if entry is not None:
        _record(ACTION_EVENT_PREFIX + entry.action, {"request": request}, internal=True, extra=entry.event_attributes())
    return entry


def _blocked_user(identifiers: Mapping[str, str | int]) -> BlockEntry | None:
    rt = runtime.current
    rt.refresh_actions()
    hashed = None
    if rt.settings.pseudonymize_key is not None:
        hashed = {key: str(rt.scrubber.pseudonymize(value)) for key, value in identifiers.items()}
    return blocking.block_list.match_user(identifiers, alternatives=hashed)


def auth_track(success: bool, **user_identifiers: str | int) -> None:
    """Record a login attempt (``sq.sdk.users.login``); a successful one identifies the user."""
    if not isinstance(success, bool):
        raise TypeError(f"success must be a bool, not {type(success).__name__}")
    identifiers = _check_identifiers("user identifiers", user_identifiers, required=True)
    if success:
        identify(identifiers)
    _record(LOGIN_EVENT, {"properties": {"success": success}, "user_identifiers": identifiers}, internal=True)


def signup_track(**user_identifiers: str | int) -> None:
    """Record an account creation (``sq.sdk.users.signup``) and identify the new user."""
    identifiers = _check_identifiers("user identifiers", user_identifiers, required=True)
    identify(identifiers)
    _record(SIGNUP_EVENT, {"user_identifiers": identifiers}, internal=True)


def failures() -> int:
    """How many events failed after validation (a bug of ours, logged each time)."""
    return _failures


def _record(
    name: str, options: Mapping[str, Any] | None, *, internal: bool = False, extra: Mapping[str, Any] | None = None
) -> bool:
    rt = runtime.current
    properties, user, timestamp, collect_body, request = _parse_options(name, options, internal)
    if rt.disabled:
        return True
    if not rt.configured and not _has_pipeline(name):
        return False
    try:
        # On the application's thread: validate, copy, capture the context; the draft is built later.
        scrubber, max_len = rt.scrubber, rt.settings.max_value_length
        captured = _capture(name, properties, scrubber, max_len)
        if user is not None and user.traits:
            # Traits like properties: one that cannot be converted is dropped, not the event.
            user = context.User(user.identifiers, _capture(name, user.traits, scrubber, max_len), user.span)
        span = trace.get_current_span()
        if request is None:
            request = _current_request(span)
        request_attrs = None if request is None else _request_attributes(request, collect_body, scrubber, max_len)
        now = time.time_ns()
        span_context = span.get_span_context()
        draft = EventDraft(
            name, now if timestamp is None else timestamp, now, captured, user, request_attrs, extra, scrubber,
            max_len, span_context.trace_id, span_context.span_id, int(span_context.trace_flags),
            uid=new_uid(),  # the same id on every resend: backends store each event once
        )  # fmt: skip
        slot = rt.slot
        direct = None if slot is None else slot.direct(rt.logger)
        if direct is not None:  # our processor alone would see the record: hand it the draft
            processor, draft.origin = direct
            processor.enqueue(draft)
        else:  # other processors on the provider: a proper SDK log record for each of them
            rt.logger.emit(
                event_name=name,
                timestamp=draft.timestamp,
                observed_timestamp=now,
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                attributes=draft.attributes(),
            )
        if span.is_recording():
            if rt.settings.span_event_attributes == "full":
                span.add_event(name, span_attributes(draft.attributes()), now)
            else:  # who, from where, and the id that joins the log record, which has everything
                slim: dict[str, Any] = {} if draft.uid is None else {UID: draft.uid}
                if user is not None:
                    slim.update(identifier_attributes(user.identifiers, scrubber, max_len))
                address = None if request_attrs is None else request_attrs.get("client.address")
                if address is not None:
                    slim["client.address"] = address
                _span_event(span, name, slim, now)
    except Exception:  # runtime trouble must never reach the application
        global _failures
        with _failures_lock:
            _failures += 1
        logger.exception("sqreen_otel could not record event %r", name)
        return False
    return True


def _span_event(span: trace.Span, name: str, attributes: dict[str, Any], now: int) -> None:
    """``span.add_event(name, attributes, now)`` for our few plain values, without the SDK re-validating them.

    On an SDK span without a value-length limit, the event goes straight to the span's ``_add_event``
    with a read-only mapping: a third of the public call's cost. Any other span gets the public call.
    """
    limits = getattr(span, "_limits", None)
    if (
        isinstance(span, SDKSpan)
        and limits is not None
        and limits.max_attribute_length is None
        and (limits.max_event_attributes is None or limits.max_event_attributes >= len(attributes))
    ):
        span._add_event(SDKEvent(name, MappingProxyType(attributes), now))
    else:
        span.add_event(name, attributes, now)


def _has_pipeline(name: str) -> bool:
    """Before ``configure()``: an SDK LoggerProvider set by the application is a pipeline; else warn once."""
    global _warned_unconfigured
    if isinstance(_logs.get_logger_provider(), LoggerProvider):
        return True
    if not _warned_unconfigured:
        _warned_unconfigured = True
        logger.warning(
            "sqreen_otel: event %r not recorded: no pipeline yet; call sqreen_otel.configure() at start-up "
            "(this warning is shown once, every event before configure() is dropped)",
            name,
        )
    return False


def _parse_options(
    name: str, options: Mapping[str, Any] | None, internal: bool = False
) -> tuple[Mapping[str, Any], context.User | None, int | None, bool, context.RequestContext | None]:
    if options is None:
        options = {}
    elif type(options) is not dict and not isinstance(options, Mapping):
        raise TypeError(f"options must be a mapping, not {type(options).__name__}")
    if not TRACK_OPTIONS.issuperset(options):
        for key in set(options) - TRACK_OPTIONS:
            logger.warning("unknown track() option %r ignored (known: %s)", key, ", ".join(sorted(TRACK_OPTIONS)))

    properties = {} if options.get("properties") is None else options["properties"]
    _check_properties("properties", properties)
    if len(properties) > MAX_PROPERTIES:
        logger.warning(
            "event %r has %d properties; only the first %d by sorted key are kept",
            name, len(properties), MAX_PROPERTIES,
        )  # fmt: skip
        properties = dict(sorted(properties.items())[:MAX_PROPERTIES])

    user = context.current_user()
    if user is not None and not user.current:
        user = None
    ids = options.get("user_identifiers")
    if ids is not None:
        identifiers = _check_identifiers("user_identifiers", ids)
        if user is None or user.identifiers != identifiers:
            if not internal and user is not None:
                logger.warning("track(%r): user_identifiers differ from the identified user; used for this event", name)
            user = context.User(identifiers) if identifiers else None

    timestamp = options.get("timestamp")
    if timestamp is not None:
        timestamp = _to_ns(timestamp)

    request = options.get("request")
    if request is not None:
        request = context.to_request_context(request)
    return properties, user, timestamp, bool(options.get("collect_body")), request


def _current_request(span: trace.Span) -> context.RequestContext | None:
    """The request set by an integration or a hook (while its span lives), else the server span's."""
    request = context.current_request()
    if request is not None and getattr(request, "active", True):
        return request
    rt = runtime.current
    return spans.request_from_span(span, trusted_proxies=rt.trusted_proxies, ip_header=rt.settings.ip_header)


def _capture(name: str, properties: Mapping[str, Any], scrubber: Scrubber, max_len: int) -> dict[str, Any]:
    """A copy the application cannot change any more: plain values as they are (cleaned in the export
    thread), anything else (containers, objects) cleaned now, so ``str()`` runs while the value is current."""
    captured: dict[str, Any] = {}
    for key, value in properties.items():
        if type(value) in _PLAIN:
            captured[key] = value
        else:
            try:
                captured[key] = clean_entry(key, value, scrubber, max_len)
            except UnconvertibleValue as exc:  # cannot even be turned into text: drop just that one
                logger.warning("event %r: property %r dropped: %s", name, key, exc)
    return captured


_REQUEST_CACHE: ContextVar[tuple[Mapping[str, Any], Scrubber, int, dict[str, Any]] | None] = ContextVar(
    "sqreen_otel.scrubbed_request", default=None
)


def _request_attributes(
    request: context.RequestContext, collect_body: bool, scrubber: Scrubber, max_len: int
) -> dict[str, Any]:
    """The request's attributes, scrubbed once per request: keyed on the very mapping the request returns
    (requests cache theirs once final), so a request whose data can still grow is scrubbed again."""
    raw = request.attributes()
    cached = _REQUEST_CACHE.get()
    if cached is not None and cached[0] is raw and cached[1] is scrubber and cached[2] == max_len:
        attributes = cached[3]
    else:
        attributes = scrub_attributes(raw, scrubber, max_len)
        _REQUEST_CACHE.set((raw, scrubber, max_len, attributes))
    if collect_body:
        body = body_attribute(request, scrubber, max_len)
        if body:
            attributes = {**attributes, **body}
    return attributes


def _check_properties(label: str, properties: Any) -> None:
    if type(properties) is not dict and not isinstance(properties, Mapping):
        raise TypeError(f"{label} must be a mapping, not {type(properties).__name__}")
    for key in properties:
        if type(key) is not str and not isinstance(key, str):
            raise TypeError(f"{label} keys must be str, got {key!r} ({type(key).__name__})")


def _check_identifiers(label: str, identifiers: Any, required: bool = False) -> dict[str, str | int]:
    if not isinstance(identifiers, Mapping):
        raise TypeError(f"{label} must be a mapping of str to str or int, not {type(identifiers).__name__}")
    if required and not identifiers:
        raise ValueError(f"{label}: at least one is required, e.g. email='user@example.com'")
    for key, value in identifiers.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{label} keys must be non-empty str, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"{label}[{key!r}] must be str or int, got {type(value).__name__}")
    return dict(identifiers)


def _to_ns(timestamp: Any) -> int:
    if not isinstance(timestamp, _dt.datetime):
        raise TypeError(f"timestamp must be a datetime, not {type(timestamp).__name__}")
    if timestamp.tzinfo is None:  # naive: taken as UTC, as Sqreen did
        timestamp = timestamp.replace(tzinfo=_dt.timezone.utc)
    ns = (timestamp - _EPOCH) // _dt.timedelta(microseconds=1) * 1000
    if not 0 <= ns < 2**64:  # OTLP carries unsigned 64-bit nanoseconds; one such record would fail its batch
        raise ValueError(f"timestamp must be between 1970 and 2554, got {timestamp.isoformat()}")
    return ns
