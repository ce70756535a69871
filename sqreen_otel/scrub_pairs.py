"""Key/value pairs inside text, wherever they come from; only the value of a sensitive key is masked.

One pass finds ``key=value``, ``key: value``, ``key = value``, ``key => value`` and ``key := value``
with bare, quoted (``"..."``, ``'...'``, ``\\"...\\"``) or nested JSON values. That covers query strings
and fragments (``?password=...&access_token=...``), form encoding (``user%5Bpassword%5D=...``), JSON
text, header lines (``Authorization: Token token="..."``, ``Cookie: a=b; sessionid=...``), connection
strings (``Server=...;Password=...;AccountKey=...``), config and env lines (``DB_PASSWORD=...``,
``aws_secret_access_key = ...``, ``//registry.npmjs.org/:_authToken=...``, ``db_pass: ...``) and log
lines (``password=... user=...``). The key is judged by the caller's key rule.

Choices where formats disagree:

* A bare value ends at white space or ``& ; , " ' < > ) ] }`` (and ``#`` in a URL); at the start of a
  line (config, YAML, header lines) a value with spaces runs to the end of the line, unless another
  ``key=`` follows.
* A value after an HTTP scheme word (``Bearer``, ``Basic``, ``Token``...) includes the credential.
* A nested JSON value (``"password": {...}``) is masked whole, or to the end of the text when cut.
* Placeholders (``${DB_PASSWORD}``, ``{{ secret }}``, ``<token>``, ``****``, ``null``) and prose after a
  colon (``Password: must be at least 8 characters``) are left alone.
* ``api key: ...``, ``Session ID: ...``: a two-word name is judged as one key.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable

from .scrub_keys import PHRASES, split_words

MAX_KEY = 100  # characters in a key name
MAX_LINE_VALUE = 4096  # characters of a value that runs to the end of its line
_LEADER_WINDOW = 16  # characters looked back for a line leader
# Separators are rare, keys are not: the pass finds each separator ("=", ":", "=>", ":=", " is "), then
# reads the key that ends there backwards, as one anchored match on the reversed text.
_SEPARATOR = re.compile(r"[=:]")
_PINNED_VERSION = re.compile(r"\d+(?:\.\d+)+(?![\w.])")
_KEY_REVERSED = re.compile(r"[ \t]*(?:\]?[\"']\\?)?(?P<key>[\w.\-\[\]%$@]{1," + str(MAX_KEY) + "})")
_KEY_START = re.compile(r"[A-Za-z_$@]")
_BLANKS = re.compile(r"[ \t]*")
_BARE = re.compile(r"[^\s&;,\"'<>)\]}]+")
_BARE_IN_URL = re.compile(r"[^\s&;,\"'<>)\]}#]+")
_WHOLE_LINE_KEY = re.compile(r"(?i)(?:^|[-_])(?:proxy-)?(?:authorization|cookie)$")
_SCHEME = re.compile(r"(?i:bearer|basic|token|digest|negotiate|ntlm|bot|oauth)[ \t]+(?=\S)")
_NEXT_PAIR = re.compile(r"[\s;&,][\w.\-\[\]%]+[ \t]*[=:]")
_PLACEHOLDER = re.compile(
    r"(?:\$\{[^}]*\}|\$\(?[A-Za-z_][A-Za-z0-9_]*\)?|\{\{[^}]*\}\}|<[^<>]*>|%\(?\w*\)?s|\*+|x{3,}|X{3,}|\.\.\.|…"
    r"|null|none|nil|undefined|true|false|True|False|None|NULL|%[A-Za-z_]\w*%"
    r"|(?i:your[\w-]*|[\w-]*_here|changeme|change_me|replace[_-]?me|redacted|dummy|example|placeholder))"
)
# Code, not a value: "os.getenv(", "ENV[", "settings.SECRET_KEY", "process.env.DB_PASSWORD".
_CODE = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.[A-Za-z_$][\w$]*)+[(\[]?|[(\[])")
# Two words after a colon mid-line: a log message ("auth: user bob logged in", "csrf: Forbidden (CSRF
# token missing.)", 'volume "x" : secret "x" not found').
_PROSE_RUN = re.compile(r"[A-Za-z][a-z]* [(\"']?[A-Za-z]")

# First words of prose after "Password:", "Token:" (messages, labels), never of a secret value.
_PROSE = frozenset(
    {
        "must", "should", "is", "are", "was", "were", "be", "been", "at", "the", "a", "an", "not", "no",
        "required", "invalid", "incorrect", "wrong", "too", "reset", "changed", "updated", "expired", "enter",
        "your", "please", "minimum", "use", "contains", "cannot", "will", "has", "have", "does", "do",
        "did", "missing", "empty", "set", "see", "click", "forgot", "sent", "never", "only", "can", "needs",
        "and", "or", "of", "for", "to", "with", "it", "this", "that", "mismatch", "unknown", "failed",
        "accepted", "rejected", "revoked", "valid", "verified", "if", "when", "new", "old", "hidden", "ok",
        "success", "succeeded", "passed", "denied", "error", "expires", "expiring",
    }
)  # fmt: skip
_TEMPLATES = ("${", "{{", "$(", "%(", "{%")  # template and shell substitutions, not values
_LINE_LEADERS = frozenset({"", "export", "set", "-", "#", "//", "env"})
_OPENERS = {"{": "}", "[": "]", "(": ")"}


def _nested_end(text: str, start: int) -> int:
    """End of the JSON value opened at ``start`` (brackets balanced outside strings), else the text's end."""
    depth, index, quote = 0, start, ""
    length = len(text)
    while index < length:
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char == '"':
            quote = char
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return length


