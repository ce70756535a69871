"""The scrubbing rules of issue 7: key words, key=value text, token formats, cards; the corpus targets;
property-based: a configured secret never survives any nesting or surrounding text, masking is idempotent."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from scrub_corpus.corpus import load, score
from stdnum import luhn as stdnum_luhn

from sqreen_otel.cards import card_spans, is_card, luhn_valid
from sqreen_otel.exporter import OTLPEventExporter
from sqreen_otel.processor import EventBatchProcessor
from sqreen_otel.receiver import Receiver
from sqreen_otel.scrub import DEFAULT_MASK, Scrubber
from sqreen_otel.values import clean

M = DEFAULT_MASK

# -- the corpus --------------------------------------------------------------------------------------


def test_corpus_is_broad_and_cited() -> None:
    cases = load()
    assert len(cases) >= 300
    assert all(case.source.strip() for case in cases)
    secrets = [c for c in cases if c.secret is not None]
    assert len(secrets) >= 150 and len(cases) - len(secrets) >= 150
    for case in secrets:  # the part that must vanish is really in the value
        assert case.secret in (case.value if isinstance(case.value, str) else json.dumps(case.value)), case


def test_corpus_targets() -> None:
    scrubber = Scrubber()
    result = score(lambda key, value: clean({key: value}, scrubber, 4096)[key], load())
    missed = [(c.key, c.value) for c in result.missed]
    over = [(c.key, c.value) for c in result.over_masked]
    assert result.recall >= 0.97, missed
    assert result.false_positive_rate <= 0.02, over


def test_each_corpus_file_holds_up_on_its_own() -> None:
    # The held-out files (wild, unseen, events, heldout2, heldout3) were written before the rules they
    # test were changed; none may fall far behind the others (heldout2 keeps 1 of 100 look-alikes masked).
    scrubber = Scrubber()
    cases = load()
    for name in sorted({c.file for c in cases}):
        result = score(
            lambda key, value: clean({key: value}, scrubber, 4096)[key], [c for c in cases if c.file == name]
        )
        assert result.recall >= 0.97, (name, [(c.key, c.value) for c in result.missed])
        assert result.false_positive_rate <= 0.03, (name, [(c.key, c.value) for c in result.over_masked])


# -- keys --------------------------------------------------------------------------------------------

SENSITIVE = [
    "otp_attempt", "db_pass", "mysql_pwd", "connect.sid", "PHPSESSID", "JSESSIONID", "ASP.NET_SessionId", "salt",
    "passcode", "recovery_codes", "backup_codes", "security_code", "card_code", "passport_number",
    "social_security_number", "socialSecurityNumber", "auth_key", "master_key", "account_key", "AccountKey",
    "subscription_key", "Ocp-Apim-Subscription-Key", "encryption_key", "signing_key", "client_key",
    "service_key", "X-Shopify-Hmac-Sha256", "x-functions-key", "MAILGUN_KEY", "dbpass",
    "user[password]", "user%5Bpassword%5D", "sessionId", "X-Auth-Token", "_authToken",
    "refresh_tokens", "stripetoken", "dbpassword", "password_confirmation", "SECRET_KEY_BASE", "basic_auth",
    "laravel_session", "csrfmiddlewaretoken", "php-auth-pw", "pWd", "PaSsWoRd", "authorizatiOn",
    "aws_access_key_id", "private_key_id", "accessKeyId",
]  # fmt: skip
DESCRIBED = [
    "secret_length", "tokenizer", "max_tokens", "token_type", "session_timeout", "access_token_url",
    "SESSION_COOKIE_AGE", "secretary_name", "token_count", "session_duration", "prompt_tokens",
    "gen_ai.usage.input_tokens", "secretLength", "maxTokens", "tokenType", "password_min_length",
    "password_expires", "signature_version", "cookie_consent", "auth_provider", "primary_key", "has_password",
    "token_lifetime_seconds", "secret_name", "author", "passenger", "pinned", "compass", "keyboard", "bypass",
    "nextPageToken", "page_token", "otp_channel", "passwordless", "sort_key",
    "jwt_config", "auth_settings", "set_cookie_attrs", "cookie_categories", "token_refreshes", "password_resets",
    "secret_question", "credit_card_brand", "passwordStrengthScore", "card_last4",
    "csrf_check_passed", "cvc_check", "jwt_exp", "passport_country", "salt_rounds", "apiKeyPrefix", "credentialId",
    "token_id", "password_reset_requested",
]  # fmt: skip


@pytest.mark.parametrize("key", SENSITIVE)
def test_keys_split_into_words_are_sensitive(key: str) -> None:
    assert Scrubber().sensitive_key(urllib.parse.unquote(key)), key


@pytest.mark.parametrize("key", DESCRIBED)
def test_keys_that_describe_a_value_are_kept(key: str) -> None:
    assert not Scrubber().sensitive_key(key), key


def test_allowlist_and_custom_fragments_still_win() -> None:
    s = Scrubber(keys=["zork"], allow_keys=["db_pass", "Session-Token"])
    assert not s.sensitive_key("db_pass") and not s.sensitive_key("session_token")
    assert s.sensitive_key("my_zork_length")  # a configured fragment is not subject to descriptors
    assert s.redact("db_pass=hunter2 zork=1") == f"db_pass=hunter2 zork={M}"


# -- key=value text ------------------------------------------------------------------------------------

PAIRS = [
    ("https://x.example/cb?code=1&password=hunter2&page=2", f"https://x.example/cb?code=1&password={M}&page=2"),
    ("https://app.example/#access_token=abc123&token_type=bearer", f"https://app.example/#access_token={M}&token_type=bearer"),
    ("user%5Bemail%5D=a%40b.c&user%5Bpassword%5D=s3cret", f"user%5Bemail%5D=a%40b.c&user%5Bpassword%5D={M}"),
    ('{"user": "bob", "password": "hunter2"}', f'{{"user": "bob", "password": {M}}}'),
    ('{"password": {"old": "a1", "new": "b2"}, "plan": "pro"}', f'{{"password": {M}, "plan": "pro"}}'),
    ("Cookie: theme=dark; sessionid=abc123", f"Cookie: {M}"),
    ("Authorization: SSWS 00abcDEF123", f"Authorization: {M}"),
    ("curl -H 'Authorization: Bearer abc123' https://x", f"curl -H 'Authorization: {M}' https://x"),
    ("<settings><password>hunter2</password></settings>", f"<settings><password>{M}</password></settings>"),
    ('<add key="DbPassword" value="s3cret" />', f'<add key="DbPassword" value="{M}" />'),
    ("docker login --password hunter2x registry", f"docker login --password {M} registry"),
    ("sshpass -p s3cret ssh host", f"sshpass -p {M} ssh host"),
    ("STRIPE_KEY=abc123 MAILGUN_KEY=def456", f"STRIPE_KEY={M} MAILGUN_KEY={M}"),
    ("https://app.example/callback?code=abc123&state=xyz", f"https://app.example/callback?code={M}&state=xyz"),
    ("aws configure set aws_secret_access_key abc123", f"aws configure set aws_secret_access_key {M}"),
    ("Server=db;User ID=sa;Password=P@ss!;Encrypt=True", f"Server=db;User ID=sa;Password={M};Encrypt=True"),
    ("AccountName=acct;AccountKey=Zm9vYmFy==;EndpointSuffix=x", f"AccountName=acct;AccountKey={M};EndpointSuffix=x"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", f"aws_secret_access_key = {M}"),
    ("DB_PASSWORD=supersecret", f"DB_PASSWORD={M}"),
    ("//registry.npmjs.org/:_authToken=abc-123", f"//registry.npmjs.org/:_authToken={M}"),
    ("db_pass: correct horse battery staple", f"db_pass: {M}"),
    ("password=hunter2 user=bob", f"password={M} user=bob"),
    ("the api key: abc123", f"the api key: {M}"),
    ("my password is hunter2!", f"my password is {M}"),
    ("redis://:pw123@cache:6379/0", f"redis://{M}@cache:6379/0"),
    ("curl -u alice:wonderland https://api.example", f"curl -u {M} https://api.example"),
    ("machine api.example.com\n  login bob password s3cr3t-Pw", f"machine api.example.com\n  login bob password {M}"),
    ("mysql -h db -u root -pS3cretPw app", f"mysql -h db -u root -p{M} app"),
    ("grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA", f"grant_type=authorization_code&code={M}"),
    ("define('T', 'access_token$sandbox$9wyz9gr9w6w3nhq7$fddc66ab5ee3f60df65e1b1e0e56a79d');", f"define('T', '{M}');"),
    ("  user:\n    token: wt1b9AUCmOv4SnUq2LjkQzToolu.hsMwt7wdXzsKo1TkSE8mmMF3tIzIf", f"  user:\n    token: {M}"),
    ("redis-cli -h cache -a Xk3pq9Zt7Lw2 ping", f"redis-cli -h cache -a {M} ping"),
    ("os.environ['DB_PASSWORD'] = 'Xk3pq9Zt7Lw2'", f"os.environ['DB_PASSWORD'] = {M}"),
    ("requests.get(url, auth=('bob', 'Xk3pq9Zt7Lw2'))", f"requests.get(url, auth={M})"),
    ("FROM python:3.12\nENV DB_PASSWORD Xk3pq9Zt7Lw2", f"FROM python:3.12\nENV DB_PASSWORD {M}"),
    ("Login failed for bob with password 'Xk3pq9Zt7Lw2'", f"Login failed for bob with password '{M}'"),
    ("pin code is 4821", f"pin code is {M}"),
    ("Authorization: Bot NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I", f"Authorization: {M}"),
    ("bot NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I leaked", f"bot {M} leaked"),
    ("NOTION=secret_KFQs1DxBA9RelOxOPbbNcRV7vZgGEFW5jcnTAOivg3Q", f"NOTION={M}"),
    ("https://x.example/cb?data=%7B%22password%22%3A%22Xk3pq9Zt%22%7D", f'https://x.example/cb?data={{"password":{M}}}'),
    ("password%3DXk3pq9Zt%26user%3Dbob", f"password={M}&user=bob"),
    ("{'password': b'Xk3pq9Zt'}", f"{{'password': {M}}}"),
    ("MultiDict([('user', 'bob'), ('password', 'Xk3pq9Zt')])", f"MultiDict([('user', 'bob'), ('password', '{M}')])"),
    ("Header(name='X-Api-Key', value='Xk3pq9Zt')", f"Header(name='X-Api-Key', value='{M}')"),
    ("db:\n  password: |\n    Xk3pq9Zt\n  user: app", f"db:\n  password: |\n    {M}\n  user: app"),
    ("java -Dpassword=Xk3pq9Zt --token=Xk3pq9Zt -jar app.jar", f"java -Dpassword={M} --token={M} -jar app.jar"),
    ("sqlcmd -S db -U sa -P Xk3pq9Zt", f"sqlcmd -S db -U sa -P {M}"),
    ("mongosh --host db -u admin -p Xk3pq9Zt", f"mongosh --host db -u admin -p {M}"),
]  # fmt: skip
KEPT = [
    "Password: must be at least 8 characters", "secret_length=32", "token_type=Bearer&expires_in=3600",
    "password=${DB_PASSWORD}", "token: null", "arn:aws:secretsmanager:us-east-1:1:secret:prod/db",
    "Bearer authentication is described in RFC 6750", "the password is too short", "https://example.com/a:b",
    "task_test_1234567890abcdef", "risk-assessment-framework-2024-q3", "OKAKIAIOSFODNN7EXAMPLEWORD",
    "9780306406157", "4006381333931", "1700000000000", "+44 20 7946 0958", "4111 1111 1111 1112",
    "mysql -u root -p app", "authenticate(request, username=username, password=password)", "token=self.token",
    "password: settings.DB_PASSWORD", "WARNING django.security.csrf: Forbidden (CSRF token missing.): /api/login",
    'MountVolume.SetUp failed for volume "db-credentials" : secret "db-credentials" not found',
    "Token: refreshed", "session: expiring", "ENV APP_HOME /app", 'the token "abc-def" is unknown',
    "token=expired&user=1", "session=missing", "password:\n  min_length: 12", "password: |\n  must be long",
    "100%3A1 ratio",
    "('password', 'must be at least 8 characters')", "mongo --port 27017 -p",
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), PAIRS)
def test_only_the_value_of_a_sensitive_key_is_masked(text: str, expected: str) -> None:
    s = Scrubber()
    assert s.redact(text) == expected
    assert s.redact(expected) == expected


@pytest.mark.parametrize("text", KEPT)
def test_harmless_look_alikes_are_kept(text: str) -> None:
    assert Scrubber().redact(text) == text


def test_name_value_records_mask_the_value_of_a_sensitive_name() -> None:
    # HAR headers/cookies/params, form builders and settings lists name the field in a sibling.
    s = Scrubber()
    har = {"headers": [{"name": "Authorization", "value": "Bearer t0k"}, {"name": "Accept", "value": "*/*"}]}
    assert clean(har, s, 100) == {
        "headers": [{"name": "Authorization", "value": M}, {"name": "Accept", "value": "*/*"}]
    }
    assert clean([{"field": "card_cvc", "value": 123}], s, 100) == [{"field": "card_cvc", "value": M}]
    assert clean({"key": "theme", "value": "dark"}, s, 100) == {"key": "theme", "value": "dark"}


UNDER_SENSITIVE_KEYS_KEPT = [
    {"secret_scanning": {"status": "enabled"}},
    {"auth": {"login_title": "Sign in", "forgot_password": "Forgot your password?"}},
    {"dependencies": {"passport": "^0.7.0", "jsonwebtoken": "9.0.2"}},
    {"dsn": "postgresql://db.internal:5432/app?sslmode=require"},
    {"sentry_dsn": "https://4a1f0c2d9b8e47a6b3c5d7e9f1a2b3c4@o450123.ingest.sentry.io/5512345"},
    {"clientToken": "pub3f9c2b1a7d6e5f4a3b2c1d0e9f8a7b6c"},
    {"stripe_key": "pk_live_51Nq8ZfLk3vXb2Jt0cS9wQeYy7pHhRmD4aK6uTn"},
    {"token": {"token_type": "Bearer", "expires_in": 3600}, "password": True, "otp": None},
    {"jwt": {"header": {"alg": "HS256"}}},
    {"password": "", "secret": "********", "token": "${API_TOKEN}", "api_key": "{{ key }}"},
]
UNDER_SENSITIVE_KEYS_MASKED = [
    ({"auth": {"value": "c0rrect-h0rse"}}, {"auth": {"value": M}}),
    ({"credentials": {"data": {"current": "Zk3j9aB2"}}}, {"credentials": {"data": {"current": M}}}),
    ({"session": {"id": "s3ss10n"}, "api_key": {"id": "k1"}}, {"session": {"id": M}, "api_key": {"id": M}}),
    ({"password": "Correct horse battery staple."}, {"password": M}),  # a sentence needs grammar words
    ({"token": {"expires_in": 60, "pin": 4821}}, {"token": {"expires_in": 60, "pin": M}}),
    ({"reset_token": "https://app.example.com/reset/Zk3j9aB2cD4eF5gH6iJ7"}, {"reset_token": M}),
    ({"dsn": "postgresql://app@db/app"}, {"dsn": M}),  # a user name is not a Sentry public key
    ({"api_keys": {"ab12cd34ef56gh78ij90": "ci"}}, {"api_keys": M}),  # keyed by the secrets
    ({"recaptcha_secret": "6LeIxAcTAAAAAGG-vFI1TnRWxMZNFuojJ4WifJWe"}, {"recaptcha_secret": M}),
]


@pytest.mark.parametrize("value", UNDER_SENSITIVE_KEYS_KEPT)
def test_values_that_cannot_be_secrets_are_kept_under_sensitive_keys(value: dict[str, Any]) -> None:
    assert clean(value, Scrubber(), 4096) == value


@pytest.mark.parametrize(("value", "expected"), UNDER_SENSITIVE_KEYS_MASKED)
def test_leaves_under_sensitive_keys_are_masked_unless_benign(value: dict[str, Any], expected: Any) -> None:
    assert clean(value, Scrubber(), 4096) == expected


def test_digits_under_an_id_key_are_an_id_even_when_luhn_valid() -> None:
    s = Scrubber()
    visa = "4111111111111111"
    assert clean({"order_id": visa, "user": {"id": visa}, "ref": visa}, s, 100) == {
        "order_id": visa,
        "user": {"id": visa},
        "ref": visa,
    }
    assert clean({"card_id": visa, "payment_ref": visa, "note": visa, "id": f"{visa} "}, s, 100) == {
        "card_id": M,
        "payment_ref": M,
        "note": M,
        "id": f"{M} ",
    }


def test_pinned_requirements_are_not_assignments() -> None:
    s = Scrubber()
    assert s.redact("django-otp==1.5.4 pyjwt==2.10.1") == "django-otp==1.5.4 pyjwt==2.10.1"
    assert s.redact("if password == 'Zk3j9aB2': ...") == f"if password == {M}: ..."


def test_redact_pairs_masks_a_cut_nested_value_to_the_end() -> None:
    assert Scrubber().redact_pairs('{"a": 1, "credentials": {"user": "x", "pw') == f'{{"a": 1, "credentials": {M}'


# -- cards -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    ["6205500000000000004", "6200000000000005", "36227206271667", "3600 6666 3333 44", "6304000000000000",
     "5019 5555 4444 5555", "2223003122003222", "3782-822463-10005"],
)  # fmt: skip
def test_cards_of_every_issuer_and_length_are_masked(card: str) -> None:
    assert Scrubber().redact(f"paid with {card} today") == f"paid with {M} today"


@given(st.text(alphabet="0123456789", min_size=12, max_size=19))
def test_our_luhn_agrees_with_python_stdnum(digits: str) -> None:
    assert luhn_valid(digits) == stdnum_luhn.is_valid(digits)


@given(st.text(alphabet="0123456789 -abc", max_size=60))
def test_card_spans_are_cards(text: str) -> None:
    for start, end in card_spans(text):
        assert is_card(text[start:end].replace(" ", "").replace("-", ""))


# -- property-based: nothing configured survives; masking is idempotent ------------------------------

EXTRA_KEY = "zork"
EXTRA_PATTERN = r"ZK-[0-9a-f]{32}"
MARKERS = st.uuids().map(lambda u: f"S3CR3T{u.hex}")
PATTERNED = st.uuids().map(lambda u: f"ZK-{u.hex}")
FILLER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?-_/=&#'\"", max_size=25)
KEYS = st.sampled_from(["password", "api_key", "X-Auth-Token", "db_pass", "sessionid", "zork", "my.zork.id"])


def _framed(key: str, secret: str) -> st.SearchStrategy[str]:
    """``key``'s ``secret`` written as the formats of the wild write it."""
    forms = [
        f"{key}={secret}", f"?a=1&{key}={secret}&b=2", f'{{"{key}": "{secret}"}}', f"{key}: {secret}",
        f"{key} = '{secret}'", f"{key}=\"{secret}\"", f"x=1;{key}={secret};y=2", f"export {key.upper()}={secret}",
        f'{{"outer": "{{\\"{key}\\": \\"{secret}\\"}}"}}', f"Cookie: a=b; {key}={secret}",
    ]  # fmt: skip
    return st.sampled_from(forms)


