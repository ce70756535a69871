"""Settings: keyword arguments, then ``SQREEN_OTEL_<NAME>`` environment variables, then defaults.

Every setting is declared once in ``_FIELDS`` with its parser and its check, so that the error
for a bad value names the setting and the value wherever it came from.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

ENV_PREFIX = "SQREEN_OTEL_"
LOGS_PATH = "/v1/logs"
logger = logging.getLogger("sqreen_otel")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError(f"{name} must be a boolean (true/false), got {raw!r}")


def _parse_number(kind: type) -> Callable[[str, Any], Any]:
    def parse(name: str, raw: Any) -> Any:
        if isinstance(raw, bool):
            raise TypeError(f"{name} must be a number, got {raw!r}")
        try:
            return kind(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None

    return parse


def _parse_str_list(name: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, (list, tuple, set, frozenset)) and all(isinstance(x, str) for x in raw):
        return tuple(raw)
    raise TypeError(f"{name} must be a list of strings or a comma-separated string, got {raw!r}")


def _parse_optional_str_list(name: str, raw: Any) -> tuple[str, ...] | None:
    return None if raw is None else _parse_str_list(name, raw)


def _parse_patterns(name: str, raw: Any) -> tuple[str, ...]:
    # Regular expressions often hold commas: the environment may give them as a JSON list.
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{name} is not a valid JSON list: {exc}") from None
    patterns = _parse_str_list(name, raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{name} has an invalid regular expression {pattern!r}: {exc}") from None
    return patterns


def parse_headers(name: str, raw: Any) -> dict[str, str]:
    """Headers as a mapping, or as OTel's ``key=value,key2=value2`` text (values URL-decoded)."""
    if isinstance(raw, Mapping):
        if all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            return dict(raw)
        raise TypeError(f"{name} must map str to str, got {raw!r}")
    if not isinstance(raw, str):
        raise TypeError(f"{name} must be a mapping or 'key=value,...' text, got {type(raw).__name__}")
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{name} has a malformed entry {item.strip()!r} (expected key=value)")
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def _parse_optional_delay(name: str, raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("off", "none")):
        return None
    return float(_FLOAT(name, raw))


def _parse_optional_str(name: str, raw: Any) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw or None
    raise TypeError(f"{name} must be a string, got {type(raw).__name__}")


def check_endpoint(name: str, url: str) -> str:
    """An OTLP/HTTP logs URL: http(s), a host, a path ending in ``/v1/logs``; a base URL gets that path.

    Raises ``ValueError`` naming ``name``: a URL the exporter could never use would otherwise be
    retried (or rejected) forever, event by event.
    """
    from urllib.parse import urlsplit, urlunsplit

    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        hint = f"; did you mean 'http://{text}'?" if "://" not in text else ""
        raise ValueError(f"{name} must be an http:// or https:// URL ending in {LOGS_PATH}, got {url!r}{hint}")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number in range)
    except ValueError:
        raise ValueError(f"{name} has an invalid port, got {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"{name} has no host, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(LOGS_PATH):
        if path:
            raise ValueError(
                f"{name} must be the OTLP/HTTP logs URL, its path ending in {LOGS_PATH}, got {url!r} "
                f"(a base URL such as {parts.scheme}://{parts.netloc} gets {LOGS_PATH} appended)"
            )
        path = LOGS_PATH
        logger.info("sqreen_otel: %s %r is a base URL; sending to %s", name, url, LOGS_PATH)
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, parts.query, ""))


def _parse_endpoint(name: str, raw: Any) -> str | None:
    value = _parse_optional_str(name, raw)
    return None if value is None else check_endpoint(name, value)


def _parse_secret(name: str, raw: Any) -> bytes | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8")
    raise TypeError(f"{name} must be str or bytes, got {type(raw).__name__}")


def _parse_compression(name: str, raw: Any) -> str:
    value = str(raw).strip().lower() if raw is not None else "none"
    if value not in ("none", "gzip"):
        raise ValueError(f"{name} must be 'none' or 'gzip', got {raw!r}")
    return value


def _parse_span_event_attributes(name: str, raw: Any) -> str:
    value = str(raw).strip().lower()
    if value not in ("slim", "full"):
        raise ValueError(f"{name} must be 'slim' or 'full', got {raw!r}")
    return value