def _quoted_end(text: str, start: int, quote: str) -> int:
    """Index of the closing quote of the string opened at ``start``, else the end of the line."""
    index, length = start + 1, len(text)
    while index < length:
        char = text[index]
        if char == "\\" and not (quote == '\\"' and text.startswith(quote, index)):
            index += 2
            continue
        if text.startswith(quote, index):
            return index
        if char == "\n":
            return index
        index += 1
    return length


def _prose(value: str) -> bool:
    """Words, not a secret: "must be at least 8 characters"."""
    return " " in value and value.split(None, 1)[0].lower() in _PROSE


def _code(value: str) -> bool:
    """A reference in code ("settings.SECRET_KEY", "os.getenv("), not a dotted token such as a
    Kubernetes or Discord token, whose parts are long runs of mixed case and digits."""
    return _CODE.fullmatch(value) is not None and not any(
        len(part) >= 16 and not part.isalpha() and not part.islower() and not part.isupper()
        for part in value.split(".")
    )


def _at_line_start(text: str, key_start: int) -> bool:
    """Whether only a leader ("export", "- "...) is before the key on its line (a bounded look-back,
    so that a long line with many keys stays linear)."""
    window = max(0, key_start - _LEADER_WINDOW)
    newline = text.rfind("\n", window, key_start)
    if newline < 0 and window > 0:
        return False
    return text[newline + 1 : key_start].strip().strip("\"'") in _LINE_LEADERS


def _line_end(text: str, start: int) -> int:
    """End of the line at ``start``, at most ``MAX_LINE_VALUE`` characters on."""
    limit = min(len(text), start + MAX_LINE_VALUE)
    end = text.find("\n", start, limit)
    return limit if end < 0 else end


def _placeholder(value: str, mask: str) -> bool:
    """Nothing to mask: empty, already masked, or a placeholder ("${X}", "<token>", "Bearer $TOKEN")."""
    stripped = _SCHEME.sub("", value.strip(), count=1)
    return (
        not stripped
        or value.lstrip().startswith(mask)
        or stripped.startswith(_TEMPLATES)
        or _PLACEHOLDER.fullmatch(stripped) is not None
    )