@st.composite
def _text_with_secret(draw: st.DrawFn) -> tuple[str, str]:
    key, marker = draw(KEYS), draw(MARKERS)
    body = draw(_framed(key, marker))
    return f"{draw(FILLER)} {body}\n{draw(FILLER)}", marker


def _nest(draw: st.DrawFn, value: Any) -> Any:
    for wrap in draw(st.lists(st.sampled_from(["list", "tuple", "dict", "bytes"]), max_size=3)):
        if wrap == "list":
            value = [1, value]
        elif wrap == "tuple":
            value = ("a", value)
        elif wrap == "dict":
            value = {"note": value}
        elif isinstance(value, str):
            value = value.encode()
    return value


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, bytes):
        yield obj.decode("latin-1")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _strings(item)


SCRUBBER = Scrubber(keys=[EXTRA_KEY], value_patterns=[EXTRA_PATTERN])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_configured_secret_never_survives(data: st.DataObject) -> None:
    text, marker = data.draw(_text_with_secret())
    loose = data.draw(PATTERNED)
    value = _nest(data.draw, f"{data.draw(FILLER)}{loose} {text}")
    out = clean({"plan": "pro", "payload": value}, SCRUBBER, 4096)
    flat = "\n".join(_strings(out))
    assert marker not in flat and loose not in flat, out
    assert out["plan"] == "pro"


