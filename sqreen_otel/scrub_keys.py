"""Which key names hold secrets: keys split into words, judged word by word.

A key is split on ``- _ . [ ] :``, spaces and camelCase (``X-Auth-Token`` -> x, auth, token;
``sessionId`` -> session, id; ``user[password]`` -> user, password). Then:

* short terms (``pass``, ``pwd``, ``pin``, ``otp``, ``sid``...) match only as whole words, anywhere;
* distinctive terms (``password``, ``secret``, ``token``, ``cookie``...) match as words or word
  prefixes (``passwords``, ``tokenId``), except English derivations (``tokenizer``, ``secretary``);
* two-word phrases (``api key``, ``session id``, ``card number``, ``recovery codes``...) and the
  joined spellings (``apikey``, ``sessionid``, ``PHPSESSID``) match anywhere;
* a key whose last word describes the value rather than holding it (``secret_length``,
  ``token_type``, ``session_timeout``, ``access_token_url``) is not sensitive, unless its last word
  is itself a credential word.

Pure functions over lower-case word tuples; the Scrubber caches the verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Whole words only: ambiguous as parts of longer words ("pinned", "compass", "signal").
SHORT_TERMS = frozenset(
    {
        "pass", "pwd", "pw", "passwd", "pin", "otp", "totp", "hotp", "mfa", "sid", "ssn", "cvv", "cvv2",
        "cvc", "cvc2", "cvn", "csc", "jwt", "sig", "salt", "dsn", "psk", "pat", "secretkey", "seckey", "passw",
        "pan", "2fa", "iban", "hmac",
    }
)  # fmt: skip
# Words that are credentials, also as the start of a longer word ("passwords", "tokenId", "cookies").
DISTINCTIVE_TERMS = (
    "password", "passwort", "passphrase", "passcode", "secret", "token", "credential", "cookie", "csrf",
    "xsrf", "apikey", "accesskey", "privatekey", "authorization", "bearer", "signature", "sessionid",
    "sessid", "sessionkey", "sessiontoken", "creditcard", "cardnumber", "ccnumber", "connectionstring",
    "authtoken", "authkey", "authcode", "refreshtoken", "passport", "motdepasse", "contrasena", "contraseña",
    "senha", "wachtwoord", "parola",
)  # fmt: skip
# Longer words that start with a distinctive term but are plain English or a count.
NOT_CREDENTIAL_WORDS = re.compile(
    r"tokeni[sz]|secretar|secreti|secretl|secrets?manager|cookiecutter|cookieless|passwordless|passports?(?:office|photo)|signatures?(?:version|method)"
)
# Joined lower-case names ending in a credential word ("stripetoken", "dbpassword", "clientsecret").
SUFFIX_TERMS = ("password", "passwd", "passphrase", "passcode", "secret", "token", "apikey", "accesskey", "credentials")
# "<service>_key" holds that service's secret key ("STRIPE_KEY", "MAILGUN_KEY", "OPENAI_KEY").
SERVICES = frozenset(
    {
        "stripe", "openai", "anthropic", "mailgun", "sendgrid", "twilio", "slack", "github", "gitlab", "aws",
        "gcp", "azure", "google", "datadog", "dd", "sentry", "newrelic", "pagerduty", "algolia", "firebase",
        "heroku", "shopify", "paypal", "braintree", "square", "plaid", "mapbox", "cloudflare", "digitalocean",
        "linear", "notion", "airtable", "hubspot", "salesforce", "zendesk", "intercom", "segment", "mixpanel",
        "amplitude", "auth0", "okta", "postmark", "mailchimp", "resend", "vercel", "netlify", "supabase",
        "pinecone", "cohere", "mistral", "groq", "replicate", "huggingface", "hf", "gemini", "deepseek",
    }
)  # fmt: skip
# Joined "<system>pass" names ("dbpass", "rootpw", "adminpwd"); a bare "pass" suffix is too common
# ("bypass", "compass").
_SYSTEM_PASS = re.compile(
    r"(?:db|user|root|admin|mysql|redis|ftp|smtp|mail|ldap|sql|pg|app|wifi|vnc|rdp)(?:pass|pwd|pw)"
)
# Joined spellings seen in the wild, matched inside a word ("phpsessid", "jsessionid", "laravelsession").
JOINED_TERMS = ("sessid", "sessionid", "apikey", "accesskey", "privatekey", "authtoken", "csrftoken", "xsrftoken")
# Two consecutive words that together name a credential.
PHRASES = frozenset(
    {
        ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("session", "id"),
        ("session", "key"), ("session", "token"), ("session", "cookie"), ("card", "number"), ("card", "num"),
        ("card", "no"), ("card", "code"), ("card", "cvv"), ("cc", "number"), ("cc", "num"), ("cc", "no"),
        ("security", "code"), ("security", "number"), ("verification", "code"), ("recovery", "code"),
        ("recovery", "codes"), ("backup", "code"), ("backup", "codes"), ("social", "security"),
        ("passport", "number"), ("passport", "no"), ("passport", "num"), ("passport", "id"),
        ("connection", "string"), ("auth", "code"), ("auth", "key"), ("master", "key"), ("account", "key"),
        ("subscription", "key"), ("encryption", "key"), ("signing", "key"), ("client", "key"),
        ("service", "key"), ("app", "key"), ("application", "key"), ("consumer", "key"), ("license", "key"),
        ("shared", "key"), ("storage", "key"), ("webhook", "key"), ("hmac", "key"), ("crypt", "key"),
        ("decryption", "key"), ("private", "keys"), ("api", "keys"), ("credit", "card"), ("code", "verifier"),
        ("oauth", "verifier"), ("bank", "account"), ("sms", "code"), ("access", "code"), ("reset", "code"),
        ("login", "code"), ("security", "answer"), ("mot", "de"), ("factor", "code"), ("card", "verification"),
        ("verification", "value"), ("functions", "key"), ("function", "key"), ("host", "key"), ("pin", "code"),
        ("pin", "number"),
    }
)  # fmt: skip
# Sensitive when the last word ("auth", "basic_auth", "user_session"; not "auth_provider", "session_count").
LAST_WORD_TERMS = frozenset({"auth", "session", "sessions"})
# Plurals that are counts unless a credential qualifier comes first ("max_tokens", "prompt_tokens").
_COUNT_PLURALS = frozenset({"tokens"})
# Tokens that are cursors, not credentials ("page_token", "nextPageToken", "sync_token").
_CURSOR_WORDS = frozenset({"page", "continuation", "sync", "cursor", "resume", "pagination"})
_CURSOR_JOINED = re.compile(r"(?:page|continuation|sync|cursor|resume|pagination)tokens?$")
_TOKEN_QUALIFIERS = frozenset(
    {"access", "refresh", "auth", "api", "id", "bearer", "session", "csrf", "oauth", "device", "personal", "user"}
)
# Last words that describe a value instead of holding it ("token_url" is described; "url_token" is
# not: a last word that is a credential word is never read as a descriptor).
DESCRIPTORS = frozenset(
    {
        "length", "len", "count", "counts", "size", "timeout", "ttl", "age", "url", "uri", "urls", "endpoint",
        "type", "types", "name", "names", "expires", "expiry", "expiration", "expired", "at", "in", "on",
        "duration", "lifetime", "enabled", "enable", "disabled", "required", "policy", "strength", "min",
        "max", "minimum", "maximum", "format", "field", "fields", "path", "file", "dir", "location",
        "version", "method", "algorithm", "alg", "scheme", "mode", "status", "state", "kind", "label",
        "domain", "secure", "samesite", "httponly", "consent", "banner", "prefix", "suffix", "header",
        "param", "parameter", "rotation", "rotated", "reset", "changed", "updated", "created", "used",
        "usage", "limit", "limits", "rate", "ratio", "attempts", "retries", "interval", "start",
        "started", "end", "ended", "store", "backend", "engine", "provider", "handler", "class", "manager",
        "service", "total", "valid", "invalid", "present", "exists", "set", "missing", "hint", "help",
        "placeholder", "pattern", "regex", "rules", "rule", "strategy", "source", "ids", "issuer",
        "audience", "scope", "scopes", "lang", "language", "locale", "error", "errors", "message", "msg",
        "reason", "description", "desc", "title", "visible", "shown", "sent", "received", "verified",
        "confirmed", "remaining", "left", "budget", "estimate", "per", "cost", "price", "validator",
        "validators", "hasher", "hashers", "checker", "generator", "encoder", "widget", "form", "input",
        "seconds", "secs", "sec", "minutes", "mins", "hours", "days", "weeks", "months", "ms", "period",
        "digits", "chars", "characters", "arn", "channel", "channels", "transport", "config", "configuration",
        "conf", "cfg", "settings", "options", "opts", "attrs", "attributes", "category", "categories", "public",
        "refreshes", "resets", "rotations", "renewals", "failures", "changes", "question", "questions", "score",
        "brand", "network", "funding", "last4", "bin", "id", "requested", "due", "accepted", "declined", "failure",
        "failed", "passed", "check", "checks", "result", "success", "country", "region", "rounds", "iterations",
        "host", "hostname", "port", "short", "weak", "kid", "exp", "iss", "sub", "iat", "nbf", "aud", "jti",
        "group", "groups", "flag", "flags",
    }
)  # fmt: skip
# A first word that makes the key a flag about the credential ("has_password", "show_token").
FLAG_WORDS = frozenset({"has", "is", "use", "uses", "requires", "require", "needs", "show", "allow", "enable"})

_EXACT = frozenset(
    {
        *SHORT_TERMS,
        *DISTINCTIVE_TERMS,
        *LAST_WORD_TERMS,
        *(a + b for a, b in PHRASES),
        *(t + "s" for t in DISTINCTIVE_TERMS),
    }
)
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SEPARATORS = re.compile(r"[-_.\[\]:\s/$@]+")


def _parts(key: str) -> list[str]:
    return [part for part in _SEPARATORS.split(key) if part]


def _camel(part: str) -> list[str]:
    if part.islower() or part.isupper() or part.isdigit():
        return [part.lower()]
    return [word.lower() for word in _CAMEL.findall(part)]


def split_words(key: str) -> tuple[str, ...]:
    """``"X-Auth-Token"`` -> ``("x", "auth", "token")``; ``"sessionId"`` -> ``("session", "id")``."""
    return tuple(word for part in _parts(key) for word in _camel(part))


def normalize_key(key: str) -> str:
    """Lower case without separators: what the allowlist and custom fragments are compared with."""
    return "".join(split_words(key))


def _credential_word(word: str) -> bool:
    if _CURSOR_JOINED.search(word):
        return False
    if word in SHORT_TERMS:
        return True
    for term in DISTINCTIVE_TERMS:
        if word.startswith(term):
            return len(word) == len(term) or not NOT_CREDENTIAL_WORDS.match(word)
    return (
        any(term in word for term in JOINED_TERMS) or word.endswith(SUFFIX_TERMS) or bool(_SYSTEM_PASS.fullmatch(word))
    )


def _mixed_case(part: str) -> bool:
    """Neither lower, upper nor Capitalized case: "pWd", "sessionId" (not "Cookie", "TOKEN")."""
    return not (part.islower() or part.isupper() or (part[:1].isupper() and part[1:].islower()))


def _exact_credential(word: str) -> bool:
    """A credential word as written, without the prefix rule ("password", "accesstoken", not "secretlength",
    nor "apikeyprefix": a joined term inside a longer word does not count here)."""
    return word in _EXACT or word.endswith(SUFFIX_TERMS)


def _credential_at(words: tuple[str, ...], i: int) -> bool:
    """Whether ``words[i]`` is a credential word, or starts a credential phrase, in its context."""
    word = words[i]
    if word in _COUNT_PLURALS:  # "tokens", "max_tokens", "prompt_tokens" count; "refresh_tokens" hold
        return i > 0 and words[i - 1] in _TOKEN_QUALIFIERS
    pair = words[i : i + 2]
    return _credential_word(word) or pair in PHRASES or (len(pair) == 2 and pair[1] == "key" and word in SERVICES)


def sensitive_words(words: tuple[str, ...]) -> bool:
    """The default key rule on a split key."""
    if not words:
        return False
    last = len(words) - 1
    if last and (words[0] in FLAG_WORDS or (words[last] == "token" and words[last - 1] in _CURSOR_WORDS)):
        return False
    if _credential_at(words, last) or words[last] in LAST_WORD_TERMS or words[-2:] in PHRASES:
        return True
    # An id describes, except a key's id after a credential phrase ("aws_access_key_id", "private_key_id":
    # scanners and Datadog filter them); "key_id" and "token_id" alone are identifiers.
    if words[last] in DESCRIPTORS and not (words[last] == "id" and words[last - 1 : last] == ("key",)):
        return False
    return any(_credential_at(words, i) for i in range(last))


def lower_words(key: str) -> str:
    """``"sessionId.status"`` -> ``"session_id_status"``: a path judged as one plain key (a mixed-case
    part would otherwise be judged alone, as ``pWd`` is)."""
    return "_".join(split_words(key))


_ID_WORDS = frozenset({"id", "ids", "ref", "reference"})
_CARD_WORDS = frozenset({"card", "cards", "cc", "credit", "debit", "pan", "payment"})


def identifier(key: str) -> bool:
    """Whether ``key`` names an identifier (``order_id``, ``payment_ref`` excluded: nothing about cards),
    whose digits are an id even when they pass a card's checksum."""
    words = split_words(key)
    return bool(words) and words[-1] in _ID_WORDS and not any(word in _CARD_WORDS for word in words)


