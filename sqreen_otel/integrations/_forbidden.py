"""The refusal shared by every integration: a 403 (JSON for API clients, a small HTML page otherwise), or
a 303 to the decision's URL for ``redirect_ip`` and ``redirect_user``, as Sqreen's agent answered."""

from __future__ import annotations

import html
import json

STATUS = 403
REASON = "Forbidden"
REDIRECT_STATUS = 303
REDIRECT_REASON = "See Other"


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


def refusal(
    accept: str | None, reason: str, action_id: str, url: str | None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, headers, body)``: 303 to ``url`` when the decision redirects, else the 403 above.

    The URL was checked when the actions document was read (http(s) or a local path, no control
    characters), so it is safe as a header value.
    """
    if url is not None:
        return REDIRECT_STATUS, [("Location", url), ("Content-Length", "0"), ("Cache-Control", "no-store")], b""
    content_type, body = forbidden(accept, reason, action_id)
    return STATUS, [("Content-Type", content_type), ("Content-Length", str(len(body)))], body
