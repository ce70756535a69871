"""Values that hold no secret even under a sensitive key: states, versions, sentences, public ids.

A value under a sensitive key is masked whole, except when its shape says it cannot be a secret:
nothing (blank, ``****``, ``${DB_PASSWORD}``), a state word (``{"secret_scanning": "enabled"}``),
a version range (``{"passport": "^0.7.0"}`` in a
dependency map), a sentence (``{"forgot_password": "Forgot your password?"}`` in a translation
file), a key published by design (Stripe ``pk_live_``, Datadog ``pub...`` client tokens), or a URL
with nothing secret-shaped in it (a DSN without credentials, a Sentry DSN whose user is its public
key). Each shape is narrow: a real secret rarely is a dictionary word, a dotted version or a
punctuated sentence of lower-case words.
"""

from __future__ import annotations

import re

MAX_LENGTH = 512  # longer values are masked: nothing here is judged on a long text
STATES = frozenset(
    {
        "on", "off", "true", "false", "yes", "no", "none", "null", "nil", "enabled", "disabled", "active",
        "inactive", "required", "optional", "present", "absent", "missing", "set", "unset", "valid",
        "invalid", "expired", "revoked", "pending", "granted", "denied", "allowed", "blocked", "ok",
        "success", "failed", "error", "unknown", "default", "auto", "manual", "hidden", "visible",
        "strict", "lax", "always", "never", "weak", "medium", "strong",
    }
)  # fmt: skip
_VERSION = re.compile(r"(?:[\^~]|[<>]=?|==|!=)?v?\d+(?:\.\d+){1,3}(?:[-+][0-9A-Za-z.]{1,20})?")
_RANGE_VERSION = re.compile(r"(?:[\^~]|[<>]=?)v?\d+(?:\.(?:\d+|x|\*))?")
# Three or more plain words (a capital only first), ending like a sentence; ":name" placeholders count.
_SENTENCE = re.compile(r"[A-Z]?[a-z']+(?:,|\.)?(?: (?::?[A-Za-z]?[a-z']*|\d{1,3})[,;:.]?){2,60}[.?!…]")
# A sentence has grammar words; a passphrase of random words ("correct horse battery staple.") rarely does.
_FUNCTION_WORD = re.compile(
    r"(?i)\b(?:the|a|an|your|you|is|are|was|has|have|be|to|of|in|on|for|not|do|does|please|this|that|with|or|and|can|will|must)\b"
)
# Nothing in it: blank, a run of mask characters, a template variable ("${DB_PASSWORD}", "{{ token }}").
_EMPTY = re.compile(r"\s*|\*{3,}|•{3,}|\$\{[A-Za-z_][\w.:-]{0,80}\}|\{\{ ?[\w.]{1,80} ?\}\}")
# Keys their vendors publish in client-side code: Stripe publishable keys, Datadog client tokens.
_PUBLIC_KEY = re.compile(r"pk_(?:live|test)_[0-9A-Za-z]{10,120}|pub[0-9a-f]{32}")
_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]{1,20})://(?:(?P<user>[^\s/@:?#]*)(?P<pw>:[^\s/@?#]*)?@)?[^\s?#@]*"
    r"(?:\?[\w.-]{1,40}=(?:[A-Za-z_-]{1,40}|\d{1,5})(?:&[\w.-]{1,40}=(?:[A-Za-z_-]{1,40}|\d{1,5})){0,20})?"
)
_SENTRY_KEY = re.compile(r"[0-9a-f]{32}")
_TOKEN_SEGMENT = re.compile(r"[A-Za-z0-9_\-=+]{16,}")


def benign(value: str) -> bool:
    """Whether ``value`` under a sensitive key is one of the shapes above (the caller masks the rest)."""
    if len(value) > MAX_LENGTH:
        return False
    return (
        _EMPTY.fullmatch(value) is not None
        or value.lower() in STATES
        or _VERSION.fullmatch(value) is not None
        or _RANGE_VERSION.fullmatch(value) is not None
        or (" " in value and _SENTENCE.fullmatch(value) is not None and _FUNCTION_WORD.search(value) is not None)
        or _PUBLIC_KEY.fullmatch(value) is not None
        or _plain_url(value)
    )


def _plain_url(value: str) -> bool:
    """A URL with no password, no fragment, no token-like path segment and only words or short numbers
    as query values (``?sslmode=require``); its user, if any,
    is a Sentry public key (32 hex characters, the DSN form Sentry documents as safe to publish)."""
    if "://" not in value:
        return False
    match = _URL.fullmatch(value)
    if match is None or match.group("pw") is not None:
        return False
    user = match.group("user")
    if user is not None and _SENTRY_KEY.fullmatch(user) is None:
        return False
    path = value.partition("://")[2].partition("?")[0].partition("/")[2]
    return not any(_TOKEN_SEGMENT.fullmatch(s) and not s.isdigit() for s in path.split("/"))
