"""Which addresses a guest may not reach unless a grant names them (workbench/network/addresses.py).

The oracle is a table written from the IANA special-purpose registries (CIDR membership), not
``ipaddress``'s properties that the code uses: where the two disagree, one of them is wrong.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.network.addresses import METADATA, special

#: IPv4 ranges that are not globally reachable (IANA IPv4 special-purpose registry, plus CGNAT)
SPECIAL_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)]
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
#: inside 2000::/3 but not public (IETF assignments incl. Teredo, documentation, 6to4 judged by its inside)
SPECIAL_V6 = [ipaddress.ip_network(n) for n in ("2001::/23", "2001:db8::/32", "3fff::/20")]
SIXTOFOUR = ipaddress.ip_network("2002::/16")


def oracle_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address in METADATA:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in net for net in SPECIAL_V4)
    if address not in GLOBAL_UNICAST_V6 or any(address in net for net in SPECIAL_V6):
        return False
    if address in SIXTOFOUR:
        return oracle_public(ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF))
    return True


def _near(net: str) -> st.SearchStrategy[int]:
    network = ipaddress.ip_network(net)
    first, last = int(network.network_address), int(network.broadcast_address)
    return st.sampled_from([first - 1, first, first + 1, last - 1, last, last + 1]) | st.integers(first, last)


v4 = st.one_of(st.integers(0, 2**32 - 1), *(_near(str(n)) for n in SPECIAL_V4)).filter(
    lambda n: 0 <= n < 2**32).map(ipaddress.IPv4Address)
v6_plain = st.one_of(st.integers(0, 2**128 - 1), *(_near(n) for n in (
    "2000::/3", "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "3fff::/20", "::/127",
))).filter(lambda n: 0 <= n < 2**128).map(ipaddress.IPv6Address)
#: IPv6 addresses that carry an IPv4 one: mapped, NAT64 and 6to4 around each special IPv4 range
v6_carrying = st.tuples(st.sampled_from([0xFFFF << 32, 0x64FF9B << 96]), v4).map(
    lambda pair: ipaddress.IPv6Address(pair[0] | int(pair[1]))) | v4.map(
    lambda a: ipaddress.IPv6Address((0x2002 << 112) | (int(a) << 80) | 1))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(v4, v6_plain, v6_carrying))
def test_special_agrees_with_the_registry_table(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert (special(address) is None) == oracle_public(address), (address, special(address))


def test_the_named_addresses() -> None:
    table = {
        "127.0.0.1": "loopback", "127.255.255.254": "loopback", "::1": "loopback",
        "10.1.2.3": "private", "172.31.255.255": "private", "192.168.0.1": "private", "fd12::1": "private",
        "169.254.169.254": "cloud metadata", "fd00:ec2::254": "cloud metadata", "100.100.100.200": "cloud metadata",
        "169.254.0.1": "link-local", "fe80::1": "link-local", "100.64.0.1": "shared (CGNAT)",
        "0.0.0.0": "unspecified", "::": "unspecified", "224.0.0.1": "multicast", "ff02::1": "multicast",
        "::ffff:127.0.0.1": "loopback (inside an IPv6 address)",
        "::ffff:169.254.169.254": "cloud metadata (inside an IPv6 address)",
        "64:ff9b::a9fe:a9fe": "cloud metadata (inside an IPv6 address)",
        "2002:7f00:1::": "loopback (inside an IPv6 address)",
        "8.8.8.8": None, "1.1.1.1": None, "2606:4700:4700::1111": None, "93.184.215.14": None,
    }
    for text, why in table.items():
        assert special(ipaddress.ip_address(text)) == why, text


LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
GRANT_HOSTS = ["*", "*.example.com", "api.example.com", "localhost", "127.0.0.1", "10.0.0.7", "[::1]",
               "169.254.169.254"]


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(GRANT_HOSTS), st.one_of(v4, v6_plain, v6_carrying,
                                               st.sampled_from(["127.0.0.1", "10.0.0.7", "::1", "169.254.169.254"])
                                               .map(ipaddress.ip_address)))
def test_an_address_is_reached_only_when_public_or_named_by_the_grant(grant_host: str, address: Any) -> None:
    """Oracle: the registry table above, plus what 'named' means written out plainly: the grant's
    host is the address itself, or ``localhost`` and the address is in 127/8 or ::1."""
    from workbench.network.rules import check_address
    from workbench.network.urls import parse_url
    from workbench.policy import Policy

    policy = Policy.parse([f"network:http:{grant_host}"])
    rule = policy.grants[0]
    written = f"[{address.compressed}]" if address.version == 6 else str(address)
    named = grant_host == written or (grant_host == "localhost" and any(address in n for n in LOOPBACK))
    refused = check_address(policy, parse_url("http://api.example.com/"), rule, address)
    assert (refused is None) == (oracle_public(address) or named), (grant_host, address, refused)
