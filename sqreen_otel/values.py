"""Turn arbitrary Python values into OTel attribute values, scrubbed, in one walk.

Conversion rules (the README documents them):

* ``str``, ``bool``, ``float`` (NaN and infinities included), ``None``: kept.
* ``int``: kept inside the signed 64-bit range OTLP carries, else its decimal text.
* ``bytes``/``bytearray``/``memoryview``: kept as bytes on the log record; a value with a secret in it
  is masked. On span events, which cannot hold bytes, they become UTF-8 text (``backslashreplace``).
* mappings: a map (keys turned to text). On span events, JSON text.
* lists, tuples, sets: a list. On span events a homogeneous list of str/bool/int/float stays a list,
  anything else becomes JSON text.
* ``datetime``/``date``/``time``: ISO 8601 text; ``Enum``: its value; anything else: ``str(value)``.
* Limits: strings are cut at ``max_value_length`` characters (bytes at as many bytes) with
  ``TRUNCATED`` appended; containers keep their first ``MAX_ITEMS`` items; nesting deeper than
  ``MAX_DEPTH`` and reference cycles become the markers below.

Scrubbing happens before truncation, so that a cut can never expose half a secret that no
longer matches its pattern.
"""

from __future__ import annotations

import datetime as _dt
import enum
import itertools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .scrub import DESCRIBING, KEY_OF_SECRETS, Scrubber

MAX_DEPTH = 8
MAX_ITEMS = 128
TRUNCATED = "...[truncated]"
CYCLE = "[cycle]"
TOO_DEEP = "[max depth]"
# Characters scanned past the cut, so that a secret straddling it is still recognised whole.
_SCAN_MARGIN = 1024
_MAX_WORD = 65536  # longest run of non-space characters scanned past the cut
_WORD = re.compile(r"\S+")
_INT64 = (-(2**63), 2**63 - 1)
_SPAN_SCALARS = (str, bool, int, float)


class UnconvertibleValue(ValueError):
    """A value whose ``str()`` itself failed; the caller drops that one property."""


def clean(value: Any, scrubber: Scrubber, max_len: int, _depth: int = 0, _path: frozenset[int] = frozenset()) -> Any:
    """Return ``value`` converted to an OTel AnyValue, with sensitive keys and values masked."""
    kind = type(value)
    if kind is str:
        return _clean_text(value, scrubber, max_len)
    if kind is bool or kind is float or value is None:
        return value
    if kind is int:
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, (str, bool, int, float)):  # subclasses: plain copies
        return clean(_base(value), scrubber, max_len, _depth, _path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value[: max_len + _SCAN_MARGIN])
        if scrubber.redact(data.decode("latin-1")) != data.decode("latin-1"):
            return scrubber.mask
        return data if len(value) <= max_len else data[:max_len] + TRUNCATED.encode()
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if id(value) in _path:
            return CYCLE
        if _depth >= MAX_DEPTH:
            return TOO_DEEP
        path = _path | {id(value)}
        if isinstance(value, Mapping):
            result = {}
            named = scrubber.named_value_key(value)  # {"name": "password", "value": ...} (HAR, forms)
            for key, item in itertools.islice(value.items(), MAX_ITEMS):
                text = key if isinstance(key, str) else _to_text(key)
                if text == named:
                    result[text] = _clean_sensitive(text, item, scrubber, max_len, _depth + 1, path)
                else:
                    result[text] = clean_entry(text, item, scrubber, max_len, _depth + 1, path)
            return result
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [clean(item, scrubber, max_len, _depth + 1, path) for item in itertools.islice(items, MAX_ITEMS)]
    if isinstance(value, enum.Enum):
        return clean(value.value, scrubber, max_len, _depth, _path)
    return _clean_text(_to_text(value), scrubber, max_len)


