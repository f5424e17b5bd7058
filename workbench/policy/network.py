"""Network rights: which scheme, host and port a guest may reach through the host API.

``http`` and ``https`` are separate rights.  A request without a port uses the
scheme's default (80, 443), so ``network:https:example.com:443`` allows
``https://example.com/``.  Deny rules win, as everywhere.
"""

from __future__ import annotations

from typing import Iterable

from workbench.caches import memoized
from workbench.policy import hosts
from workbench.policy.capability import Capability
from workbench.policy.decision import AccessDecision
from workbench.policy.suggest import quote

__all__ = ["DEFAULT_PORTS", "check_network", "covers", "matches"]

DEFAULT_PORTS = {"http": 80, "https": 443}


@memoized("host patterns")
def _scope(scope: str) -> tuple[str, int | None]:
    return hosts.parse_host_scope(scope)


def matches(cap: Capability, host: str, port: int) -> bool:
    """``cap`` (any network capability) covers the canonical ``host`` on ``port``."""
    pattern, allowed_port = _scope(cap.scope or "")
    return hosts.host_matches(pattern, host) and (allowed_port is None or allowed_port == port)


def covers(parent: Capability, child: Capability) -> bool:
    """Every request ``child`` allows, ``parent`` allows too (same scheme, wider host, any or same port).

    Used for grants (a parent's grant covers a child's) and for denies (a
    parent's deny makes a child's grant pointless).
    """
    if parent.action != child.action:
        return False
    parent_host, parent_port = _scope(parent.scope or "")
    child_host, child_port = _scope(child.scope or "")
    return hosts.pattern_covers(parent_host, child_host) and parent_port in (None, child_port)


def check_network(
    grants: Iterable[Capability], denies: Iterable[Capability], scheme: str, host: str, port: int | None
) -> AccessDecision:
    """Decide one outgoing request; a malformed host or port from the guest is a denial, not a crash."""
    scheme = scheme.lower() if isinstance(scheme, str) else scheme
    if scheme not in DEFAULT_PORTS:
        return AccessDecision.deny(f"scheme {scheme!r} is not supported (only http and https)")
    name = hosts.normalize_host(host)
    if name is None:
        return AccessDecision.deny(f"{host!r} is not a valid host")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return AccessDecision.deny(f"port {port!r} is not a number from 1 to 65535")
    target = f"{scheme}://{hosts.format_host_scope(name, port)}"
    for deny in denies:
        if deny.domain == "network" and deny.action == scheme and matches(deny, name, port):
            return AccessDecision.deny(f"{quote(target)} is denied by {quote(str(deny))}", deny)
    candidates = [g for g in grants if g.domain == "network" and g.action == scheme and matches(g, name, port)]
    if candidates:
        # the most specific rule decides: an exact host before a wildcard, a fixed port before any port
        best = max(candidates, key=lambda g: (not _scope(g.scope or "")[0].startswith("*"), len(g.scope or "")))
        return AccessDecision.allow(best, f"{quote(target)} is allowed by {quote(str(best))}")
    return AccessDecision.deny(f"no network grant covers {quote(target)}")