def describes(key: str) -> bool:
    """Whether the last word of ``key`` describes a value (``status``, ``expires_in``, ``algorithm``)."""
    words = split_words(key)
    return bool(words) and words[-1] in DESCRIPTORS


class KeyRule:
    """The key verdict: default words (unless replaced), custom fragments, allowlist."""

    def __init__(self, *, defaults: bool, fragments: Iterable[str], allow: Iterable[str]) -> None:
        self._defaults = defaults
        self._fragments = tuple(sorted({f for f in (normalize_key(k) for k in fragments) if f}))
        self._allow = frozenset(normalize_key(k) for k in allow)

    def allowed(self, key: str) -> bool:
        return normalize_key(key) in self._allow

    def sensitive(self, key: str) -> bool:
        parts = _parts(key)
        words = tuple(word for part in parts for word in _camel(part))
        joined = "".join(words)
        if joined in self._allow:
            return False
        if any(f in joined for f in self._fragments):
            return True
        if not self._defaults:
            return False
        if sensitive_words(words):
            return True
        # Mixed case that is not camelCase ("pWd", "PaSsWoRd", "authorizatiOn"): each part is also
        # judged as one word. When the camelCase reading ends in a descriptor ("secretLength",
        # "maxTokens"), only a part that is a credential word exactly (not as a prefix) counts.
        lowered = tuple(part.lower() for part in parts)
        if words and (words[-1] in DESCRIPTORS or words[-1] in _COUNT_PLURALS):
            return any(_exact_credential(part.lower()) for part in parts if _mixed_case(part))
        return sensitive_words(lowered)
