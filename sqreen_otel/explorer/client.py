"""A small HTTP client of a running Event Explorer, for ``sqreen-otel tail`` and the block commands.

Every failure is an ``ExplorerError`` whose message is meant for a terminal: "is the explorer running
at URL?" when nothing answers, the server's own message for a 4xx, and a hint about ``--token`` on 401.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

import requests

DEFAULT_URL = "http://127.0.0.1:4318"
URL_ENV = "SQREEN_OTEL_EXPLORER_URL"
TOKEN_ENV = "SQREEN_OTEL_EXPLORER_TOKEN"
TAIL_PAGE = 500  # what /api/tail returns at most per call


class ExplorerError(Exception):
    """A request to the explorer failed; ``str()`` says why, ``status`` is the HTTP status if there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def base_url(url: str | None) -> str:
    """``--url``, else ``SQREEN_OTEL_EXPLORER_URL``, else loopback:4318; ``host:port`` gets ``http://``."""
    url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class ExplorerClient:
    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 10.0) -> None:
        self.url = base_url(url)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["X-Sqreen-Otel"] = "1"  # the explorer takes API writes only with it (no CSRF)
        token = token or os.environ.get(TOKEN_ENV) or None
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.has_token = bool(token)

    def close(self) -> None:
        self.session.close()

    # -- transport ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """The decoded JSON answer of a 2xx; ``ExplorerError`` otherwise. 404 gives ``status`` 404."""
        try:
            response = self.session.request(
                method, self.url + path, params=params, json=json, timeout=self.timeout, allow_redirects=False
            )
        except requests.ConnectionError as exc:
            raise ExplorerError(f"cannot connect: is the explorer running at {self.url}? ({_reason(exc)})") from None
        except requests.Timeout:
            raise ExplorerError(f"the explorer at {self.url} did not answer within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise ExplorerError(f"request to {self.url} failed: {exc}") from None
        status = response.status_code
        if status == 401:
            hint = "invalid token" if self.has_token else "the explorer needs a token: --token or " + TOKEN_ENV
            raise ExplorerError(f"{self.url} refused the request (401 Unauthorized): {hint}", status)
        if 400 <= status < 500:
            raise ExplorerError(_server_message(response), status)
        if status >= 300:
            raise ExplorerError(f"the explorer at {self.url} failed ({status}): {_server_message(response)}", status)
        try:
            return response.json()
        except ValueError:
            raise ExplorerError(f"{self.url}{path} did not answer JSON: is it an Event Explorer?", status) from None

    # -- events ------------------------------------------------------------------------------------

    def tail(
        self,
        after: int,
        *,
        name: str | None = None,
        user: str | None = None,
        ip: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        prop: str | None = None,
    ) -> list[Any]:
        """Events stored after id ``after``, oldest first, at most ``TAIL_PAGE``; ``prop`` is ``key=value``."""
        params = {"after": str(after)}
        filters = (("name", name), ("user", user), ("ip", ip), ("prop", prop))
        params.update((key, value) for key, value in filters if value)
        params.update((key, str(ns)) for key, ns in (("since", since_ns), ("until", until_ns)) if ns is not None)
        events: list[Any] = self.request("GET", "/api/tail", params=params)["events"]
        return events

    def newest_id(self) -> int:
        """The largest event id stored now (0 when empty), in a few requests whatever the store's size.

        Ids grow with arrival, not with event time, so the newest event by time is only a first guess:
        ``/api/tail?after=X`` is empty exactly when X >= the largest id, which a search narrows down.
        """
        page = self.request("GET", "/api/events", params={"limit": "1"})["events"]
        low = int(page[0]["id"]) if page else 0  # an id that exists (or 0): low <= newest
        high: int | None = None  # newest <= high, once known
        probe, step = low, TAIL_PAGE
        while True:
            answer = self.request("GET", "/api/tail", params={"after": str(probe)})
            events = answer["events"]
            more = answer.get("more", len(events) >= TAIL_PAGE)  # a page may also stop at a byte budget
            if events and not more:
                return int(events[-1]["id"])
            if events:  # a full page: the newest is at least its last one
                low = int(events[-1]["id"])
            else:  # nothing after probe
                high = probe
            if high is None:
                probe, step = low + step, step * 2
            elif high <= low:
                return low
            else:
                probe = (low + high) // 2

    # -- block actions -----------------------------------------------------------------------------

    def actions(self) -> list[dict[str, Any]]:
        """What agents enforce: hand-made entries (``source: manual``), then playbook decisions (``playbook``)."""
        actions: list[dict[str, Any]] = self.request("GET", "/api/actions")["actions"]
        return actions

    def block_user(self, identifiers: Mapping[str, str], duration: float | None = None) -> str:
        data = {"action": "block_user", "user": dict(identifiers), "duration": duration}
        return str(self.request("POST", "/api/actions", json=data)["id"])

    def block_ip(self, network: str, duration: float | None = None) -> str:
        data = {"action": "block_ip", "ip": network, "duration": duration}
        return str(self.request("POST", "/api/actions", json=data)["id"])

    def unblock_user(self, identifiers: Mapping[str, str]) -> list[str]:
        """Remove the hand-made blocks of exactly these identifiers; returns the playbook decisions lifted."""
        answer = self.request("POST", "/api/actions", json={"action": "unblock_user", "user": dict(identifiers)})
        return [str(i) for i in answer.get("lifted") or ()]

    def unblock_ip(self, network: str) -> list[str]:
        """Remove the hand-made blocks of exactly this network; returns the playbook decisions lifted."""
        answer = self.request("POST", "/api/actions", json={"action": "unblock_ip", "ip": network})
        return [str(i) for i in answer.get("lifted") or ()]

    def remove_action(self, action_id: str) -> bool:
        try:
            self.request("DELETE", f"/api/actions/{requests.utils.quote(action_id, safe='')}")
        except ExplorerError as exc:
            if exc.status == 404:
                return False
            raise
        return True


# -- what still blocks a user or an address (the rules of sqreen_otel.blocking) ---------------------


def blocks_user(entry: Mapping[str, Any], identifiers: Mapping[str, str]) -> bool:
    """An entry blocks a user when each of its identifiers equals the user's (compared as text)."""
    user = entry.get("user")
    if entry.get("action") != "block_user" or not isinstance(user, dict) or not user:
        return False
    return all(key in identifiers and str(value) == str(identifiers[key]) for key, value in user.items())


def blocks_ip(entry: Mapping[str, Any], network: str) -> bool:
    """An entry blocks (part of) ``network`` when their ranges overlap."""
    if entry.get("action") != "block_ip":
        return False
    try:
        ours = ipaddress.ip_network(network, strict=False)
        theirs = ipaddress.ip_network(str(entry.get("ip")), strict=False)
    except ValueError:
        return False
    return ours.version == theirs.version and ours.overlaps(theirs)  # type: ignore[arg-type]


def _reason(exc: Exception) -> str:
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host", "timed out"):
        if known in text:
            return known.lower()
    return text[:160]


def _server_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    text = error if isinstance(error, str) else response.text.strip()
    return f"{text[:300] or response.reason} ({response.status_code})"
