"""The caps every run's network use stays under: :class:`NetworkLimits`.

Why always on: a guest's request runs on the host, inside a host call the run's own deadline
cannot interrupt, so the host bounds each one itself (connect, read and total time, sizes,
redirect hops) and the run's number of requests.  Whoever wires the service into a run may pass
tighter values (e.g. a total time no longer than what is left of the run's ``time:limit``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.errors import PolicyError

__all__ = ["NetworkLimits", "METHODS"]

#: the methods a guest may use (no CONNECT: no tunnels; no TRACE: it reflects headers)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class NetworkLimits:
    """Caps on a run's requests; every field is a positive, finite number.

    - ``max_requests``: requests a run may make (each call of ``handle``, redirects not counted)
    - ``max_request_bytes``: the body a guest may send
    - ``max_response_bytes``: the body a guest gets; the rest is cut (``truncated``) and recorded
    - ``max_redirects``: hops followed after the first request
    - ``connect_seconds`` / ``read_seconds``: the name lookup and connect / the wait for each read
    - ``total_seconds``: one request with all its hops (checked between reads, so the last read may
      add up to ``read_seconds``)
    - ``max_headers`` / ``max_header_bytes``: the headers a guest may send
    """

    max_requests: int = 100
    max_request_bytes: int = 1 * 2**20
    max_response_bytes: int = 5 * 2**20
    max_redirects: int = 5
    connect_seconds: float = 5.0
    read_seconds: float = 10.0
    total_seconds: float = 30.0
    max_headers: int = 64
    max_header_bytes: int = 16 * 2**10

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise PolicyError(f"NetworkLimits.{name} must be a positive number, got {value!r}",
                                  hint="every network limit is a positive, finite number")

    @property
    def max_envelope_bytes(self) -> int:
        """The largest JSON request accepted: a base64 body of the largest size, plus headers and URL."""
        return self.max_request_bytes * 4 // 3 + 4 + self.max_header_bytes * 2 + 64 * 2**10
