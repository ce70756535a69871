"""Blocking users and IP addresses: the block list and the places it is filled from.

Three sources fill one ``BlockList``: the application (``block_user``, ``block_ip``: source ``"api"``),
a JSON file an operator edits (``ActionsFile``: ``"file"``) and a URL polled in the background
(``ActionsPoller``: ``"url"``; the Event Explorer serves it at ``GET /v1/actions``). A file or a URL
replaces all the entries of its source at once, so the list always says exactly what the document
says, and a document with a single bad entry is rejected whole: the last good list stays, a typo
never unblocks everyone and never half-applies.

Checks (``match_user``, ``match_ip``) run on every request: they take no lock and do no I/O. Writes
are rare: they rebuild an immutable index under one lock and swap it in.

The actions document, version 1::

    {"version": 1, "actions": [
      {"id": "a1", "action": "block_user", "user": {"email": "x@y.z"}, "expires_at": "2026-11-24T00:00:00Z"},
      {"id": "a2", "action": "block_ip", "ip": "203.0.113.0/24", "expires_at": null}
    ]}

- ``id``: non-empty text, unique in the document; it is the ``action_id`` reported when a check matches.
- ``action``: ``"block_user"`` with ``user``, the identifiers (text or integer values, compared as
  text; the user is blocked when each of them equals the user's, raw or pseudonymised), or
  ``"block_ip"`` with ``ip``, an IPv4 or IPv6 address or CIDR network.
- ``expires_at``: ISO 8601 with ``Z`` or an offset, or epoch seconds, or ``null`` or missing for never.
- Nothing else: unknown keys are errors, so a misspelt ``expires_at`` cannot silently block forever.
- Limits: 1 MiB, 10,000 actions, 16 identifiers per user, 256 characters per identifier key or value.
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
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from opentelemetry import context as otel_context

from .clientip import IPNetwork, parse_address, parse_network

logger = logging.getLogger("sqreen_otel")

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_ACTIONS = 10_000
MAX_IDENTIFIERS = 16
MAX_IDENTIFIER_LENGTH = 256
_MAX_EXPIRES_AT = 253402300799.0  # 9999-12-31T23:59:59Z: a larger number is most likely milliseconds
_ACTION_KEYS = frozenset({"id", "action", "user", "ip", "expires_at"})
_DOCUMENT_KEYS = frozenset({"version", "actions"})

Clock = Callable[[], float]


class UserBlocked(Exception):
    """Raised to stop a request of a blocked user. The message names the action, not the user (no PII)."""

    def __init__(self, user_identifiers: dict[str, Any], action_id: str) -> None:
        super().__init__(f"user blocked by action {action_id}")
        self.user_identifiers = user_identifiers
        self.action_id = action_id


@dataclass(frozen=True)
class BlockEntry:
    """One block: a user (identifiers as text) or a network, until ``expires_at`` (epoch seconds; ``None``: never)."""

    action_id: str
    kind: Literal["user", "ip"]
    user: dict[str, str] | None
    network: IPNetwork | None
    expires_at: float | None
    source: str

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class _Index:
    # A user entry is filed under its first (key, value) by key; a check looks up each of the user's pairs.
    users: dict[tuple[str, str], tuple[BlockEntry, ...]]
    # An IP entry is filed under (version, prefix length, network bits); a check tries each prefix length in use.
    ips: dict[tuple[int, int, int], tuple[BlockEntry, ...]]
    prefixes: dict[int, tuple[int, ...]]  # IP version -> prefix lengths in use, longest first
    next_expiry: float | None

    def adding(self, entry: BlockEntry) -> _Index:
        """A copy with one more entry: an application block costs dict copies, not a rebuild."""
        users, ips, prefixes, expiry = self.users, self.ips, self.prefixes, self.next_expiry
        if entry.user:
            user_key = min(entry.user.items())
            users = {**users, user_key: (*users.get(user_key, ()), entry)}
        elif entry.network is not None:
            ip_key = _ip_key(entry.network)
            ips = {**ips, ip_key: (*ips.get(ip_key, ()), entry)}
            lengths = prefixes.get(entry.network.version, ())
            if entry.network.prefixlen not in lengths:
                lengths = tuple(sorted((*lengths, entry.network.prefixlen), reverse=True))
                prefixes = {**prefixes, entry.network.version: lengths}
        if entry.expires_at is not None:
            expiry = entry.expires_at if expiry is None else min(expiry, entry.expires_at)
        return _Index(users, ips, prefixes, expiry)


def _ip_key(network: IPNetwork) -> tuple[int, int, int]:
    return (
        network.version,
        network.prefixlen,
        int(network.network_address) >> (network.max_prefixlen - network.prefixlen),
    )


_EMPTY = _Index({}, {}, {}, None)


class BlockList:
    """Blocked users and networks from all sources. Thread-safe; checks are lock-free.

    ``clock`` (epoch seconds, default ``time.time``) decides expiry; tests may pass their own.
    """

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._sources: dict[str, list[BlockEntry]] = {}
        self._index = _EMPTY
        self._lock = threading.Lock()
        _in_forked_child(self._after_fork)  # a lock held by another thread at fork would stay held in the child

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    # -- the application's own blocks (source "api") ---------------------------------------------

    def block_user(self, user_identifiers: Mapping[str, str | int], duration: float | None = None) -> str:
        """Block the users having all these identifiers, for ``duration`` seconds or for good; returns the action id."""
        user = _identifiers(user_identifiers)
        return self._add("user", user, None, _expiry_in(duration, self._clock))

    def unblock_user(self, user_identifiers: Mapping[str, str | int]) -> int:
        """Remove the API blocks of exactly these identifiers; returns how many were removed."""
        user = _identifiers(user_identifiers)
        return self._remove(lambda entry: entry.user == user)

    def block_ip(self, address_or_cidr: str, duration: float | None = None) -> str:
        """Block an address or a network (``203.0.113.0/24``, ``2001:db8::/32``); returns the action id."""
        network = _network(address_or_cidr)
        return self._add("ip", None, network, _expiry_in(duration, self._clock))

    def unblock_ip(self, address_or_cidr: str) -> int:
        """Remove the API blocks of exactly this address or network; returns how many were removed."""
        network = _network(address_or_cidr)
        return self._remove(lambda entry: entry.network == network)

    def clear(self) -> None:
        """Remove every entry of every source. A file or URL source fills its part again when it changes."""
        with self._lock:
            self._sources = {}
            self._index = _EMPTY

    def replace_source(self, source: str, entries: Iterable[BlockEntry]) -> None:
        """Swap all the entries of ``source`` at once (checks see the old list or the new, never a mix)."""
        new = list(entries)
        for entry in new:
            if not isinstance(entry, BlockEntry) or entry.source != source:
                raise ValueError(f"replace_source({source!r}): {entry!r} is not a BlockEntry of that source")
        with self._lock:
            self._sources[source] = new
            self._rebuild(self._clock())

    def entries(self) -> list[BlockEntry]:
        """The unexpired entries of all sources."""
        now = self._clock()
        with self._lock:
            return [entry for entries in self._sources.values() for entry in entries if not entry.expired(now)]

    # -- checks, on every request -----------------------------------------------------------------

    def blocks_ips(self) -> bool:
        """Cheap test for the request path: no IP entry means no need to resolve the client address."""
        return bool(self._index.ips)

    def match_user(
        self, identifiers: Mapping[str, str | int], alternatives: Mapping[str, str] | None = None
    ) -> BlockEntry | None:
        """The entry blocking this user, if any.

        ``alternatives`` are the pseudonymised values of the same identifiers: operators who only see
        hashed identifiers in the event UI block those, and an entry value may equal either form.
        """
        index = self._index
        if not index.users:
            return None
        index, now = self._current(index)
        known: dict[str, tuple[str, ...]] = {key: (str(value),) for key, value in identifiers.items()}
        for key, value in (alternatives or {}).items():
            known[key] = (*known.get(key, ()), str(value))
        for key, values in known.items():
            for value in values:
                for entry in index.users.get((key, value), ()):
                    if not entry.expired(now) and _user_matches(entry.user or {}, known):
                        return entry
        return None

    def match_ip(self, address: str | None) -> BlockEntry | None:
        """The entry whose network holds this address (the most specific one), if any; ``None`` for garbage."""
        index = self._index
        if not index.ips or not isinstance(address, str):
            return None
        parsed = parse_address(address)
        if parsed is None:
            return None
        index, now = self._current(index)
        bits, version = int(parsed), parsed.version
        for prefix in index.prefixes.get(version, ()):
            for entry in index.ips.get((version, prefix, bits >> (parsed.max_prefixlen - prefix)), ()):
                if not entry.expired(now):
                    return entry
        return None

    # -- internals ----------------------------------------------------------------------------------

    def _current(self, index: _Index) -> tuple[_Index, float]:
        """The index with expired entries purged when one is due (lazily, on a check), and the time."""
        now = self._clock()
        if index.next_expiry is not None and index.next_expiry <= now:
            with self._lock:
                if self._index.next_expiry is not None and self._index.next_expiry <= now:
                    self._rebuild(now)
                index = self._index
        return index, now

    def _add(
        self, kind: Literal["user", "ip"], user: dict[str, str] | None, network: IPNetwork | None, expires: float | None
    ) -> str:
        action_id = uuid.uuid4().hex
        entry = BlockEntry(action_id, kind, user, network, expires, "api")
        with self._lock:
            self._sources.setdefault("api", []).append(entry)
            self._index = self._index.adding(entry)
        return action_id

    def _remove(self, matches: Callable[[BlockEntry], bool]) -> int:
        with self._lock:
            entries = self._sources.get("api", [])
            kept = [entry for entry in entries if not matches(entry)]
            removed = len(entries) - len(kept)
            if removed:
                self._sources["api"] = kept
                self._rebuild(self._clock())
        return removed

    def _rebuild(self, now: float) -> None:
        """Drop expired entries and build a new index. Called with the lock held."""
        users: dict[tuple[str, str], list[BlockEntry]] = {}
        ips: dict[tuple[int, int, int], list[BlockEntry]] = {}
        prefixes: dict[int, set[int]] = {}
        next_expiry: float | None = None
        for entries in self._sources.values():
            live = [entry for entry in entries if not entry.expired(now)]
            if len(live) != len(entries):
                entries[:] = live
            for entry in live:
                if entry.expires_at is not None:
                    next_expiry = entry.expires_at if next_expiry is None else min(next_expiry, entry.expires_at)
                if entry.user:
                    users.setdefault(min(entry.user.items()), []).append(entry)
                elif entry.network is not None:
                    ips.setdefault(_ip_key(entry.network), []).append(entry)
                    prefixes.setdefault(entry.network.version, set()).add(entry.network.prefixlen)
        self._index = _Index(
            {key: tuple(value) for key, value in users.items()},
            {key: tuple(value) for key, value in ips.items()},
            {version: tuple(sorted(lengths, reverse=True)) for version, lengths in prefixes.items()},
            next_expiry,
        )


def _in_forked_child(method: Callable[[], None]) -> None:
    """Call ``method`` in the child after ``os.fork()``, without keeping its object alive."""
    if hasattr(os, "register_at_fork"):
        ref = weakref.WeakMethod(method)

        def after_fork() -> None:
            bound = ref()
            if bound is not None:
                bound()

        os.register_at_fork(after_in_child=after_fork)


def _user_matches(blocked: Mapping[str, str], known: Mapping[str, tuple[str, ...]]) -> bool:
    return all(value in known.get(key, ()) for key, value in blocked.items())


def _identifiers(raw: Any) -> dict[str, str]:
    """Identifiers as text, checked: 1 to 16, non-empty text keys, text or integer values, 256 characters each."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"user identifiers must be a mapping of str to str or int, not {type(raw).__name__}")
    if not raw:
        raise ValueError("user identifiers must not be empty (that would block every user)")
    if len(raw) > MAX_IDENTIFIERS:
        raise ValueError(f"at most {MAX_IDENTIFIERS} user identifiers, got {len(raw)}")
    identifiers: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"user identifier keys must be non-empty str, got {_short(key)}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"user identifier {_short(key)} must be str or int, got {type(value).__name__}")
        text = str(value)
        if len(key) > MAX_IDENTIFIER_LENGTH or len(text) > MAX_IDENTIFIER_LENGTH:
            raise ValueError(f"user identifier {_short(key)}: keys and values are limited to 256 characters")
        identifiers[key] = text
    return identifiers


