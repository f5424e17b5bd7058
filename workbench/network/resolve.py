"""The host's own name lookup, with a timeout: :func:`resolve`.

Why the host resolves: the addresses it checks must be the addresses it connects to.  So a name
is looked up once, here (``socket.getaddrinfo``), every answer is checked
(:func:`workbench.network.rules.check_address`), and the connection goes to a checked address
by number (:mod:`workbench.network.transport`); nothing resolves the name a second time, so a DNS
answer that changes between the check and the connection (rebinding) changes nothing.

``getaddrinfo`` has no timeout of its own, so it runs on a daemon thread that the request stops
waiting for after the connect timeout (the thread ends when the lookup does).
"""

from __future__ import annotations

import ipaddress
import socket
import threading

from workbench.network.addresses import Address

__all__ = ["resolve", "ResolveError"]


class ResolveError(OSError):
    """The name could not be resolved in time (``timeout``) or at all."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def _lookup(host: str, port: int) -> list[Address]:
    found: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    ):
        text = str(sockaddr[0])
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and len(sockaddr) >= 4 and sockaddr[3]:
            address = ipaddress.IPv6Address(f"{address.compressed}%{sockaddr[3]}")
        if address not in found:
            found.append(address)
    return found


def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """The addresses of ``host`` (a name), in the resolver's order; :class:`ResolveError` otherwise."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["ok"] = _lookup(host, port)
        except (OSError, ValueError, UnicodeError) as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name=f"resolve {host[:40]}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ResolveError(f"looking up {host!r} took more than {timeout:g} s", timeout=True)
    if "error" in box:
        raise ResolveError(f"{host!r} could not be resolved ({box['error']})")
    found = box.get("ok")
    if not isinstance(found, list) or not found:
        raise ResolveError(f"{host!r} has no address")
    return found
