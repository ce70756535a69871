"""The block list: which users and IP addresses are refused, until when, and by which decision.

Three sources fill one ``BlockList``: the application (``block_user``, ``block_ip``: source ``"api"``),
a JSON file an operator edits and a URL polled in the background (``actions.ActionsFile`` and
``actions.ActionsPoller``). A file or a URL replaces all the entries of its source at once.

Checks (``match_user``, ``match_ip``) run on every request: they take no lock and do no I/O. Writes
are rare: they rebuild an immutable index under one lock and swap it in.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .clientip import IPNetwork, parse_address, parse_network

logger = logging.getLogger("sqreen_otel")

MAX_IDENTIFIERS = 16
MAX_IDENTIFIER_LENGTH = 256
ACTION_ID = "sqreen.action.id"
ACTION_PLAYBOOK = "sqreen.action.playbook"
ACTION_ALERT = "sqreen.action.alert"
ACTION_URL = "sqreen.action.url"

Clock = Callable[[], float]


class UserBlocked(Exception):
    """Raised to stop a request of a blocked user. The message names the action, not the user (no PII)."""

    redirect_url: str | None = None

    def __init__(self, user_identifiers: dict[str, Any], action_id: str) -> None:
        super().__init__(f"user blocked by action {action_id}")
        self.user_identifiers = user_identifiers
        self.action_id = action_id


class UserRedirected(UserBlocked):
    """A ``redirect_user`` decision: the integrations answer 303 to ``redirect_url`` instead of 403.

    A subclass, so that code which stops on ``UserBlocked`` stops a redirected user too.
    """

    def __init__(self, user_identifiers: dict[str, Any], action_id: str, url: str) -> None:
        super().__init__(user_identifiers, action_id)
        self.args = (f"user redirected by action {action_id}",)
        self.redirect_url = url


@dataclass(frozen=True)
class BlockEntry:
    """One block: a user (identifiers as text) or a network, until ``expires_at`` (epoch seconds; ``None``: never)."""

    action_id: str
    kind: Literal["user", "ip"]
    user: dict[str, str] | None
    network: IPNetwork | None
    expires_at: float | None
    source: str
    url: str | None = None  # a redirect: the request is answered 303 to this URL instead of 403
    playbook: str | None = None  # the playbook and alert that decided it, when the feed names them
    alert: str | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def action(self) -> str:
        """``block_ip``, ``block_user``, ``redirect_ip`` or ``redirect_user``: the ``sq.action.*`` event's suffix."""
        return f"{'redirect' if self.url is not None else 'block'}_{self.kind}"

    def event_attributes(self) -> dict[str, str]:
        """What an ``sq.action.<type>`` hit carries, so the explorer counts it for its decision and playbook."""
        attributes = {ACTION_ID: self.action_id}
        if self.playbook is not None:
            attributes[ACTION_PLAYBOOK] = self.playbook
        if self.alert is not None:
            attributes[ACTION_ALERT] = self.alert
        if self.url is not None:
            attributes[ACTION_URL] = self.url
        return attributes


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
        in_forked_child(self._after_fork)  # a lock held by another thread at fork would stay held in the child

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    # -- the application's own blocks (source "api") ---------------------------------------------

    def block_user(self, user_identifiers: Mapping[str, str | int], duration: float | None = None) -> str:
        """Block the users having all these identifiers, for ``duration`` seconds or for good; returns the action id."""
        user = check_identifiers(user_identifiers)
        return self._add("user", user, None, _expiry_in(duration, self._clock))

    def unblock_user(self, user_identifiers: Mapping[str, str | int]) -> int:
        """Remove the API blocks of exactly these identifiers; returns how many were removed."""
        user = check_identifiers(user_identifiers)
        return self._remove(lambda entry: entry.user == user)

    def block_ip(self, address_or_cidr: str, duration: float | None = None) -> str:
        """Block an address or a network (``203.0.113.0/24``, ``2001:db8::/32``); returns the action id."""
        network = check_network(address_or_cidr)
        return self._add("ip", None, network, _expiry_in(duration, self._clock))

    def unblock_ip(self, address_or_cidr: str) -> int:
        """Remove the API blocks of exactly this address or network; returns how many were removed."""
        network = check_network(address_or_cidr)
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


_resume_in_child: list[Callable[[], None]] = []


def resume_after_fork(start: Callable[[], None]) -> None:
    """Have ``start`` run on the first block-list check in this (forked) process, not in the fork hook itself.

    A thread started inside ``os.fork()``'s hook would also run in every short-lived child (a
    multiprocessing worker, a pre-exec helper); the first request is the sign of a serving process.
    """
    _resume_in_child.append(start)


def run_resumed() -> None:
    """Start what ``resume_after_fork`` queued: one list check per request when there is nothing to do."""
    if _resume_in_child:
        pending, _resume_in_child[:] = list(_resume_in_child), []
        for start in pending:
            try:
                start()
            except Exception:  # never into the request
                logger.exception("sqreen_otel could not restart a background thread after fork")


def in_forked_child(method: Callable[[], None]) -> None:
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


def check_identifiers(raw: Any) -> dict[str, str]:
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
            raise TypeError(f"user identifier keys must be non-empty str, got {short(key)}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"user identifier {short(key)} must be str or int, got {type(value).__name__}")
        text = str(value)
        if len(key) > MAX_IDENTIFIER_LENGTH or len(text) > MAX_IDENTIFIER_LENGTH:
            raise ValueError(f"user identifier {short(key)}: keys and values are limited to 256 characters")
        identifiers[key] = text
    return identifiers


def check_network(value: Any) -> IPNetwork:
    if not isinstance(value, str):
        raise TypeError(f"an IP address or network must be a str, not {type(value).__name__}")
    try:
        return parse_network(value)
    except ValueError:
        raise ValueError(f"{short(value)} is not an IP address or network") from None


def _expiry_in(duration: float | None, clock: Clock) -> float | None:
    if duration is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise TypeError(f"duration must be a number of seconds, not {type(duration).__name__}")
    if not duration > 0:  # NaN too
        raise ValueError(f"duration must be > 0, got {duration:g}")
    return clock() + duration


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the actions document ---------------------------------------------------------------------------


block_list = BlockList()
"""The block list the rest of the package checks."""
