"""PII scrubbing rules: which keys are sensitive, which values look like secrets, and the mask.

The rules are data (a ``Scrubber``); walking nested values is ``values.clean``'s job, which asks the
scrubber about each key and each string. A matching value is masked, never the whole event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable

from .settings import Settings

DEFAULT_MASK = "[REDACTED]"

# Keys are normalised (lower case, without "-", "_", "." and spaces) before matching.
# Short, ambiguous names must equal the key; distinctive fragments may appear anywhere in it
# ("user_password", "X-Auth-Token", "stripe_secret_key", "sessionid").
EXACT_KEYS = frozenset({"auth", "pass", "pwd", "pin", "cvv", "cvc", "otp", "sid", "ssn", "jwt", "secret"})
KEY_FRAGMENTS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "authorization",
    "bearer", "cookie", "session", "csrf", "xsrf", "privatekey", "credential", "creditcard",
    "cardnumber", "signature",
)  # fmt: skip

# Values that are secrets whatever their key. Each is scoped, so that they combine in one regex.
# Values that are secrets whatever their key. Each alternative starts with a literal or a small
# character class (no leading look-behind or \b), which keeps the combined regex fast to scan.
DEFAULT_VALUE_PATTERNS = (
    # Sqreen's card-number rule: 13 to 16 digits, optionally separated by spaces or dashes.
    # Not inside a longer run of digits, so that masking is stable when applied twice.
    # (The look-behind follows the first digit: a pattern that starts with it scans every position.)
    r"\d(?<!\d\d)(?:[ -]?\d){12,15}(?!\d)",
    # HTTP credentials: "Bearer abc...", "Basic dXNlcjpw..." (with the scheme word).
    r"[Bb][Ee][Aa][Rr][Ee][Rr]\s+[A-Za-z0-9\-._~+/]{8,}=*",
    # After "basic" or "token" the credential must hold a digit or a symbol ("basic information").
    r"(?:[Bb][Aa][Ss][Ii][Cc]|[Tt][Oo][Kk][Ee][Nn])\s+(?=[A-Za-z]*[0-9\-._~+/=])[A-Za-z0-9\-._~+/]{8,}=*",
    # JSON Web Tokens.
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    # Common API-key formats: AWS, GitHub, Stripe, Slack, Google, OpenAI-style "sk-".
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    r"gh[pousr]_[A-Za-z0-9]{30,}",
    r"github_pat_[A-Za-z0-9_]{22,}",
    r"[rsp]k_(?:live|test)_[0-9A-Za-z]{10,}",
    r"xox[abposr]-[0-9A-Za-z-]{10,}",
    r"AIza[0-9A-Za-z_-]{30,}",
    r"sk-[A-Za-z0-9_-]{20,}",
    # PEM private keys, to the end marker or the end of the text.
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    # user:password in URLs (the scheme separator and "@" are put back).
    r"://[^/\s:@]+:[^/\s]+@",
)

_JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*("(?:[^"\\]|\\.)*"?|[^\s,}\]\[{]*)')
_FORM_PAIR = re.compile(r"(?:^|(?<=&))([^&=]*)=([^&]*)")
_CACHE_LIMIT = 8192  # entries in each verdict cache; cleared whole when full
_CACHED_TEXT = 256  # longer strings are rarely repeated: not cached


def _may_hold_secret(text: str) -> bool:
    """False only when no default value pattern can match ``text``: plain substring tests, far cheaper
    than the regex, whose many alternatives are tried at every position of the text."""
    if (
        "eyJ" in text or "AKIA" in text or "ASIA" in text or "xox" in text or "AIza" in text or "sk-" in text
        or "k_live_" in text or "k_test_" in text or "github_pat_" in text or "-----BEGIN" in text
        or ("://" in text and "@" in text)
        or ("gh" in text and ("ghp_" in text or "gho_" in text or "ghu_" in text or "ghs_" in text or "ghr_" in text))
    ):  # fmt: skip
        return True
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered or "token" in lowered:
        return True
    # A card number has 13 to 16 digits.
    return len(text) >= 13 and sum(map(text.count, "0123456789")) >= 13


def normalize_key(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")


class Scrubber:
    """Decides what is sensitive. Cheap to ask: key verdicts are cached, values use one regex."""

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
        if replace_keys is None:
            self._exact = EXACT_KEYS
            fragments = [*KEY_FRAGMENTS, *keys]
        else:
            self._exact = frozenset()
            fragments = [*replace_keys, *keys]
        self._fragments = tuple(sorted({normalize_key(k) for k in fragments if normalize_key(k)}))
        self._allow = frozenset(normalize_key(k) for k in allow_keys)
        custom = [f"(?:{p})" for p in value_patterns]
        patterns = [*DEFAULT_VALUE_PATTERNS, *custom]
        self._values = re.compile("|".join(patterns))
        self._custom_patterns = bool(custom)  # their needs are unknown: always scanned
        self.mask = mask
        self.enabled = enabled
        self._pseudonymize_key = pseudonymize_key
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}

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
            norm = normalize_key(key)
            verdict = (
                self.enabled
                and norm not in self._allow
                and (norm in self._exact or any(f in norm for f in self._fragments))
            )
            if len(self._key_cache) >= _CACHE_LIMIT:
                self._key_cache.clear()
            self._key_cache[key] = verdict
        return verdict

    def redact(self, text: str) -> str:
        """Mask each secret-looking part of ``text``; the rest stays readable.

        Event values repeat a lot (plans, countries, paths), so short ones are cached.
        """
        cached = self._text_cache.get(text)
        if cached is not None:
            return cached
        result = text
        if self.enabled and (self._custom_patterns or _may_hold_secret(text)) and self._values.search(text):
            result = self._values.sub(self._mask_match, text)
        if len(text) <= _CACHED_TEXT:
            if len(self._text_cache) >= _CACHE_LIMIT:
                self._text_cache.clear()
            self._text_cache[text] = result
        return result

    def redact_pairs(self, text: str) -> str:
        """Mask the values of sensitive keys in unparsed JSON (``"key": value``) or form (``key=value``) text.

        For bodies kept as text (cut at the size cap, or invalid JSON); a nested JSON value under a
        sensitive key is masked to the end of the text, since its end cannot be found reliably.
        """
        is_json = text.lstrip()[:1] in ("{", "[")
        parts, position = [], 0
        for match in (_JSON_PAIR if is_json else _FORM_PAIR).finditer(text):
            key = match.group(1) if is_json else urllib.parse.unquote_plus(match.group(1))
            if match.start(2) < position or not self.sensitive_key(key):
                continue
            nested = is_json and text[match.start(2) : match.start(2) + 1] in ("{", "[")
            parts += [text[position : match.start(2)], self.mask]
            position = len(text) if nested else match.end(2)
        return "".join(parts) + text[position:]

    def _mask_match(self, match: re.Match[str]) -> str:
        found = match.group()
        if found.startswith("://") and found.endswith("@"):
            return "://" + self.mask + "@"
        return self.mask

    def pseudonymize(self, value: str | int) -> str | int:
        """Keyed hash of a user identifier, stable across processes that share the key."""
        if self._pseudonymize_key is None:
            return value
        return hmac.new(self._pseudonymize_key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
