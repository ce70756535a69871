"""What ``track()`` reads on every call: the scrubber, the logger, the limits.

``configure()`` replaces it whole; ``track()`` reads one module attribute and never takes a lock.
Before ``configure()`` it holds the defaults and the global OTel LoggerProvider.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from opentelemetry import _logs

from .scrub import Scrubber
from .settings import Settings

LOGGER_NAME = "sqreen_otel"


@dataclass(frozen=True)
class Runtime:
    settings: Settings = field(default_factory=Settings)
    scrubber: Scrubber = field(default_factory=Scrubber)
    logger: _logs.Logger = field(default_factory=lambda: _logs.get_logger(LOGGER_NAME))
    configured: bool = False

    @property
    def disabled(self) -> bool:
        return self.settings.disabled


def _from_environment() -> Runtime:
    try:
        settings = Settings.load()
    except (TypeError, ValueError) as exc:
        logging.getLogger(LOGGER_NAME).error("ignoring bad SQREEN_OTEL_* settings: %s", exc)
        settings = Settings()
    return Runtime(settings=settings, scrubber=Scrubber.from_settings(settings))


current = _from_environment()


def install(runtime: Runtime) -> None:
    global current
    current = runtime
