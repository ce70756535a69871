"""The address of the real client behind proxies and load balancers, not the last proxy's.

The trade-off. By default ``resolve_client_ip`` believes the usual forwarding headers and returns the
first client address it finds in them (one that is not infrastructure, see ``is_infrastructure``): it
works behind any proxy without configuration, which is right for reporting. But any client can send
``X-Forwarded-For: 1.2.3.4`` itself; when the application is reachable directly, or through a proxy
that appends to that header instead of replacing it, the default picks the spoofed address. Blocking
by IP is then easy to evade (and can be turned against innocent addresses). For blocking, configure
one of:

- ``trusted_proxies``: the networks of your proxies. Headers are believed only when the peer is one
  of them, and ``X-Forwarded-For`` (else ``Forwarded``) is read from the right, where trusted
  proxies append: the first address that is not a trusted proxy is the client. When the proxies'
  own entry is not an address, the client is unknown and the nearest trusted hop (or the peer) is
  returned, never an address from further left, which the client could have written.
- ``ip_header``: the one header your edge sets and overwrites (``X-Real-IP``, ``CF-Connecting-IP``...).
  Combine it with ``trusted_proxies`` when the application can also be reached without the edge.

Results are normalised addresses (``::ffff:1.2.3.4`` becomes ``1.2.3.4``, ports and brackets go) or
``None``; header text is never trusted to be well-formed and never makes this raise.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HEADER_LENGTH = 4096  # characters of one header value looked at; the rest is ignored
MAX_ENTRIES = 32  # addresses of one header looked at
_MAX_TOKEN = 80  # longer than any address with brackets, zone and port: not parsed at all

DEFAULT_HEADERS = (
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
)
# Headers read right to left with ``trusted_proxies``: the ones proxies append to.
CHAIN_HEADERS = ("x-forwarded-for", "forwarded")

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
# Addresses that are never a client's (``is_infrastructure``). IPv4-mapped IPv6 is normalised to IPv4 first.
_INFRASTRUCTURE_V4 = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "100.64.0.0/10",  # RFC 6598 carrier-grade NAT, also used inside private networks
        "0.0.0.0/32",  # unspecified
    )
)
_INFRASTRUCTURE_V6 = tuple(
    ipaddress.IPv6Network(cidr)
    for cidr in (
        "::1/128",  # loopback
        "fe80::/10",  # link-local
        "fc00::/7",  # unique-local
        "::/128",  # unspecified
    )
)


def resolve_client_ip(
    peer: str | None,
    headers: Mapping[str, str],
    *,
    ip_header: str | None = None,
    trusted_proxies: Sequence[IPNetwork] | None = None,
) -> str | None:
    """The client's address, from the socket ``peer`` and the request's lower-cased ``headers``.

    See the module docstring for when to set ``ip_header`` or ``trusted_proxies``. ``trusted_proxies=()``
    trusts no one: headers are ignored and the peer is returned.
    """
    peer_address = parse_address(peer) if isinstance(peer, str) else None
    if trusted_proxies is not None:
        if peer_address is None or not _is_trusted(peer_address, trusted_proxies):
            return _text(peer_address)
        names = (ip_header.strip().lower(),) if ip_header else CHAIN_HEADERS
        for name in names:  # the first of them that is present decides, garbage included
            entries = _entries(headers, name, from_right=True)
            if entries:
                client = _walk(entries, trusted_proxies)
                return _spelling(client if client is not None else peer_address)
        return _spelling(peer_address)

    if ip_header:
        for address in _entries(headers, ip_header.strip().lower(), from_right=False):
            if address is not None:
                return _spelling(address)
        return _text(peer_address)

    if headers.keys().isdisjoint(DEFAULT_HEADERS):  # most requests: no forwarding header at all
        return _text(peer_address)
    first_infrastructure: IPAddress | None = None
    for name in DEFAULT_HEADERS:
        for address in _entries(headers, name, from_right=False):
            if address is None:
                continue
            if not is_infrastructure(address):
                return _spelling(address)
            if first_infrastructure is None:
                first_infrastructure = address
    return _text(peer_address if peer_address is not None else first_infrastructure)


@functools.lru_cache(maxsize=4096)  # peers and proxies repeat on every request; ipaddress parsing is slow
def parse_address(text: str) -> IPAddress | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]`` or ``[::1]:80``; ``None`` if not one."""
    text = text.strip()
    if not text or len(text) > _MAX_TOKEN:
        return None
    if text[0] == "[":
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and _is_port(rest[1:]))):
            return None
        text = host
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two colons
        text, _, port = text.partition(":")
        if not _is_port(port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return normalise(address)


def normalise(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 as IPv4, and no IPv6 zone, so that one host has one spelling."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


@functools.lru_cache(maxsize=4096)
def is_infrastructure(address: IPAddress) -> bool:
    """An address of our own network or a proxy's, never a client's: RFC 1918, loopback, link-local, CGNAT,
    unique-local (``fc00::/7``) or unspecified.

    Everything else is a client, documentation ranges (``192.0.2.0/24``, ``198.51.100.0/24``,
    ``203.0.113.0/24``, ``2001:db8::/32``) included: examples, tests and block lists use them as clients, and
    Python's ``is_private`` (which counts them as private) would skip them and report the proxy instead.
    """
    networks = _INFRASTRUCTURE_V4 if address.version == 4 else _INFRASTRUCTURE_V6
    return any(address in network for network in networks)


def parse_network(value: str) -> IPNetwork:
    """A network from CIDR text or a single address (as /32 or /128); IPv4-mapped IPv6 networks become IPv4.

    Host bits are allowed and cleared (``10.1.2.3/16`` is ``10.1.0.0/16``). Raises ``ValueError``.
    """
    network = ipaddress.ip_network(value.strip(), strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.network_address in _MAPPED:
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


def parse_networks(values: Iterable[str] | str, *, name: str = "trusted_proxies") -> tuple[IPNetwork, ...]:
    """Networks from CIDR text or single addresses; a string is read as a comma-separated list.

    >>> parse_networks(["10.0.0.0/8", "192.168.1.10"])
    (IPv4Network('10.0.0.0/8'), IPv4Network('192.168.1.10/32'))
    """
    if isinstance(values, str):
        values = [part for part in values.split(",") if part.strip()]
    networks: list[IPNetwork] = []
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"{name}: {value!r} is not a string")
        try:
            networks.append(parse_network(value))
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not an IP network") from None
    return tuple(networks)


def _entries(headers: Mapping[str, str], name: str, *, from_right: bool) -> list[IPAddress | None]:
    """The addresses of one header (``None`` for an entry that is not one), capped from the end we read from.

    Reading from the right keeps the entries trusted proxies appended even when a client pads the header.
    """
    value = headers.get(name)
    if not isinstance(value, str) or not value:
        return []
    if len(value) > MAX_HEADER_LENGTH:  # cut at a comma so that no entry is read half
        if from_right:
            value = value[-MAX_HEADER_LENGTH - 1 :].partition(",")[2]
        else:
            value = value[: MAX_HEADER_LENGTH + 1].rpartition(",")[0]
    # Split on every comma, quoted or not: a stray quote from a client must not swallow the entries
    # that proxies append after it. Addresses never contain commas.
    items = [item for item in value.split(",") if item.strip()]
    items = items[-MAX_ENTRIES:] if from_right else items[:MAX_ENTRIES]
    if name == "forwarded":
        return [_forwarded_for(item) for item in items]
    return [parse_address(item) for item in items]


def _forwarded_for(element: str) -> IPAddress | None:
    """The ``for=`` node of one RFC 7239 element; ``None`` for ``unknown``, ``_obfuscated`` or garbage."""
    for pair in element.split(";"):
        key, equals, value = pair.partition("=")
        if equals and key.strip().lower() == "for":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return parse_address(value)
    return None


def _walk(entries: list[IPAddress | None], trusted: Sequence[IPNetwork]) -> IPAddress | None:
    """Right to left, the first address that is not a trusted proxy; if all are trusted, the leftmost.

    An entry that is not an address ends the walk: it was written by someone we do not trust, so
    nothing to its left can be believed either.
    """
    client = None
    for address in reversed(entries):
        if address is None:
            break
        client = address
        if not _is_trusted(address, trusted):
            break
    return client


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def _is_port(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit() and int(text) <= 65535


def _text(address: IPAddress | None) -> str | None:
    return None if address is None else _spelling(address)


@functools.lru_cache(maxsize=4096)  # the same few addresses on every request; ``str()`` of one is slow
def _spelling(address: IPAddress) -> str:
    return str(address)
