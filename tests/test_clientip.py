"""resolve_client_ip: the default rule, which addresses are infrastructure, trusted proxies, ip_header, the
Forwarded header, IPv6, garbage and caps."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqreen_otel.clientip import (
    DEFAULT_HEADERS,
    MAX_ENTRIES,
    MAX_HEADER_LENGTH,
    is_infrastructure,
    parse_address,
    parse_networks,
    resolve_client_ip,
)

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])
PUBLIC = "1.2.3.4"
OTHER_PUBLIC = "8.8.8.8"


# -- default rule ------------------------------------------------------------------------------------


def test_no_headers_gives_the_peer() -> None:
    assert resolve_client_ip("10.1.2.3", {}) == "10.1.2.3"
    assert resolve_client_ip(PUBLIC, {}) == PUBLIC


def test_first_public_address_of_x_forwarded_for() -> None:
    headers = {"x-forwarded-for": f"10.0.0.5, 192.168.1.1, {PUBLIC}, {OTHER_PUBLIC}"}
    assert resolve_client_ip("10.9.9.9", headers) == PUBLIC


def test_private_only_headers_give_the_peer() -> None:
    headers = {"x-forwarded-for": "10.0.0.5, 172.16.0.1", "x-real-ip": "192.168.0.7"}
    assert resolve_client_ip("127.0.0.1", headers) == "127.0.0.1"


def test_private_only_headers_without_peer_give_the_first_valid_private() -> None:
    headers = {"x-forwarded-for": "garbage, 172.16.0.1", "x-real-ip": "192.168.0.7"}
    assert resolve_client_ip(None, headers) == "172.16.0.1"
    assert resolve_client_ip(None, {"x-forwarded-for": "nope"}) is None
    assert resolve_client_ip(None, {}) is None


def test_invalid_peer_counts_as_missing() -> None:
    assert resolve_client_ip("unix:/run/app.sock", {"x-real-ip": "192.168.0.7"}) == "192.168.0.7"
    assert resolve_client_ip("", {}) is None


def test_header_order_decides_between_public_addresses() -> None:
    headers = {name: f"9.9.9.{i + 1}" for i, name in enumerate(DEFAULT_HEADERS)}
    headers["forwarded"] = "for=9.9.9.2"
    assert resolve_client_ip("10.0.0.1", headers) == "9.9.9.1"  # x-forwarded-for first
    del headers["x-forwarded-for"]
    assert resolve_client_ip("10.0.0.1", headers) == "9.9.9.2"  # then forwarded
    headers["forwarded"] = "for=192.168.0.1"
    assert resolve_client_ip("10.0.0.1", headers) == "9.9.9.3"  # x-real-ip
    for name in DEFAULT_HEADERS[2:-1]:
        del headers[name]
    assert resolve_client_ip("10.0.0.1", headers) == "9.9.9.8"  # x-cluster-client-ip, the last one


def test_public_in_a_later_header_wins_over_private_in_an_earlier_one() -> None:
    headers = {"x-forwarded-for": "10.0.0.5", "cf-connecting-ip": PUBLIC}
    assert resolve_client_ip("10.0.0.1", headers) == PUBLIC


# Each infrastructure range: its first, a middle and its last address, IPv4-mapped forms too.
INFRASTRUCTURE = {
    "RFC 1918 10/8": ["10.0.0.0", "10.1.2.3", "10.255.255.255"],
    "RFC 1918 172.16/12": ["172.16.0.0", "172.20.1.1", "172.31.255.255"],
    "RFC 1918 192.168/16": ["192.168.0.0", "192.168.1.1", "192.168.255.255", "::ffff:192.168.1.1"],
    "loopback": ["127.0.0.1", "127.255.255.255", "::1", "::ffff:127.0.0.1"],
    "link-local": ["169.254.0.0", "169.254.169.254", "169.254.255.255", "fe80::", "fe80::1", "febf:ffff::1"],
    "carrier-grade NAT 100.64/10": ["100.64.0.0", "100.100.1.1", "100.127.255.255"],
    "unique-local fc00::/7": ["fc00::", "fc00::1", "fd12:3456::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    "unspecified": ["0.0.0.0", "::"],
}
# Clients: the documentation ranges, the edges just outside each infrastructure range, and other special
# ranges that Python's ``ipaddress`` calls private or reserved but that no proxy of ours uses.
CLIENTS = {
    "documentation 192.0.2/24": ["192.0.2.0", "192.0.2.1", "192.0.2.255"],
    "documentation 198.51.100/24": ["198.51.100.0", "198.51.100.23", "198.51.100.255"],
    "documentation 203.0.113/24": ["203.0.113.0", "203.0.113.7", "203.0.113.255"],
    "documentation 2001:db8::/32": ["2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"],
    "outside the RFC 1918 edges": ["9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255",
                                   "192.169.0.0"],
    "outside the loopback, link-local and CGNAT edges": ["126.255.255.255", "128.0.0.0", "169.253.255.255",
                                                         "169.255.0.0", "100.63.255.255", "100.128.0.0", "::2",
                                                         "fec0::1", "fbff:ffff::1", "fe00::1"],
    "outside unspecified": ["0.0.0.1", "::ffff:0.0.0.1"],
    "public": ["1.2.3.4", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.4.4"],
    "other special ranges": ["192.0.0.8", "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "64:ff9b::1",
                             "2001::1", "2002::1", "ff02::1", "100::1"],
}  # fmt: skip


def _cases(table: dict[str, list[str]]) -> list[object]:
    return [
        pytest.param(address, id=f"{name}: {address}") for name, addresses in table.items() for address in addresses
    ]


@pytest.mark.parametrize("address", _cases(INFRASTRUCTURE))
def test_infrastructure_addresses_are_skipped(address: str) -> None:
    parsed = parse_address(address)
    assert parsed is not None and is_infrastructure(parsed)
    assert resolve_client_ip("10.0.0.1", {"x-forwarded-for": f"{address}, {PUBLIC}"}) == PUBLIC
    assert resolve_client_ip("10.0.0.1", {"x-forwarded-for": address}) == "10.0.0.1"  # nothing but infrastructure


@pytest.mark.parametrize("address", _cases(CLIENTS))
def test_every_other_address_is_a_client(address: str) -> None:
    parsed = parse_address(address)
    assert parsed is not None and not is_infrastructure(parsed)
    assert resolve_client_ip("10.0.0.1", {"x-forwarded-for": f"{address}, {PUBLIC}"}) == str(parsed)
    assert resolve_client_ip("10.0.0.1", {"x-real-ip": address}) == str(parsed)


def test_documentation_addresses_behind_a_proxy_are_the_client() -> None:
    # The report: these were skipped as "not public" and the proxy was reported instead.
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": "198.51.100.23, 10.0.0.1"}) == "198.51.100.23"
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": "203.0.113.7"}) == "203.0.113.7"
    assert resolve_client_ip("127.0.0.1", {"forwarded": 'for="[2001:db8::7]:4711"'}) == "2001:db8::7"
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": "10.0.0.9, 100.64.1.1, 192.0.2.44"}) == "192.0.2.44"


def test_spoofed_header_wins_by_default() -> None:
    # The documented weakness: without trusted_proxies or ip_header a client picks its own address.
    assert resolve_client_ip(OTHER_PUBLIC, {"x-forwarded-for": PUBLIC}) == PUBLIC


# -- addresses: IPv6, ports, brackets, mapped ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("[2606:4700::1111]:443", "2606:4700::1111"),
        ("[2606:4700::1111]", "2606:4700::1111"),
        ("2606:4700:0:0::1111", "2606:4700::1111"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("[::ffff:1.2.3.4]:80", "1.2.3.4"),
        ("fe80::1%eth0", "fe80::1"),
        ("[::1]:80", "::1"),
    ],
)
def test_parse_address_forms(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "unknown", "_hidden", "1.2.3", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:99999", "1.2.3.4:http", "1.2.3.4:١٢",
     "[::1", "[::1]x", "[::1]:", "01.2.3.4", "1.2.3.4/24", "1" * 200, "1.2.3.4:80:80", "\x00"],
)  # fmt: skip
def test_parse_address_rejects_garbage(text: str) -> None:
    assert parse_address(text) is None


def test_ipv6_and_ports_in_headers() -> None:
    headers = {"x-forwarded-for": "[fd00::1]:1234, [2606:4700::1111]:443, 1.2.3.4:80"}
    assert resolve_client_ip("::1", headers) == "2606:4700::1111"
    assert resolve_client_ip("::ffff:10.0.0.1", {}) == "10.0.0.1"
    assert resolve_client_ip("[::1]:8080", {}) == "::1"


def test_ipv4_mapped_in_header_is_normalised() -> None:
    assert resolve_client_ip("10.0.0.1", {"x-forwarded-for": "::ffff:1.2.3.4"}) == PUBLIC


# -- Forwarded (RFC 7239) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=1.2.3.4", "1.2.3.4"),
        ("For=1.2.3.4", "1.2.3.4"),
        ('for="1.2.3.4:4711"', "1.2.3.4"),
        ('for="[2606:4700::1111]:4711"', "2606:4700::1111"),
        ('for="[2606:4700::1111]"', "2606:4700::1111"),
        ("for=192.168.0.1;proto=https;by=10.0.0.1, for=1.2.3.4", "1.2.3.4"),
        ("proto=https;for=1.2.3.4;host=example.com", "1.2.3.4"),
        ("for=unknown, for=_hidden, for=1.2.3.4", "1.2.3.4"),
        (" for = 1.2.3.4 ", "1.2.3.4"),
    ],
)
def test_forwarded_forms(value: str, expected: str) -> None:
    assert resolve_client_ip("10.0.0.1", {"forwarded": value}) == expected


def test_forwarded_without_usable_for_gives_the_peer() -> None:
    for value in ("by=1.2.3.4", "for=unknown", 'for="_secret"', "for=", "for", ";;,,", 'for="1.2.3.4'):
        assert resolve_client_ip("10.0.0.1", {"forwarded": value}) == "10.0.0.1", value


# -- trusted proxies ------------------------------------------------------------------------------------


def test_client_behind_trusted_proxy_cannot_spoof() -> None:
    # The client 5.6.7.8 sends "X-Forwarded-For: 1.2.3.4" itself; the trusted proxy appends 5.6.7.8.
    headers = {"x-forwarded-for": f"{PUBLIC}, 5.6.7.8"}
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "5.6.7.8"
    assert resolve_client_ip("10.0.0.2", headers) == PUBLIC  # the default believes the spoof


def test_untrusted_peer_headers_are_ignored() -> None:
    headers = {"x-forwarded-for": PUBLIC, "x-real-ip": PUBLIC, "forwarded": f"for={PUBLIC}"}
    assert resolve_client_ip("5.6.7.8", headers, trusted_proxies=PROXIES) == "5.6.7.8"
    assert resolve_client_ip(None, headers, trusted_proxies=PROXIES) is None


def test_chain_of_trusted_proxies_is_walked_right_to_left() -> None:
    headers = {"x-forwarded-for": f"{PUBLIC}, 5.6.7.8, 10.0.0.3, fd00::7"}
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "5.6.7.8"


def test_private_client_behind_trusted_proxy_is_returned() -> None:
    headers = {"x-forwarded-for": "192.168.1.20"}
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "192.168.1.20"


def test_all_trusted_gives_the_leftmost() -> None:
    headers = {"x-forwarded-for": "10.0.0.9, 10.0.0.8, 10.0.0.7"}
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "10.0.0.9"


def test_trusted_peer_without_header_gives_the_peer() -> None:
    assert resolve_client_ip("10.0.0.2", {}, trusted_proxies=PROXIES) == "10.0.0.2"


def test_garbage_ends_the_walk() -> None:
    # Nothing left of an entry the trusted proxy could not have written is believed.
    headers = {"x-forwarded-for": f"{PUBLIC}, nonsense, 10.0.0.3"}
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "10.0.0.3"
    headers = {"x-forwarded-for": f"{PUBLIC}, nonsense", "forwarded": "for=6.6.6.6"}
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "10.0.0.2"


def test_forwarded_walk_when_no_x_forwarded_for() -> None:
    headers = {"forwarded": f'for={PUBLIC}, for="[2606:4700::1111]:99";proto=https, for=10.0.0.3'}
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "2606:4700::1111"


def test_empty_trusted_proxies_trust_no_one() -> None:
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": PUBLIC}, trusted_proxies=()) == "10.0.0.2"


def test_trusted_ipv6_network_does_not_trust_ipv4() -> None:
    everything_v6 = parse_networks(["::/0"])
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": PUBLIC}, trusted_proxies=everything_v6) == "10.0.0.2"
    assert resolve_client_ip("fd00::2", {"x-forwarded-for": PUBLIC}, trusted_proxies=everything_v6) == PUBLIC


def test_mapped_peer_is_trusted_as_ipv4() -> None:
    assert resolve_client_ip("::ffff:10.0.0.2", {"x-forwarded-for": PUBLIC}, trusted_proxies=PROXIES) == PUBLIC


# -- ip_header ------------------------------------------------------------------------------------------


def test_ip_header_is_the_only_header_read() -> None:
    headers = {"x-forwarded-for": OTHER_PUBLIC, "x-real-ip": "192.168.3.3"}
    assert resolve_client_ip("10.0.0.1", headers, ip_header="X-Real-IP") == "192.168.3.3"
    assert resolve_client_ip("10.0.0.1", headers, ip_header="cf-connecting-ip") == "10.0.0.1"
    assert resolve_client_ip(None, headers, ip_header="cf-connecting-ip") is None


def test_ip_header_first_valid_address() -> None:
    headers = {"x-custom": "junk, 192.168.1.1, 1.2.3.4"}
    assert resolve_client_ip("10.0.0.1", headers, ip_header="x-custom") == "192.168.1.1"
    assert resolve_client_ip("10.0.0.1", {"x-custom": "junk"}, ip_header="x-custom") == "10.0.0.1"


def test_ip_header_forwarded_is_parsed_as_forwarded() -> None:
    assert resolve_client_ip("10.0.0.1", {"forwarded": "for=1.2.3.4"}, ip_header="Forwarded") == PUBLIC


def test_ip_header_with_trusted_proxies() -> None:
    headers = {"cf-connecting-ip": PUBLIC}
    assert resolve_client_ip("10.0.0.2", headers, ip_header="CF-Connecting-IP", trusted_proxies=PROXIES) == PUBLIC
    assert resolve_client_ip("5.6.7.8", headers, ip_header="CF-Connecting-IP", trusted_proxies=PROXIES) == "5.6.7.8"
    chain = {"x-edge-for": f"{PUBLIC}, 5.6.7.8, 10.0.0.3"}
    assert resolve_client_ip("10.0.0.2", chain, ip_header="x-edge-for", trusted_proxies=PROXIES) == "5.6.7.8"
    # X-Forwarded-For is not read when ip_header names another header.
    spoof = {"x-forwarded-for": PUBLIC}
    assert resolve_client_ip("10.0.0.2", spoof, ip_header="x-real-ip", trusted_proxies=PROXIES) == "10.0.0.2"


# -- parse_networks -------------------------------------------------------------------------------------


def test_parse_networks() -> None:
    assert parse_networks(["10.0.0.0/8", " 192.168.1.10 ", "2001:db8::/32", "::1", "10.1.2.3/16"]) == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("192.168.1.10/32"),
        ipaddress.IPv6Network("2001:db8::/32"),
        ipaddress.IPv6Network("::1/128"),
        ipaddress.IPv4Network("10.1.0.0/16"),
    )
    assert parse_networks("10.0.0.0/8, ::ffff:172.16.0.0/108") == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("172.16.0.0/12"),
    )
    assert parse_networks([]) == ()


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "nope", "", "1.2.3.4:80", "[::1]"])
def test_parse_networks_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_networks(["10.0.0.0/8", bad])
    assert str(info.value) == f"trusted_proxies: {bad!r} is not an IP network"


def test_parse_networks_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="trusted_proxies: 10 is not a string"):
        parse_networks([10])  # type: ignore[list-item]


# -- caps and garbage -----------------------------------------------------------------------------------


def test_only_the_first_entries_are_read_by_default() -> None:
    many = ", ".join(["10.0.0.1"] * MAX_ENTRIES + [PUBLIC])
    assert resolve_client_ip("10.0.0.9", {"x-forwarded-for": many}) == "10.0.0.9"
    fewer = ", ".join(["10.0.0.1"] * (MAX_ENTRIES - 1) + [PUBLIC])
    assert resolve_client_ip("10.0.0.9", {"x-forwarded-for": fewer}) == PUBLIC


def test_only_the_first_characters_are_read_by_default() -> None:
    padding = "x" * (MAX_HEADER_LENGTH - len("8.8.8.8") - 1)
    assert resolve_client_ip("10.0.0.9", {"x-forwarded-for": f"{padding},8.8.8.8"}) == OTHER_PUBLIC
    # One character more and the address would be cut: it is not read (not even as "8.8.8.").
    assert resolve_client_ip("10.0.0.9", {"x-forwarded-for": f"{padding}x,8.8.8.8"}) == "10.0.0.9"
    assert resolve_client_ip("10.0.0.9", {"x-forwarded-for": f"{padding},8.8.8.88"}) == "10.0.0.9"


def test_padding_cannot_push_the_proxy_entry_out_with_trusted_proxies() -> None:
    # A client pads the header to hide the entry its proxy appends; the walk reads from the right.
    by_count = ", ".join([PUBLIC] * 100 + ["5.6.7.8"])
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": by_count}, trusted_proxies=PROXIES) == "5.6.7.8"
    by_length = "1" * 10_000 + ", 5.6.7.8, 10.0.0.3"
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": by_length}, trusted_proxies=PROXIES) == "5.6.7.8"
    trusted_only = ", ".join(["10.0.0.7"] * 40 + ["10.0.0.1"])
    assert resolve_client_ip("10.0.0.2", {"x-forwarded-for": trusted_only}, trusted_proxies=PROXIES) == "10.0.0.7"


@pytest.mark.parametrize(
    "value",
    ["", ",,,", "   ", '"', "for=", "\x00\xff", "1.2.3.4\n5.6.7.8", "[" * 5000, "::::", "for=for=1.2.3.4"],
)
def test_garbage_headers_do_not_raise(value: str) -> None:
    headers = {name: value for name in DEFAULT_HEADERS}
    assert resolve_client_ip("10.0.0.1", headers) == "10.0.0.1"
    assert resolve_client_ip("10.0.0.2", headers, trusted_proxies=PROXIES) == "10.0.0.2"
    assert resolve_client_ip("10.0.0.1", headers, ip_header="x-real-ip") == "10.0.0.1"


def test_non_text_header_values_are_skipped() -> None:
    headers = {"x-forwarded-for": b"1.2.3.4", "x-real-ip": None, "forwarded": 7}
    assert resolve_client_ip("10.0.0.1", headers) == "10.0.0.1"  # type: ignore[arg-type]


_header_text = st.text(alphabet=st.sampled_from(list('0123456789abcdef.:[]",; =fo_rFOR%x\t-')), max_size=120) | st.text(
    max_size=200
)


@settings(max_examples=300, deadline=None)
@given(
    peer=st.none() | _header_text,
    values=st.dictionaries(st.sampled_from([*DEFAULT_HEADERS, "x-custom"]), _header_text, max_size=5),
    mode=st.sampled_from(["default", "trusted", "header", "both"]),
)
def test_never_raises_on_arbitrary_text(peer: str | None, values: dict[str, str], mode: str) -> None:
    trusted = PROXIES if mode in ("trusted", "both") else None
    ip_header = "x-custom" if mode in ("header", "both") else None
    result = resolve_client_ip(peer, values, ip_header=ip_header, trusted_proxies=trusted)
    assert result is None or str(ipaddress.ip_address(result)) == result
