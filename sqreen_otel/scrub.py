"""PII scrubbing: the Scrubber, which composes the rules into one verdict per key and one pass per text.

The rules live in their own modules: key names (``scrub_keys``), key/value pairs inside text
(``scrub_pairs``), token formats (``secret_patterns``) and card numbers (``cards``). Walking nested
values is ``values.clean``'s job, which asks the scrubber about each key and each string. A match
masks the value (or the matching part of a text), never the whole event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from . import cards
from .scrub_benign import benign
from .scrub_keys import KeyRule, describes, identifier, lower_words, normalize_key
from .scrub_pairs import pair_spans
from .secret_patterns import secret_spans
from .settings import Settings

__all__ = ["DEFAULT_MASK", "DESCRIBING", "GUARDED", "KEY_OF_SECRETS", "Scrubber", "mask_spans", "normalize_key"]

DEFAULT_MASK = "[REDACTED]"
_CACHE_LIMIT = 8192  # entries in each verdict cache; cleared whole when full
_CACHED_TEXT = 256  # longer strings are rarely repeated: not cached
_SHORTEST_TOKEN = 8  # no token rule matches fewer characters
_NAME_KEYS = ("name", "key", "field", "param", "parameter", "header")
KEY_OF_SECRETS, DESCRIBING, GUARDED = range(3)  # verdicts of Scrubber.nested_key
# A key that names a field: short, no 16-character run mixing letters and digits (a token).
_FIELD_NAME = re.compile(r"(?![\s\S]*(?=[A-Za-z_-]*\d)(?=[0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16})[\w.\- \[\]:$@]{1,64}")
_ENCODED = re.compile(r"%(?:3[dDaA]|22|27)")  # an encoded "=", ":", '"' or "'"


def mask_spans(text: str, spans: Iterable[tuple[int, int]], mask: str) -> str:
    """``text`` with each span replaced by ``mask``; overlapping or touching spans become one mask."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return text
    parts, position = [], 0
    for start, end in merged:
        parts += [text[position:start], mask]
        position = end
    parts.append(text[position:])
    return "".join(parts)


