"""Fields of a stored event, named as the explorer shows them, compiled once into accessors.

``name``, ``properties.<key>``, ``user.<key>`` (an identifier), ``client.address``,
``user_agent.original``, ``url.path``, ``http.request.method``, ``params.<name>`` (request
parameters), ``resource.<key>`` and, beyond the issue's list, ``attributes.<key>`` (any raw attribute).
An accessor returns ``MISSING`` when the event has no such value, so that "absent" never equals a value.
Accessors are made at load time: the engine calls them per event, so they do no parsing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..store import PROPERTIES_PREFIX, Event

PARAMS_PREFIX = "sqreen.request.params."
MAX_FIELD_LENGTH = 256
_KEY = re.compile(r"[A-Za-z0-9_.\-:@/]+")


class _Missing:
    """The value of a field an event does not have (falsy, equal only to itself)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class EventLike(Protocol):
    """What the engine reads of an event: ``store.Event`` has it all."""

    @property
    def id(self) -> int: ...
    @property
    def time_ns(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def user(self) -> dict[str, Any]: ...
    @property
    def client_address(self) -> str | None: ...
    @property
    def path(self) -> str | None: ...
    @property
    def method(self) -> str | None: ...
    @property
    def attributes(self) -> dict[str, Any]: ...
    @property
    def resource(self) -> dict[str, Any]: ...


Accessor = Callable[[EventLike], Any]

# Fields held in a column of their own, and the attribute a plain ``attributes`` dict holds them in.
_DIRECT: dict[str, Accessor] = {
    "name": lambda e: e.name or MISSING,
    "client.address": lambda e: e.client_address or MISSING,
    "url.path": lambda e: e.path or MISSING,
    "http.request.method": lambda e: e.method or MISSING,
    "user_agent.original": lambda e: e.attributes.get("user_agent.original", MISSING),
}
PREFIXES = ("properties.", "user.", "params.", "resource.", "attributes.")
FIELD_HELP = ", ".join(_DIRECT) + " or properties./user./params./resource./attributes.<key>"


def check_field(name: Any) -> str:
    """``name`` if it is a field an event can have; ``ValueError`` saying which fields exist otherwise."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a field name must be text, one of: {FIELD_HELP}")
    if len(name) > MAX_FIELD_LENGTH:
        raise ValueError(f"a field name is limited to {MAX_FIELD_LENGTH} characters")
    if name in _DIRECT:
        return name
    for prefix in PREFIXES:
        if name.startswith(prefix) and _KEY.fullmatch(name[len(prefix) :]):
            return name
    raise ValueError(f"unknown field {name!r}: expected {FIELD_HELP}")


def _nested(mapping: Mapping[str, Any], flat: str, key: str) -> Any:
    """``mapping[flat + key]``, else a map kept whole (``sqreen.properties.a`` = ``{"b": 1}`` for ``a.b``)."""
    value = mapping.get(flat + key, MISSING)
    if value is not MISSING or "." not in key:
        return value
    head, _, rest = key.partition(".")
    inner = mapping.get(flat + head, MISSING)
    for part in rest.split("."):
        if not isinstance(inner, Mapping):
            return MISSING
        inner = inner.get(part, MISSING)
    return inner


def accessor(name: str) -> Accessor:
    """A function reading field ``name`` of an event (``MISSING`` when absent). ``name`` must pass ``check_field``."""
    direct = _DIRECT.get(check_field(name))
    if direct is not None:
        return direct
    prefix, _, key = name.partition(".")
    if prefix == "user":
        return lambda e: e.user.get(key, MISSING)
    if prefix == "resource":
        return lambda e: e.resource.get(key, MISSING)
    if prefix == "attributes":
        return lambda e: e.attributes.get(key, MISSING)
    flat = PROPERTIES_PREFIX if prefix == "properties" else PARAMS_PREFIX
    full = flat + key
    if "." not in key:
        return lambda e: e.attributes.get(full, MISSING)
    return lambda e: _nested(e.attributes, flat, key)


def hashable(value: Any) -> Any:
    """A value usable as a dict key (group keys, distinct values): maps and lists become sorted tuples."""
    if isinstance(value, (str, int, float, bool)) or value is None or value is MISSING:
        return value
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(hashable(v) for v in value)
    return repr(value)


def make_event(
    event_id: int,
    time_ns: int,
    name: str,
    *,
    properties: Mapping[str, Any] | None = None,
    user: Mapping[str, Any] | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    path: str | None = None,
    method: str | None = None,
    params: Mapping[str, Any] | None = None,
    resource: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Event:
    """A ``store.Event`` as the store would return it, for playbook tests, backtests of files and benchmarks."""
    attrs: dict[str, Any] = dict(attributes or {})
    for key, value in (properties or {}).items():
        attrs[PROPERTIES_PREFIX + key] = value
    for key, value in (params or {}).items():
        attrs[PARAMS_PREFIX + key] = value
    for key, value in (user or {}).items():
        attrs["sqreen.user." + key] = value
    if ip is not None:
        attrs["client.address"] = ip
    if user_agent is not None:
        attrs["user_agent.original"] = user_agent
    if path is not None:
        attrs["url.path"] = path
    if method is not None:
        attrs["http.request.method"] = method
    return Event(
        id=event_id,
        time_ns=time_ns,
        received_ns=time_ns,
        name=name,
        user=dict(user or {}),
        client_address=ip,
        path=path,
        method=method,
        trace_id=None,
        span_id=None,
        attributes=attrs,
        resource=dict(resource or {}),
        scope=None,
    )
