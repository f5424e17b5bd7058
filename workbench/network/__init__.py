"""A guest's HTTP(S) requests, performed by the host under the run's ``network:`` grants.

WASI preview 1 has no sockets, so a guest asks the host (through the device folder the guard
serves, ``/dev/workbench/http``) and the host decides, performs and records each request.
This package is that host side, behind one small contract::

    service = NetworkService(policy, emit, secrets=None, limits=None, clock=None)
    response: bytes = service.handle(request: bytes)
    visible(policy) -> bool     # any network grant at all? (else the device stays invisible)

Request, UTF-8 JSON::

    {"method": "GET", "url": "http://localhost:8080/x",
     "headers": {"Name": "value"},          # optional
     "body": "text"}                        # optional; or "body_base64": "..."

Response, UTF-8 JSON, either::

    {"ok": true, "status": 200, "headers": {"content-type": "..."}, "body_base64": "...",
     "truncated": false, "url": "<final url>"}

or::

    {"ok": false, "error": "denied" | "invalid" | "timeout" | "unreachable" | "too_large" | "limit",
     "reason": "<what went wrong and how to fix it>"}

- ``denied``: the grants (or a deny rule, or the default refusal of private addresses) say no;
- ``invalid``: the request is malformed (bad JSON or UTF-8, wrong types, a refused URL or header);
- ``timeout`` / ``unreachable``: the request was allowed but got no answer (in time);
- ``too_large``: the body is over the cap; ``limit``: the run's request count or the redirect
  hops are used up.

Response headers have lower-case names (repeated ones joined with ``", "``); a body over the cap
is cut and ``truncated`` is true.  Every request (each redirect hop) is one ``network``/``request``
event.  A grant's secret is written ``{{secret:NAME}}`` by the guest (:mod:`.secrets`).
"""

from workbench.network.limits import METHODS, NetworkLimits
from workbench.network.secrets import Secrets, placeholder
from workbench.network.service import NetworkService, visible

__all__ = ["NetworkService", "NetworkLimits", "Secrets", "METHODS", "placeholder", "visible"]