class Scrubber:
    """Decides what is sensitive. Cheap to ask: verdicts are cached, and each value rule sits behind
    a substring gate, so that most values are scanned by no regular expression at all."""

    def __init__(
        self,
        *,
        keys: Iterable[str] = (),
        replace_keys: Iterable[str] | None = None,
        value_patterns: Iterable[str] = (),
        allow_keys: Iterable[str] = (),
        mask: str = DEFAULT_MASK,
        enabled: bool = True,
        pseudonymize_key: bytes | None = None,
    ) -> None:
        # Extra keys (and replacement keys) are fragments: sensitive wherever they appear in a key.
        fragments = [*keys] if replace_keys is None else [*replace_keys, *keys]
        self._keys = KeyRule(defaults=replace_keys is None, fragments=fragments, allow=allow_keys)
        patterns = [f"(?:{p})" for p in value_patterns]
        self._custom = re.compile("|".join(patterns)) if patterns else None  # always scanned: no gate
        self.mask = mask
        self.enabled = enabled
        self._pseudonymize_key = pseudonymize_key
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}
        self._nested_cache: dict[str, int] = {}
        self._benign_cache: dict[str, bool] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        return cls(
            keys=settings.scrub_keys,
            replace_keys=settings.scrub_replace_keys,
            value_patterns=settings.scrub_value_patterns,
            allow_keys=settings.scrub_allow_keys,
            mask=settings.scrub_mask,
            enabled=settings.scrub,
            pseudonymize_key=settings.pseudonymize_key,
        )

    def sensitive_key(self, key: str) -> bool:
        verdict = self._key_cache.get(key)
        if verdict is None:
            verdict = self.enabled and self._keys.sensitive(key[:256])
            if len(self._key_cache) >= _CACHE_LIMIT:
                self._key_cache.clear()
            self._key_cache[key] = verdict
        return verdict

    def nested_key(self, parent: str, key: str) -> int:
        """How to treat ``key`` inside a value under the sensitive key ``parent`` (one cached verdict):
        ``KEY_OF_SECRETS`` when the key is no field name (``{"api_keys": {"sk_live_...": ...}}``: mask
        the whole value), ``DESCRIBING`` when it names a description (``expires_in``, ``status``; not
        ``id`` under ``session``, read as ``session.id``) or is allowlisted, else ``GUARDED``: its
        value is judged as under a sensitive key."""
        joined = f"{parent}.{key}"
        verdict = self._nested_cache.get(joined)
        if verdict is None:
            if _FIELD_NAME.fullmatch(key) is None or self.redact(key) != key:
                verdict = KEY_OF_SECRETS
            elif self._keys.allowed(key) or (describes(key) and not self.sensitive_key(lower_words(joined))):
                verdict = DESCRIBING
            else:
                verdict = GUARDED
            if len(self._nested_cache) >= _CACHE_LIMIT:
                self._nested_cache.clear()
            self._nested_cache[joined] = verdict
        return verdict

    def identifier_key(self, key: str) -> bool:
        """Whether ``key`` names an id (``order_id``): its value of 12-19 digits is kept, though one in
        ten such ids with a card's prefix also passes the Luhn check."""
        return self.enabled and identifier(key[:256])

    def benign_secret_value(self, value: str | bool | None) -> bool:
        """Whether ``value``, under a sensitive key, cannot hold a secret: a boolean, None, a string
        of a shape no secret has (``scrub_benign``: empty, ``****``, ``${DB_PASSWORD}`` included), or
        one already masked."""
        if value is None or isinstance(value, bool):
            return True
        if len(value) > _CACHED_TEXT:
            return benign(value)
        verdict = self._benign_cache.get(value)
        if verdict is None:
            verdict = benign(value) or value.startswith(self.mask)
            if len(self._benign_cache) >= _CACHE_LIMIT:
                self._benign_cache.clear()
            self._benign_cache[value] = verdict
        return verdict

    def named_value_key(self, mapping: Mapping[Any, Any]) -> str | None:
        """``"value"`` when ``mapping`` names a sensitive field in a sibling (``{"name": "password",
        "value": ...}``, as HAR files, form builders and key/value settings lists write them)."""
        if "value" not in mapping or len(mapping) > 8:
            return None
        for name_key in _NAME_KEYS:
            name = mapping.get(name_key)
            if isinstance(name, str) and self.sensitive_key(name):
                return "value"
        return None

    def redact(self, text: str) -> str:
        """Mask each secret-looking part of ``text`` (tokens, cards, values of sensitive keys in
        ``key=value`` text); the rest stays readable. Masking twice changes nothing more.

        Event values repeat a lot (plans, countries, paths), so short ones are cached.
        """
        cached = self._text_cache.get(text)
        if cached is not None:
            return cached
        result = text
        if self.enabled:
            length = len(text)
            spans = secret_spans(text) if length >= _SHORTEST_TOKEN else []
            if length >= cards.MIN_DIGITS:
                spans += cards.card_spans(text)
            if self._custom is not None:
                spans += [m.span() for m in self._custom.finditer(text)]
            if (
                "=" in text
                or ":" in text
                or " is " in text
                or "</" in text
                or " set " in text
                or "ENV " in text
                or " '" in text
                or ' "' in text
            ):
                spans += pair_spans(text, self.sensitive_key, self.mask)
            if spans:
                result = mask_spans(text, spans, self.mask)
            elif "%" in text and _ENCODED.search(text) is not None:
                # Percent-encoded text ("?data=%7B%22password%22%3A...", "password%3D..."): judged decoded,
                # and returned decoded only when that finds something to mask.
                decoded = urllib.parse.unquote(text)
                masked = self.redact(decoded) if decoded != text else decoded
                if masked != decoded:
                    result = masked
        if len(text) <= _CACHED_TEXT:
            if len(self._text_cache) >= _CACHE_LIMIT:
                self._text_cache.clear()
            self._text_cache[text] = result
        return result

    def redact_pairs(self, text: str) -> str:
        """Mask only the values of sensitive keys in ``key=value``, ``"key": value``... text.

        For bodies kept as text (cut at the size cap, or invalid JSON); a nested JSON value under a
        sensitive key whose end was cut off is masked to the end of the text.
        """
        if not self.enabled:
            return text
        return mask_spans(text, pair_spans(text, self.sensitive_key, self.mask), self.mask)

    def pseudonymize(self, value: str | int) -> str | int:
        """Keyed hash of a user identifier, stable across processes that share the key."""
        if self._pseudonymize_key is None:
            return value
        return hmac.new(self._pseudonymize_key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
