"""Block list semantics, the actions document, ActionsFile, and ActionsPoller over real HTTP."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from sqreen_otel import blocking
from sqreen_otel.actions import MAX_ACTIONS, MAX_DOCUMENT_BYTES, ActionsFile, ActionsPoller, parse_actions
from sqreen_otel.blocking import BlockEntry, BlockList, UserBlocked


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bl(clock: Clock) -> BlockList:
    return BlockList(clock=clock)


def doc(*actions: dict[str, Any]) -> bytes:
    return json.dumps({"version": 1, "actions": list(actions)}).encode()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sqreen_otel" and r.levelno >= logging.WARNING]


# -- matching users ---------------------------------------------------------------------------------


def test_block_user_returns_the_action_id_of_the_matching_entry(bl: BlockList) -> None:
    action_id = bl.block_user({"email": "a@x.io"})
    assert len(action_id) == 32 and int(action_id, 16) >= 0
    entry = bl.match_user({"email": "a@x.io"})
    assert entry == BlockEntry(action_id, "user", {"email": "a@x.io"}, None, None, "api")


def test_entry_matches_a_user_with_more_identifiers(bl: BlockList) -> None:
    bl.block_user({"email": "a@x.io"})
    assert bl.match_user({"email": "a@x.io", "id": 1}) is not None
    assert bl.match_user({"email": "b@x.io", "id": 1}) is None
    assert bl.match_user({"id": 1}) is None
    assert bl.match_user({}) is None


def test_every_identifier_of_the_entry_must_match(bl: BlockList) -> None:
    bl.block_user({"email": "a@x.io", "tenant": "acme"})
    assert bl.match_user({"email": "a@x.io"}) is None
    assert bl.match_user({"email": "a@x.io", "tenant": "other"}) is None
    assert bl.match_user({"email": "a@x.io", "tenant": "acme", "id": 3}) is not None


def test_int_and_str_compare_as_text(bl: BlockList) -> None:
    bl.block_user({"id": 42})
    assert bl.match_user({"id": "42"}) is not None
    assert bl.match_user({"id": 42}) is not None
    assert bl.match_user({"id": 420}) is None
    assert bl.entries()[0].user == {"id": "42"}


def test_alternatives_match_pseudonymised_entries(bl: BlockList) -> None:
    hashed = "9f86d081884c7d659a2feaa0c55ad015"
    bl.block_user({"email": hashed})
    assert bl.match_user({"email": "a@x.io"}) is None
    assert bl.match_user({"email": "a@x.io"}, {"email": hashed}) is not None
    assert bl.match_user({"email": "a@x.io"}, {"email": "other-hash"}) is None


def test_entry_may_mix_raw_and_hashed_values(bl: BlockList) -> None:
    bl.block_user({"email": "hash-of-a", "id": "7"})
    assert bl.match_user({"email": "a@x.io", "id": 7}, {"email": "hash-of-a", "id": "hash-of-7"}) is not None
    assert bl.match_user({"email": "a@x.io", "id": 8}, {"email": "hash-of-a", "id": "hash-of-8"}) is None
    bl.clear()
    bl.block_user({"email": "a@x.io"})
    assert bl.match_user({"email": "a@x.io"}, {"email": "hash-of-a"}) is not None  # raw still matches


def test_block_user_validates(bl: BlockList) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        bl.block_user({})
    with pytest.raises(TypeError, match="must be str or int, got bool"):
        bl.block_user({"admin": True})
    with pytest.raises(TypeError, match="mapping"):
        bl.block_user("a@x.io")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="256 characters"):
        bl.block_user({"email": "x" * 257})
    assert bl.entries() == []


def test_unblock_user_removes_equal_api_entries_only(bl: BlockList) -> None:
    bl.block_user({"email": "a@x.io"})
    bl.block_user({"email": "a@x.io"}, duration=60)
    bl.block_user({"email": "a@x.io", "id": 1})
    file_entry = BlockEntry("f1", "user", {"email": "a@x.io"}, None, None, "file")
    bl.replace_source("file", [file_entry])
    assert bl.unblock_user({"email": "a@x.io"}) == 2
    assert bl.unblock_user({"email": "a@x.io"}) == 0
    assert bl.match_user({"email": "a@x.io"}) == file_entry
    assert {e.source for e in bl.entries()} == {"api", "file"}
    assert bl.unblock_user({"id": 1, "email": "a@x.io"}) == 1


def test_user_blocked_exception() -> None:
    exc = UserBlocked({"email": "a@x.io"}, "a1")
    assert exc.user_identifiers == {"email": "a@x.io"}
    assert exc.action_id == "a1"
    assert "a@x.io" not in str(exc) and "a1" in str(exc)


# -- matching IPs ------------------------------------------------------------------------------------


def test_block_ip_v4_cidr(bl: BlockList) -> None:
    action_id = bl.block_ip("203.0.113.0/24")
    entry = bl.match_ip("203.0.113.77")
    assert entry is not None and entry.action_id == action_id and entry.kind == "ip"
    assert entry.network == ipaddress.IPv4Network("203.0.113.0/24")
    assert bl.match_ip("203.0.114.1") is None
    assert bl.match_ip("::ffff:203.0.113.5") == entry  # mapped IPv6 is the IPv4 host


def test_block_ip_v6_cidr_and_single_addresses(bl: BlockList) -> None:
    bl.block_ip("2001:db8::/32")
    bl.block_ip("198.51.100.7")
    bl.block_ip("::ffff:192.0.2.9")
    assert bl.match_ip("2001:db8:1::5") is not None
    assert bl.match_ip("2001:db9::1") is None
    assert bl.match_ip("198.51.100.7") is not None
    assert bl.match_ip("198.51.100.8") is None
    assert bl.match_ip("192.0.2.9") is not None
    assert bl.match_ip("::c633:6407") is None  # 198.51.100.7 as the low bits of IPv6 is another host


def test_most_specific_network_wins(bl: BlockList) -> None:
    wide = bl.block_ip("10.0.0.0/8")
    narrow = bl.block_ip("10.1.2.3")
    assert bl.match_ip("10.1.2.3").action_id == narrow  # type: ignore[union-attr]
    assert bl.match_ip("10.1.2.4").action_id == wide  # type: ignore[union-attr]


def test_match_ip_garbage(bl: BlockList) -> None:
    bl.block_ip("0.0.0.0/0")
    assert bl.match_ip(None) is None
    assert bl.match_ip("") is None
    assert bl.match_ip("not an ip") is None
    assert bl.match_ip(1234) is None  # type: ignore[arg-type]
    assert bl.match_ip("1.2.3.4") is not None


def test_block_ip_rejects_bad_values(bl: BlockList) -> None:
    with pytest.raises(ValueError, match=r"^'nope' is not an IP address or network$"):
        bl.block_ip("nope")
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP address or network"):
        bl.block_ip("10.0.0.0/33")
    with pytest.raises(TypeError):
        bl.block_ip(None)  # type: ignore[arg-type]


def test_unblock_ip(bl: BlockList) -> None:
    bl.block_ip("203.0.113.0/24")
    bl.block_ip("203.0.113.9/24")  # the same network, host bits cleared
    bl.block_ip("203.0.113.9")
    bl.replace_source("url", [BlockEntry("u1", "ip", None, ipaddress.IPv4Network("203.0.113.0/24"), None, "url")])
    assert bl.unblock_ip("203.0.113.0/24") == 2
    assert bl.match_ip("203.0.113.9").source == "api"  # type: ignore[union-attr]
    assert bl.unblock_ip("203.0.113.9/32") == 1
    assert bl.match_ip("203.0.113.9").source == "url"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        bl.unblock_ip("x")


def test_empty_list_checks(bl: BlockList) -> None:
    assert bl.match_user({"email": "a"}) is None
    assert bl.match_ip("1.2.3.4") is None
    assert bl.entries() == []


# -- expiry ------------------------------------------------------------------------------------------


def test_expiry_with_a_clock(bl: BlockList, clock: Clock) -> None:
    bl.block_user({"email": "a"}, duration=10)
    bl.block_ip("1.2.3.4", duration=5)
    bl.block_ip("5.6.7.8")
    clock.now += 4.999
    assert bl.match_user({"email": "a"}) is not None and bl.match_ip("1.2.3.4") is not None
    clock.now += 0.001
    assert bl.match_ip("1.2.3.4") is None
    assert bl.match_user({"email": "a"}) is not None
    assert len(bl.entries()) == 2
    clock.now += 5
    assert bl.match_user({"email": "a"}) is None
    assert [str(e.network) for e in bl.entries()] == ["5.6.7.8/32"]


def test_expired_entries_are_purged_on_a_check(bl: BlockList, clock: Clock) -> None:
    for i in range(5):
        bl.block_ip(f"1.2.3.{i}", duration=1)
    clock.now += 2
    assert bl.match_ip("9.9.9.9") is None  # any check purges
    assert bl._sources["api"] == []
    assert bl._index.ips == {} and bl._index.next_expiry is None


def test_expiry_in_real_time() -> None:
    real = BlockList()
    real.block_user({"email": "a"}, duration=0.2)
    assert real.match_user({"email": "a"}) is not None
    time.sleep(0.25)
    assert real.match_user({"email": "a"}) is None
    assert real.entries() == []


@pytest.mark.parametrize(("duration", "shown"), [(0, "0"), (-1, "-1"), (-0.5, "-0.5"), (float("nan"), "nan")])
def test_duration_must_be_positive(bl: BlockList, duration: float, shown: str) -> None:
    with pytest.raises(ValueError, match=rf"^duration must be > 0, got {shown}$"):
        bl.block_user({"email": "a"}, duration=duration)
    with pytest.raises(ValueError, match="duration must be > 0"):
        bl.block_ip("1.2.3.4", duration=duration)
    assert bl.entries() == []


def test_duration_type(bl: BlockList) -> None:
    with pytest.raises(TypeError):
        bl.block_ip("1.2.3.4", duration="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bl.block_ip("1.2.3.4", duration=True)


# -- sources -------------------------------------------------------------------------------------------


def test_replace_source_swaps_only_that_source(bl: BlockList) -> None:
    bl.block_ip("1.1.1.1")
    first = parse_actions(doc({"id": "a", "action": "block_ip", "ip": "2.2.2.2"}), "url")
    bl.replace_source("url", first)
    second = parse_actions(doc({"id": "b", "action": "block_ip", "ip": "3.3.3.3"}), "url")
    bl.replace_source("url", second)
    assert bl.match_ip("2.2.2.2") is None
    assert bl.match_ip("3.3.3.3").action_id == "b"  # type: ignore[union-attr]
    assert bl.match_ip("1.1.1.1") is not None
    bl.replace_source("url", [])
    assert bl.match_ip("3.3.3.3") is None and len(bl.entries()) == 1


def test_replace_source_rejects_entries_of_another_source(bl: BlockList) -> None:
    entries = parse_actions(doc({"id": "a", "action": "block_ip", "ip": "2.2.2.2"}), "file")
    with pytest.raises(ValueError, match="not a BlockEntry of that source"):
        bl.replace_source("url", entries)
    assert bl.entries() == []


def test_clear(bl: BlockList) -> None:
    bl.block_ip("1.1.1.1")
    bl.replace_source("file", parse_actions(doc({"id": "a", "action": "block_user", "user": {"id": 1}}), "file"))
    bl.clear()
    assert bl.entries() == [] and bl.match_ip("1.1.1.1") is None and bl.match_user({"id": 1}) is None


def test_module_default_block_list() -> None:
    assert isinstance(blocking.block_list, BlockList)


def test_threads_block_and_match_concurrently() -> None:
    shared = BlockList()
    sentinel = shared.block_user({"email": "always@x.io"})
    shared.block_ip("198.51.100.0/24")
    failures: list[BaseException] = []
    misses: list[str] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            for i in range(300):
                shared.block_user({"email": f"w{n}-{i}@x.io"}, duration=600)
                shared.block_ip(f"10.{n}.{i % 256}.1")
                if i % 3 == 0:
                    assert shared.unblock_user({"email": f"w{n}-{i}@x.io"}) == 1
        except BaseException as exc:
            failures.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                entry = shared.match_user({"email": "always@x.io", "id": 1})
                if entry is None or entry.action_id != sentinel:
                    misses.append("user")
                if shared.match_ip("198.51.100.200") is None:
                    misses.append("ip")
                shared.match_user({"email": "w0-5@x.io"})
                time.sleep(0)  # let the writers run too
        except BaseException as exc:
            failures.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert failures == [] and misses == []
    users = [e for e in shared.entries() if e.kind == "user"]
    assert len(users) == 1 + 4 * 200
    assert shared.match_user({"email": "w3-299@x.io"}) is not None
    assert shared.match_user({"email": "w3-297@x.io"}) is None  # 297 % 3 == 0: unblocked
    assert shared.match_ip("10.3.43.1") is not None


# -- the actions document ---------------------------------------------------------------------------


def test_parse_actions_good_document() -> None:
    entries = parse_actions(
        doc(
            {"id": "a1", "action": "block_user", "user": {"email": "x@y.z"}, "expires_at": "2026-11-24T00:00:00Z"},
            {"id": "a2", "action": "block_ip", "ip": "203.0.113.0/24", "expires_at": None},
            {"id": "a3", "action": "block_user", "user": {"id": 12, "tenant": "t"}, "expires_at": 1700000000},
            {"id": "a4", "action": "block_ip", "ip": "2001:db8::1", "expires_at": "2026-11-24T02:00:00+02:00"},
            {"id": "a5", "action": "block_ip", "ip": "::ffff:192.0.2.0/120", "expires_at": 1700000000.5},
        ),
        "url",
    )
    assert entries == [
        BlockEntry("a1", "user", {"email": "x@y.z"}, None, 1795478400.0, "url"),
        BlockEntry("a2", "ip", None, ipaddress.IPv4Network("203.0.113.0/24"), None, "url"),
        BlockEntry("a3", "user", {"id": "12", "tenant": "t"}, None, 1700000000.0, "url"),
        BlockEntry("a4", "ip", None, ipaddress.IPv6Network("2001:db8::1/128"), 1795478400.0, "url"),
        BlockEntry("a5", "ip", None, ipaddress.IPv4Network("192.0.2.0/24"), 1700000000.5, "url"),
    ]


def test_parse_actions_accepts_text_and_an_empty_list() -> None:
    assert parse_actions('{"version": 1, "actions": []}', "file") == []


BAD_ACTION = {"id": "ok", "action": "block_ip", "ip": "1.2.3.4"}


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"id": "x", "action": "block_ip", "ip": "nope"}, "'ip' is not an IP address or network: 'nope'"),
        ({"id": "x", "action": "block_ip", "ip": "10.0.0.0/33"}, "'ip' is not an IP address or network: '10.0.0.0/33'"),
        ({"id": "x", "action": "block_ip", "ip": 17}, "'ip' is not an IP address or network: 17"),
        ({"id": "x", "action": "block_ip"}, "'ip' is not an IP address or network: None"),
        ({"id": "x", "action": "block_user", "user": {}}, "'user': user identifiers must not be empty"),
        ({"id": "x", "action": "block_user"}, "'user' must be an object of identifiers, got null"),
        ({"id": "x", "action": "block_user", "user": ["a"]}, "'user' must be an object of identifiers, got a list"),
        ({"id": "x", "action": "block_user", "user": {"admin": True}}, "must be str or int, got bool"),
        ({"id": "x", "action": "block_user", "user": {"e": None}}, "must be str or int, got NoneType"),
        ({"id": "x", "action": "block_user", "user": {"e": "v" * 257}}, "limited to 256 characters"),
        ({"id": "x", "action": "block_user", "user": {"k" * 257: "v"}}, "limited to 256 characters"),
        ({"id": "x", "action": "block_user", "user": {"": "v"}}, "keys must be non-empty str"),
        ({"id": "x", "action": "block_user", "user": {f"k{i}": "v" for i in range(17)}}, "at most 16"),
        ({"id": "x", "action": "block_user", "user": {"e": "v"}, "ip": "1.2.3.4"}, "'ip' is not allowed"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "user": {"e": "v"}}, "'user' is not allowed"),
        (
            {"id": "x", "action": "block_everyone"},
            "'action' must be one of 'block_user', 'redirect_user', 'block_ip', 'redirect_ip', got 'block_everyone'",
        ),
        ({"id": "x", "ip": "1.2.3.4"}, "'redirect_ip', got None"),
        ({"action": "block_ip", "ip": "1.2.3.4"}, "'id' must be text of 1 to 256 characters, got None"),
        ({"id": "", "action": "block_ip", "ip": "1.2.3.4"}, "'id' must be text"),
        ({"id": 5, "action": "block_ip", "ip": "1.2.3.4"}, "'id' must be text"),
        ({"id": "ok", "action": "block_ip", "ip": "1.2.3.4"}, "duplicate id 'ok'"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires": 5}, "unknown key(s) 'expires'"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": "2026-11-24T00:00:00"}, "needs a time zone"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": "2026-11-24"}, "needs a time zone"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": "tomorrow"}, "must be ISO 8601 text"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": ""}, "must be ISO 8601 text"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": True}, "must be ISO 8601 text"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": [1]}, "must be ISO 8601 text"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": 1795478400000}, "(milliseconds?)"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "expires_at": 10**400}, "(milliseconds?)"),
        ("block_ip 1.2.3.4", "must be an object, got text"),
        (None, "must be an object, got null"),
    ],
)
def test_parse_actions_names_the_bad_entry(action: Any, message: str) -> None:
    document = doc(
        BAD_ACTION, {"id": "ok2", "action": "block_user", "user": {"e": "v"}}, BAD_ACTION | {"id": "ok3"}, action
    )
    with pytest.raises(ValueError) as info:
        parse_actions(document, "url")
    assert str(info.value).startswith("actions[3]: ")
    assert message in str(info.value)


def test_parse_actions_exact_message() -> None:
    actions = [BAD_ACTION | {"id": f"a{i}"} for i in range(3)] + [{"id": "a3", "action": "block_ip", "ip": "nope"}]
    with pytest.raises(ValueError) as info:
        parse_actions(doc(*actions), "url")
    assert str(info.value) == "actions[3]: 'ip' is not an IP address or network: 'nope'"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xff\xfe\xfd", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON: nested too deeply"),
        (b'{"version": 1, "actions": [{"id": "a", "action": "block_ip", "ip": "1.2.3.4", "expires_at": NaN}]}', "NaN"),
        (b"[]", "document must be a JSON object, got a list"),
        (b"null", "document must be a JSON object, got null"),
        (b'{"actions": []}', "'version' must be 1, got None"),
        (b'{"version": 2, "actions": []}', "'version' must be 1, got 2"),
        (b'{"version": true, "actions": []}', "'version' must be 1, got True"),
        (b'{"version": 1.0, "actions": []}', "'version' must be 1, got 1.0"),
        (b'{"version": 1}', "'actions' must be a list, got null"),
        (b'{"version": 1, "actions": {}}', "'actions' must be a list, got an object"),
        (b'{"version": 1, "actions": [], "extra": 1}', "unknown key(s) 'extra'"),
    ],
)
def test_parse_actions_rejects_bad_documents(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_actions(data, "url")
    assert message in str(info.value)


def test_parse_actions_caps() -> None:
    too_many = doc(*({"id": str(i), "action": "block_ip", "ip": "1.2.3.4"} for i in range(MAX_ACTIONS + 1)))
    assert len(too_many) < MAX_DOCUMENT_BYTES
    with pytest.raises(ValueError, match=r"too many actions: 10001 > 10000"):
        parse_actions(too_many, "url")
    at_cap = doc(*({"id": str(i), "action": "block_ip", "ip": "1.2.3.4"} for i in range(MAX_ACTIONS)))
    assert len(parse_actions(at_cap, "url")) == MAX_ACTIONS
    huge = b'{"version": 1, "actions": [], "pad": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}'
    with pytest.raises(ValueError, match="larger than 1048576 bytes"):
        parse_actions(huge, "url")
    with pytest.raises(ValueError, match="larger than 1048576 bytes"):
        parse_actions(huge.decode(), "url")


def test_parse_actions_type() -> None:
    with pytest.raises(TypeError):
        parse_actions({"version": 1}, "url")  # type: ignore[arg-type]


# -- ActionsFile --------------------------------------------------------------------------------------


def write(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_file_reloads_when_changed(tmp_path: Path, bl: BlockList) -> None:
    path = tmp_path / "actions.json"
    write(path, doc({"id": "a", "action": "block_ip", "ip": "1.1.1.1"}), 1_000_000_000)
    actions = ActionsFile(path, bl)
    assert actions.refresh() is True
    assert bl.match_ip("1.1.1.1").source == "file"  # type: ignore[union-attr]
    assert actions.refresh() is False  # unchanged
    # Same size, new content and new mtime.
    write(path, doc({"id": "b", "action": "block_ip", "ip": "2.2.2.2"}), 2_000_000_000)
    assert actions.refresh() is True
    assert bl.match_ip("1.1.1.1") is None and bl.match_ip("2.2.2.2") is not None
    # Same mtime, other size.
    write(path, doc({"id": "c", "action": "block_user", "user": {"email": "e"}}), 2_000_000_000)
    assert actions.refresh() is True
    assert bl.match_ip("2.2.2.2") is None and bl.match_user({"email": "e"}) is not None


def test_file_atomic_replace_with_same_mtime_and_size_is_seen(tmp_path: Path, bl: BlockList) -> None:
    path = tmp_path / "actions.json"
    write(path, doc({"id": "a", "action": "block_ip", "ip": "1.1.1.1"}), 1_000_000_000)
    actions = ActionsFile(path, bl)
    assert actions.refresh()
    other = tmp_path / "new.json"
    write(other, doc({"id": "a", "action": "block_ip", "ip": "2.2.2.2"}), 1_000_000_000)
    os.replace(other, path)
    assert actions.refresh() is True
    assert bl.match_ip("2.2.2.2") is not None


def test_bad_file_keeps_the_last_good_list(tmp_path: Path, bl: BlockList, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "actions.json"
    write(path, doc({"id": "a", "action": "block_ip", "ip": "1.1.1.1"}))
    actions = ActionsFile(path, bl)
    assert actions.refresh()
    caplog.set_level(logging.INFO, logger="sqreen_otel")
    write(path, doc({"id": "a", "action": "block_ip", "ip": "1.1.1.1"}, {"id": "b", "action": "block_ip", "ip": "x"}))
    assert actions.refresh() is False
    assert bl.match_ip("1.1.1.1") is not None
    assert errors(caplog) == [
        f"actions file {path}: actions[1]: 'ip' is not an IP address or network: 'x'; keeping the last good block list"
    ]
    assert actions.refresh() is False and len(errors(caplog)) == 1  # not read again until it changes
    write(path, b"{not json", 5_000_000_000)
    assert actions.refresh() is False
    assert len(errors(caplog)) == 2 and "not JSON" in errors(caplog)[1]
    write(path, doc({"id": "z", "action": "block_ip", "ip": "9.9.9.9"}))
    assert actions.refresh() is True
    assert bl.match_ip("1.1.1.1") is None and bl.match_ip("9.9.9.9") is not None
    assert any("loaded (1 actions)" in r.getMessage() for r in caplog.records)


def test_deleted_file_keeps_the_list_logged_once(
    tmp_path: Path, bl: BlockList, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "actions.json"
    data = doc({"id": "a", "action": "block_ip", "ip": "1.1.1.1"})
    write(path, data, 1_000_000_000)
    actions = ActionsFile(path, bl)
    assert actions.refresh()
    path.unlink()
    for _ in range(3):
        assert actions.refresh() is False
    assert errors(caplog) == [f"actions file {path} does not exist; keeping the last good block list"]
    assert bl.match_ip("1.1.1.1") is not None
    bl.clear()
    write(path, data, 1_000_000_000)  # back, identical: read again
    assert actions.refresh() is True
    assert bl.match_ip("1.1.1.1") is not None


def test_missing_file_at_start(tmp_path: Path, bl: BlockList, caplog: pytest.LogCaptureFixture) -> None:
    actions = ActionsFile(tmp_path / "nowhere.json", bl)
    assert actions.refresh() is False and actions.refresh() is False
    assert len(errors(caplog)) == 1 and bl.entries() == []


def test_unreadable_file_is_retried(tmp_path: Path, bl: BlockList, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "actions.json"
    path.mkdir()  # stat works, reading does not
    actions = ActionsFile(path, bl)
    assert actions.refresh() is False and actions.refresh() is False
    (message,) = errors(caplog)
    assert message.startswith(f"actions file {path}: cannot read: ")
    path.rmdir()
    write(path, doc({"id": "a", "action": "block_ip", "ip": "1.1.1.1"}))
    assert actions.refresh() is True


def test_oversized_file(tmp_path: Path, bl: BlockList, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "actions.json"
    write(path, b" " * (MAX_DOCUMENT_BYTES + 1))
    assert ActionsFile(path, bl).refresh() is False
    assert "larger than 1048576 bytes" in errors(caplog)[0]


def test_maybe_refresh_stats_at_most_once_per_interval(tmp_path: Path, bl: BlockList) -> None:
    path = tmp_path / "actions.json"
    write(path, doc({"id": "a", "action": "block_ip", "ip": "1.1.1.1"}), 1_000_000_000)
    actions = ActionsFile(path, bl)
    assert actions.maybe_refresh(min_interval=0.3) is True
    write(path, doc({"id": "b", "action": "block_ip", "ip": "2.2.2.2"}), 2_000_000_000)
    assert actions.maybe_refresh(min_interval=0.3) is False  # too soon: not even looked at
    assert bl.match_ip("1.1.1.1") is not None
    time.sleep(0.35)
    assert actions.maybe_refresh(min_interval=0.3) is True
    assert bl.match_ip("2.2.2.2") is not None


# -- ActionsPoller over real HTTP ----------------------------------------------------------------------


class ActionsServer:
    """A real HTTP server on 127.0.0.1 whose next answers the test sets."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.etag: str | None = None
        self.content_length = True
        self.extra_headers: dict[str, str] = {}
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
                if server.etag is not None and self.headers.get("If-None-Match") == server.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(server.status)
                if server.etag is not None:
                    self.send_header("ETag", server.etag)
                if server.content_length:
                    self.send_header("Content-Length", str(len(server.body)))
                for name, value in server.extra_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(OSError):  # the client hangs up at its size cap
                    self.wfile.write(server.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/actions"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def serve(self, body: bytes, *, status: int = 200, etag: str | None = None) -> None:
        self.body, self.status, self.etag = body, status, etag

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ActionsServer]:
    srv = ActionsServer()
    yield srv
    srv.close()


