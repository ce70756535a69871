"""Values that are secrets whatever their key: vendor token formats, private keys, credentials in URLs.

Each rule is a regular expression behind a cheap gate (substrings one of which any match must
contain), so that a value is scanned only by the rules that could match it: plain substring tests
are far cheaper than a regex that tries its alternatives at every position. Patterns are anchored at
word boundaries (``sk_test_`` inside ``task_test_``, ``sk-`` inside ``risk-`` and ``AKIA`` inside an
upper-case word do not match). A rule with a group named ``s`` masks only that group (the user name
and password of a URL, not its scheme and host).

Formats are the vendors' documented ones, as gitleaks, trufflehog and detect-secrets encode them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# Not preceded by a letter or digit: the rule starts at a word boundary.
_B = r"(?<![A-Za-z0-9])"
# Not followed by a character of the token alphabet: the token is whole.
_E = r"(?![A-Za-z0-9])"


@dataclass(frozen=True)
class TokenRule:
    """One secret format: ``gates`` (case-sensitive substrings, or lower-case ones with ``lower``)."""

    name: str
    gates: tuple[str, ...]
    pattern: re.Pattern[str]
    lower: bool = False
    placeholders: bool = True  # a run of 8 identical characters marks a placeholder (AKIAXXXXXXXX...)
    prefix: bool = False  # the gates are prefixes of a token that starts a word (most vendor tokens)
    boundary: bool = False  # a match must not follow a letter or digit

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        group = "s" if "s" in self.pattern.groupindex else 0
        for match in self.pattern.finditer(text):
            start = match.start()
            # The word-boundary check is done here, not as a leading look-behind, which would keep the
            # regex engine from jumping straight to the pattern's literal prefix.
            if self.boundary and start and text[start - 1].isascii() and text[start - 1].isalnum():
                continue
            if not (self.placeholders and _REPEATED.search(match.group(group))):
                yield match.span(group)


_REPEATED = re.compile(r"(.)\1{7}")


def _rule(
    name: str,
    gates: tuple[str, ...],
    pattern: str,
    *,
    lower: bool = False,
    placeholders: bool = True,
    prefix: bool | None = None,
) -> TokenRule:
    """A rule; by default one anchored at a word start (``_B``) has gates that are token prefixes."""
    if prefix is None:
        prefix = pattern.startswith(_B) and not lower
    boundary = pattern.startswith(_B)
    if boundary:  # checked in TokenRule.spans instead (see there)
        pattern = pattern[len(_B) :]
    return TokenRule(name, gates, re.compile(pattern), lower, placeholders, prefix, boundary)


RULES: tuple[TokenRule, ...] = (
    # Private keys, to the end marker or the end of the text: PEM (RSA, EC, DSA, OpenSSH, PKCS#8,
    # encrypted) and PGP armour; RFC 4716 (SSH2) key files; PuTTY .ppk files (up to the MAC line).
    _rule(
        "private-key",
        ("PRIVATE KEY",),
        r"-----BEGIN[A-Z0-9 ]* PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]* PRIVATE KEY(?: BLOCK)?-----|\Z)",
        placeholders=False,
    ),
    _rule(
        "ssh2-private-key",
        ("BEGIN SSH2",),
        r"---- BEGIN SSH2 (?:ENCRYPTED )?PRIVATE KEY ----[\s\S]*?(?:---- END SSH2 (?:ENCRYPTED )?PRIVATE KEY ----|\Z)",
        placeholders=False,
    ),
    _rule(
        "putty-private-key",
        ("PuTTY-User-Key-File-",),
        r"PuTTY-User-Key-File-\d+:[\s\S]*?(?:Private-(?:MAC|Hash):[ \t]*[0-9a-fA-F]+|\Z)",
        placeholders=False,
    ),
    # JSON Web Tokens (JWS; a JWE's first three parts): distinctive enough to need no boundary.
    _rule("jwt", ("eyJ",), r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", placeholders=False),
    # AWS access key ids: long-term (AKIA), temporary (ASIA), STS bearer (ABIA), context (ACCA), A3T.
    # Other unique-id prefixes (AIDA users, AROA roles...) name principals and are not credentials.
    _rule(
        "aws-access-key-id",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        _B + r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}" + _E,
    ),
    _rule(
        "github",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        _B + r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
    ),
    _rule(
        "gitlab",
        (
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "glsoat-",
            "glcbt-",
            "glimt-",
            "glagent-",
            "gloas-",
            "glft-",
            "glffct-",
            "glwt-",
            "GR1348941",
        ),
        _B + r"(?:gl(?:pat|dt|rt|ptt|soat|cbt|imt|agent|oas|ft|ffct|wt)-[0-9A-Za-z_-]{20,}"
        r"|GR1348941[0-9A-Za-z_-]{20,})",
    ),
    # Slack bot/user/app/refresh/config tokens and incoming-webhook URLs.
    _rule(
        "slack",
        ("xoxa-", "xoxb-", "xoxc-", "xoxd-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xoxe.", "xapp-"),
        _B + r"(?:xox[abcdposre]-[0-9][0-9A-Za-z-]{9,}|xoxe\.xox[bp]-[0-9A-Za-z-]{10,}"
        r"|xapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+)",
    ),
    _rule(
        "slack-webhook",
        ("hooks.slack.com",),
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9+/_-]{20,})",
    ),
    _rule(
        "discord-webhook",
        ("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"),
        r"discord(?:app)?\.com/api/webhooks/(?P<s>\d+/[A-Za-z0-9_-]+)",
    ),
    # Stripe secret and restricted keys, webhook signing secrets.
    _rule(
        "stripe",
        ("sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_", "whsec_"),
        _B + r"(?:[sr]k_(?:live|test|prod)_[0-9A-Za-z]{10,}|whsec_[A-Za-z0-9+/=]{24,})",
    ),
    _rule("twilio-api-key", ("SK",), _B + r"SK[0-9a-fA-F]{32}" + _E),
    _rule("sendgrid", ("SG.",), _B + r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"),
    _rule("npm", ("npm_",), _B + r"npm_[A-Za-z0-9]{36}" + _E),
    _rule("pypi", ("pypi-",), _B + r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    _rule("shopify", ("shpat_", "shpca_", "shppa_", "shpss_"), _B + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _E),
    _rule("telegram-bot", (":A",), r"(?<![0-9])[0-9]{5,16}:A[A-Za-z0-9_-]{34}(?![A-Za-z0-9_-])"),
    _rule("age-secret-key", ("AGE-SECRET-KEY-1",), r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    _rule("azure-ad-client-secret", ("Q~",), r"(?<![\w~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![\w~.-])"),
    _rule("google-api-key", ("AIza",), _B + r"AIza[0-9A-Za-z_-]{30,}"),
    _rule("google-oauth", ("GOCSPX-", "ya29."), _B + r"(?:GOCSPX-[A-Za-z0-9_-]{28}|ya29\.[0-9A-Za-z_-]{20,})"),
    # OpenAI ("sk-", "sk-proj-", "sk-svcacct-"), Anthropic ("sk-ant-"), DeepSeek...: with a digit.
    _rule("sk-api-key", ("sk-",), _B + r"sk-(?<![_-]sk-)(?=[A-Za-z_-]{0,200}[0-9])[A-Za-z0-9_-]{20,}"),
    _rule("mapbox-secret", ("sk.eyJ",), _B + r"sk\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    _rule("vault", ("hvs.", "hvb.", "hvr."), _B + r"hv[sbr]\.[A-Za-z0-9_-]{24,}"),
    _rule("digitalocean", ("dop_v1_", "doo_v1_", "dor_v1_"), _B + r"do[opr]_v1_[a-f0-9]{64}"),
    _rule("huggingface", ("hf_",), _B + r"hf_[A-Za-z]{34}" + _E),
    _rule("databricks", ("dapi",), _B + r"dapi[a-f0-9]{32}(?:-\d)?" + _E),
    _rule("mailgun", ("key-",), _B + r"key-[0-9a-f]{32}" + _E),
    _rule("mailchimp", ("-us",), _B + r"[0-9a-f]{32}-us[0-9]{1,2}" + _E, prefix=False),
    _rule("atlassian", ("ATATT3",), _B + r"ATATT3[A-Za-z0-9_=-]{100,}"),
    _rule("postman", ("PMAK-",), _B + r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    _rule("new-relic", ("NRAK-",), _B + r"NRAK-[A-Z0-9]{27}"),
    _rule(
        "square",
        ("sq0atp-", "sq0csp-", "EAAA"),
        _B + r"(?:sq0atp-[0-9A-Za-z_-]{22}|sq0csp-[0-9A-Za-z_-]{43}|EAAA[A-Za-z0-9_-]{60})",
    ),
    _rule("facebook-access-token", ("EAAC", "EAAM"), _B + r"EAA[CM][A-Za-z0-9]{90,}"),
    _rule("sentry-token", ("sntrys_", "sntryu_"), _B + r"sntry[su]_[A-Za-z0-9_=+/]{40,}"),
    _rule("grafana", ("glsa_", "glc_"), _B + r"(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})"),
    _rule("linear", ("lin_api_",), _B + r"lin_api_[A-Za-z0-9]{40}"),
    _rule("heroku", ("HRKU-",), _B + r"HRKU-[0-9A-Za-z_-]{20,}"),
    _rule("supabase", ("sbp_",), _B + r"sbp_[a-f0-9]{40}"),
    _rule("planetscale", ("pscale_",), _B + r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9=._-]{32,64}"),
    _rule("pulumi", ("pul-",), _B + r"pul-[a-f0-9]{40}"),
    _rule("doppler", ("dp.",), _B + r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}"),
    _rule("terraform-cloud", (".atlasv1.",), _B + r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}", prefix=False),
    _rule("groq", ("gsk_",), _B + r"gsk_[A-Za-z0-9]{52}"),
    _rule("replicate", ("r8_",), _B + r"r8_[A-Za-z0-9]{37}"),
    _rule("notion", ("ntn_",), _B + r"ntn_[A-Za-z0-9]{40,}"),
    # Notion internal integration secrets before the ntn_ prefix: secret_ and 43 letters or digits.
    _rule("notion-legacy", ("secret_",), _B + r"secret_[A-Za-z0-9]{43}" + _E),
    # Discord bot tokens: the base64 of a snowflake user id (so "MT", "Mj"... "OT"), 6 and 27+ characters.
    _rule(
        "discord-bot-token",
        ("MT", "Mj", "Mz", "ND", "NT", "Nj", "Nz", "OD", "OT"),
        _B + r"(?:M[Tjz]|N[DTjz]|O[DT])[A-Za-z0-9_-]{21,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}" + _E,
    ),
    _rule("twitter-bearer", ("AAAAAAAAAAAAAAAAAAAAA",), r"AAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,}", placeholders=False),
    # More vendors' prefixed tokens, as gitleaks' rules of the same names describe them.
    _rule("alibaba-access-key", ("LTAI",), _B + r"LTAI[A-Za-z0-9]{20}" + _E),
    _rule("artifactory", ("AKC",), _B + r"AKC[A-Za-z0-9]{10,}" + _E),
    _rule("twilio-account-sid", ("AC",), _B + r"AC[0-9a-f]{32}" + _E),
    _rule("clojars", ("CLOJARS_",), _B + r"CLOJARS_[a-z0-9]{60}"),
    _rule("contentful", ("CFPAT-",), _B + r"CFPAT-[A-Za-z0-9_-]{43}"),
    _rule("duffel", ("duffel_test_", "duffel_live_"), _B + r"duffel_(?:test|live)_[A-Za-z0-9_=-]{43}"),
    _rule("dynatrace", ("dt0c01.",), _B + r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    _rule("easypost", ("EZAK", "EZTK"), _B + r"EZ[AT]K[A-Za-z0-9]{54}"),
    _rule("flutterwave", ("FLWSECK", "FLWPUBK"), _B + r"FLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{32}-X"),
    _rule("frameio", ("fio-u-",), _B + r"fio-u-[A-Za-z0-9_=-]{64}"),
    _rule(
        "hubspot",
        ("pat-na1-", "pat-eu1-"),
        _B + r"pat-(?:na|eu)1-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ),
    _rule("harness", ("pat.", "sat."), _B + r"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[0-9a-f]{24}\.[A-Za-z0-9]{20}"),
    _rule("infracost", ("ico-",), _B + r"ico-[A-Za-z0-9]{32}" + _E),
    _rule("nuget", ("oy2",), _B + r"oy2[a-z0-9]{43}" + _E),
    _rule("openshift", ("sha256~",), _B + r"sha256~[A-Za-z0-9_-]{43}"),
    _rule("prefect", ("pnu_",), _B + r"pnu_[A-Za-z0-9]{36}" + _E),
    _rule("readme", ("rdme_",), _B + r"rdme_[a-z0-9]{70}" + _E),
    _rule("rubygems", ("rubygems_",), _B + r"rubygems_[a-f0-9]{48}" + _E),
    _rule("scalingo", ("tk-us-",), _B + r"tk-us-[A-Za-z0-9_-]{48}"),
    _rule("sendinblue", ("xkeysib-",), _B + r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    _rule("shippo", ("shippo_live_", "shippo_test_"), _B + r"shippo_(?:live|test)_[a-f0-9]{40}"),
    _rule("typeform", ("tfp_",), _B + r"tfp_[A-Za-z0-9_.=-]{59}"),
    _rule(
        "plaid",
        ("access-sandbox-", "access-development-", "access-production-"),
        _B + r"access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ),
    _rule("huggingface-org", ("api_org_",), _B + r"api_org_[A-Za-z]{34}" + _E),
    _rule("yandex", ("y0_", "AQVN"), _B + r"(?:y0_[A-Za-z0-9_-]{55}|AQVN[A-Za-z0-9_-]{35,38})"),
    _rule("adobe", ("p8e-",), _B + r"p8e-[A-Za-z0-9]{32}" + _E),
    _rule("new-relic-other", ("NRJS-", "NRII-"), _B + r"(?:NRJS-[a-f0-9]{19}|NRII-[A-Za-z0-9-]{32})"),
    _rule("flyio", ("fo1_",), _B + r"fo1_[A-Za-z0-9_-]{43}"),
    _rule("defined-networking", ("dnkey-",), _B + r"dnkey-[A-Za-z0-9=_-]{26}-[A-Za-z0-9=_-]{52}"),
    _rule("dropbox", ("sl.",), _B + r"sl\.[A-Za-z0-9=_-]{130,}"),
    _rule("grafana-api-key", ("eyJrIjoi",), _B + r"eyJrIjoi[A-Za-z0-9]{70,400}={0,2}"),
    # HTTP credentials after their scheme word; the credential must hold a digit or a symbol inside
    # it (not only a final "."), so that "Bearer authentication", "basic information" and "token
    # missing." stay.
    _rule(
        "http-credentials",
        ("bearer", "basic", "token"),
        r"(?<![A-Za-z0-9])(?i:bearer|basic|token)\s+(?=[A-Za-z]{0,200}(?:[0-9=]|[\-._~+/][A-Za-z0-9]))"
        r"[A-Za-z0-9\-._~+/][^\s\"'<>,;)]{7,}",  # to the credential's end, stray characters included
        lower=True,
    ),
    # user:password@ in URLs (an empty user too: redis://:pw@host); neither part crosses a quote.
    _rule("url-credentials", ("://",), r"://(?<=[A-Za-z0-9]://)(?P<s>[^\s/?#:@\"'<>]*:[^\s/?\"'<>]+)@"),
    # Command lines: "--password hunter2", "--token ...", "sshpass -p ...", "docker login -u x -p ...",
    # "mongosh -u x -p ...".
    _rule(
        "cli-secret-flag",
        ("--",),
        r"(?:^|(?<=\s))--(?:password|passwd|pass|token|secret|api-key|apikey|access-token|auth-token|"
        r"client-secret|private-key)[ \t]+[\"']?(?P<s>[^\s\"'$<{-][^\s\"']*)",
    ),
    _rule(
        "cli-short-password",
        (" -p ",),
        r"(?:sshpass|\blogin\b[^\n]{0,200}?|\b(?:mongo|mongosh|mongodump|mongorestore|mongoexport|mongoimport)\b"
        r"[^\n]{0,200}?)[ \t]-p[ \t]+[\"']?(?P<s>[^\s\"'$<{][^\s\"']*)",
    ),
    # mysql -pSECRET (the password joined to -p; "-p" alone prompts for it), mysqldump, mariadb...
    _rule(
        "mysql-password-flag",
        (" -p",),
        r"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlsh|mariadb|mariadb-dump)\b[^\n]{0,200}?[ \t]-p"
        r"[\"']?(?P<s>[^\s\"'$<{-][^\s\"']*)",
    ),
    # sqlcmd/bcp -P SECRET.
    _rule(
        "sqlcmd-password",
        (" -P",),
        r"\b(?:sqlcmd|bcp)\b[^\n]{0,200}?[ \t]-P[ \t]+[\"']?(?P<s>[^\s\"'$<{-][^\s\"']*)",
    ),
    # redis-cli -a SECRET (and --pass SECRET).
    _rule(
        "redis-cli-password",
        ("redis-cli",),
        r"\bredis-cli\b[^\n]{0,200}?[ \t](?:-a|--pass)[ \t]+[\"']?(?P<s>[^\s\"'$<{-][^\s\"']*)",
    ),
    # .netrc: "machine HOST login USER password SECRET" (on one line or several).
    _rule(
        "netrc-password",
        ("machine ",),
        r"\bmachine[ \t]+\S+(?:\s+(?:login|account|port)[ \t]+\S+){0,3}\s+password[ \t]+(?P<s>\S+)",
    ),
    # Braintree/PayPal access tokens: access_token$production$<16>$<32 hex>.
    _rule(
        "braintree-access-token",
        ("access_token$",),
        _B + r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}",
    ),
    # curl -u user:password, --user user:password.
    _rule(
        "curl-user",
        ("-u", "--user"),
        r"(?:^|(?<=\s))(?:-u|--user)(?:[ \t]+|=)[\"']?(?P<s>[^\s:\"']*:[^\s\"']+?)[\"']?(?=\s|$)",
    ),
)


# Gate scanning. A Python loop testing each rule's substrings would cost more than the rules' regexes
# on a typical value, so:
# * prefix rules (vendor tokens that start a word) run only when a run of 15+ token characters (the
#   shortest such token) starts with the first two characters of one of their gates;
# * the other gates are compiled into one regex that only stops at rare characters (upper case,
#   "-", ".", ":", "~"): each gate is written from its first rare character on, the letters before it
#   as a look-behind ("eyJ" becomes "J(?<=eyJ)"), so the scan skips lower-case text at C speed;
# * the case-insensitive gates (bearer, basic, token) are tested on the lower-cased text.
# A run of 15 token characters (the shortest prefixed token: "xoxb-" and ten more), then the first
# two characters of each word.
_LONG_RUN = re.compile(r"[A-Za-z0-9_\-.~+/=:]{15}")
_WORD_STARTS = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{2}")
# The first two characters of a gate -> (gate, rule) pairs to test with a substring check.
_PREFIX_RULES: dict[str, tuple[tuple[str, TokenRule], ...]] = {}
for _r in RULES:
    if _r.prefix:
        for _gate in _r.gates:
            _PREFIX_RULES[_gate[:2]] = (*_PREFIX_RULES.get(_gate[:2], ()), (_gate, _r))
_RARE = re.compile(r"[A-Z\-.:~]")


def _fragment(gate: str) -> str:
    rare = _RARE.search(gate)
    if rare is None:
        raise ValueError(f"gate {gate!r} has no rare character to anchor its scan")
    i = rare.start()
    behind = f"(?<={re.escape(gate[: i + 1])})" if i else ""
    return re.escape(gate[i]) + behind + re.escape(gate[i + 1 :])


_OTHER_RULES = tuple(r for r in RULES if not r.prefix and not r.lower and all(_RARE.search(g) for g in r.gates))
# Gates of lower-case letters only ("machine ", "access_token$"): a few substring checks.
_PLAIN_GATES = tuple((g, r) for r in RULES if not r.prefix and not r.lower and r not in _OTHER_RULES for g in r.gates)
# Longest first, so that "-us" is not read as "-u"; a match's text names its rule.
_FRAGMENTS = sorted(((_fragment(g), g, r) for r in _OTHER_RULES for g in r.gates), key=lambda f: -len(f[1]))
_OTHER_GATES = re.compile("|".join(f for f, _, _ in _FRAGMENTS))
_BY_MATCH = {g[_RARE.search(g).start() :]: r for _, g, r in _FRAGMENTS}  # type: ignore[union-attr]
_LOWER_RULES = tuple(r for r in RULES if r.lower)


def secret_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each part of ``text`` that a token rule matches (spans may overlap)."""
    spans: list[tuple[int, int]] = []
    if _LONG_RUN.search(text) is not None:
        fired: set[TokenRule] = set()
        for start in _PREFIX_RULES.keys() & set(_WORD_STARTS.findall(text)):
            for gate, rule in _PREFIX_RULES[start]:
                if gate in text:
                    fired.add(rule)
        for rule in fired:
            spans.extend(rule.spans(text))
    for gate in set(_OTHER_GATES.findall(text)):  # one scan; findall builds no match objects
        spans.extend(_BY_MATCH[gate].spans(text))
    for gate, rule in _PLAIN_GATES:
        if gate in text:
            spans.extend(rule.spans(text))
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered or "token" in lowered:
        for rule in _LOWER_RULES:
            spans.extend(rule.spans(text))
    return spans
