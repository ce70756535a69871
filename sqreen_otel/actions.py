"""Shared block-list sources: an actions file and an actions URL, in one JSON format.

A document replaces all the entries of its source at once, so the list always says exactly what the
document says, and a document with a single bad entry is rejected whole: the last good list stays, a
typo never unblocks everyone and never half-applies.

The actions document, version 1::

    {"version": 1, "actions": [
      {"id": "a1", "action": "block_user", "user": {"email": "x@y.z"}, "expires_at": "2026-11-24T00:00:00Z"},
      {"id": "a2", "action": "block_ip", "ip": "203.0.113.0/24", "expires_at": null}
    ]}

- ``id``: non-empty text, unique in the document; it is the ``action_id`` reported when a check matches.
- ``action``: ``"block_user"`` with ``user``, the identifiers (text or integer values, compared as
  text; the user is blocked when each of them equals the user's, raw or pseudonymised), or
  ``"block_ip"`` with ``ip``, an IPv4 or IPv6 address or CIDR network; ``"redirect_user"`` and
  ``"redirect_ip"`` likewise, plus ``url``: the request is answered 303 there (as Sqreen's agent did).
- ``url``: only for redirects, required there: ``http://`` or ``https://`` with a host, or a path of
  this site (``/blocked``); at most 2,048 characters, no spaces or control characters.
- ``playbook``, ``alert``: optional text (or ``null``), the playbook and alert that decided it; the
  ``sq.action.<type>`` event of a hit carries them with the id.
- ``expires_at``: ISO 8601 with ``Z`` or an offset, or epoch seconds, or ``null`` or missing for never.
- Nothing else: unknown keys are errors, so a misspelt ``expires_at`` cannot silently block forever.
- Limits: 1 MiB, 10,000 actions, 16 identifiers per user, 256 characters per identifier key or value,
  playbook and alert id.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import random
import re
import threading
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from .blocking import (
    MAX_IDENTIFIER_LENGTH,
    BlockEntry,
    BlockList,
    check_identifiers,
    check_network,
    in_forked_child,
    resume_after_fork,
    short,
)
from .clientip import IPNetwork
from .suppress import instrumentation_suppressed

logger = logging.getLogger("sqreen_otel")

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_ACTIONS = 10_000
_MAX_EXPIRES_AT = 253402300799.0  # 9999-12-31T23:59:59Z: a larger number is most likely milliseconds
MAX_URL_LENGTH = 2048
_ACTION_KEYS = frozenset({"id", "action", "user", "ip", "url", "playbook", "alert", "expires_at"})
_KINDS: dict[str, Literal["user", "ip"]] = {
    "block_user": "user", "redirect_user": "user", "block_ip": "ip", "redirect_ip": "ip"
}  # fmt: skip
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")  # control characters and spaces: header injection, ambiguity
_DOCUMENT_KEYS = frozenset({"version", "actions"})


def parse_actions(data: bytes | str, source: str) -> list[BlockEntry]:
    """Validate an actions document (see the module docstring) into entries of ``source``.

    Any problem raises ``ValueError`` naming it and the entry, e.g.
    ``actions[3]: 'ip' is not an IP address or network: 'nope'``.
    """
    if not isinstance(data, (bytes, bytearray, str)):
        raise TypeError(f"actions document must be bytes or str, not {type(data).__name__}")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes ({len(data)})")
    try:
        document = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("not JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
        raise ValueError(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise ValueError(f"document must be a JSON object, got {_json_type(document)}")
    _no_unknown_keys(document, _DOCUMENT_KEYS)
    version = document.get("version")
    if type(version) is not int or version != 1:
        raise ValueError(f"'version' must be 1, got {short(version)}")
    actions = document.get("actions")
    if not isinstance(actions, list):
        raise ValueError(f"'actions' must be a list, got {_json_type(actions)}")
    if len(actions) > MAX_ACTIONS:
        raise ValueError(f"too many actions: {len(actions)} > {MAX_ACTIONS}")
    entries: list[BlockEntry] = []
    seen: set[str] = set()
    for position, action in enumerate(actions):
        try:
            entry = _parse_action(action, source)
            if entry.action_id in seen:
                raise ValueError(f"duplicate id {short(entry.action_id)}")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"actions[{position}]: {exc}") from None
        seen.add(entry.action_id)
        entries.append(entry)
    return entries


def _parse_action(action: Any, source: str) -> BlockEntry:
    if not isinstance(action, dict):
        raise ValueError(f"must be an object, got {_json_type(action)}")
    _no_unknown_keys(action, _ACTION_KEYS)
    action_id = action.get("id")
    if not isinstance(action_id, str) or not action_id or len(action_id) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"'id' must be text of 1 to {MAX_IDENTIFIER_LENGTH} characters, got {short(action_id)}")
    name = action.get("action")
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None or not isinstance(name, str):
        raise ValueError(f"'action' must be one of {', '.join(map(repr, _KINDS))}, got {short(name)}")
    user: dict[str, str] | None = None
    network: IPNetwork | None = None
    if kind == "user":
        if "ip" in action:
            raise ValueError(f"'ip' is not allowed in a {name} action")
        if not isinstance(action.get("user"), dict):
            raise ValueError(f"'user' must be an object of identifiers, got {_json_type(action.get('user'))}")
        try:
            user = check_identifiers(action["user"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'user': {exc}") from None
    else:
        if "user" in action:
            raise ValueError(f"'user' is not allowed in a {name} action")
        ip = action.get("ip")
        try:
            network = check_network(ip)
        except (TypeError, ValueError):
            raise ValueError(f"'ip' is not an IP address or network: {short(ip)}") from None
    url = None
    if name.startswith("redirect_"):
        url = _parse_url(action.get("url"))
    elif "url" in action:
        raise ValueError(f"'url' is only for redirect_ip and redirect_user, not {name}")
    expires_at = _parse_expires_at(action.get("expires_at"))
    playbook, alert = _optional_id(action, "playbook"), _optional_id(action, "alert")
    return BlockEntry(action_id, kind, user, network, expires_at, source, url, playbook, alert)


def _parse_url(raw: Any) -> str:
    """A redirect target that is safe in a ``Location`` header: absolute http(s) with a host, or a local path."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_URL_LENGTH:
        raise ValueError(f"'url' must be text of 1 to {MAX_URL_LENGTH} characters, got {short(raw)}")
    if _URL_FORBIDDEN.search(raw) or not raw.isascii():
        raise ValueError(f"'url' must not hold spaces, control or non-ASCII characters (percent-encode): {short(raw)}")
    if raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    try:
        parts = urlsplit(raw)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'url' must be an http(s) URL with a host or a path starting with '/', got {short(raw)}")
    return raw