GOOD = doc(
    {"id": "a1", "action": "block_user", "user": {"email": "x@y.z"}, "expires_at": "2999-01-01T00:00:00Z"},
    {"id": "a2", "action": "block_ip", "ip": "203.0.113.0/24", "expires_at": None},
)


def test_poller_sequence(server: ActionsServer, caplog: pytest.LogCaptureFixture) -> None:
    bl = BlockList()
    poller = ActionsPoller(server.url, bl, token="s3cret", timeout=2)

    server.serve(GOOD, etag='"v1"')
    assert poller.poll_once() is True
    assert bl.match_ip("203.0.113.5").action_id == "a2"  # type: ignore[union-attr]
    assert bl.match_user({"email": "x@y.z"}).source == "url"  # type: ignore[union-attr]
    first = server.requests[-1]
    assert first["authorization"] == "Bearer s3cret"
    assert first[":path"] == "/v1/actions" and "if-none-match" not in first
    assert first["accept-encoding"] == "identity"

    assert poller.poll_once() is False  # 304
    assert server.requests[-1]["if-none-match"] == '"v1"'
    assert bl.match_ip("203.0.113.5") is not None
    assert errors(caplog) == []

    server.serve(b"<html>oops</html>", etag='"v2"')
    assert poller.poll_once() is False
    assert bl.match_ip("203.0.113.5") is not None
    assert server.requests[-1]["if-none-match"] == '"v1"'

    server.serve(b"internal error", status=500)
    assert poller.poll_once() is False
    assert bl.match_ip("203.0.113.5") is not None

    server.serve(b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert poller.poll_once() is False
    assert bl.match_ip("203.0.113.5") is not None

    url = server.url
    assert errors(caplog) == [
        f"actions from {url}: bad actions document: not JSON: Expecting value: line 1 column 1 (char 0); "
        "keeping the last good block list",
        f"actions from {url}: HTTP 500; keeping the last good block list",
        f"actions from {url}: response body larger than 1048576 bytes (2097154); keeping the last good block list",
    ]

    server.serve(doc({"id": "b1", "action": "block_ip", "ip": "198.51.100.1"}), etag='"v3"')
    assert poller.poll_once() is True
    assert bl.match_ip("203.0.113.5") is None and bl.match_ip("198.51.100.1") is not None
    assert server.requests[-1]["if-none-match"] == '"v1"'  # the bad v2 was never applied
    assert poller.poll_once() is False and server.requests[-1]["if-none-match"] == '"v3"'


def test_poller_streams_and_stops_at_the_cap(server: ActionsServer, caplog: pytest.LogCaptureFixture) -> None:
    bl = BlockList()
    bl.replace_source("url", parse_actions(GOOD, "url"))
    server.content_length = False  # HTTP/1.0, body until the connection closes: only the stream cap stops it
    server.serve(b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert ActionsPoller(server.url, bl).poll_once() is False
    assert errors(caplog)[0].endswith("response body larger than 1048576 bytes; keeping the last good block list")
    assert len(bl.entries()) == 2


def test_poller_body_just_under_the_cap_without_length(server: ActionsServer) -> None:
    bl = BlockList()
    server.content_length = False
    body = GOOD + b" " * (MAX_DOCUMENT_BYTES - len(GOOD))
    server.serve(body)
    assert ActionsPoller(server.url, bl).poll_once() is True
    assert len(bl.entries()) == 2


def test_poller_logs_a_repeated_error_once(server: ActionsServer, caplog: pytest.LogCaptureFixture) -> None:
    bl = BlockList()
    poller = ActionsPoller(server.url, bl)
    server.serve(b"", status=503)
    for _ in range(4):
        assert poller.poll_once() is False
    assert len(errors(caplog)) == 1
    server.serve(b"", status=502)
    assert poller.poll_once() is False
    server.serve(b"", status=503)
    assert poller.poll_once() is False
    assert [m.split(": ")[1] for m in errors(caplog)] == [
        "HTTP 503; keeping the last good block list",
        "HTTP 502; keeping the last good block list",
        "HTTP 503; keeping the last good block list",
    ]
    server.serve(GOOD)
    caplog.set_level(logging.INFO, logger="sqreen_otel")
    assert poller.poll_once() is True
    assert any(r.getMessage().endswith("fetched again") for r in caplog.records)
    server.serve(b"", status=503)
    assert poller.poll_once() is False
    assert len(errors(caplog)) == 4


def test_poller_connection_refused_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bl = BlockList()
    bl.block_ip("1.1.1.1")
    poller = ActionsPoller(f"http://127.0.0.1:{port}/v1/actions?token=abc", bl, timeout=1)
    for _ in range(3):
        assert poller.poll_once() is False
    (message,) = errors(caplog)
    assert message.startswith(f"actions from http://127.0.0.1:{port}/v1/actions: ConnectionError: ")
    assert "token=abc" not in message.split(": ")[0]
    assert bl.match_ip("1.1.1.1") is not None


def test_poller_without_token_sends_no_authorization(server: ActionsServer) -> None:
    server.serve(GOOD)
    assert ActionsPoller(server.url, BlockList()).poll_once() is True
    assert "authorization" not in server.requests[-1]


def test_poller_does_not_follow_redirects(server: ActionsServer, caplog: pytest.LogCaptureFixture) -> None:
    server.serve(b"", status=302)
    server.extra_headers = {"Location": "http://127.0.0.1:1/elsewhere"}
    assert ActionsPoller(server.url, BlockList(), token="t").poll_once() is False
    assert len(server.requests) == 1
    assert "HTTP 302" in errors(caplog)[0]


def test_poller_rejects_compressed_bodies(server: ActionsServer, caplog: pytest.LogCaptureFixture) -> None:
    server.serve(GOOD)
    server.extra_headers = {"Content-Encoding": "gzip"}
    assert ActionsPoller(server.url, BlockList()).poll_once() is False
    assert "unexpected Content-Encoding 'gzip'" in errors(caplog)[0]


def test_poller_arguments() -> None:
    with pytest.raises(ValueError, match="url must be an http"):
        ActionsPoller("ftp://x/actions", BlockList())
    with pytest.raises(ValueError, match="url must be an http"):
        ActionsPoller("localhost:8080/v1/actions", BlockList())
    with pytest.raises(ValueError, match=r"^interval must be > 0, got 0$"):
        ActionsPoller("http://x/", BlockList(), interval=0)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        ActionsPoller("http://x/", BlockList(), timeout=-1)
    with pytest.raises(ValueError, match="token"):
        ActionsPoller("http://x/", BlockList(), token="a\r\nX-Evil: 1")


def test_poller_start_stop(server: ActionsServer) -> None:
    bl = BlockList()
    server.serve(GOOD, etag='"v1"')
    poller = ActionsPoller(server.url, bl, interval=0.05)
    assert poller.start() is poller and poller.start() is poller  # idempotent
    deadline = time.monotonic() + 5
    while len(server.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.requests) >= 4
    assert bl.match_ip("203.0.113.1") is not None
    assert [r.get("if-none-match") for r in server.requests[:2]] == [None, '"v1"']
    assert sum(1 for t in threading.enumerate() if t.name == "sqreen_otel-actions") == 1
    poller.stop()
    assert not poller.running
    count = len(server.requests)
    time.sleep(0.2)
    assert len(server.requests) == count
    poller.start()  # again after stop
    deadline = time.monotonic() + 5
    while len(server.requests) == count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.requests) > count
    poller.stop()


def test_first_poll_is_immediate(server: ActionsServer) -> None:
    bl = BlockList()
    server.serve(GOOD)
    poller = ActionsPoller(server.url, bl, interval=3600).start()
    try:
        deadline = time.monotonic() + 5
        while bl.match_ip("203.0.113.1") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bl.match_ip("203.0.113.1") is not None
    finally:
        started = time.monotonic()
        poller.stop()
        assert time.monotonic() - started < 1  # stop() wakes the sleeping thread


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_poller_after_fork(server: ActionsServer) -> None:
    bl = BlockList()
    server.serve(GOOD, etag='"v1"')
    poller = ActionsPoller(server.url, bl, interval=3600).start()
    deadline = time.monotonic() + 5
    while bl.match_ip("203.0.113.1") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    server.serve(doc({"id": "c1", "action": "block_ip", "ip": "192.0.2.1"}), etag='"v2"')
    pid = os.fork()
    if pid == 0:  # child: no thread until start(), which must work
        code = 1
        try:
            if not poller.running and poller._thread is None:
                poller.start()
                end = time.monotonic() + 5
                while bl.match_ip("192.0.2.1") is None and time.monotonic() < end:
                    time.sleep(0.01)
                code = 0 if bl.match_ip("192.0.2.1") is not None and poller.running else 2
            poller.stop()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert poller.running  # the parent's thread is untouched
    assert bl.match_ip("192.0.2.1") is None  # the parent has not polled again
    poller.stop()


def test_poller_requests_are_not_traced(server: ActionsServer) -> None:
    pytest.importorskip("opentelemetry.instrumentation.requests")
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        server.serve(GOOD)
        requests.get(server.url, timeout=2).close()
        assert len(spans.get_finished_spans()) == 1  # the instrumentation works
        spans.clear()
        assert ActionsPoller(server.url, BlockList()).poll_once() is True
        assert spans.get_finished_spans() == ()
    finally:
        instrumentor.uninstrument()


# -- redirects and decision metadata in the actions document --------------------------------------


def test_parse_actions_redirects_and_decision_ids() -> None:
    entries = parse_actions(
        doc(
            {"id": "r1", "action": "redirect_ip", "ip": "203.0.113.0/24", "url": "https://x.io/sorry?a=1#b"},
            {"id": "r2", "action": "redirect_user", "user": {"email": "x@y.z"}, "url": "/verify", "alert": "al"},
            {"id": "b1", "action": "block_ip", "ip": "192.0.2.1", "playbook": "credential-stuffing", "alert": None},
        ),
        "url",
    )
    assert entries == [
        BlockEntry("r1", "ip", None, ipaddress.IPv4Network("203.0.113.0/24"), None, "url", "https://x.io/sorry?a=1#b"),
        BlockEntry("r2", "user", {"email": "x@y.z"}, None, None, "url", "/verify", None, "al"),
        BlockEntry("b1", "ip", None, ipaddress.IPv4Network("192.0.2.1/32"), None, "url", None, "credential-stuffing"),
    ]
    assert [entry.action for entry in entries] == ["redirect_ip", "redirect_user", "block_ip"]
    assert entries[2].event_attributes() == {"sqreen.action.id": "b1", "sqreen.action.playbook": "credential-stuffing"}
    bl = BlockList()
    bl.replace_source("url", entries)
    assert bl.match_ip("203.0.113.5") == entries[0]
    assert bl.match_user({"email": "x@y.z", "id": 3}) == entries[1]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4"}, "'url' must be text of 1 to 2048 characters, got None"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": ""}, "'url' must be text"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "/" + "a" * 2048}, "'url' must be text"),
        (
            {"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "javascript:alert(1)"},
            "http(s) URL with a host",
        ),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "//evil.example/x"}, "http(s) URL with a host"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "/\\evil.example"}, "http(s) URL with a host"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "https:///nohost"}, "http(s) URL with a host"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "/a\r\nSet-Cookie: x=1"}, "control"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "/a b"}, "spaces"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "/caf\u00e9"}, "non-ASCII"),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": 5}, "'url' must be text"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "url": "/x"}, "'url' is only for redirect_ip and"),
        (
            {"id": "x", "action": "redirect_user", "user": {"e": "v"}, "ip": "1.2.3.4", "url": "/x"},
            "'ip' is not allowed",
        ),
        ({"id": "x", "action": "redirect_ip", "ip": "1.2.3.4", "url": "/x", "playbook": ""}, "'playbook' must be text"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "alert": 7}, "'alert' must be text of 1 to 256"),
        ({"id": "x", "action": "block_ip", "ip": "1.2.3.4", "playbook": "p" * 257}, "'playbook' must be text"),
    ],
)
def test_parse_actions_rejects_bad_redirects(action: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_actions(doc(BAD_ACTION, action), "url")
    assert str(info.value).startswith("actions[1]: ")
    assert message in str(info.value)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_poller_resumes_in_a_forked_worker_on_its_first_check(server: ActionsServer) -> None:
    """gunicorn --preload: configure() ran in the master; each worker polls from its first request on."""
    from sqreen_otel import runtime

    bl = BlockList()
    server.serve(GOOD, etag='"v1"')
    poller = ActionsPoller(server.url, bl, interval=0.05).start()
    try:
        server.serve(doc({"id": "c1", "action": "block_ip", "ip": "192.0.2.1"}), etag='"v2"')
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if poller._thread is None:  # no thread in the child until a check
                    runtime.current.refresh_actions()  # what every request does
                    end = time.monotonic() + 5
                    while bl.match_ip("192.0.2.1") is None and time.monotonic() < end:
                        time.sleep(0.01)
                    code = 0 if poller.running and bl.match_ip("192.0.2.1") is not None else 2
                poller.stop()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        poller.stop()
