"""Network scopes: host patterns with an optional port, and how they match and nest.

A scope is ``host[:port]``.  The host is a DNS name (lower-cased, trailing
dot dropped), an IPv4 address, an IPv6 address in brackets (``[::1]``,
stored compressed), ``*`` (any host) or ``*.suffix`` (any name below
``suffix`` at any depth, never ``suffix`` itself).  No port means any port.
"""

from __future__ import annotations

import ipaddress
import re

from workbench.policy.suggest import grammar_error, quote

__all__ = ["parse_host_scope", "format_host_scope", "normalize_host", "host_matches", "pattern_covers"]

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")  # not str.isdigit(): it takes '²' and '١', which int() reads or refuses


def _ipv6(text: str) -> str | None:
    try:
        return f"[{ipaddress.IPv6Address(text).compressed}]"
    except ValueError:
        return None


def _name(host: str, *, context: str | None, allow_wildcard: bool) -> str:
    """Canonical host name or pattern, or a CapabilityError.

    ASCII is checked before lower-casing: ``str.lower`` maps the Kelvin sign to 'k' and
    'İ' to two characters, so a non-ASCII name could lower-case into a valid other one.
    """
    lowered = host.lower().rstrip(".") if host.isascii() else ""  # 'example.com.' is the same name
    if lowered == "*" and allow_wildcard:
        return lowered
    labels = lowered.split(".")
    if allow_wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
        prefix = "*."
    else:
        prefix = ""
    if "*" in "".join(labels):
        raise grammar_error(
            f"host pattern {quote(host)} has '*' in the wrong place",
            text=context,
            part=host,
            hint="a '*' may only stand for the leftmost labels, as in '*.example.com', or for any host",
        )
    if not lowered or len(lowered) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise grammar_error(
            f"{quote(host)} is not a valid host name",
            text=context,
            part=host,
            hint="write a name like 'example.com', an address like '127.0.0.1' or '[::1]'"
            " (internationalised names in their 'xn--' form)",
        )
    return prefix + ".".join(labels)


def parse_host_scope(scope: str, *, context: str | None = None) -> tuple[str, int | None]:
    """Split ``host[:port]`` into the canonical host pattern and the port (None = any)."""
    text = context or scope
    if scope.startswith("["):
        close = scope.find("]")
        address = _ipv6(scope[1:close]) if close > 0 else None
        if address is None:
            raise grammar_error(f"{quote(scope)} is not a valid bracketed IPv6 address", text=text, part=scope)
        host, rest = address, scope[close + 1 :]
        if rest and not rest.startswith(":"):
            raise grammar_error(f"unexpected {quote(rest)} after {quote(address)}", text=text, part=rest)
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_raw = scope.rpartition(":")
        if colon and ":" in name:
            raise grammar_error(
                f"{quote(scope)} looks like an IPv6 address without brackets",
                text=text,
                part=scope,
                hint="write IPv6 addresses in brackets, like '[::1]:8080'",
            )
        host = _name(name if colon else scope, context=text, allow_wildcard=True)
        port_text = port_text_raw if colon else None
    port = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise grammar_error(
                f"port {quote(port_text)} is not a number from 1 to 65535", text=text, part=port_text
            )
        port = int(port_text)
    return host, port


def format_host_scope(host: str, port: int | None) -> str:
    """The canonical ``host[:port]`` text."""
    return host if port is None else f"{host}:{port}"


def normalize_host(host: str) -> str | None:
    """A host as a guest asked for it, in canonical form; None if it is not a valid host.

    Never raises: the name comes from the guest, and a bad one is a denial, not a crash.
    """
    if not isinstance(host, str) or not host:
        return None
    if host.startswith("[") and host.endswith("]"):
        return _ipv6(host[1:-1])
    if ":" in host:
        return _ipv6(host)
    try:
        return _name(host, context=None, allow_wildcard=False)
    except ValueError:
        return None


def host_matches(pattern: str, host: str) -> bool:
    """Canonical ``host`` falls under canonical ``pattern``."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def pattern_covers(parent: str, child: str) -> bool:
    """Every host ``child`` matches, ``parent`` matches too (both canonical patterns)."""
    if parent == "*" or parent == child:
        return True
    if parent.startswith("*.") and child != "*":
        return child.endswith(parent[1:])
    return False