def _optional_id(action: dict[str, Any], key: str) -> str | None:
    value = action.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"{key!r} must be text of 1 to {MAX_IDENTIFIER_LENGTH} characters or null, got {short(value)}")
    return value


def _parse_expires_at(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not -_MAX_EXPIRES_AT <= raw <= _MAX_EXPIRES_AT:  # NaN and huge integers too, without float()
            raise ValueError(f"'expires_at' must be epoch seconds, got {short(raw)} (milliseconds?)")
        return float(raw)
    if isinstance(raw, str) and len(raw) <= 64:
        text = raw.strip()
        if text[-1:] in ("Z", "z"):  # Python 3.10 does not read the Z
            text = text[:-1] + "+00:00"
        try:
            moment = _dt.datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"'expires_at' needs a time zone (Z or +hh:mm): {short(raw)}")
        if moment is not None:
            return moment.timestamp()
    raise ValueError(f"'expires_at' must be ISO 8601 text, epoch seconds or null, got {short(raw)}")


def _no_unknown_keys(obj: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        names = ", ".join(short(key, 40) for key in unknown[:5])
        raise ValueError(
            f"unknown key(s) {names}{' ...' if len(unknown) > 5 else ''}; known: {', '.join(sorted(known))}"
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


# -- where the list comes from: a file ---------------------------------------------------------------


class ActionsFile:
    """An actions document on disk, source ``"file"``: reloaded when its modification time, size or inode change.

    Write it atomically (a temporary file, then ``os.replace``): a half-written file is rejected and
    the last good list kept until the next change.
    """

    SOURCE = "file"

    def __init__(self, path: str | os.PathLike[str], block_list: BlockList) -> None:
        self.path = os.fspath(path)
        self._block_list = block_list
        self._signature: tuple[int, int, int] | None = None
        self._missing_logged = False
        self._last_error: str | None = None
        self._last_check = -math.inf
        self._lock = threading.Lock()
        in_forked_child(self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Reload if the file changed; ``True`` when a new list was applied. Never raises."""
        with self._lock:
            return self._guarded_refresh()

    def maybe_refresh(self, min_interval: float = 1.0) -> bool:
        """``refresh()`` at most once per ``min_interval`` seconds, never waiting on another thread: for requests."""
        if time.monotonic() - self._last_check < min_interval or not self._lock.acquire(blocking=False):
            return False
        try:
            now = time.monotonic()
            if now - self._last_check < min_interval:
                return False
            self._last_check = now
            return self._guarded_refresh()
        finally:
            self._lock.release()

    def _guarded_refresh(self) -> bool:
        try:
            return self._refresh()
        except Exception:  # a bug of ours must not reach the request that happened to call us
            logger.exception("actions file %s: unexpected error; keeping the last good block list", self.path)
            return False

    def _refresh(self) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._signature = None  # a file that comes back is read even if it looks the same
            if not self._missing_logged:
                self._missing_logged = True
                logger.warning("actions file %s does not exist; keeping the last good block list", self.path)
            return False
        except OSError as exc:
            self._report(f"cannot stat: {exc}", repeat=False)
            return False
        self._missing_logged = False
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature:
            return False
        if stat.st_size > MAX_DOCUMENT_BYTES:
            self._signature = signature
            self._report(f"larger than {MAX_DOCUMENT_BYTES} bytes ({stat.st_size})", repeat=True)
            return False
        try:
            with open(self.path, "rb") as file:
                data = file.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:  # retried on the next refresh: permissions change without touching mtime
            self._report(f"cannot read: {exc}", repeat=False)
            return False
        self._signature = signature  # a bad document is not read again until it changes
        try:
            entries = parse_actions(data, self.SOURCE)
        except ValueError as exc:
            self._report(str(exc), repeat=True)
            return False
        self._block_list.replace_source(self.SOURCE, entries)
        if self._last_error is not None:
            logger.info("actions file %s loaded (%d actions)", self.path, len(entries))
        self._last_error = None
        return True

    def _report(self, problem: str, *, repeat: bool) -> None:
        """Log once per distinct problem in a row; with ``repeat``, also a new version of the file with the same one."""
        if repeat or problem != self._last_error:
            logger.error("actions file %s: %s; keeping the last good block list", self.path, problem)
        self._last_error = problem


# -- where the list comes from: a URL ----------------------------------------------------------------


class _PollError(Exception):
    pass


class ActionsPoller:
    """Polls an actions URL (the Event Explorer's ``GET /v1/actions``), source ``"url"``.

    Conditional requests (ETag), a capped body, errors logged once per distinct message in a row,
    the last good list kept on any failure. Its requests are not traced.
    """

    SOURCE = "url"
    MAX_ETAG_LENGTH = 1024

    def __init__(
        self,
        url: str,
        block_list: BlockList,
        *,
        token: str | None = None,
        interval: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if token is not None and (not isinstance(token, str) or not token or any(c in token for c in "\r\n")):
            raise ValueError("token must be non-empty text on one line")
        for name, value in (("interval", interval), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0, got {value:g}")
        self.url = url
        self.interval = float(interval)
        self.timeout = float(timeout)
        self._block_list = block_list
        self._token = token
        # For logs: no credentials, no query string.
        self._shown_url = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        self._stopped = False
        self._etag: str | None = None  # kept across fork: the child inherits the list it describes
        self._init_state()
        in_forked_child(self._after_fork)

    def _after_fork(self) -> None:
        running_in_parent = self._thread is not None
        self._init_state()
        if running_in_parent:  # a preloaded app's workers poll too, from their first request on
            resume_after_fork(self._resume)

    def _resume(self) -> None:
        if self._thread is None and not self._stopped:
            self.start()

    def _init_state(self) -> None:
        self._poll_lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None  # a forked child has no thread: start() makes one
        self._stop = threading.Event()
        self._session = self._new_session()  # the parent's pooled sockets must not be shared with a child
        self._last_error: str | None = None

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # identity: a compressed body could expand past the size cap in a single read
        session.headers.update(
            {"User-Agent": "sqreen-otel", "Accept": "application/json", "Accept-Encoding": "identity"}
        )
        if self._token is not None:
            session.headers["Authorization"] = f"Bearer {self._token}"
        return session

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def poll_once(self) -> bool:
        """Fetch once; ``True`` when a new list was applied (not on 304, nor on a failure, logged). Never raises."""
        with self._poll_lock:
            try:
                fetched = self._fetch()
            except _PollError as exc:
                self._fail(str(exc))
                return False
            except Exception as exc:  # a bug of ours: the thread must live on
                logger.debug("actions poll failed", exc_info=True)
                self._fail(f"unexpected error: {exc!r}")
                return False
            if self._last_error is not None:
                logger.info("actions from %s: fetched again", self._shown_url)
                self._last_error = None
            if fetched is None:
                return False
            entries, etag = fetched
            self._block_list.replace_source(self.SOURCE, entries)
            self._etag = etag
            return True

    def _fetch(self) -> tuple[list[BlockEntry], str | None] | None:
        """The new entries and their ETag; ``None`` for 304 Not Modified."""
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            with instrumentation_suppressed():
                response = self._session.get(
                    self.url, headers=headers, timeout=self.timeout, stream=True, allow_redirects=False
                )
                with response:
                    if response.status_code == 304:
                        return None
                    if response.status_code != 200:
                        raise _PollError(f"HTTP {response.status_code}")
                    body = _read_capped(response)
                    etag = response.headers.get("ETag")
        except requests.RequestException as exc:
            raise _PollError(f"{type(exc).__name__}: {exc}") from None
        try:
            entries = parse_actions(body, self.SOURCE)
        except ValueError as exc:
            raise _PollError(f"bad actions document: {exc}") from None
        return entries, etag if etag and len(etag) <= self.MAX_ETAG_LENGTH else None

    def _fail(self, message: str) -> None:
        message = re.sub(r" (?:object )?at 0x[0-9a-fA-F]+", "", message)[:500]  # stable text for the same error
        if message != self._last_error:
            logger.error("actions from %s: %s; keeping the last good block list", self._shown_url, message)
        self._last_error = message

    def start(self) -> ActionsPoller:
        """Poll now, then every ``interval`` seconds at most (up to 10% sooner, so a fleet does not poll in step),
        in a daemon thread, until ``stop()``: a decision reaches the agent within ``interval``."""
        with self._thread_lock:
            self._stopped = False
            if self.running:
                return self
            stop = self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(stop,), name="sqreen_otel-actions", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; waits for a poll in progress up to ``timeout`` (default: the request timeout + 1 s)."""
        self._stopped = True
        with self._thread_lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timeout + 1.0 if timeout is None else timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(self.interval * random.uniform(0.9, 1.0))


def _read_capped(response: requests.Response) -> bytes:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise _PollError(f"unexpected Content-Encoding {encoding[:40]!r} (identity was asked)")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_DOCUMENT_BYTES:
        raise _PollError(f"response body larger than {MAX_DOCUMENT_BYTES} bytes ({length[:20]})")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise _PollError(f"response body larger than {MAX_DOCUMENT_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
