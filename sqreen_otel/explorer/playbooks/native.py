"""A subset of CEL run as plain Python closures, so that common ``where`` conditions skip cel-python.

cel-python walks its parse tree in Python, about 100 µs an evaluation: fine for a cache miss, too slow
when a condition reads a value that rarely repeats (``user.email.endsWith("@example.com")``), where a
hostile client choosing fresh values could make every event a miss. The same parse tree is compiled
here when it only uses: literals (decimal int, float, plain strings, bool, null), fields of one level
(``properties.x``, ``user.email``, ``client.address``...), ``== != < <= > >=``, ``in [literals]``,
``&& || !``, parentheses, ``has()`` and the string methods ``startsWith``, ``endsWith`` and ``contains``.

Semantics are CEL's: ``&&`` and ``||`` absorb errors (``false && error`` is false), a missing field is
an error, and wherever this code cannot be sure to agree with cel-python (values of different types
compared, a list or map value, an int beyond 64 bits) it answers ``DEFER`` and cel-python decides.
A differential test checks both agree on generated events.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lark import Token, Tree

from .fields import MISSING, EventLike, accessor, check_field


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ERROR: Any = _Sentinel("ERROR")  # CEL would report an error (taken as no match)
DEFER: Any = _Sentinel("DEFER")  # ask cel-python
Fn = Callable[[EventLike], Any]
_INT64 = (-(2**63), 2**63 - 1)
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_ONE_LEVEL = ("properties", "user", "params", "resource", "attributes")
_FIXED = {("client", "address"), ("user_agent", "original"), ("url", "path"), ("http", "request", "method")}


class Unsupported(Exception):
    """The expression uses more of CEL than this module runs."""


def _kind(value: Any) -> str | None:
    """The CEL type family of a plain value, or None when this module does not compare it."""
    if value is None:
        return "null"
    cls = value.__class__
    if cls is bool:
        return "bool"
    if cls is str:
        return "string"
    if cls is int:
        return "int" if _INT64[0] <= value <= _INT64[1] else None
    if cls is float:
        return "double"
    return None


def _single(tree: Tree) -> Any:
    """Skip the grammar's pass-through levels (a rule with one child)."""
    while isinstance(tree, Tree) and len(tree.children) == 1 and tree.data in (
        "expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member",
    ):  # fmt: skip
        tree = tree.children[0]
    return tree


def _literal(token: Token) -> Any:
    text = str(token)
    if token.type == "BOOL_LIT":
        return text == "true"
    if token.type == "NULL_LIT":
        return None
    if token.type == "INT_LIT" and _INT.fullmatch(text):
        value = int(text)
        if _INT64[0] <= value <= _INT64[1]:
            return value
    if token.type == "FLOAT_LIT" and _FLOAT.fullmatch(text):
        return float(text)
    if token.type == "STRING_LIT" and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        body = text[1:-1]
        if "\\" not in body and text[0] not in body:
            return body
    raise Unsupported(f"literal {text}")


def _chain(tree: Tree) -> list[str] | None:
    if tree.data == "primary" and isinstance(tree.children[0], Tree) and tree.children[0].data == "ident":
        return [str(tree.children[0].children[0])]
    if tree.data == "member_dot":
        inner = _single(tree.children[0])
        head = _chain(inner) if isinstance(inner, Tree) else None
        return None if head is None else [*head, str(tree.children[1])]
    return None


def _field(chain: list[str]) -> Fn:
    """A field read as CEL sees it: the value, or ERROR when the event lacks it."""
    if chain == ["name"]:
        return lambda e: e.name or ""
    if (len(chain) == 2 and chain[0] in _ONE_LEVEL) or tuple(chain) in _FIXED:
        get = accessor(check_field(".".join(chain)))

        def read(event: EventLike) -> Any:
            value = get(event)
            return ERROR if value is MISSING else value

        return read
    raise Unsupported(f"field {'.'.join(chain)}")


def _presence(tree: Tree) -> Fn:
    chain = _chain(_single(tree))
    if chain is None or len(chain) < 2:
        raise Unsupported("has() of something other than a field")
    read = _field(chain)
    return lambda e: read(e) is not ERROR


def _compare(op: str, left: Fn, right: Fn) -> Fn:
    ordered = op in ("<", "<=", ">", ">=")

    def run(event: EventLike) -> Any:
        a, b = left(event), right(event)
        if a is ERROR or b is ERROR:
            return ERROR
        if a is DEFER or b is DEFER:
            return DEFER
        kind = _kind(a)
        if kind is None or kind != _kind(b) or (ordered and kind == "null"):
            return DEFER
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        return a >= b

    return run


def _member_of(item: Fn, elements: list[Any]) -> Fn:
    kinds = {_kind(v) for v in elements}
    values = frozenset(elements) if len(kinds) == 1 and None not in kinds else None

    def run(event: EventLike) -> Any:
        value = item(event)
        if value is ERROR or value is DEFER:
            return value
        if values is None or _kind(value) not in kinds:
            return DEFER
        return value in values

    return run


