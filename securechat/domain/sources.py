"""Where a request comes from, as rate limits count it: one key per IPv4 address, per IPv6 /64.

A gRPC peer string (``ipv4:203.0.113.7:53422``, ``ipv6:[2001:db8::1]:53422``, also written
``ipv6:%5B2001:db8::1%5D:53422``) becomes a *source key*:

- IPv4: the address itself (``203.0.113.7``). Everyone behind one NAT shares it, which is why no
  limit ever locks a source out for one account's failures (see docs/operations.md).
- IPv6: the /64 prefix (``2001:db8:0:1::/64``). One subscriber usually gets a whole /64 (often a
  /56 or /48), so a per-address key would let one host rotate through 2^64 addresses.
- IPv4-mapped IPv6 (``::ffff:203.0.113.7``): the IPv4 address.
- Anything else (a Unix socket, an unparsable peer): the peer string without its port.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

IPV6_PREFIX = 64


def _host(peer: str) -> tuple[str, str]:
    """(scheme, host without port) of a gRPC peer string."""
    scheme, sep, rest = peer.partition(":")
    if not sep:
        return "", peer
    rest = unquote(rest)
    if rest.startswith("["):
        host, _, _ = rest[1:].partition("]")
        return scheme, host
    host, colon, port = rest.rpartition(":")
    if colon and port.isdigit() and (scheme != "ipv6" or host):
        return scheme, host
    return scheme, rest


def source_key(peer: str) -> str:
    """The key a peer is counted under by per-source limits (see the module docstring)."""
    scheme, host = _host(peer)
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return f"{scheme}:{host}" if scheme else host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)
        return str(network)
    return str(address)
