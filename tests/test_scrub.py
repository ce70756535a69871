"""PII scrubbing: the Scrubber's rules, its settings, and (property-based) that no secret reaches the wire."""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sqreen_otel
from sqreen_otel import runtime
from sqreen_otel.cards import is_card, luhn_valid
from sqreen_otel.receiver import Receiver
from sqreen_otel.scrub import DEFAULT_MASK, Scrubber
from sqreen_otel.settings import Settings
from sqreen_otel.values import TRUNCATED, clean

M = DEFAULT_MASK
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
EXTRA_KEY = "zork"
EXTRA_PATTERN = r"ZK-[0-9a-f]{32}"
PSEUDONYM_KEY = "pepper"
# Span events carry the full attributes only when asked (where the setting exists): these tests check
# that no secret reaches either signal.
_SETTING_NAMES = {f.name for f in dataclasses.fields(Settings)}
FULL_SPAN_EVENTS: dict[str, Any] = (
    {"span_event_attributes": "full"} if "span_event_attributes" in _SETTING_NAMES else {}
)


# -- keys ------------------------------------------------------------------------------------------

SQREEN_DEFAULT_KEYS = ["password", "secret", "passwd", "authorization", "api_key", "apikey", "access_token", "token"]
NORMALISED_KEYS = [
    "Password",
    "PASSWORD",
    "API-KEY",
    "Api.Key",
    "x_auth_token",
    "X-Auth-Token",
    "sessionId",
    "SESSION_ID",
    "csrf_token",
    "X-CSRF-Token",
    "private_key",
    "privateKey",
    "credentials",
    "aws_credential",
    "auth",
    "Auth",
    "cookie",
    "Set-Cookie",
    "user_password",
    "stripe_secret_key",
    "client-secret",
    "refresh token",
    "pwd",
    "cvv",
    "ssn",
    "jwt",
]
NON_SENSITIVE_KEYS = ["author", "email", "plan", "country", "path", "user_id", "passenger", "pinned", "authority", "id"]


@pytest.mark.parametrize("key", SQREEN_DEFAULT_KEYS + NORMALISED_KEYS)
def test_sensitive_keys_masked(key: str) -> None:
    s = Scrubber()
    assert s.sensitive_key(key)
    assert clean({key: "hunter2", "plan": "pro"}, s, 100) == {key: M, "plan": "pro"}
    # The value of a sensitive key is masked whatever its type; a structure keeps its shape, each leaf
    # is masked unless it cannot hold a secret (True/None) or sits under a describing key ("status").
    assert clean({key: {"nested": [1, 2], "value": "a b", "on": True}}, s, 100) == {
        key: {"nested": [M, M], "value": M, "on": True}
    }
    assert clean({key: {"status": "x1", "expires_in": 60, "data": {"expires_in": 60}}}, s, 100) == {
        key: {"status": "x1", "expires_in": 60, "data": {"expires_in": 60}}
    }
    assert clean({key: 1234}, s, 100) == {key: M}
    assert clean({key: None}, s, 100) == {key: None}
    # Keyed by the secrets themselves: masked whole.
    assert clean({key: {"ab12cd34ef56gh78ij90": "bob"}}, s, 100) == {key: M}


@pytest.mark.parametrize("key", NON_SENSITIVE_KEYS)
def test_non_sensitive_keys_kept(key: str) -> None:
    s = Scrubber()
    assert not s.sensitive_key(key)
    assert clean({key: "value"}, s, 100) == {key: "value"}


# -- values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4222222222222",  # 13 digits
        "3782 822463 10005",  # Amex grouping, 15 digits
        "5500-0000 0000-0004",
    ],
)
def test_card_numbers_masked_inside_text(card: str) -> None:
    s = Scrubber()
    assert s.redact(f"my card is {card}, thanks") == f"my card is {M}, thanks"
    assert s.redact(card) == M


