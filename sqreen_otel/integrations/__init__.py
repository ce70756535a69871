"""Web-framework glue: one short module per framework, each only doing that framework's wiring.

Every integration does the same three things: make the request current for ``track()`` and
``identify()``, refuse blocked IPs at request start, and turn ``UserBlocked`` into a 403.
"""

from __future__ import annotations

from typing import Any

from .. import runtime


def request_options() -> dict[str, Any]:
    """How to read requests, from the installed settings (client IP policy, body cap)."""
    rt = runtime.current
    return {
        "ip_header": rt.settings.ip_header,
        "trusted_proxies": rt.trusted_proxies,
        "max_body_size": rt.settings.max_body_size,
    }
