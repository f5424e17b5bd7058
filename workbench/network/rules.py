"""The policy's answer for one request: :func:`decide` (the URL) and :func:`check_address` (where it goes).

Two questions, in this order:

1. Do the ``network:`` grants allow this scheme, host and port?  The policy answers
   (:meth:`Policy.check_network`: deny rules win, the most specific grant decides).  Hosts are
   compared as written: a grant for the name ``localhost`` is not a grant for ``127.0.0.1``, nor
   for any other name that resolves to the same address.
2. May the connection go to this address (the literal one, or each one the host resolved)?
   A special address (loopback, private, link-local, CGNAT, cloud metadata, ...:
   :func:`workbench.network.addresses.special`) is refused unless the deciding grant names it:
   its host is that very address (``network:http:127.0.0.1``), or it is ``localhost`` and the
   address is a loopback one.  No wildcard and no other name opens one, so a DNS answer pointing
   a granted public name at 169.254.169.254 is refused.  A deny rule written for an address also
   refuses every name that resolves to it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from workbench.network.addresses import Address, special
from workbench.network.urls import Target
from workbench.policy import Policy, network
from workbench.policy.capability import Capability
from workbench.policy.suggest import quote

__all__ = ["Allowed", "decide", "check_address", "literal", "secret_names"]


@dataclass(frozen=True)
class Allowed:
    """A request the grants allow: the deciding grant and the secrets this hop may carry."""

    rule: Capability
    secrets: frozenset[str]


def literal(address: Address) -> str:
    """How an address is written as a host: ``127.0.0.1``, ``[::1]``."""
    return f"[{address.compressed}]" if isinstance(address, ipaddress.IPv6Address) else str(address)


def secret_names(policy: Policy, target: Target) -> frozenset[str]:
    """The secrets of every grant that covers ``target`` (the request itself is decided by :func:`decide`)."""
    return frozenset(
        name
        for g in policy.grants
        if g.domain == "network"
        and g.action == target.scheme
        and (name := g.param("secret")) is not None
        and network.matches(g, target.host, target.port)
    )


def decide(policy: Policy, target: Target) -> Allowed | tuple[str, Capability | None]:
    """:class:`Allowed`, or the reason and the rule (None: no grant) of a denial."""
    decision = policy.check_network(target.scheme, target.host, target.port)
    if not decision.allowed or decision.capability is None:
        hint = ""
        if decision.capability is None and target.scheme in network.DEFAULT_PORTS:
            hint = f"; grant it with {quote(f'network:{target.scheme}:{target.authority}')}"
        return decision.reason + hint, decision.capability
    return Allowed(decision.capability, secret_names(policy, target))


def _names(rule: Capability, address: Address) -> bool:
    host, _port = network._scope(rule.scope or "")
    if host == "localhost":
        return address.is_loopback
    return host == literal(address)


def check_address(policy: Policy, target: Target, rule: Capability, address: Address) -> tuple[str, Capability | None] | None:
    """None when the connection may go to ``address``; else the reason and the rule that refuses it."""
    where = literal(address)
    for deny in policy.denies:
        if deny.domain == "network" and deny.action == target.scheme and network.matches(deny, where, target.port):
            return f"{quote(target.host)} resolves to {where}, which is denied by {quote(str(deny))}", deny
    why = special(address)
    if why is not None and not _names(rule, address):
        via = "" if target.address is not None else f"{quote(target.host)} resolves to "
        return (
            f"{via}{where}, a {why} address, is refused unless a grant names it: "
            f"{quote(str(rule))} does not (grant {quote(f'network:{target.scheme}:{where}')} to open it)",
            rule,
        )
    return None