SECRETISH = st.one_of(
    MARKERS, PATTERNED,
    st.just("4111 1111 1111 1111"), st.just("Bearer abc.DEF-123_x"), st.just("redis://:pw@h"),
    st.just("AKIAIOSFODNN7EXAMPLE"), st.just("password=x y"), st.just('"token": "t0k"'),
    st.just("-----BEGIN PRIVATE KEY-----\nMIIE"), st.just(M), st.just("Cookie: a=b; sid=1"),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(FILLER, SECRETISH), max_size=8).map(" ".join))
def test_masking_is_idempotent(text: str) -> None:
    once = SCRUBBER.redact(text)
    assert SCRUBBER.redact(once) == once
    assert Scrubber(mask="##").redact(Scrubber(mask="##").redact(text)) == Scrubber(mask="##").redact(text)


# -- records of other loggers, at export ----------------------------------------------------------------


def test_records_of_other_loggers_get_every_rule_at_export() -> None:
    with Receiver() as receiver:
        provider = LoggerProvider(shutdown_on_exit=False)
        processor = EventBatchProcessor(OTLPEventExporter(receiver.endpoint, timeout=5), first_seen_delay=None)
        provider.add_log_record_processor(processor)
        try:
            provider.get_logger("some.library").emit(
                event_name="http.request",
                body="GET /login?user=bob&password=hunter2 card 4242 4242 4242 4242",
                attributes={"url.full": "https://x.example/?access_token=abc123&page=2", "otp_attempt": "123456"},
            )
            assert processor.flush(timeout=5)
            (event,) = receiver.wait_for(1, timeout=5)
        finally:
            processor.shutdown(timeout=1)
    assert event["body"] == f"GET /login?user=bob&password={M} card {M}"
    assert event["attributes"]["url.full"] == f"https://x.example/?access_token={M}&page=2"
    assert event["attributes"]["otp_attempt"] == M


# -- hostile input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['"password": [' * 1500, "password=1&" * 1500, "1 " * 8000, "sk-" * 5000, "password='" * 1500,
     "Authorization: Token token=" * 600, "=" * 16000, "".join(f"k{i}=v&" for i in range(2000))],
)  # fmt: skip
def test_repeated_structures_are_masked_and_stable(text: str) -> None:
    s = Scrubber()
    out = s.redact(text)
    assert s.redact(out) == out
    if "password" in text:
        assert "password" in out and M in out
