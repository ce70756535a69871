"""Per-request state: the identified user and the current request.

Held in ``contextvars`` so that each thread and each asyncio task sees its own request, and a task
started inside a request inherits it. Framework integrations set the request; ``identify()``
sets the user.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

UserIdentifiers = Mapping[str, "str | int"]


@dataclass(frozen=True)
class User:
    identifiers: dict[str, str | int]
    traits: dict[str, Any] = field(default_factory=dict)
    # The request span it was identified under: without an integration resetting the context, a
    # worker thread would otherwise lend this user to its next requests.
    span: Any = None

    @property
    def current(self) -> bool:
        return self.span is None or self.span.is_recording()


class RequestContext(Protocol):
    """What an event needs from the HTTP request it happened in.

    Framework integrations implement it; ``attributes()`` returns semantic-convention names
    (``client.address``, ``url.path``...) with raw values, which the event pipeline scrubs.
    """

    def attributes(self) -> Mapping[str, Any]: ...

    def body(self) -> Any:
        """The request body, parsed where possible; ``None`` when there is none or it is unreadable."""
        ...


_user: ContextVar[User | None] = ContextVar("sqreen_otel.user", default=None)
_request: ContextVar[RequestContext | None] = ContextVar("sqreen_otel.request", default=None)

# Adapters from framework request objects to a RequestContext, registered by the integrations.
_adapters: list[Callable[[Any], RequestContext | None]] = []


def current_user() -> User | None:
    return _user.get()


def set_user(user: User | None) -> Token[User | None]:
    return _user.set(user)


def current_request() -> RequestContext | None:
    return _request.get()


def set_request(request: RequestContext | None) -> Token[RequestContext | None]:
    return _request.set(request)


@contextlib.contextmanager
def request_scope(request: RequestContext) -> Iterator[RequestContext]:
    """Make ``request`` current, and forget it and its user when the block ends."""
    request_token = _request.set(request)
    # Usually no user yet: then one read here and one at the end instead of a set/reset pair.
    user_token = None if _user.get() is None else _user.set(None)
    try:
        yield request
    finally:
        if user_token is not None:
            _user.reset(user_token)
        elif _user.get() is not None:  # identified during the request: back to the None it was
            _user.set(None)
        _request.reset(request_token)


def register_request_adapter(adapter: Callable[[Any], RequestContext | None]) -> None:
    """Teach ``track(..., {"request": r})`` a new request type: ``adapter(r)`` returns ``None`` if not its type."""
    if adapter not in _adapters:
        _adapters.append(adapter)


def to_request_context(obj: Any) -> RequestContext:
    # Adapters first, and the protocol checked on the type: ``isinstance`` against a runtime
    # protocol reads the attributes, and Django's ``request.body`` property would consume the body.
    for adapter in reversed(_adapters):
        request = adapter(obj)
        if request is not None:
            return request
    if all(callable(getattr(type(obj), name, None)) for name in ("attributes", "body")):
        return cast(RequestContext, obj)
    raise TypeError(
        f"request option: unsupported request type {type(obj).__name__}; expected a RequestContext or a "
        "request of an installed integration (Flask, Django, Starlette, WSGI environ, ASGI scope)"
    )
