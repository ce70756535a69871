"""Auto-instrumentation: ``opentelemetry-instrument`` entry points.

    OTEL_PYTHON_DISTRO=sqreen_otel OTEL_PYTHON_CONFIGURATOR=sqreen_otel opentelemetry-instrument python app.py

The configurator sets up the OTel SDK exactly as OpenTelemetry's own does (``OTEL_*`` variables),
then ``sqreen_otel.configure()`` (``SQREEN_OTEL_*`` variables). The distro runs each framework
instrumentor, then wraps the framework's application class so that every app it creates gets our
middleware (request capture, IP blocking, 403 on ``UserBlocked``). Both do nothing of ours unless
selected by name (``OTEL_PYTHON_DISTRO``, ``OTEL_PYTHON_CONFIGURATOR`` or ``OTEL_LOGS_EXPORTER``),
because OpenTelemetry may pick an installed distro or configurator that nobody asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

logger = logging.getLogger("sqreen_otel")

NAME = "sqreen_otel"
DJANGO_MIDDLEWARE = "sqreen_otel.integrations.django.SqreenMiddleware"


def selected() -> bool:
    """Whether the user named us in one of the variables that select OpenTelemetry components."""
    logs_exporters = [name.strip() for name in os.environ.get("OTEL_LOGS_EXPORTER", "").split(",")]
    return NAME in (os.environ.get("OTEL_PYTHON_DISTRO"), os.environ.get("OTEL_PYTHON_CONFIGURATOR")) or (
        NAME in logs_exporters
    )


class SqreenConfigurator(_OTelSDKConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        if not selected():
            super()._configure(**kwargs)
            return
        # Our exporter must sit behind our processor, not behind OTel's batch processor too.
        logs = os.environ.get("OTEL_LOGS_EXPORTER")
        if logs is not None:
            others = [n.strip() for n in logs.split(",") if n.strip() and n.strip() != NAME]
            os.environ["OTEL_LOGS_EXPORTER"] = ",".join(others) or "none"
        try:
            super()._configure(**kwargs)
        finally:  # the distro (it runs next) and child processes must still see that we were named
            if logs is not None:
                os.environ["OTEL_LOGS_EXPORTER"] = logs
        from .. import configure

        configure()


class SqreenDistro(BaseDistro):
    def _configure(self, **kwargs: Any) -> None:
        pass

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        super().load_instrumentor(entry_point, **kwargs)
        patch = _PATCHES.get(entry_point.name)
        if patch is not None and selected():
            try:
                patch()
            except Exception:  # a framework we cannot wrap must not stop the app
                logger.exception("sqreen_otel could not hook %s", entry_point.name)


def _wrap_class(module: Any, attribute: str, install: Callable[[Any], None]) -> None:
    """Replace ``module.attribute`` by a subclass whose instances get ``install(self)`` after init."""
    base = getattr(module, attribute)
    if getattr(base, "_sqreen_otel_hooked", False):
        return

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        install(self)

    hooked = type(base.__name__, (base,), {"__init__": __init__, "_sqreen_otel_hooked": True})
    hooked.__module__ = base.__module__
    setattr(module, attribute, hooked)


def _patch_flask() -> None:
    import flask

    from .flask import Sqreen

    _wrap_class(flask, "Flask", Sqreen().init_app)


def _add_asgi_middleware(app: Any) -> None:
    from .asgi import SqreenASGIMiddleware

    app.add_middleware(SqreenASGIMiddleware)


def _patch_fastapi() -> None:
    import fastapi

    _wrap_class(fastapi, "FastAPI", _add_asgi_middleware)


def _patch_starlette() -> None:
    import starlette.applications

    _wrap_class(starlette.applications, "Starlette", _add_asgi_middleware)


def _patch_django() -> None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    except ImproperlyConfigured:  # as OTel's instrumentor: no settings module yet, nothing to hook
        logger.debug("DJANGO_SETTINGS_MODULE not configured; sqreen_otel middleware not added")
        return
    if DJANGO_MIDDLEWARE in middleware:
        return
    # Right after OpenTelemetry's own middleware, so that our events see its server span.
    position = next((i + 1 for i, path in enumerate(middleware) if "opentelemetry" in path), 0)
    middleware.insert(position, DJANGO_MIDDLEWARE)
    settings.MIDDLEWARE = middleware


_PATCHES: dict[str, Callable[[], None]] = {
    "flask": _patch_flask,
    "fastapi": _patch_fastapi,
    "starlette": _patch_starlette,
    "django": _patch_django,
}