def value_span(
    text: str, start: int, *, colon: bool, in_url: bool, line_start: bool, mask: str
) -> tuple[int, int] | None:
    """The part of ``text`` from ``start`` that is the value, or None if there is nothing to mask."""
    if start >= len(text) or text.startswith(mask, start):
        return None
    literal = text[start : start + 1] in ("u", "b") and text[start + 1 : start + 2] in ("'", '"')
    start += literal  # a Python literal, u'...' or b'...': masked with its prefix
    char = text[start]
    # A quoted value is masked with its quotes, as the body scrubber always did ("password": [REDACTED]).
    if text.startswith('\\"', start):
        end = _quoted_end(text, start + 1, '\\"')
        span = (start, end + 2 if text.startswith('\\"', end) else end)
        if _placeholder(text[start + 2 : end], mask):
            return None
    elif char in "\"'":
        end = _quoted_end(text, start, char)
        span = (start, end + 1 if text[end : end + 1] == char else end)
        if _placeholder(text[start + 1 : end], mask):
            return None
    elif char in _OPENERS:
        return start, _nested_end(text, start)
    else:
        scheme = _SCHEME.match(text, start)
        value_start = scheme.end() if scheme else start
        bare = (_BARE_IN_URL if in_url else _BARE).match(text, value_start)
        if bare is None:
            return None
        end = bare.end()
        if scheme and not in_url and "=" in bare.group():  # "Digest username=..., response=...": all of it
            end = max(end, _line_end(text, end))
        elif line_start and not in_url and text[end : end + 1] in (" ", "\t"):
            line_end = _line_end(text, end)
            rest = text[end:line_end]
            if rest.strip() and not _NEXT_PAIR.search(rest):
                end = start + len(text[start:line_end].rstrip())
        span = (start, end)
    value = text[span[0] : span[1]]
    if _placeholder(value, mask) or (char not in "\"'" and _code(value.strip())):
        return None
    first = value.split(None, 1)[0].lower().strip(".,!")
    if first == value.lower() and first in _PROSE:  # a state, whatever the separator ("token=expired")
        return None
    if colon and (
        first in _PROSE
        or (first.isalpha() and first.islower() and first.endswith(("ed", "ing")))  # "Token: refreshed"
        or (not line_start and char.isalpha() and _PROSE_RUN.match(text, start) is not None)
    ):
        return None
    return span[0] - literal, span[1]


_COPULAS = frozenset({"is", "was", "are", "were"})
# Last words of the two-word names ("key" in "api key"): only these send the pass back a word.
_PHRASE_TAILS = _COPULAS | {second for _, second in PHRASES}


def _phrase_key(text: str, key_start: int, key: str) -> str | None:
    """``"api key"`` for the key ``key`` in ``"the api key: ..."``: the word before, if one.
    In ``"the secret is: ..."`` the word before is the key."""
    if key_start < 2 or text[key_start - 1] != " ":
        return None
    before = text.rfind(" ", max(0, key_start - 1 - MAX_KEY), key_start - 1) + 1
    word = text[before : key_start - 1].lstrip("\"'")
    if not word.isalpha():
        return None
    return f"the {word}" if key.lower() in _COPULAS else f"{word} {key}"