def _network(value: Any) -> IPNetwork:
    if not isinstance(value, str):
        raise TypeError(f"an IP address or network must be a str, not {type(value).__name__}")
    try:
        return parse_network(value)
    except ValueError:
        raise ValueError(f"{_short(value)} is not an IP address or network") from None


def _expiry_in(duration: float | None, clock: Clock) -> float | None:
    if duration is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise TypeError(f"duration must be a number of seconds, not {type(duration).__name__}")
    if not duration > 0:  # NaN too
        raise ValueError(f"duration must be > 0, got {duration:g}")
    return clock() + duration


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the actions document ---------------------------------------------------------------------------


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
        raise ValueError(f"'version' must be 1, got {_short(version)}")
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
                raise ValueError(f"duplicate id {_short(entry.action_id)}")
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
        raise ValueError(f"'id' must be text of 1 to {MAX_IDENTIFIER_LENGTH} characters, got {_short(action_id)}")
    kind = action.get("action")
    user: dict[str, str] | None = None
    network: IPNetwork | None = None
    if kind == "block_user":
        if "ip" in action:
            raise ValueError("'ip' is not allowed in a block_user action")
        if not isinstance(action.get("user"), dict):
            raise ValueError(f"'user' must be an object of identifiers, got {_json_type(action.get('user'))}")
        try:
            user = _identifiers(action["user"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'user': {exc}") from None
    elif kind == "block_ip":
        if "user" in action:
            raise ValueError("'user' is not allowed in a block_ip action")
        ip = action.get("ip")
        try:
            network = _network(ip)
        except (TypeError, ValueError):
            raise ValueError(f"'ip' is not an IP address or network: {_short(ip)}") from None
    else:
        raise ValueError(f"'action' must be 'block_user' or 'block_ip', got {_short(kind)}")
    expires_at = _parse_expires_at(action.get("expires_at"))
    return BlockEntry(action_id, "user" if user is not None else "ip", user, network, expires_at, source)


def _parse_expires_at(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not -_MAX_EXPIRES_AT <= raw <= _MAX_EXPIRES_AT:  # NaN and huge integers too, without float()
            raise ValueError(f"'expires_at' must be epoch seconds, got {_short(raw)} (milliseconds?)")
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
            raise ValueError(f"'expires_at' needs a time zone (Z or +hh:mm): {_short(raw)}")
        if moment is not None:
            return moment.timestamp()
    raise ValueError(f"'expires_at' must be ISO 8601 text, epoch seconds or null, got {_short(raw)}")


def _no_unknown_keys(obj: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        names = ", ".join(_short(key, 40) for key in unknown[:5])
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
        _in_forked_child(self._after_fork)

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
        self._etag: str | None = None  # kept across fork: the child inherits the list it describes
        self._init_state()
        _in_forked_child(self._init_state)

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
        # Our own polling must not show up as an HTTP client span of the application.
        token = otel_context.attach(
            otel_context.set_value(
                otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY,
                True,
                otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True),
            )
        )
        try:
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
        finally:
            otel_context.detach(token)
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
        """Poll now, then every ``interval`` seconds (plus up to 10% jitter), in a daemon thread, until ``stop()``."""
        with self._thread_lock:
            if self.running:
                return self
            stop = self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(stop,), name="sqreen_otel-actions", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; waits for a poll in progress up to ``timeout`` (default: the request timeout + 1 s)."""
        with self._thread_lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timeout + 1.0 if timeout is None else timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(self.interval * (1.0 + random.uniform(0.0, 0.1)))


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


block_list = BlockList()
"""The block list the rest of the package checks."""