@pytest.mark.parametrize("text", ["order 123456789012", "call +1 555 0100", "year 2024", "ref 1234-5678-901"])
def test_short_digit_runs_kept(text: str) -> None:
    assert Scrubber().redact(text) == text


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("Bearer abcDEF123456789.xyz", M),
        ("bearer abcDEF123456789", M),
        ("Basic dXNlcjpwYXNzd29yZA==", M),
        ("Token 0123456789abcdef", M),
        (JWT, M),
        ("AKIAIOSFODNN7EXAMPLE", M),
        ("ASIAIOSFODNN7EXAMPLE", M),
        ("ghp_" + "a1B2c3D4e5" * 4, M),
        ("github_pat_" + "11ABCDEFG0" * 3, M),
        ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", M),
        ("rk_test_" + "4eC39HqLyjWDarjtT1zdp7dc", M),
        ("xoxb-1234567890-abcdefghij", M),
        ("AIza" + "SyA-1234567890abcdefghijklmnopqrs", M),
        ("sk-" + "proj1234567890abcdefghijkl", M),
        (PEM, M),
        ("https://user:pw@host.example/path", f"https://{M}@host.example/path"),
        ("postgres://admin:s3cr3t!@db:5432/app", f"postgres://{M}@db:5432/app"),
    ],
)
def test_secret_values_masked_rest_of_sentence_kept(secret: str, expected: str) -> None:
    s = Scrubber()
    assert s.redact(secret) == expected
    assert s.redact(f"before {secret} after") == f"before {expected} after"
    assert s.redact(f"line one\n{secret}\nline three") == f"line one\n{expected}\nline three"


def test_pem_without_end_marker_masked_to_the_end_of_the_text() -> None:
    text = "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nmore key material"
    assert Scrubber().redact(text) == f"key: {M}"


@pytest.mark.parametrize(
    "text",
    ["https://example.com/a:b", "mailto:alice@example.com", "ping 10.0.0.1:8080", "the token expired", "AKIA123"],
)
def test_harmless_values_kept(text: str) -> None:
    assert Scrubber().redact(text) == text


def test_several_secrets_in_one_text() -> None:
    text = f"card 4111 1111 1111 1111 jwt {JWT} url https://u:p@h ok"
    assert Scrubber().redact(text) == f"card {M} jwt {M} url https://{M}@h ok"


# -- configuration ---------------------------------------------------------------------------------


def test_extra_keys_add_to_defaults() -> None:
    s = Scrubber(keys=["zork", "Internal-Id"])
    assert s.sensitive_key("my_ZORK_field")
    assert s.sensitive_key("internal_id")
    assert s.sensitive_key("password")
    assert not s.sensitive_key("plan")


def test_replace_keys_drop_the_defaults() -> None:
    s = Scrubber(replace_keys=["zork"])
    assert s.sensitive_key("zork")
    assert s.sensitive_key("a-zork-b")
    for key in ("password", "token", "auth", "pwd", "cookie"):
        assert not s.sensitive_key(key), key
    assert clean({"password": "x", "zork": "y"}, s, 100) == {"password": "x", "zork": M}
    # Value patterns are not key rules: they still apply.
    assert s.redact("4111 1111 1111 1111") == M


def test_replace_keys_with_extra_keys() -> None:
    s = Scrubber(replace_keys=["zork"], keys=["blip"])
    assert s.sensitive_key("zork") and s.sensitive_key("blip")
    assert not s.sensitive_key("password")


def test_extra_value_patterns_add_to_defaults() -> None:
    s = Scrubber(value_patterns=[r"EMP-\d{6}", r"x+y"])
    assert s.redact("id EMP-123456 here") == f"id {M} here"
    assert s.redact("a xxxy b") == f"a {M} b"
    assert s.redact("card 4111111111111111") == f"card {M}"  # defaults still apply


def test_allow_keys_win_over_sensitive_fragments() -> None:
    s = Scrubber(allow_keys=["session_count", "tokens-used"])
    assert not s.sensitive_key("session_count")
    assert not s.sensitive_key("Session-Count")  # normalised like the rules
    assert not s.sensitive_key("TOKENS_USED")
    assert s.sensitive_key("session_id")
    assert clean({"session_count": 3, "session_id": "abc"}, s, 100) == {"session_count": 3, "session_id": M}


