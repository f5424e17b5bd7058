"""The headers a guest may send: :func:`sanitize` (refuses, never silently drops).

Why refuse rather than fix: a header the host sets itself (``Host``, ``Content-Length``) or one
that changes how the connection is used (hop-by-hop headers, RFC 9110 §7.6.1) would let the guest
make the bytes on the wire mean something else than what was checked (request smuggling, a
different virtual host behind the checked address).  A name must be an RFC 9110 token and a value
printable ASCII (no CR, LF or NUL: no injected header lines).
"""

from __future__ import annotations

import re

from workbench.network.limits import NetworkLimits

__all__ = ["HeaderError", "sanitize", "FORBIDDEN"]

#: set by the host, or about the connection rather than the request
FORBIDDEN = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
    "proxy-authorization", "proxy-authenticate", "te", "trailer", "upgrade", "expect",
    "http2-settings",
})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
_VALUE = re.compile(r"[\t\x20-\x7e]*")


class HeaderError(ValueError):
    """A header refused; the message names it and says what to do."""


def sanitize(headers: tuple[tuple[str, str], ...], limits: NetworkLimits) -> tuple[tuple[str, str], ...]:
    """The guest's headers, checked; :class:`HeaderError` for the first one refused."""
    if len(headers) > limits.max_headers:
        raise HeaderError(f"{len(headers)} headers (the most is {limits.max_headers})")
    size = sum(len(name) + len(value) for name, value in headers)
    if size > limits.max_header_bytes:
        raise HeaderError(f"the headers are {size:,} characters (the most is {limits.max_header_bytes:,})")
    seen: set[str] = set()
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise HeaderError(f"header name {name[:60]!r} is not a valid token (letters, digits and !#$%&'*+-.^_`|~)")
        lower = name.lower()
        if lower in FORBIDDEN:
            raise HeaderError(f"header {name!r} is set by the host or is about the connection; remove it")
        if lower in seen:
            raise HeaderError(f"header {name!r} is given twice; join the values with ', '")
        seen.add(lower)
        if not _VALUE.fullmatch(value):
            bad = next(c for c in value if not (c == "\t" or "\x20" <= c <= "\x7e"))
            raise HeaderError(
                f"header {name!r} holds {bad!r} (U+{ord(bad):04X}); values are printable ASCII "
                "(no line breaks: one header per key)"
            )
    return headers