def _and(left: Fn, right: Fn) -> Fn:
    def run(event: EventLike) -> Any:
        a = left(event)
        if a is False:
            return False
        b = right(event)
        if b is False:
            return False
        if a is True and b is True:
            return True
        if (a is ERROR and (b is True or b is ERROR)) or (b is ERROR and a is True):
            return ERROR
        return DEFER

    return run


def _or(left: Fn, right: Fn) -> Fn:
    def run(event: EventLike) -> Any:
        a = left(event)
        if a is True:
            return True
        b = right(event)
        if b is True:
            return True
        if a is False and b is False:
            return False
        if (a is ERROR and (b is False or b is ERROR)) or (b is ERROR and a is False):
            return ERROR
        return DEFER

    return run


def _not(inner: Fn) -> Fn:
    def run(event: EventLike) -> Any:
        value = inner(event)
        if value is True or value is False:
            return not value
        return ERROR if value is ERROR else DEFER

    return run


def _method(name: str, receiver: Fn, argument: str) -> Fn:
    def run(event: EventLike) -> Any:
        value = receiver(event)
        if value is ERROR or value is DEFER:
            return value
        if value.__class__ is not str:
            return DEFER
        if name == "startsWith":
            return value.startswith(argument)
        if name == "endsWith":
            return value.endswith(argument)
        return argument in value

    return run


_RELATIONS = {"relation_eq": "==", "relation_ne": "!=", "relation_lt": "<", "relation_le": "<=",
              "relation_gt": ">", "relation_ge": ">="}  # fmt: skip


def _arguments(tree: Any) -> list[Any]:
    if not isinstance(tree, Tree) or tree.data != "exprlist":
        raise Unsupported("arguments")
    return list(tree.children)


def compile_tree(tree: Tree) -> Fn:
    """Closures for a CEL parse tree; ``Unsupported`` when it uses more than this module runs."""
    node = _single(tree)
    if isinstance(node, Token):
        raise Unsupported(str(node))
    data, children = node.data, node.children
    if data == "conditionalor" and len(children) == 2:
        return _or(compile_tree(children[0]), compile_tree(children[1]))
    if data == "conditionaland" and len(children) == 2:
        return _and(compile_tree(children[0]), compile_tree(children[1]))
    if data == "relation" and len(children) == 2 and isinstance(children[0], Tree):
        # relation(relation_OP(left), right)
        op, (left,) = children[0].data, children[0].children
        if op in _RELATIONS:
            return _compare(_RELATIONS[op], compile_tree(left), compile_tree(children[1]))  # type: ignore[arg-type]
        if op != "relation_in":
            raise Unsupported(op)
        right = _single(children[1])
        if not (isinstance(right, Tree) and right.data == "primary" and isinstance(right.children[0], Tree)
                and right.children[0].data == "list_lit"):  # fmt: skip
            raise Unsupported("in of something other than a list literal")
        items = right.children[0].children
        elements = [compile_literal(e) for e in (_arguments(items[0]) if items else [])]
        return _member_of(compile_tree(left), elements)  # type: ignore[arg-type]
    if data == "unary" and len(children) == 2 and isinstance(children[0], Tree):
        if children[0].data == "unary_not":
            return _not(compile_tree(children[1]))
        if children[0].data == "unary_neg":
            negated = -compile_literal(children[1])
            if _kind(negated) in ("int", "double"):
                return lambda e: negated
        raise Unsupported(children[0].data)
    if data == "primary":
        child = children[0]
        if isinstance(child, Tree) and child.data == "literal":
            value = _literal(child.children[0])  # type: ignore[arg-type]
            return lambda e: value
        if isinstance(child, Tree) and child.data == "paren_expr":
            return compile_tree(child.children[0])  # type: ignore[arg-type]
        if isinstance(child, Tree) and child.data == "ident_arg" and str(child.children[0]) == "has":
            (argument,) = _arguments(child.children[1])
            return _presence(argument)
        chain = _chain(node)
        if chain is not None:
            return _field(chain)
        raise Unsupported("primary")
    if data == "member_dot":
        chain = _chain(node)
        if chain is not None:
            return _field(chain)
    if data == "member_dot_arg" and len(children) == 3:
        receiver, method, arguments = children
        if str(method) in ("startsWith", "endsWith", "contains"):
            (argument,) = _arguments(arguments)
            text = compile_literal(argument)
            if text.__class__ is str:
                return _method(str(method), compile_tree(receiver), text)  # type: ignore[arg-type]
        raise Unsupported(f"method {method}")
    raise Unsupported(data)


def compile_literal(tree: Any) -> Any:
    """The value of a literal sub-tree; ``Unsupported`` for anything else."""
    node = _single(tree)
    if isinstance(node, Tree) and node.data == "primary" and isinstance(node.children[0], Tree):
        literal = node.children[0]
        if literal.data == "literal":
            return _literal(literal.children[0])  # type: ignore[arg-type]
    if isinstance(node, Tree) and node.data == "unary" and len(node.children) == 2:
        first = node.children[0]
        if isinstance(first, Tree) and first.data == "unary_neg":
            value = compile_literal(node.children[1])
            if _kind(value) in ("int", "double"):
                return -value
    raise Unsupported("not a literal")