def test_allow_keys_do_not_unmask_secret_values() -> None:
    s = Scrubber(allow_keys=["note"])
    assert clean({"note": "card 4111111111111111"}, s, 100) == {"note": f"card {M}"}


def test_custom_mask() -> None:
    s = Scrubber(mask="***")
    assert clean({"password": "x", "n": "Bearer abcdefghijkl1"}, s, 100) == {"password": "***", "n": "***"}
    assert s.redact("https://u:p@h/x") == "https://***@h/x"


def test_disabled_scrubber_masks_nothing() -> None:
    s = Scrubber(enabled=False)
    value = {"password": "hunter2", "note": f"card 4111 1111 1111 1111 {JWT}"}
    assert clean(value, s, 1000) == value
    assert not s.sensitive_key("password")


def test_pseudonymize_is_hmac_sha256_hex() -> None:
    s = Scrubber(pseudonymize_key=b"k3y")
    assert s.pseudonymize("alice@example.com") == hmac.new(b"k3y", b"alice@example.com", hashlib.sha256).hexdigest()
    assert s.pseudonymize(42) == hmac.new(b"k3y", b"42", hashlib.sha256).hexdigest()
    assert s.pseudonymize("é") == hmac.new(b"k3y", "é".encode(), hashlib.sha256).hexdigest()
    assert Scrubber(pseudonymize_key=b"other").pseudonymize("alice@example.com") != s.pseudonymize("alice@example.com")
    assert Scrubber().pseudonymize("alice@example.com") == "alice@example.com"
    assert Scrubber().pseudonymize(42) == 42


def test_from_settings_wires_every_setting() -> None:
    s = Scrubber.from_settings(
        Settings.load(
            environ={},
            scrub_keys=["zork"],
            scrub_value_patterns=[r"EMP-\d+"],
            scrub_allow_keys=["session_count"],
            scrub_mask="<gone>",
            pseudonymize_key="k",
        )
    )
    assert clean({"zork": 1, "session_count": 2, "n": "EMP-42"}, s, 100) == {
        "zork": "<gone>",
        "session_count": 2,
        "n": "<gone>",
    }
    assert s.pseudonymize("a") == hmac.new(b"k", b"a", hashlib.sha256).hexdigest()
    replaced = Scrubber.from_settings(Settings.load(environ={}, scrub_replace_keys=["zork"]))
    assert not replaced.sensitive_key("password")
    off = Scrubber.from_settings(Settings.load(environ={}, scrub=False))
    assert off.redact("4111111111111111") == "4111111111111111"


# -- settings validation ---------------------------------------------------------------------------


def test_invalid_value_pattern_names_the_setting() -> None:
    with pytest.raises(ValueError, match="scrub_value_patterns") as err:
        Settings.load(environ={}, scrub_value_patterns=["("])
    assert "'('" in str(err.value)
    with pytest.raises(ValueError, match="SQREEN_OTEL_SCRUB_VALUE_PATTERNS"):
        Settings.load(environ={"SQREEN_OTEL_SCRUB_VALUE_PATTERNS": "ok,("})


def test_empty_mask_rejected() -> None:
    with pytest.raises(ValueError, match="scrub_mask"):
        Settings.load(environ={}, scrub_mask="")


def test_scrub_keys_must_be_strings() -> None:
    with pytest.raises(TypeError, match="scrub_keys"):
        Settings.load(environ={}, scrub_keys=[1, 2])


