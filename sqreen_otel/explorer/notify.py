"""Playbook notifications: Slack incoming webhooks, signed JSON webhooks and email over SMTP.

The engine must never wait on a network: ``Notifier.send`` only appends to a bounded queue, and one
worker thread delivers. A failure (connection error, timeout, 408/429/5xx, an SMTP error) is retried
with exponential backoff and jitter (``Retry-After`` honoured) up to ``max_attempts``; 4xx answers are
final. Each channel is rate-limited by a token bucket (``burst`` messages, then ``per_minute``): an
attack that opens many incidents cannot flood a Slack channel or an inbox. Every outcome is counted
(``stats()``) and failures are logged with the channel's name and host, never its URL (a Slack webhook
URL is a credential) nor the SMTP password.

Webhook bodies are signed as GitHub and Stripe do: ``X-Sqreen-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact body bytes with the channel's ``secret``, and ``X-Sqreen-Timestamp`` (epoch
seconds), which the body repeats as ``timestamp`` so that the signature covers it: a receiver checks
the signature with ``hmac.compare_digest`` and refuses old timestamps (replays).

Email uses ``SQREEN_OTEL_SMTP_URL``: ``smtp://user:password@host:port`` (plain, upgraded with
STARTTLS when ``?starttls=true`` or ``SQREEN_OTEL_SMTP_STARTTLS=true``) or ``smtps://...`` (TLS from
the start); the sender is ``?from=addr`` or ``SQREEN_OTEL_SMTP_FROM``, else ``sqreen-otel@<host name>``.
"""

from __future__ import annotations

import dataclasses
import email.message
import email.utils
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import os
import random
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import requests

logger = logging.getLogger("sqreen_otel.explorer")

