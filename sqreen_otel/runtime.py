"""What ``track()`` reads on every call: the scrubber, the logger, the limits.

``configure()`` replaces it whole; ``track()`` reads one module attribute and never takes a lock.
Before ``configure()`` it holds the defaults and the global OTel LoggerProvider.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import _logs

from . import blocking
from .clientip import IPNetwork, parse_networks
from .scrub import Scrubber
from .settings import Settings

if TYPE_CHECKING:
    from .actions import ActionsFile

LOGGER_NAME = "sqreen_otel"


class DirectSink(Protocol):
    def direct(self, logger: Any) -> tuple[Any, tuple[Any, Any]] | None:
        """``(processor, (resource, scope))`` when that processor alone would see ``logger``'s records."""
        ...


@dataclass(frozen=True)
class Runtime:
    settings: Settings = field(default_factory=Settings)
    scrubber: Scrubber = field(default_factory=Scrubber)
    logger: _logs.Logger = field(default_factory=lambda: _logs.get_logger(LOGGER_NAME))
    configured: bool = False
    trusted_proxies: tuple[IPNetwork, ...] | None = None  # None: believe forwarding headers (default rule)
    actions_file: ActionsFile | None = None
    # configure()'s processor slot on the provider: track() asks it for the fast path (``pipeline._Slot.direct``).
    slot: DirectSink | None = None

    @property
    def disabled(self) -> bool:
        return self.settings.disabled

    def refresh_actions(self) -> None:
        """Pick up a changed actions file; at most one ``stat`` a second, from any request path.

        Also restarts, in a forked worker, the actions poller its parent ran (gunicorn ``--preload``).
        """
        if self.actions_file is not None:
            self.actions_file.maybe_refresh()
        blocking.run_resumed()

    @classmethod
    def build(cls, settings: Settings, logger: _logs.Logger | None = None, *, configured: bool = True) -> Runtime:
        from . import actions, blocking

        actions_file = None
        if settings.actions_file:
            actions_file = actions.ActionsFile(settings.actions_file, blocking.block_list)
            actions_file.refresh()
        return cls(
            settings=settings,
            scrubber=Scrubber.from_settings(settings),
            logger=logger if logger is not None else _logs.get_logger(LOGGER_NAME),
            configured=configured,
            trusted_proxies=parse_networks(settings.trusted_proxies) if settings.trusted_proxies else None,
            actions_file=actions_file,
        )


def _from_environment() -> Runtime:
    try:
        settings = Settings.load()
    except (TypeError, ValueError) as exc:
        logging.getLogger(LOGGER_NAME).error("ignoring bad SQREEN_OTEL_* settings: %s", exc)
        settings = Settings()
    try:
        return Runtime.build(settings, configured=False)
    except (TypeError, ValueError) as exc:
        logging.getLogger(LOGGER_NAME).error("ignoring bad SQREEN_OTEL_* settings: %s", exc)
        return Runtime()


current = _from_environment()


def install(runtime: Runtime) -> None:
    global current
    current = runtime
