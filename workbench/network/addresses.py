"""Which IP addresses a guest may not reach unless a grant names them: :func:`special`.

Why a list of its own: a wildcard grant (``network:https:*``, ``*.example.com``) is meant for
the internet, and a name under it can resolve to anything its owner likes: the host's own
loopback services, the local network, or the cloud's metadata service with its credentials
(169.254.169.254).  So every address a request would go to, named or resolved, is classified
here, and a special one is refused unless the deciding grant names that very address (or
``localhost`` for loopback; see :mod:`workbench.network.rules`).

The classification rests on :mod:`ipaddress`'s properties (RFC 6890 and the IANA special
registries), plus what those leave out: site-local ``fec0::/10``, IPv6 outside ``2000::/3``, the shared CGNAT range 100.64.0.0/10 (where Alibaba's
metadata service lives, 100.100.100.200) and AWS's IPv6 metadata address fd00:ec2::254.  An IPv6
address that carries an IPv4 one (mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64
``64:ff9b::/96``, Teredo) is judged by the IPv4 address inside as well.
"""

from __future__ import annotations

import ipaddress
from typing import Union

__all__ = ["Address", "METADATA", "special"]

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

#: cloud metadata services (AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba)
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
#: not globally reachable, yet public to some versions of ipaddress: IETF protocol assignments,
#: the old 6to4 relay anycast, the 2024 IPv6 documentation prefix
_ALSO = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "192.88.99.0/24", "3fff::/20"))
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def _embedded(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def special(address: Address) -> str | None:
    """Why ``address`` is refused by default (``"loopback"``, ``"private"``, ``"cloud metadata"``, ...),
    or None for an ordinary public address."""
    if address in METADATA:
        return "cloud metadata"
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped (zone id)"
        inner = _embedded(address)
        if inner is not None:
            why = special(inner)
            if why is not None:
                return f"{why} (inside an IPv6 address)"
        if address in _NAT64_LOCAL:
            return "private"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared (CGNAT)"
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global or any(address in net for net in _ALSO if net.version == address.version):
        return "not global"
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return "not global"
    return None
