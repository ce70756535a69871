"""The 403 answer shared by every integration: JSON for API clients, a small HTML page otherwise."""

from __future__ import annotations

import html
import json

STATUS = 403
REASON = "Forbidden"


def wants_json(accept: str | None) -> bool:
    accept = (accept or "").lower()
    return "json" in accept and "text/html" not in accept


def forbidden(accept: str | None, reason: str, action_id: str) -> tuple[str, bytes]:
    """``(content type, body)`` of the refusal; the action id lets support find the decision."""
    if wants_json(accept):
        body = json.dumps({"error": "forbidden", "reason": reason, "action_id": action_id})
        return "application/json", body.encode()
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>403 Forbidden</title></head>"
        f"<body><h1>403 Forbidden</h1><p>{html.escape(reason)}.</p>"
        f"<p><small>Reference: {html.escape(action_id)}</small></p></body></html>"
    )
    return "text/html; charset=utf-8", page.encode()
