"""The web benchmark's apps, served by real servers (gunicorn for Flask, uvicorn for Starlette).

Both sides are the same app instrumented by OpenTelemetry (its Flask / Starlette instrumentation, an
SDK TracerProvider). ``BENCH_SIDE=bare``: the handler does one bare ``logger.emit`` through OTel's
``BatchLogRecordProcessor`` and ``OTLPLogExporter``; ``BENCH_SIDE=ours``: our integration and one
``track()`` through ``configure()``'s pipeline. Both export to the receiver at ``BENCH_ENDPOINT``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

SIDE = os.environ.get("BENCH_SIDE", "ours")
ENDPOINT = os.environ.get("BENCH_ENDPOINT", "http://127.0.0.1:4318/v1/logs")
PROPERTIES = {
    "email_domain": "example.com",
    "plan": "pro",
    "channel": "email",
    "step": "confirm",
    "country": "FR",
    "locale": "fr-FR",
    "reason": "password reset requested from settings page",
    "referrer": "https://example.com/account",
}
ATTRIBUTES = {f"sqreen.properties.{key}": value for key, value in PROPERTIES.items()}
OPTIONS = {"properties": PROPERTIES}


def _setup() -> Any:
    """Tracing on both sides; the log pipeline of this side. Returns the bare side's logger."""
    trace.set_tracer_provider(TracerProvider())
    if SIDE == "bare":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        provider = LoggerProvider()
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(ENDPOINT)))
        return provider.get_logger("bench")
    import sqreen_otel

    sqreen_otel.configure(endpoint=ENDPOINT)
    return None


def _bare_emit(logger: Any) -> None:
    now = time.time_ns()
    logger.emit(
        event_name="password_reset", timestamp=now, observed_timestamp=now,
        severity_number=SeverityNumber.INFO, severity_text="INFO", attributes=ATTRIBUTES,
    )  # fmt: skip


def flask() -> Any:
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    logger = _setup()
    app = Flask("bench")

    @app.get("/reset")
    def reset() -> str:
        if logger is not None:
            _bare_emit(logger)
        else:
            import sqreen_otel

            sqreen_otel.track("password_reset", OPTIONS)
        return "ok"

    if logger is None:
        from sqreen_otel.integrations.flask import Sqreen

        Sqreen(app)
    FlaskInstrumentor().instrument_app(app)
    return app


def starlette() -> Any:
    from opentelemetry.instrumentation.starlette import StarletteInstrumentor
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    logger = _setup()

    async def reset(request: Any) -> PlainTextResponse:
        if logger is not None:
            _bare_emit(logger)
        else:
            import sqreen_otel

            sqreen_otel.track("password_reset", OPTIONS)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/reset", reset)])
    if logger is None:
        from sqreen_otel.integrations.asgi import SqreenASGIMiddleware

        app.add_middleware(SqreenASGIMiddleware)
    StarletteInstrumentor.instrument_app(app)
    return app
