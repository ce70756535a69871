"""Playbook notifications against real local receivers: HTTP servers (Slack, webhooks) and an SMTP server."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sqreen_otel.explorer.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, Notifier, SMTPConfig

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str
    url: str | None = None
    secret: str | None = None
    emails: tuple[str, ...] = ()


class Receiver:
    """An HTTP server that records each POST and answers with the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers), body))
                receiver.arrived.set()
                receiver.hold.wait(10)
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@contextlib.contextmanager
def notifier(channels: dict[str, Channel], **options: Any) -> Iterator[Notifier]:
    options.setdefault("backoff", 0.01)
    sender = Notifier(channels, **options)
    try:
        yield sender
    finally:
        sender.close(timeout=2)


def test_webhook_is_signed_over_the_exact_body(receiver: Receiver) -> None:
    channels = {"soc": Channel("soc", "webhook", receiver.url + "/hooks/sqreen", secret="k3y")}
    with notifier(channels) as sender:
        assert sender.send("soc", "credential-stuffing fired", "text", {"playbook": {"id": "cs"}, "targets": ["a"]})
        assert sender.wait_idle()
        assert sender.stats() == {"soc": {"queued": 1, "sent": 1}}
    ((path, headers, body),) = receiver.requests
    assert path == "/hooks/sqreen" and headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    payload = json.loads(body)
    assert payload == {"playbook": {"id": "cs"}, "targets": ["a"], "timestamp": int(headers[TIMESTAMP_HEADER])}


def test_webhook_without_secret_is_unsigned(receiver: Receiver) -> None:
    with notifier({"h": Channel("h", "webhook", receiver.url)}) as sender:
        sender.send("h", "s", "t", {"a": 1})
        assert sender.wait_idle()
    assert SIGNATURE_HEADER not in receiver.requests[0][1]


def test_slack_incoming_webhook_gets_text(receiver: Receiver) -> None:
    with notifier({"slack": Channel("slack", "slack", receiver.url + "/services/T/B/X")}) as sender:
        sender.send("slack", "Alert:\n credential-stuffing", "203.0.113.7 blocked for 1h", {"ignored": True})
        assert sender.wait_idle()
    ((_, _, body),) = receiver.requests
    assert json.loads(body) == {"text": "*Alert: credential-stuffing*\n203.0.113.7 blocked for 1h"}


def test_transient_failures_are_retried_with_retry_after(receiver: Receiver) -> None:
    receiver.script = [(503, {}), (429, {"Retry-After": "0"}), (200, {})]
    with notifier({"h": Channel("h", "webhook", receiver.url)}) as sender:
        sender.send("h", "s", "t", {"n": 1})
        assert sender.wait_idle()
        assert sender.stats()["h"] == {"queued": 1, "retried": 2, "sent": 1}
    bodies = [body for _, _, body in receiver.requests]
    assert len(bodies) == 3 and all(json.loads(b)["n"] == 1 for b in bodies)