def _separators(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, separator)`` of each separator in ``text``, in order."""
    found = []
    for match in _SEPARATOR.finditer(text):
        start = match.start()
        if start and text[start - 1] in "=:":  # the second character of "=>"/":="/"==" is not one
            continue
        end = start + 2 if text[start + 1 : start + 2] in (">", "=") else start + 1
        if text[start + 1 : start + 2] == "=" and _PINNED_VERSION.match(text, start + 2):
            continue  # "django-otp==1.5.4": a pinned requirement, not an assignment
        found.append((start, end, text[start:end] if end - start == 2 else match.group()))
    if " is " in text:
        index = text.find(" is ")
        while index >= 0:
            found.append((index, index + 4, " is "))
            index = text.find(" is ", index + 1)
        found.sort()
    return found


# Markup: "<password>...</password>" and "<add key="ApiKey" value="..."/>" (XML config, web.config).
_ELEMENT = re.compile(r"<([A-Za-z_][\w.\-:]{0,99})>([^<]{1,4096})</\1>")
_KEY_VALUE_ATTRIBUTES = re.compile(r"\b(?:key|name)=\"([^\"]{1,100})\"\s+value=\"([^\"]*)\"")


def markup_spans(text: str, sensitive: Callable[[str], bool]) -> list[tuple[int, int]]:
    """``(start, end)`` of each value of a sensitive element or ``key``/``value`` attribute pair."""
    spans = []
    for pattern in (_ELEMENT, _KEY_VALUE_ATTRIBUTES):
        for match in pattern.finditer(text):
            if match.group(2).strip() and sensitive(match.group(1)):
                spans.append(match.span(2))
    return spans


# "aws configure set aws_secret_access_key X", "npm config set //registry/:_authToken X", "gh secret set".
_CONFIG_SET = re.compile(
    r"\b(?:config|configure|secrets?)[ \t]+set[ \t]+(?:--?\S+[ \t]+)*([\w.\-:/\[\]]{1,100})[ \t]+[\"']?([^\s\"']+)"
)
# An OAuth 2.0 authorization code in a redirect ("/callback?code=...&state=...", RFC 6749 4.1.2).
# Also in the token request that redeems it (RFC 6749 4.1.3: grant_type=authorization_code&code=...).
_OAUTH_REDIRECT = re.compile(
    r"[?&#]state=|/callback|/oauth|/authorize|grant_type=authorization_code|redirect_uri=", re.IGNORECASE
)


# Dockerfile "ENV DB_PASSWORD hunter2" (the legacy form without "=").
_DOCKER_ENV = re.compile(r"(?m)^[ \t]*ENV[ \t]+([A-Za-z_][\w.]{0,99})[ \t]+([^\s=\"'][^\s\"']*)")
# A credential word, a space and a quoted value holding a digit ("failed with password 'hunter2'"); the
# digit keeps names out ('secret "db-credentials" not found').
_QUOTED_AFTER_WORD = re.compile(r"\b([A-Za-z][\w-]{1,40})[ \t]+([\"'])(?=[^\s\"']*\d)([^\s\"']{6,200})\2")


# ("password", "...") pairs: Werkzeug MultiDicts, header lists, Python tuples in reprs and logs.
_TUPLE_PAIR = re.compile(
    r"\(\s*b?([\"'])([\w.\-]{1,100})\1\s*,\s*b?([\"'])(?=[^\"']*[^\s\"'])([^\"'\n]{1,4096})\3\s*\)"
)
# name/value records written as text: {"name": "api_key", "value": "..."}, Header(name='X-Api-Key', value='...').
_NAMED_VALUE = re.compile(
    r"\b(?:name|key|field|header)[\"']?\s*[:=]\s*([\"'])([\w.\-\[\]]{1,100})\1\s*,\s*[\"']?value[\"']?\s*[:=]\s*"
    r"([\"'])([^\"'\n]{1,4096})\3"
)
# A YAML value on the next, more indented line ("password:\n  hunter2", "key: >-\n  ..."), not a mapping.
_YAML_NEXT = re.compile(r"(?:[|>][-+]?)?[ \t]*\n([ \t]+)(?![-#])([^\s:#][^\n:]*?)[ \t]*(?=\n|$)")


def pair_spans(text: str, sensitive: Callable[[str], bool], mask: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each value of a sensitive key in ``text``."""
    spans: list[tuple[int, int]] = markup_spans(text, sensitive) if "</" in text or 'value="' in text else []
    if " set " in text:
        spans += [m.span(2) for m in _CONFIG_SET.finditer(text) if sensitive(m.group(1))]
    if "ENV " in text:
        spans += [m.span(2) for m in _DOCKER_ENV.finditer(text) if sensitive(m.group(1))]
    if " '" in text or ' "' in text:
        spans += [m.span(3) for m in _QUOTED_AFTER_WORD.finditer(text) if sensitive(m.group(1))]
    if "('" in text or '("' in text or "(b'" in text:
        spans += [m.span(4) for m in _TUPLE_PAIR.finditer(text) if sensitive(m.group(2)) and not _prose(m.group(4))]
    if "value" in text:
        spans += [m.span(4) for m in _NAMED_VALUE.finditer(text) if sensitive(m.group(2))]
    reversed_text = text[::-1]
    length = len(text)
    skip_until = 0  # inside a nested value already masked: its pairs need no look
    for sep_start, sep_end, sep in _separators(text):
        if sep_start < skip_until:
            continue
        found = _KEY_REVERSED.match(reversed_text, length - sep_start)
        if found is None:
            continue
        key_start = length - found.end("key")
        key_end = length - found.start("key")
        while key_start < key_end - 1 and text[key_start] == "-":  # "--password=...", "-Dpassword=..."
            key_start += 1
        if (key_start and (text[key_start - 1].isalnum() or text[key_start - 1] in "_.%$@[]")) or not (
            _KEY_START.match(text, key_start)
        ):
            continue  # longer than MAX_KEY, or not a name ("2024-01-01T10:00")
        key = text[key_start:key_end]
        if "%" in key:
            key = urllib.parse.unquote_plus(key)
        judged = sensitive(key) or (
            key == "code" and (key_start == 0 or text[key_start - 1] in "?&#") and bool(_OAUTH_REDIRECT.search(text))
        )
        if not judged and key.lower() in _PHRASE_TAILS:
            phrase = _phrase_key(text, key_start, key)
            judged = (
                phrase is not None
                and sensitive(phrase)
                and (phrase.startswith("the ") or split_words(phrase)[-2:] in PHRASES)
            )
        # "arn:aws:secretsmanager:...:secret:name" chains names with colons: no pair there.
        if not judged or (sep == ":" and key_start and text[key_start - 1] == ":"):
            continue
        blanks = _BLANKS.match(text, sep_end)
        value_start = blanks.end() if blanks else sep_end
        if sep == ":" and text[value_start : value_start + 1] in ("\n", "|", ">") and _at_line_start(text, key_start):
            following = _YAML_NEXT.match(text, value_start)
            if following is not None and not (_placeholder(following.group(2), mask) or _prose(following.group(2))):
                spans.append(following.span(2))
            continue
        if sep == ":" and _WHOLE_LINE_KEY.search(key) and text[value_start : value_start + 1] not in ("", '"', "'"):
            # An HTTP header line ("Authorization: SSWS 00ab...", "Cookie: a=b; sid=..."): all of it, up to
            # the quote that opened it ("curl -H 'Authorization: ...'").
            end = _line_end(text, value_start)
            opener = text[key_start - 1] if key_start else ""
            if opener in ("'", '"'):
                closing = text.find(opener, value_start, end)
                end = end if closing < 0 else closing
            if not _placeholder(text[value_start:end], mask):
                spans.append((value_start, end))
            continue
        span = value_span(
            text,
            value_start,
            colon=sep in (":", " is "),
            in_url=key_start > 0 and text[key_start - 1] in "?&#",
            line_start=_at_line_start(text, key_start),
            mask=mask,
        )
        # "the password is hunter2", not "the password is correct"; "password=password" and
        # "token=self.token" pass a variable on (source lines in tracebacks).
        if span is not None and not (
            (sep == " is " and text[span[0] : span[1]].isalpha())
            or text[span[0] : span[1]].rpartition(".")[2].lower() == key.lower()
        ):
            spans.append(span)
            if text[span[0]] in _OPENERS:
                skip_until = span[1]
    return spans