def clean_entry(
    key: str, value: Any, scrubber: Scrubber, max_len: int, _depth: int = 0, _path: frozenset[int] = frozenset()
) -> Any:
    """One ``key: value`` item, judged by its key: the rule for a mapping's items and for an event's
    properties and traits alike, so a value is treated the same at the top and at any depth."""
    if scrubber.sensitive_key(key):
        return _clean_sensitive(key, value, scrubber, max_len, _depth, _path)
    if type(value) is str and 12 <= len(value) <= 19 and value.isdigit() and scrubber.identifier_key(key):
        return value  # {"order_id": "4111111111111111"}: an id, whatever its checksum
    return clean(value, scrubber, max_len, _depth, _path)


def _clean_sensitive(
    parent: str, value: Any, scrubber: Scrubber, max_len: int, depth: int, path: frozenset[int]
) -> Any:
    """A value under a sensitive key: masked, except what cannot hold a secret. Booleans and None are
    kept; a string with a benign shape (a state, a version, a sentence, a public key, a plain URL) is
    cleaned as usual; a mapping keeps the items whose key describes (``status``, ``expires_in``) and
    judges every other item the same way, whatever its key (``{"auth": {"value": ...}}`` is masked).
    A key is read together with its parent's: ``{"session": {"id": ...}}`` is a session id."""
    if isinstance(value, (str, bool)) or value is None:
        return clean(value, scrubber, max_len, depth, path) if scrubber.benign_secret_value(value) else scrubber.mask
    if not isinstance(value, (Mapping, list, tuple)) or id(value) in path or depth >= MAX_DEPTH:
        return scrubber.mask
    path = path | {id(value)}
    if isinstance(value, Mapping):
        result = {}
        for key, item in itertools.islice(value.items(), MAX_ITEMS):
            text = key if isinstance(key, str) else _to_text(key)
            verdict = scrubber.nested_key(parent, text)
            if verdict == KEY_OF_SECRETS:
                return scrubber.mask
            if verdict == DESCRIBING:
                result[text] = clean(item, scrubber, max_len, depth + 1, path)
            else:
                result[text] = _clean_sensitive(f"{parent}.{text}", item, scrubber, max_len, depth + 1, path)
        return result
    return [
        _clean_sensitive(parent, item, scrubber, max_len, depth + 1, path)
        for item in itertools.islice(value, MAX_ITEMS)
    ]


def _clean_text(text: str, scrubber: Scrubber, max_len: int) -> str:
    if not text.isascii():
        text = _encodable(text)
    if len(text) <= max_len:
        return scrubber.redact(text)
    # Scan past the cut to the end of the word there, so that a token cut in two is seen whole.
    end = max_len + _SCAN_MARGIN
    word = _WORD.match(text, end, end + _MAX_WORD)
    window = text[: word.end() if word else end]
    redacted = scrubber.redact(window)
    if redacted != window and len(window) < len(text):
        # Masks shortened the text, so text from past the window (where a secret may have been cut)
        # could move into the kept part: scan a window wide enough for any shrinkage of the kept part.
        redacted = scrubber.redact(text[: 4 * max_len + _SCAN_MARGIN])
    return redacted[:max_len] + TRUNCATED


def _encodable(text: str) -> str:
    """Lone surrogates (from ``surrogateescape`` decoding) become U+FFFD: OTLP's encoder would drop the value."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)
    return text


def _base(value: Any) -> Any:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def _to_text(value: Any) -> str:
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    try:
        return str(value)
    except Exception as exc:  # an object whose __str__ raises must not crash track()
        raise UnconvertibleValue(f"str() of {type(value).__name__} failed: {exc!r}") from exc


def for_span(value: Any) -> Any:
    """Adapt a cleaned log value to what a span attribute can hold (no maps, no mixed lists)."""
    if isinstance(value, dict):
        return _json(value)
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and kinds.pop() in _SPAN_SCALARS:
            return tuple(value)
        return _json(value) if value else ()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if value is None:
        return ""
    return value


def _json(value: Any) -> str:
    return json.dumps(_json_safe(value), ensure_ascii=False, separators=(",", ":"))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