def test_client_errors_are_final_and_counted(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.script = [(404, {})]
    secret_path = "/services/T000/B000/SECRETPART"
    with notifier({"slack": Channel("slack", "slack", receiver.url + secret_path)}) as sender:
        sender.send("slack", "s", "t", {})
        assert sender.wait_idle()
        assert sender.stats()["slack"] == {"queued": 1, "failed": 1}
    assert len(receiver.requests) == 1
    assert "HTTP 404" in caplog.text and "SECRETPART" not in caplog.text  # the webhook URL is a credential


def test_unreachable_receiver_gives_up_after_max_attempts(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connections are refused
    with notifier({"h": Channel("h", "webhook", f"http://127.0.0.1:{port}/x")}, max_attempts=3) as sender:
        sender.send("h", "s", "t", {})
        assert sender.wait_idle()
        assert sender.stats()["h"] == {"queued": 1, "retried": 2, "failed": 1}
    assert "failed after 3 attempts" in caplog.text


def test_send_never_waits_on_a_slow_receiver(receiver: Receiver) -> None:
    receiver.hold.clear()  # the receiver keeps the first request open
    with notifier({"h": Channel("h", "webhook", receiver.url)}) as sender:
        assert sender.send("h", "first", "t", {"n": 1})
        assert receiver.arrived.wait(5)  # the worker is now stuck in the slow receiver...
        assert sender.send("h", "second", "t", {"n": 2})  # ...and send() still returns at once
        assert sender.stats()["h"]["queued"] == 2
        receiver.hold.set()
        assert sender.wait_idle()
        assert sender.stats()["h"]["sent"] == 2


def test_rate_limit_per_channel(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    channels = {"a": Channel("a", "webhook", receiver.url + "/a"), "b": Channel("b", "webhook", receiver.url + "/b")}
    with notifier(channels, burst=2, per_minute=0.001) as sender:
        assert [sender.send("a", "s", "t", {"i": i}) for i in range(4)] == [True, True, False, False]
        assert sender.send("b", "s", "t", {})  # another channel has its own budget
        assert sender.wait_idle()
        stats = sender.stats()
    assert stats["a"] == {"queued": 2, "sent": 2, "rate_limited": 2}
    assert stats["b"] == {"queued": 1, "sent": 1}
    assert "rate-limited" in caplog.text


def test_queue_bound_and_unknown_channel(receiver: Receiver) -> None:
    receiver.hold.clear()
    with notifier({"h": Channel("h", "webhook", receiver.url)}, max_queue=2, burst=100) as sender:
        assert sender.send("h", "s", "t", {})
        assert receiver.arrived.wait(5)
        assert sender.send("h", "s", "t", {})
        assert not sender.send("h", "s", "t", {})  # one in flight + one queued = the bound
        assert not sender.send("nope", "s", "t", {})
        stats = sender.stats()
        receiver.hold.set()
    assert stats["h"]["queue_full"] == 1 and stats["nope"] == {"unknown_channel": 1}


# -- email over a real SMTP server -------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.arrived.set()
        return "250 OK"


def test_email_through_smtp_with_login() -> None:
    from aiosmtpd.smtp import AuthResult

    inbox = Inbox()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=data.login == b"alerts" and data.password == b"p@ss:w")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        smtp = SMTPConfig.from_url(f"smtp://alerts:p%40ss%3Aw@127.0.0.1:{port}?from=sqreen@example.com")
        assert (smtp.username, smtp.password, smtp.starttls, smtp.sender) == (
            "alerts",
            "p@ss:w",
            False,
            "sqreen@example.com",
        )
        channels = {"oncall": Channel("oncall", "email", emails=("oncall@example.com", "sec@example.com"))}
        with notifier(channels, smtp=smtp) as sender:
            sender.send("oncall", "account-takeover: bad@x.y blocked", "A success after 5 failures.", {})
            assert sender.wait_idle()
            assert sender.stats()["oncall"] == {"queued": 1, "sent": 1}
        ((mail_from, rcpt, content),) = inbox.messages
        assert mail_from == "sqreen@example.com" and rcpt == ["oncall@example.com", "sec@example.com"]
        assert b"Subject: account-takeover: bad@x.y blocked" in content and b"A success after 5 failures." in content

    finally:
        controller.stop()


def test_email_without_smtp_settings_is_counted() -> None:
    with notifier({"oncall": Channel("oncall", "email", emails=("a@b.c",))}) as sender:
        sender.send("oncall", "s", "t", {})
        assert sender.wait_idle()
        assert sender.stats()["oncall"] == {"queued": 1, "failed": 1}


def test_smtp_settings_from_the_environment() -> None:
    env = {"SQREEN_OTEL_SMTP_URL": "smtp://u:s3cret@mail.example.com:587", "SQREEN_OTEL_SMTP_STARTTLS": "true"}
    config = SMTPConfig.from_environment(env)
    assert config is not None and (config.host, config.port, config.starttls, config.tls) == (
        "mail.example.com", 587, True, False,
    )  # fmt: skip
    assert "s3cret" not in repr(config)
    assert SMTPConfig.from_environment({}) is None
    assert SMTPConfig.from_url("smtps://mail.example.com").port == 465
    for bad, message in [
        ("http://mail.example.com", "smtp://"),
        ("smtp://mail.example.com:99999", "bad port"),
        ("smtp://h?tls=1", "unknown option"),
    ]:
        with pytest.raises(ValueError, match=message):
            SMTPConfig.from_url(bad)