SIGNATURE_HEADER = "X-Sqreen-Signature"
TIMESTAMP_HEADER = "X-Sqreen-Timestamp"
MAX_BODY_BYTES = 256 * 1024  # one notification; larger payloads are cut (event lists are capped before)
MAX_RESPONSE_BYTES = 64 * 1024  # what we read of a receiver's answer
MAX_SUBJECT = 200
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ChannelSpec(Protocol):
    """What a notification channel of the playbook file says (``spec.Channel``)."""

    @property
    def kind(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def secret(self) -> str | None: ...
    @property
    def emails(self) -> tuple[str, ...]: ...


@dataclasses.dataclass(frozen=True)
class SMTPConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    tls: bool = False  # smtps: TLS from the first byte
    starttls: bool = False
    sender: str = "sqreen-otel@localhost"
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, *, starttls: bool | None = None, sender: str | None = None) -> SMTPConfig:
        """``smtp://user:pass@host:port?starttls=true&from=a@b.c`` or ``smtps://...``; ValueError naming the problem."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP URL must look like smtp://user:password@host:port or smtps://...")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SMTP URL has a bad port") from None
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"starttls", "from"})
        if unknown:
            raise ValueError(f"SMTP URL: unknown option(s) {', '.join(unknown)}; known: from, starttls")
        if starttls is None:
            starttls = query.get("starttls", "false").lower() in ("1", "true", "yes", "on")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            starttls=starttls and not tls,
            sender=sender or query.get("from") or f"sqreen-otel@{socket.gethostname() or 'localhost'}",
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SMTPConfig | None:
        env = os.environ if environ is None else environ
        url = env.get("SQREEN_OTEL_SMTP_URL")
        if not url:
            return None
        starttls_env = env.get("SQREEN_OTEL_SMTP_STARTTLS")
        starttls = None if starttls_env is None else starttls_env.strip().lower() in ("1", "true", "yes", "on")
        return cls.from_url(url, starttls=starttls, sender=env.get("SQREEN_OTEL_SMTP_FROM") or None)


@dataclasses.dataclass
class _Item:
    channel: str
    subject: str
    text: str
    payload: dict[str, Any]
    attempt: int = 0


class _Retry(Exception):
    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class _Final(Exception):
    pass


class _Bucket:
    """Token bucket: ``burst`` at once, refilled at ``per_minute``."""

    def __init__(self, burst: int, per_minute: float, now: float) -> None:
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.rate = per_minute / 60.0
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Notifier:
    """Delivers notifications on its own thread; ``send`` never blocks and never raises."""

    def __init__(
        self,
        channels: Mapping[str, ChannelSpec],
        *,
        smtp: SMTPConfig | None = None,
        max_queue: int = 1000,
        max_attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        burst: int = 10,
        per_minute: float = 6.0,
        timeout: float = 10.0,
    ) -> None:
        self._channels = dict(channels)
        self.smtp = smtp
        self.max_queue = max_queue
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.burst = burst
        self.per_minute = per_minute
        self.timeout = timeout
        self._buckets: dict[str, _Bucket] = {}
        self._heap: list[tuple[float, int, _Item]] = []
        self._order = itertools.count()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._counts: dict[str, dict[str, int]] = {}
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": "sqreen-otel", "Accept-Encoding": "identity"})
        self._thread = threading.Thread(target=self._run, name="sqreen_otel.explorer.notify", daemon=True)
        self._thread.start()

    # -- the engine's side ---------------------------------------------------------------------------

    def set_channels(self, channels: Mapping[str, ChannelSpec]) -> None:
        """A reloaded playbook file: new messages use the new channels (queued ones too)."""
        with self._lock:
            self._channels = dict(channels)

    def send(self, channel: str, subject: str, text: str, payload: Mapping[str, Any]) -> bool:
        """Queue one notification; ``False`` (counted, logged) when unknown, rate-limited, or the queue is full."""
        try:
            return self._send(channel, subject, text, payload)
        except Exception:  # a bug of ours must not reach the engine
            logger.exception("notification to %r could not be queued", channel)
            self._count(channel, "failed")
            return False

    def _send(self, channel: str, subject: str, text: str, payload: Mapping[str, Any]) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return False
            if channel not in self._channels:
                self._count_locked(channel, "unknown_channel")
                logger.error("notification channel %r is not defined in the playbook file", channel)
                return False
            bucket = self._buckets.get(channel)
            if bucket is None:
                bucket = self._buckets[channel] = _Bucket(self.burst, self.per_minute, now)
            if not bucket.take(now):
                counts = self._count_locked(channel, "rate_limited")
                if counts["rate_limited"] in (1, 10, 100) or counts["rate_limited"] % 1000 == 0:
                    logger.warning(
                        "notification channel %r is rate-limited (%d a minute after a burst of %d): %d dropped so far",
                        channel, self.per_minute, self.burst, counts["rate_limited"],
                    )  # fmt: skip
                return False
            if len(self._heap) + self._in_flight >= self.max_queue:
                self._count_locked(channel, "queue_full")
                logger.error("notification queue full (%d): a notification to %r is dropped", self.max_queue, channel)
                return False
            item = _Item(channel, " ".join(subject.split())[:MAX_SUBJECT], text, dict(payload))
            heapq.heappush(self._heap, (now, next(self._order), item))
            self._count_locked(channel, "queued")
            self._wake.notify_all()
        return True

    def stats(self) -> dict[str, dict[str, int]]:
        """Per channel: queued, sent, retried, failed, rate_limited, queue_full, unknown_channel."""
        with self._lock:
            return {channel: dict(counts) for channel, counts in self._counts.items()}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until nothing is queued or being sent (retries still waiting count as queued)."""
        with self._lock:
            return self._wake.wait_for(lambda: not self._heap and not self._in_flight, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is due within ``timeout``, then stop (retries not yet due are dropped, counted)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._wake.wait_for(
                lambda: not self._in_flight and not any(due <= time.monotonic() for due, _, _ in self._heap),
                max(0.0, deadline - time.monotonic()),
            )
            self._closed = True
            for _, _, item in self._heap:
                self._count_locked(item.channel, "failed")
            self._heap.clear()
            self._wake.notify_all()
        self._thread.join(max(0.1, deadline - time.monotonic()))
        self._session.close()

    # -- the worker ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, item = heapq.heappop(self._heap)
                        channel = self._channels.get(item.channel)
                        self._in_flight += 1
                        break
                    self._wake.wait(None if not self._heap else self._heap[0][0] - now)
            try:
                self._deliver(item, channel)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._wake.notify_all()

    def _deliver(self, item: _Item, channel: ChannelSpec | None) -> None:
        if channel is None:  # removed by a reload while queued
            self._count(item.channel, "failed")
            logger.error("notification channel %r was removed; a notification is dropped", item.channel)
            return
        item.attempt += 1
        try:
            if channel.kind == "slack":
                self._post_slack(channel, item)
            elif channel.kind == "webhook":
                self._post_webhook(channel, item)
            elif channel.kind == "email":
                self._mail(channel, item)
            else:
                raise _Final(f"unknown channel kind {channel.kind!r}")
        except _Retry as exc:
            if item.attempt >= self.max_attempts:
                self._count(item.channel, "failed")
                logger.error(
                    "notification to %r (%s) failed after %d attempts: %s",
                    item.channel, _where(channel), item.attempt, exc,
                )  # fmt: skip
                return
            delay = min(self.max_backoff, self.backoff * 2 ** (item.attempt - 1)) * random.uniform(1.0, 1.5)
            if exc.after is not None:
                delay = max(delay, min(exc.after, self.max_backoff))
            self._count(item.channel, "retried")
            logger.warning(
                "notification to %r (%s) failed (%s); retry %d in %.1f s",
                item.channel, _where(channel), exc, item.attempt, delay,
            )  # fmt: skip
            with self._lock:
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), item))
            return
        except _Final as exc:
            self._count(item.channel, "failed")
            logger.error("notification to %r (%s) rejected: %s", item.channel, _where(channel), exc)
            return
        except Exception as exc:  # a bug of ours: counted and logged, the worker lives on
            self._count(item.channel, "failed")
            logger.exception("notification to %r failed: %r", item.channel, exc)
            return
        self._count(item.channel, "sent")

    # -- transports ----------------------------------------------------------------------------------

    def _post_slack(self, channel: ChannelSpec, item: _Item) -> None:
        body = json.dumps({"text": f"*{item.subject}*\n{item.text}"[:MAX_BODY_BYTES]}).encode()
        self._post(channel, body, {"Content-Type": "application/json"})

    def _post_webhook(self, channel: ChannelSpec, item: _Item) -> None:
        timestamp = str(int(time.time()))
        body = webhook_body(item.payload, timestamp)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if channel.secret:
            headers[SIGNATURE_HEADER] = signature(channel.secret, body)
        self._post(channel, body, headers)

    def _post(self, channel: ChannelSpec, body: bytes, headers: dict[str, str]) -> None:
        if not channel.url:
            raise _Final("no URL")
        try:
            response = self._session.post(
                channel.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
            )
        except requests.RequestException as exc:
            raise _Retry(type(exc).__name__) from None
        with response:
            read = 0
            for chunk in response.iter_content(16 * 1024):  # drain a little, so the connection can be reused
                read += len(chunk)
                if read > MAX_RESPONSE_BYTES:
                    break
            status = response.status_code
            if 200 <= status < 300:
                return
            if status in RETRIABLE_STATUS:
                raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            raise _Final(f"HTTP {status}")

    def _mail(self, channel: ChannelSpec, item: _Item) -> None:
        config = self.smtp
        if config is None:
            raise _Final("no SMTP server: set SQREEN_OTEL_SMTP_URL")
        if not channel.emails:
            raise _Final("no recipients")
        message = email.message.EmailMessage()
        message["Subject"] = item.subject
        message["From"] = config.sender
        message["To"] = ", ".join(channel.emails)
        message["Date"] = email.utils.formatdate(localtime=False)
        message["Message-ID"] = email.utils.make_msgid(domain="sqreen-otel")
        message.set_content(item.text[:MAX_BODY_BYTES])
        try:
            if config.tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            with client:
                if config.starttls:
                    client.starttls(context=ssl.create_default_context())
                if config.username:
                    _login(client, config.username, config.password or "")
                refused = client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise _Final(f"SMTP authentication failed ({exc.smtp_code})") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise _Final(f"every recipient refused ({len(exc.recipients)})") from None
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise _Final(f"SMTP {exc.smtp_code}") from None
            raise _Retry(f"SMTP {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _Retry(type(exc).__name__) from None
        if refused:
            logger.warning("notification to %r: %d recipient(s) refused", item.channel, len(refused))

    # -- counters ------------------------------------------------------------------------------------

    def _count(self, channel: str, outcome: str) -> None:
        with self._lock:
            self._count_locked(channel, outcome)

    def _count_locked(self, channel: str, outcome: str) -> dict[str, int]:
        counts = self._counts.setdefault(channel, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        return counts


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """PLAIN when offered, else smtplib's choice: a refused PLAIN means bad credentials, not a cue to try LOGIN."""
    client.ehlo_or_helo_if_needed()
    if "PLAIN" in client.esmtp_features.get("auth", "").upper().split():
        client.user, client.password = username, password
        client.auth("PLAIN", client.auth_plain)
    else:
        client.login(username, password)


def webhook_body(payload: Mapping[str, Any], timestamp: str) -> bytes:
    """The exact bytes that are signed and sent: the payload plus ``timestamp``, compact JSON."""
    return json.dumps({**payload, "timestamp": int(timestamp)}, separators=(",", ":"), default=str).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body with the channel's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _retry_after(raw: str | None) -> float | None:
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _where(channel: ChannelSpec) -> str:
    """The host a channel talks to, for logs: never its URL path (Slack's is the credential)."""
    if channel.kind == "email":
        return "email"
    host = urlsplit(channel.url or "").hostname or "?"
    return f"{channel.kind} {host}"