def test_env_vars_configure_the_scrubber(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQREEN_OTEL_SCRUB_KEYS", "foo, bar")
    monkeypatch.setenv("SQREEN_OTEL_SCRUB_ALLOW_KEYS", "token_count")
    monkeypatch.setenv("SQREEN_OTEL_SCRUB_MASK", "##")
    monkeypatch.setenv("SQREEN_OTEL_PSEUDONYMIZE_KEY", "envkey")
    loaded = Settings.load()
    assert loaded.scrub_keys == ("foo", "bar")
    assert loaded.scrub_allow_keys == ("token_count",)
    s = Scrubber.from_settings(loaded)
    assert clean({"foo": 1, "my-bar": 2, "token_count": 3, "password": 4, "plan": 5}, s, 100) == {
        "foo": "##",
        "my-bar": "##",
        "token_count": 3,
        "password": "##",
        "plan": 5,
    }
    assert s.pseudonymize("x") == hmac.new(b"envkey", b"x", hashlib.sha256).hexdigest()
    # A keyword argument wins over the environment.
    assert Settings.load(scrub_keys=["baz"]).scrub_keys == ("baz",)
    monkeypatch.setenv("SQREEN_OTEL_SCRUB", "false")
    assert Scrubber.from_settings(Settings.load()).sensitive_key("password") is False


# -- through track(), in process -------------------------------------------------------------------


@pytest.fixture
def memory_logs() -> Iterator[tuple[InMemoryLogRecordExporter, Scrubber]]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    scrubber = Scrubber(pseudonymize_key=PSEUDONYM_KEY.encode())
    previous = runtime.current
    runtime.install(
        runtime.Runtime(
            settings=Settings(pseudonymize_key=PSEUDONYM_KEY.encode(), **FULL_SPAN_EVENTS),
            scrubber=scrubber,
            logger=provider.get_logger(runtime.LOGGER_NAME),
            configured=True,
        )
    )
    try:
        yield exporter, scrubber
    finally:
        runtime.install(previous)
        provider.shutdown()


def _hash(value: str | int) -> str:
    return hmac.new(PSEUDONYM_KEY.encode(), str(value).encode(), hashlib.sha256).hexdigest()


def test_pseudonymized_identifiers_through_track(
    memory_logs: tuple[InMemoryLogRecordExporter, Scrubber], tracer: Any
) -> None:
    exporter, _ = memory_logs
    tr, spans = tracer

    def scenario() -> None:
        sqreen_otel.identify({"email": "alice@example.com", "id": 42}, traits={"password": "x", "plan": "pro"})
        with tr.start_as_current_span("request"):
            assert sqreen_otel.track("checkout")
        sqreen_otel.auth_track(False, email="mallory@example.com")

    contextvars.copy_context().run(scenario)
    checkout, login = (r.log_record for r in exporter.get_finished_logs())
    attrs = dict(checkout.attributes)
    assert attrs["sqreen.user.email"] == _hash("alice@example.com")
    assert attrs["sqreen.user.id"] == _hash(42)
    assert attrs["sqreen.user.traits.password"] == M
    assert attrs["sqreen.user.traits.plan"] == "pro"
    assert "alice@example.com" not in repr(attrs)
    assert dict(login.attributes)["sqreen.user.email"] == _hash("mallory@example.com")
    (span,) = spans.get_finished_spans()
    assert dict(span.events[0].attributes)["sqreen.user.email"] == _hash("alice@example.com")


# -- through the real pipeline, property-based ------------------------------------------------------


@pytest.fixture(scope="module")
def tracer() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test_scrub"), exporter
    provider.shutdown()


@pytest.fixture(scope="module")
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def wire(rx: Receiver) -> Iterator[Receiver]:
    """The real pipeline (configure -> processor -> exporter) delivering to the real receiver."""
    previous = runtime.current
    sqreen_otel.configure(
        endpoint=rx.endpoint,
        first_seen_delay=0,
        flush_interval=30,
        scrub_keys=[EXTRA_KEY],
        scrub_value_patterns=[EXTRA_PATTERN],
        pseudonymize_key=PSEUDONYM_KEY,
        **FULL_SPAN_EVENTS,
    )
    try:
        yield rx
    finally:
        sqreen_otel.shutdown()
        runtime.install(previous)


def _strings(obj: Any) -> Iterator[str]:
    """Every string, bytes (as text) and key anywhere in a decoded event or attribute value."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, (bytes, bytearray)):
        yield bytes(obj).decode("latin-1")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _strings(item)


def _send(
    rx: Receiver, tr: Any, spans: InMemorySpanExporter, properties: dict[str, Any]
) -> tuple[list[bytes], dict[str, Any], dict[str, Any]]:
    """track() inside a span, flush, and return (raw bodies, the decoded event's attributes, span event attrs)."""
    rx.clear()
    spans.clear()
    with tr.start_as_current_span("request"):
        assert sqreen_otel.track("scrub_property", {"properties": properties}) is True
    assert sqreen_otel.flush(5) is True
    (event,) = rx.wait_for(1, timeout=5)
    assert event["name"] == "scrub_property"
    (span,) = spans.get_finished_spans()
    (span_event,) = span.events
    return rx.bodies(), event["attributes"], dict(span_event.attributes)


def _assert_absent(
    secrets: set[str], bodies: list[bytes], attributes: dict[str, Any], span_attrs: dict[str, Any]
) -> None:
    assert bodies
    decoded = list(_strings(attributes))
    span_side = list(_strings(span_attrs))
    for secret in secrets:
        raw = secret.encode()
        for body in bodies:
            assert raw not in body, f"secret {secret!r} went over the wire"
        assert not any(secret in s for s in decoded), f"secret {secret!r} in the decoded event"
        assert not any(secret in s for s in span_side), f"secret {secret!r} in the span event"


# Random filler text: no upper-case letters, so it can never contain (or forge) a marker below, all of
# which carry upper-case letters; digits, spaces and URL punctuation stress the pattern boundaries.
FILLER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .,:;!?-_/@=", max_size=30)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
MARKERS = st.uuids().map(lambda u: f"S3CR3T-{u.hex}")


def _luhn_complete(partial: str) -> str:
    """``partial`` plus the check digit that makes it pass the Luhn check."""
    for check in "0123456789":
        if luhn_valid(partial + check):
            return partial + check
    raise AssertionError("unreachable")


def _grouped(digits: str) -> str:
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


# Issuer-valid, Luhn-valid 16-digit cards (Visa, Mastercard, Discover, JCB, UnionPay), grouped by four.
CARDS = st.sampled_from(["4", "51", "55", "2221", "6011", "3528", "62"]).flatmap(
    lambda prefix: st.text(alphabet="0123456789", min_size=15 - len(prefix), max_size=15 - len(prefix)).map(
        lambda body: _grouped(_luhn_complete(prefix + body))
    )
)
JWTS = st.builds(
    lambda a, b, c: f"eyJ{a}.{b}.{c}",
    st.text(alphabet=B64URL, min_size=4, max_size=30),
    st.text(alphabet=B64URL, min_size=4, max_size=60),
    st.text(alphabet=B64URL, min_size=8, max_size=43),
)
BEARERS = st.builds(
    lambda scheme, u, rest: f"{scheme} T{u.hex}{rest}",
    st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token"]),
    st.uuids(),
    st.text(alphabet=TOKEN_CHARS, max_size=20),
)
SECRET_SHAPED = st.one_of(CARDS, JWTS, BEARERS)
EXTRA_SECRETS = st.uuids().map(lambda u: f"ZK-{u.hex}")

FRAGMENT_NAMES = [
    "password", "passwd", "secret", "token", "api_key", "access_token", "authorization", "session_id",
    "csrf_token", "private_key", "credentials", "cookie", "x_auth_token", "client_secret", "refresh_token",
]  # fmt: skip
EXACT_NAMES = ["auth", "pwd", "pass", "pin", "cvv", "otp", "sid", "ssn", "jwt"]
PLAIN_KEYS = ["plan", "country", "path", "note", "items", "meta", "data", "order", "amount", "city", "user"]


@st.composite
def _variant(draw: st.DrawFn, names: list[str], affixes: bool) -> str:
    """A key name in random case, with random separators (and, for fragments, random prefix/suffix)."""
    base = draw(st.sampled_from(names))
    base = base.replace("_", draw(st.sampled_from(["_", "-", "", ".", " "])))
    flips = draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base)))
    key = "".join(ch.upper() if flip else ch for ch, flip in zip(base, flips, strict=True))
    if affixes:
        key = draw(st.sampled_from(["", "user_", "X-", "my."])) + key + draw(st.sampled_from(["", "_value", "-2"]))
    return key


