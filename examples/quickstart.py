"""Quickstart: a local receiver, a few security events, and what arrives.

    python examples/quickstart.py

Starts the bundled OTLP receiver on loopback, configures sqreen_otel to export to it, tracks a
custom event, a failed and a successful login and a signup inside a traced "request", then
flushes and prints what the receiver decoded, and the pipeline's counters.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import sqreen_otel
from sqreen_otel.receiver import Receiver


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("quickstart")

    with Receiver(echo=True) as receiver:
        print(f"receiver listening on {receiver.endpoint}\n")
        sqreen_otel.configure(endpoint=receiver.endpoint)

        # Each block runs like a web request: its own span and its own context, so the user that
        # identify() (or a successful login) sets stays with that request only.
        def login() -> None:
            sqreen_otel.auth_track(False, email="alice@example.com")
            sqreen_otel.auth_track(True, email="alice@example.com")  # identifies alice for what follows
            sqreen_otel.track(
                "password_reset",
                {
                    "properties": {
                        "reason": "user asked from the settings page",
                        "new_password": "hunter2",  # a sensitive key: masked
                        "note": "card 4111 1111 1111 1111 on file",  # a card number: masked in the text
                        "device": {"os": "linux", "session_id": "abc123"},  # nested: session_id masked
                    }
                },
            )

        def signup() -> None:
            sqreen_otel.signup_track(email="bob@example.com", user_id=42)

        def import_past_event() -> None:
            past = dt.datetime(2018, 3, 15, 14, 42, 0, 79043)  # naive: taken as UTC
            sqreen_otel.track("imported_login", {"properties": {"source": "csv"}, "timestamp": past})

        for name, handler in (("POST /login", login), ("POST /signup", signup), ("import", import_past_event)):
            with tracer.start_as_current_span(name):
                contextvars.copy_context().run(handler)

        delivered = sqreen_otel.flush(timeout=5)
        print(f"\nflushed: {delivered}; receiver holds {len(receiver.events())} events")
        print(f"stats: {sqreen_otel.stats()}")
        sqreen_otel.shutdown()


if __name__ == "__main__":
    main()
