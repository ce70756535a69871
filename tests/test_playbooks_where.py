"""The native subset of CEL agrees with cel-python on every event (differential, generated events)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqreen_otel.explorer.playbooks.expr import Where
from sqreen_otel.explorer.playbooks.fields import make_event

EXPRESSIONS = [
    "properties.success == false",
    "properties.success != true",
    "properties.n > 2",
    "properties.n <= 2.5",
    "properties.n >= -3 && properties.n < 10",
    "properties.s == 'a' || properties.n == 1",
    "properties.zz == 1 && false",
    "false && properties.zz == 1",
    "properties.zz == 1 || true",
    "!(properties.success == true)",
    "!properties.success",
    "properties.success",
    "properties.success && properties.n > 0",
    "properties.success || properties.n > 0",
    "has(properties.n) && properties.n == 0",
    "has(properties.missing) || has(user.email)",
    "user.email.endsWith('@example.com')",
    "user.email.startsWith(\"a\") && user.email.contains('@')",
    "http.request.method in ['POST', 'PUT']",
    "properties.n in [1, 2, 3]",
    "properties.n in [1, 'a']",
    "properties.s in []",
    "client.address == '203.0.113.7'",
    "name == 'sq.sdk.users.login'",
    "url.path.startsWith('/admin') || user_agent.original.contains('curl')",
    "params.q == null",
    "properties.s < 'm'",
    "properties.n == 9223372036854775807",
]
VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "b", "m", "z", "", "@example.com", "a@example.com", "/admin/x", "curl/8"]),
    st.none(),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["k"]), st.integers(0, 2), max_size=1),
)
MAYBE = st.one_of(st.just(None), VALUES)


@st.composite
def events(draw: Any) -> Any:
    properties = {k: draw(VALUES) for k in ("success", "n", "s") if draw(st.booleans())}
    user = {"email": draw(st.sampled_from(["a@example.com", "bob@example.org", "x"]))} if draw(st.booleans()) else {}
    params = {"q": draw(VALUES)} if draw(st.booleans()) else {}
    texts = st.one_of(st.none(), st.sampled_from(["POST", "GET", "/admin/x", "/login", "curl/8", "203.0.113.7"]))
    return make_event(1, 0, draw(st.sampled_from(["sq.sdk.users.login", "x"])), properties=properties, user=user,
                      params=params, ip=draw(texts), method=draw(texts), path=draw(texts),
                      user_agent=draw(texts))  # fmt: skip


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_each_expression_runs_natively(text: str) -> None:
    assert Where(text).native, text


@settings(max_examples=60, deadline=None)
@given(events())
def test_native_agrees_with_cel_python(event: Any) -> None:
    for text in EXPRESSIONS:
        where = Where(text)
        assert where.matches(event) == where.evaluate(event), (text, event.attributes)