SENSITIVE_KEYS = st.one_of(_variant(FRAGMENT_NAMES, affixes=True), _variant(EXACT_NAMES, affixes=False))
EXTRA_KEYS = _variant([EXTRA_KEY, f"{EXTRA_KEY}_id", f"internal_{EXTRA_KEY}"], affixes=True)


def _secret_holder(secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """What a sensitive key may hold: the secret itself, as bytes, or buried in a container."""
    return st.one_of(
        secret,
        secret.map(str.encode),
        secret.map(lambda s: [1, s]),
        secret.map(lambda s: {"inner": (s, 2.5)}),
    )


def _embedded(secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """A string leaf with a secret at a random position of random text (sometimes as bytes)."""
    text = st.builds(lambda a, s, b: f"{a} {s} {b}", FILLER, secret, FILLER)
    return st.one_of(text, text, text.map(str.encode))


def _tree(depth: int, leaf: st.SearchStrategy[Any], keys: st.SearchStrategy[str], held: st.SearchStrategy[Any]) -> Any:
    if depth == 0:
        return leaf
    child = _tree(depth - 1, leaf, keys, held)
    mapping = st.builds(
        lambda plain, sensitive: {**plain, **sensitive},
        st.dictionaries(st.sampled_from(PLAIN_KEYS), child, max_size=3),
        st.dictionaries(keys, held, max_size=2),
    )
    return st.one_of(leaf, st.lists(child, max_size=3), st.lists(child, max_size=3).map(tuple), mapping)


def _properties(keys: st.SearchStrategy[str], secret: st.SearchStrategy[str], shaped: st.SearchStrategy[str]) -> Any:
    held = _secret_holder(secret)
    leaf = st.one_of(
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        FILLER,
        _embedded(shaped),
    )
    return st.builds(
        lambda plain, sensitive: {**plain, **sensitive, "canary": "canary-value"},
        st.dictionaries(st.sampled_from(PLAIN_KEYS), _tree(4, leaf, keys, held), max_size=6),
        st.dictionaries(keys, held, max_size=3),
    )


_FOUND = re.compile(
    r"S3CR3T-[0-9a-f]{32}|ZK-[0-9a-f]{32}|(?<!\d)\d{4} \d{4} \d{4} \d{4}(?!\d)"
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|T[0-9a-f]{32}[A-Za-z0-9\-._~+/]*"
)


def _secrets_in(value: Any) -> set[str]:
    """Every marker and secret-shaped value the generated input holds (plus a JWT's header, so that no prefix
    of a JWT survives either)."""
    found: set[str] = set()
    for text in _strings(value):
        for secret in _FOUND.findall(text):
            if secret[:1].isdigit() and not is_card(secret.replace(" ", "")):
                continue  # digits from the filler that are no card (the scrubber keeps those on purpose)
            found.add(secret)
            if secret.startswith("eyJ"):
                found.add(secret.partition(".")[0])
    return found


def _top_level_sensitive(properties: dict[str, Any], scrubber: Scrubber) -> list[str]:
    return [k for k in properties if scrubber.sensitive_key(k)]


@settings(max_examples=50, deadline=None)
@given(_properties(SENSITIVE_KEYS, MARKERS, SECRET_SHAPED))
def test_no_secret_reaches_the_wire(wire: Receiver, tracer: Any, properties: dict[str, Any]) -> None:
    secrets = _secrets_in(properties)
    bodies, attributes, span_attrs = _send(wire, *tracer, properties)
    _assert_absent(secrets, bodies, attributes, span_attrs)
    # Not vacuous: the event and its harmless data did arrive, and sensitive keys were masked, not dropped.
    assert attributes["sqreen.properties.canary"] == "canary-value"
    assert span_attrs["sqreen.properties.canary"] == "canary-value"
    assert any(b"canary-value" in body for body in bodies)
    sent = {k for k in attributes if k.startswith("sqreen.properties.")}
    assert sent == {f"sqreen.properties.{k}" for k in properties}
    # A top-level sensitive value follows the same rule as one at any depth: every leaf masked (only
    # booleans and None, which hold no secret, are kept), containers keep their shape.
    for key in _top_level_sensitive(properties, runtime.current.scrubber):
        assert _leaves_masked(attributes[f"sqreen.properties.{key}"])
        assert _leaves_masked(span_attrs[f"sqreen.properties.{key}"])


def _leaves_masked(value: Any) -> bool:
    if isinstance(value, str) and value.startswith(("[", "{")) and value != M:  # span events carry JSON text
        value = json.loads(value)
    if isinstance(value, dict):
        return all(_leaves_masked(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_leaves_masked(item) for item in value)
    return value == M or value is None or isinstance(value, bool)


@settings(max_examples=50, deadline=None)
@given(_properties(EXTRA_KEYS, EXTRA_SECRETS, EXTRA_SECRETS))
def test_configured_extra_key_and_pattern_never_survive(
    wire: Receiver, tracer: Any, properties: dict[str, Any]
) -> None:
    secrets = _secrets_in(properties)
    bodies, attributes, span_attrs = _send(wire, *tracer, properties)
    _assert_absent(secrets, bodies, attributes, span_attrs)
    assert attributes["sqreen.properties.canary"] == "canary-value"
    for key in properties:
        if EXTRA_KEY in key.lower():
            assert _leaves_masked(attributes[f"sqreen.properties.{key}"])


def test_property_generators_do_produce_secrets() -> None:
    # Guard against a generator change that would make the properties above vacuous.
    quick = settings(max_examples=500, database=None, phases=[Phase.generate])  # first hit, no shrinking
    assert find(_properties(SENSITIVE_KEYS, MARKERS, SECRET_SHAPED), lambda p: len(_secrets_in(p)) >= 3, settings=quick)
    assert find(
        _properties(EXTRA_KEYS, EXTRA_SECRETS, EXTRA_SECRETS), lambda p: len(_secrets_in(p)) >= 3, settings=quick
    )
    assert find(SENSITIVE_KEYS, lambda k: "-" in k and any(c.isupper() for c in k), settings=quick)


def test_long_text_secrets_masked_and_text_truncated(wire: Receiver, tracer: Any) -> None:
    max_len = Settings().max_value_length
    card = _grouped(_luhn_complete("492912345678901"))
    bearer = "Bearer TOKENabcdef0123456789"
    head = f"start {card} then {JWT} " + f"{JWT} " * 40  # the masks shrink the head a lot
    straddle = "Bearer TOKENstraddle0123456789abcdef"
    filler = "x" * (max_len - len(head) - 10)
    text = head + filler + " " + straddle + " more " + bearer + " " + "tail " * 3000
    assert len(text) > 4 * max_len
    bodies, attributes, span_attrs = _send(wire, *tracer, {"log": text, "short": f"{bearer} ok"})
    _assert_absent({card, JWT, JWT.partition(".")[0], "TOKENabcdef", "TOKENstraddle"}, bodies, attributes, span_attrs)
    value = attributes["sqreen.properties.log"]
    assert value.startswith(f"start {M} then {M} {M} ")
    assert value.endswith(TRUNCATED)
    assert len(value) == max_len + len(TRUNCATED)
    assert attributes["sqreen.properties.short"] == f"{M} ok"


def test_pseudonymized_identifiers_on_the_wire(wire: Receiver) -> None:
    def scenario() -> None:
        sqreen_otel.identify({"email": "alice@example.com"}, traits={"session_token": "abc"})
        assert sqreen_otel.track("pseudo")

    wire.clear()
    contextvars.copy_context().run(scenario)
    assert sqreen_otel.flush(5)
    (event,) = wire.wait_for(1)
    assert event["attributes"]["sqreen.user.email"] == _hash("alice@example.com")
    assert event["attributes"]["sqreen.user.traits.session_token"] == M
    assert not any(b"alice@example.com" in body for body in wire.bodies())
