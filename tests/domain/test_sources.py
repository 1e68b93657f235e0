"""Source keys: IPv4 per address, IPv6 per /64, mapped addresses as IPv4, odd peers as is."""

from __future__ import annotations

import pytest

from securechat.domain.sources import source_key


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("ipv4:203.0.113.7:53422", "203.0.113.7"),
        ("ipv4:127.0.0.2:1", "127.0.0.2"),
        ("ipv6:[2001:db8:0:1:aaaa::1]:53422", "2001:db8:0:1::/64"),
        ("ipv6:%5B2001:db8:0:1:bbbb::2%5D:53422", "2001:db8:0:1::/64"),
        ("ipv6:[::1]:50051", "::/64"),
        ("ipv6:[::ffff:198.51.100.4]:443", "198.51.100.4"),
        ("ipv6:[fe80::1%25eth0]:443", "fe80::/64"),
        ("unix:/run/securechat.sock", "unix:/run/securechat.sock"),
        ("ipv4:not-an-address:1", "ipv4:not-an-address"),
        ("weird", "weird"),
    ],
)
def test_source_keys(peer: str, key: str) -> None:
    assert source_key(peer) == key


def test_one_ipv6_host_cannot_rotate_out_of_its_slash_64() -> None:
    keys = {source_key(f"ipv6:[2001:db8:5:6::{i:x}]:1") for i in range(1, 500)}
    assert keys == {"2001:db8:5:6::/64"}
