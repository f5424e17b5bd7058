"""One HTTP exchange with a checked address: :func:`exchange` (httpx, pinned, bounded).

Pinning: the URL handed to httpx holds the checked *address*, never the name, so nothing
resolves the name again (DNS rebinding changes nothing).  The name still goes where it
belongs: the ``Host`` header, and for HTTPS the TLS SNI and the certificate check
(httpcore's ``sni_hostname`` extension becomes the ``server_hostname`` the standard library
verifies the certificate against).  TLS verification is always on, against certifi's roots.

Bounded: connect, read and write timeouts on every request; the body is read raw (no
decompression: ``Accept-Encoding: identity`` unless the guest asks otherwise, so a small gzip
bomb cannot grow in the host), chunk by chunk, up to the cap (plus room to scrub a secret that
straddles it), and the total deadline is checked between reads.  ``trust_env=False``: no proxy
from the host's environment (it would resolve the name itself), no ``.netrc`` credentials.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Callable

import httpx

from workbench.network.addresses import Address
from workbench.network.limits import NetworkLimits
from workbench.network.rules import literal
from workbench.network.urls import Target

__all__ = ["Reply", "exchange", "TotalTimeout", "ssl_context"]

_CONTEXT: list[ssl.SSLContext] = []


def ssl_context() -> ssl.SSLContext:
    """The verifying TLS context (made once: loading the roots takes milliseconds)."""
    if not _CONTEXT:
        _CONTEXT.append(httpx.create_ssl_context(verify=True, trust_env=False))
    return _CONTEXT[0]


class TotalTimeout(Exception):
    """The request went past its total time."""


@dataclass(frozen=True)
class Reply:
    """What came back: status, headers (lower-case names, repeated ones joined), the body read
    (at most the cap plus ``extra``) and whether more was left unread."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    more: bool


def _joined(response: httpx.Response) -> tuple[tuple[str, str], ...]:
    merged: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return tuple(merged.items())


def exchange(
    target: Target,
    address: Address,
    method: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    limits: NetworkLimits,
    *,
    extra: int,
    deadline: float,
    clock: Callable[[], float],
) -> Reply:
    """Send one request to ``address`` for ``target``; httpx's exceptions and :class:`TotalTimeout` escape."""
    pinned = f"{target.scheme}://{literal(address)}:{target.port}{target.path}"
    sent = [("Host", target.authority)]
    if not any(name.lower() == "accept-encoding" for name, _ in headers):
        sent.append(("Accept-Encoding", "identity"))
    sent.extend(headers)
    left = deadline - clock()
    if left <= 0:
        raise TotalTimeout()
    timeout = httpx.Timeout(
        connect=min(limits.connect_seconds, left),
        read=min(limits.read_seconds, left),
        write=min(limits.read_seconds, left),
        pool=min(limits.connect_seconds, left),
    )
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.address is None else {}
    cap = limits.max_response_bytes + extra
    with httpx.Client(trust_env=False, follow_redirects=False, verify=ssl_context(), timeout=timeout) as client:
        request = client.build_request(method, pinned, headers=sent, content=body or None, extensions=extensions)
        request.headers.pop("user-agent", None)
        request.headers["User-Agent"] = "sandbox-workbench"
        response = client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            more = False
            for chunk in response.iter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    more = True
                    break
                if clock() > deadline:
                    raise TotalTimeout()
            data = b"".join(chunks)
            return Reply(response.status_code, _joined(response), data[:cap], more or len(data) > cap)
        finally:
            response.close()
