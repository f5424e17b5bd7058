"""A guest's URL, parsed strictly into a canonical :class:`Target` (or refused): :func:`parse_url`.

Why our own parser: parsers disagree on odd URLs (``http://good.com@evil.com/``,
``http://evil.com\\@good.com/``, ``http://2130706433/``), and an attacker picks the text on
which the checker and the connector read different hosts.  Here one parse decides and the
connection uses its result, never the guest's text again.  So everything with two readings is
refused with a hint, not guessed at:

- only printable ASCII (no spaces, controls, backslashes, non-ASCII: percent-encode the path,
  write an internationalised name in its ``xn--`` form);
- no userinfo (``user@``), no zone id, no empty port;
- a host whose last label is a number is an IPv4 address and must be written as four decimal
  numbers without leading zeros (``127.1``, ``0x7f.1``, ``0177.0.0.1``, ``2130706433`` are
  refused: each is 127.0.0.1 to some parser);
- one trailing dot is dropped (``localhost.`` is the name ``localhost``), upper case is lowered.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from workbench.network.addresses import Address
from workbench.policy import hosts
from workbench.policy.network import DEFAULT_PORTS

__all__ = ["Target", "UrlError", "parse_url", "MAX_URL_CHARS"]

#: the longest URL accepted (what most servers accept)
MAX_URL_CHARS = 8192

_SHAPE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([/?#].*)?", re.DOTALL)
_PRINTABLE = re.compile(r"[\x21-\x7e]*")
_PORT = re.compile(r"[0-9]{1,5}")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class UrlError(ValueError):
    """A URL refused; the message says what and how to write it instead."""


@dataclass(frozen=True)
class Target:
    """Where one request goes, canonical: ``host`` is a lower-case name, a dotted IPv4 address
    or a bracketed, compressed IPv6 one; ``address`` is set when the host is an address;
    ``path`` is the path and query (never the fragment), starting with ``/``."""

    scheme: str
    host: str
    port: int
    path: str
    address: Address | None = None

    @property
    def authority(self) -> str:
        """``host`` or ``host:port`` (the port only when it is not the scheme's default): the Host header."""
        return self.host if self.port == DEFAULT_PORTS.get(self.scheme) else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"

    def __str__(self) -> str:
        return self.url


def _address(host: str) -> Address | None:
    if host.startswith("["):
        return ipaddress.IPv6Address(host[1:-1])
    if _DOTTED.fullmatch(host):
        return ipaddress.IPv4Address(host)
    return None


def _host(raw: str) -> str:
    if not raw:
        raise UrlError("the URL has no host")
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:
            raise UrlError(f"{raw!r} is not a bracketed IPv6 address (zone ids like '%eth0' are not accepted)")
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1]).compressed}]"
        except ValueError:
            raise UrlError(f"{raw!r} is not a valid IPv6 address") from None
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]  # 'localhost.' is the absolute form of 'localhost': the same name
    labels = name.split(".")
    if labels and _NUMERIC_LABEL.fullmatch(labels[-1]):
        if _DOTTED.fullmatch(name):
            return name
        raise UrlError(
            f"host {raw!r} is a number but not written as a plain IPv4 address; "
            "write it as four decimal numbers without leading zeros, like 127.0.0.1"
        )
    canonical = hosts.normalize_host(name)
    if canonical is None or canonical != name or "*" in name:
        raise UrlError(
            f"{raw!r} is not a valid host name; write a name like example.com "
            "(internationalised names in their xn-- form) or an address like 127.0.0.1 or [::1]"
        )
    return canonical


def parse_url(text: object) -> Target:
    """The canonical :class:`Target` of ``text``; :class:`UrlError` (with a hint) if it is refused.

    The scheme is lower-cased but not checked here (an unknown scheme is the policy's denial).
    """
    if not isinstance(text, str):
        raise UrlError(f"the URL must be text, not {type(text).__name__}")
    if len(text) > MAX_URL_CHARS:
        raise UrlError(f"the URL is {len(text):,} characters long (the most is {MAX_URL_CHARS:,})")
    if not _PRINTABLE.fullmatch(text):
        bad = next(c for c in text if not "\x21" <= c <= "\x7e")
        raise UrlError(
            f"the URL holds {bad!r} (U+{ord(bad):04X}); only printable ASCII is accepted: "
            "percent-encode spaces and other characters in the path, write names in their xn-- form"
        )
    if "\\" in text:
        raise UrlError("the URL holds a backslash, which parsers read differently; write '/' or '%5C'")
    shape = _SHAPE.fullmatch(text)
    if shape is None:
        raise UrlError(f"{text[:80]!r} is not an absolute URL; write it like http://example.com/path")
    scheme, authority, rest = shape.group(1).lower(), shape.group(2), shape.group(3) or "/"
    if "@" in authority:
        raise UrlError("the URL holds user information ('user@host'), which is refused; put credentials in a header")
    if authority.startswith("["):
        close = authority.find("]")
        raw_host, port_part = (authority[: close + 1], authority[close + 1 :]) if close > 0 else (authority, "")
    else:
        raw_host, colon, port_text = authority.partition(":")
        port_part = colon + port_text
    host = _host(raw_host)
    if port_part:
        port_text = port_part[1:]
        if not port_part.startswith(":") or not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise UrlError(f"port {port_part[1:]!r} is not a number from 1 to 65535")
        port = int(port_text)
    else:
        port = DEFAULT_PORTS.get(scheme, 0)
    path = rest.partition("#")[0] or "/"
    if path.startswith("?"):
        path = "/" + path
    if _BAD_PERCENT.search(path):
        raise UrlError("the URL holds a '%' not followed by two hex digits; write a literal '%' as '%25'")
    return Target(scheme, host, port, path, _address(host))
