"""``where`` expressions: CEL (the cel-python package), compiled once when the file is loaded, never ``eval``.

An expression sees the event as CEL values under the fields' roots: ``name``, ``properties``,
``user``, ``client.address``, ``user_agent.original``, ``url.path``, ``http.request.method``,
``params``, ``resource`` and ``attributes``. A field the event lacks is absent from its map, so
``properties.success == false`` is simply not matched by an event without ``success`` (CEL reports
"no such key"; an evaluation error counts as no match and is counted in ``Where.errors``), and
``has(properties.x)`` tests for presence.

Speed: cel-python walks the parse tree in Python (about 100 µs an evaluation), far too slow for
every event. Common conditions (comparisons, ``in``, ``&& || !``, ``has()``, ``startsWith``...) run
as Python closures compiled from the same parse tree (``native``), which hand the rare cases they
cannot be sure of back to cel-python. For the rest, CEL is pure, so the result depends only on the
fields the expression names: those are
found in the parse tree at load time, read with precomputed accessors, and the result is cached
per combination of their values (bounded). Login outcomes, methods, paths and names repeat, so
nearly every event is a cache hit. An expression reading a whole map (``size(properties)``) is
evaluated every time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import celpy
from celpy import celtypes
from lark import Token, Tree

from . import native
from .fields import MISSING, PARAMS_PREFIX, EventLike, accessor, check_field

logger = logging.getLogger("sqreen_otel.explorer")

MAX_EXPRESSION_LENGTH = 4096
CACHE_SIZE = 4096
ROOTS = ("name", "properties", "user", "client", "user_agent", "url", "http", "params", "resource", "attributes")
_MACROS = {"exists", "all", "exists_one", "map", "filter"}  # their variables are not roots
_ENV = celpy.Environment()


class ExpressionError(ValueError):
    """A ``where`` that is not valid CEL or names no field an event has."""


def _tokens(tree: Tree) -> Iterator[Token]:
    for child in tree.children:
        if isinstance(child, Token):
            yield child
        elif isinstance(child, Tree):
            yield from _tokens(child)


def _chain(node: Tree) -> list[str] | None:
    """``["properties", "success"]`` for ``properties.success`` (or ``properties["success"]``); None if not a chain."""
    if node.data == "primary":
        child = node.children[0]
        if isinstance(child, Tree) and child.data == "ident":
            return [str(child.children[0])]
        return None
    if node.data == "member" and len(node.children) == 1 and isinstance(node.children[0], Tree):
        return _chain(node.children[0])
    if node.data == "member_dot":
        inner = node.children[0]
        head = _chain(inner) if isinstance(inner, Tree) else None
        return None if head is None else [*head, str(node.children[1])]
    if node.data == "member_index":
        inner, index = node.children[0], node.children[1]
        head = _chain(inner) if isinstance(inner, Tree) else None
        literal = [t for t in _tokens(index)] if isinstance(index, Tree) else []
        if head is None or len(literal) != 1 or literal[0].type != "STRING_LIT":
            return None
        text = str(literal[0])
        if len(text) < 2 or text[0] != text[-1] or text[0] not in "'\"" or "\\" in text:
            return None
        return [*head, text[1:-1]]
    return None


def _references(tree: Tree, found: list[list[str]], macros: list[bool], presence: list[list[str]]) -> None:
    """Collect the longest field chains the expression reads (a bare root is a chain of one).

    Chains only tested by ``has()`` go to ``presence``: their value does not change the result.
    """
    if tree.data == "ident_arg" and tree.children and str(tree.children[0]) == "has":
        for child in tree.children[1:]:
            if isinstance(child, Tree):
                _references(child, presence, macros, presence)
        return
    if tree.data in ("member_dot", "member_index", "primary"):
        chain = _chain(tree)
        if chain is not None:
            found.append(chain)
            return
    if tree.data in ("member_dot_arg", "ident_arg"):
        for child in tree.children:
            if isinstance(child, Token) and str(child) in _MACROS:
                macros[0] = True
    for child in tree.children:
        if isinstance(child, Tree):
            _references(child, found, macros, presence)


def _field_of(chain: list[str]) -> str | None:
    """The field a chain reads (``client.address``), or None when it reads a whole map."""
    root = chain[0]
    if root == "name":
        return "name" if len(chain) == 1 else None
    if len(chain) < 2:
        return None
    name = ".".join(chain)
    try:
        return check_field(name)
    except ValueError:
        return None


def _cel(value: Any) -> Any:
    """CEL values of a map; an entry CEL cannot hold (an int beyond 64 bits) is left out, as if absent."""
    try:
        return celpy.json_to_cel(value)
    except Exception:
        if not isinstance(value, dict):
            raise
    out = {}
    for key, item in value.items():
        try:
            out[key] = celpy.json_to_cel(item)
        except Exception:
            continue
    return celpy.json_to_cel(out) if not out else celtypes.MapType({celtypes.StringType(k): v for k, v in out.items()})


def _strip(attributes: dict[str, Any], prefix: str) -> dict[str, Any]:
    n = len(prefix)
    return {key[n:]: value for key, value in attributes.items() if key.startswith(prefix)}


def activation(event: EventLike, roots: frozenset[str] = frozenset(ROOTS)) -> dict[str, Any]:
    """The event as CEL values, only for the ``roots`` an expression uses; absent fields are left out."""
    out: dict[str, Any] = {}
    attributes = event.attributes
    if "name" in roots:
        out["name"] = celtypes.StringType(event.name or "")
    if "properties" in roots:
        out["properties"] = _cel(_strip(attributes, "sqreen.properties."))
    if "user" in roots:
        out["user"] = _cel(dict(event.user))
    if "params" in roots:
        out["params"] = _cel(_strip(attributes, PARAMS_PREFIX))
    if "resource" in roots:
        out["resource"] = _cel(dict(event.resource))
    if "attributes" in roots:
        out["attributes"] = _cel(dict(attributes))
    single = {
        "client": ("address", event.client_address),
        "user_agent": ("original", attributes.get("user_agent.original")),
        "url": ("path", event.path),
    }
    for root, (key, value) in single.items():
        if root in roots:
            out[root] = _cel({key: value} if value is not None else {})
    if "http" in roots:
        out["http"] = _cel({"request": {"method": event.method}} if event.method else {"request": {}})
    return out


class Where:
    """A compiled ``where``: ``matches(event)`` is True only when the expression evaluates to ``true``."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError("a where expression must be non-empty text (CEL)")
        if len(text.encode("utf-8", "replace")) > MAX_EXPRESSION_LENGTH:
            raise ExpressionError(f"a where expression is limited to {MAX_EXPRESSION_LENGTH} bytes")
        self.text = text
        try:
            ast = _ENV.compile(text)
            self._program = _ENV.program(ast)
        except Exception as exc:  # celpy's parse errors carry the line and column
            column = getattr(exc, "column", None)
            at = f" at column {column + 1}" if isinstance(column, int) else ""
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            detail = "" if getattr(exc, "column", None) is not None else f" ({first})"
            raise ExpressionError(f"not a valid CEL expression{at}{detail}: {text!r}") from None
        chains: list[list[str]] = []
        tested: list[list[str]] = []
        macros = [False]
        _references(ast, chains, macros, tested)
        unknown = sorted({c[0] for c in chains + tested if c[0] not in ROOTS})
        if unknown and not macros[0]:
            raise ExpressionError(f"unknown name(s) {', '.join(unknown)}: fields start with {', '.join(ROOTS)}")
        self.roots = frozenset(c[0] for c in chains + tested if c[0] in ROOTS)
        fields = [_field_of(c) for c in chains if c[0] in ROOTS]
        present = [_field_of(c) for c in tested if c[0] in ROOTS]
        cacheable = None not in fields and None not in present
        self.fields: tuple[str, ...] | None = tuple(sorted({f for f in fields if f})) if cacheable else None
        self.presence: tuple[str, ...] = tuple(sorted({f for f in present if f} - set(self.fields or ())))
        self._key = self._key_function() if cacheable else None
        try:
            self._native: Callable[[EventLike], Any] | None = native.compile_tree(ast)
        except Exception:  # native.Unsupported, or anything it did not foresee: cel-python does it all
            self._native = None
        self._cache: dict[Any, bool] = {}
        self._last_event: object = None
        self._last_result = False
        self.errors = 0  # evaluations that failed (a missing key, a type mismatch): counted as no match
        self.evaluations = 0  # evaluations by cel-python (cache misses and what native code cannot run)
        self.native = self._native is not None

    def __repr__(self) -> str:
        return f"Where({self.text!r})"

    def __eq__(self, other: object) -> bool:  # the same text is the same condition (reloads compare playbooks)
        return isinstance(other, Where) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def evaluate(self, event: EventLike) -> bool:
        """Evaluate with CEL, without the cache."""
        self.evaluations += 1
        try:
            result = self._program.evaluate(activation(event, self.roots))
        except Exception:  # CEL raises some errors and returns others
            result = None
        if isinstance(result, Exception):
            result = None
        if result is None:
            self.errors += 1
        return result is True or (isinstance(result, celtypes.BoolType) and bool(result))

    def _key_function(self) -> Callable[[EventLike], Any]:
        """What the result depends on: each field's type and value, and whether each ``has()`` field is there.

        The type is part of the key: ``1 == True`` in Python, not in CEL.
        """
        values = tuple(accessor(f) for f in self.fields or ())
        tests = tuple(accessor(f) for f in self.presence)
        if len(values) == 1 and not tests:
            (get,) = values

            def one(event: EventLike) -> Any:
                value = get(event)
                return (value.__class__, value)

            return one
        if len(tests) == 1 and not values:
            (test,) = tests
            return lambda event: test(event) is not MISSING
        return lambda event: (
            tuple([(v.__class__, v) for v in [get(event) for get in values]]),
            tuple([test(event) is not MISSING for test in tests]),
        )

    def matches(self, event: EventLike) -> bool:
        if event is self._last_event:  # playbooks sharing this condition ask about the same event in a row
            return self._last_result
        if self._native is not None:
            outcome = self._native(event)
            if outcome is True or outcome is False or outcome is native.ERROR:
                if outcome is native.ERROR:
                    self.errors += 1
                self._last_event, self._last_result = event, outcome is True
                return outcome is True
        if self._key is None:
            result = self.evaluate(event)
        else:
            try:
                key = self._key(event)
                cached = self._cache.get(key)
            except TypeError:  # an unhashable value (a list or map property): no caching for this one
                key, cached = None, self.evaluate(event)
            if cached is None:
                cached = self.evaluate(event)
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = cached
            result = cached
        self._last_event, self._last_result = event, result
        return result


__all__ = ["MISSING", "ExpressionError", "Where", "activation"]