def _parse_mask(name: str, raw: Any) -> str:
    return _parse_optional_str(name, raw) or ""


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value:g}")


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value:g}")


MAX_CONCURRENT_EXPORTS = 8  # requests in flight at most: past a few, the backend's commit is the limit


def check_concurrency(name: str, value: int) -> None:
    if not 1 <= value <= MAX_CONCURRENT_EXPORTS:
        raise ValueError(f"{name} must be 1 to {MAX_CONCURRENT_EXPORTS} (requests in flight), got {value}")


def _non_empty(name: str, value: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")


def _spec(default: Any, parse: Callable[[str, Any], Any], check: Callable[[str, Any], None] | None = None) -> Any:
    return field(default=default, metadata={"parse": parse, "check": check})


_FLOAT = _parse_number(float)
_INT = _parse_number(int)


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one pipeline. See the README's configuration table."""

    # Exporter. ``None`` means: let the exporter read the OTEL_EXPORTER_OTLP_* variables.
    endpoint: str | None = _spec(None, _parse_endpoint)
    headers: dict[str, str] | None = _spec(None, parse_headers)  # noqa: RUF009
    timeout: float | None = _spec(None, _FLOAT, _positive)
    compression: str | None = _spec(None, _parse_compression)
    # Processor.
    flush_interval: float = _spec(60.0, _FLOAT, _positive)
    first_seen_delay: float | None = _spec(1.0, _parse_optional_delay, _non_negative)
    max_queue_size: int = _spec(8192, _INT, _positive)
    max_export_batch_size: int = _spec(512, _INT, _positive)
    max_event_age: float = _spec(900.0, _FLOAT, _positive)
    shutdown_timeout: float = _spec(5.0, _FLOAT, _non_negative)
    max_concurrent_exports: int = _spec(2, _INT, check_concurrency)
    spool_dir: str | None = _spec(None, _parse_optional_str)
    spool_max_bytes: int = _spec(64 * 1024 * 1024, _INT, _positive)
    handle_sigterm: bool = _spec(True, _parse_bool)
    # Values and scrubbing.
    max_value_length: int = _spec(4096, _INT, _positive)
    # Span events: "slim" (name, log.record.uid, user identifiers, client.address) or "full" (every attribute).
    span_event_attributes: str = _spec("slim", _parse_span_event_attributes)
    scrub: bool = _spec(True, _parse_bool)
    scrub_keys: tuple[str, ...] = _spec((), _parse_str_list)
    scrub_replace_keys: tuple[str, ...] | None = _spec(None, _parse_optional_str_list)
    scrub_value_patterns: tuple[str, ...] = _spec((), _parse_patterns)
    scrub_allow_keys: tuple[str, ...] = _spec((), _parse_str_list)
    scrub_mask: str = _spec("[REDACTED]", _parse_mask, _non_empty)
    pseudonymize_key: bytes | None = _spec(None, _parse_secret)
    # Requests and blocking (the web integrations).
    ip_header: str | None = _spec(None, _parse_optional_str)
    trusted_proxies: tuple[str, ...] = _spec((), _parse_str_list)
    max_body_size: int = _spec(16384, _INT, _positive)
    actions_file: str | None = _spec(None, _parse_optional_str)
    actions_url: str | None = _spec(None, _parse_optional_str)
    actions_token: str | None = _spec(None, _parse_optional_str)
    actions_poll_interval: float = _spec(5.0, _FLOAT, _positive)  # seconds: decisions reach apps within it
    disabled: bool = _spec(False, _parse_bool)

    def __post_init__(self) -> None:
        if self.max_export_batch_size > self.max_queue_size:
            raise ValueError(
                f"max_export_batch_size must be <= max_queue_size ({self.max_queue_size}), "
                f"got {self.max_export_batch_size}"
            )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Settings:
        """Resolve every setting: keyword argument, else environment variable, else default."""
        env = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name in kwargs:
                raw, label = kwargs[name], name
            elif ENV_PREFIX + name.upper() in env:
                raw, label = env[ENV_PREFIX + name.upper()], ENV_PREFIX + name.upper()
            else:
                continue
            if raw is None and spec.default is None:
                values[name] = None
                continue
            value = spec.metadata["parse"](label, raw)
            check = spec.metadata["check"]
            if check is not None and value is not None:
                check(label, value)
            values[name] = value
        return cls(**values)
