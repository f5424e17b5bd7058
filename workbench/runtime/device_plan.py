"""Which nodes ``/dev/workbench`` has in a run: planned once, from the policy and the host's services.

- ``network:...`` grants give ``http`` (served by :class:`workbench.network.NetworkService`,
  which checks each request against the grants itself, with the sandbox's secrets);
- each ``module:call:NAME`` grant gives ``call/NAME`` (served by
  :class:`workbench.modules.calls.CallService`);
- ``Sandbox(services={"name": service})`` gives ``name`` (the host's own grant);
- whenever there is a node, ``workbench_guest.py`` (read-only) is the Python guest's helper module.

No node, no device: the folder is not made, not preopened, not visible.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import SandboxError
from .device import HELPER_NODE, NodeSpec, Service, host_nodes

__all__ = ["plan_device", "HELPER_SOURCE", "CALLS"]

HELPER_SOURCE = Path(__file__).resolve().parent.parent / "guest" / "workbench_guest.py"
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_RESERVED = {"http", "call", HELPER_NODE}


def _network_service(secrets: Any) -> Callable[[Any], Service]:
    def make(run: Any) -> Service:
        from ..network import NetworkService  # lazily: only runs with a network grant need it

        return NetworkService(run.policy, run.emit, secrets=secrets)

    return make


#: how module calls are served and run: filled by :mod:`workbench.modules` when it is imported
#: (``workbench`` imports it), so the runtime never imports the layer above it.
#: ``"service"``: ``(run, name) -> Service``; ``"run"``: ``(sandbox, name, payload, catalog) -> RunResult``.
CALLS: dict[str, Callable[..., Any]] = {}


def _call_service(name: str) -> Callable[[Any], Service]:
    def make(run: Any) -> Service:
        service: Service = CALLS["service"](run, name)
        return service

    return make


def plan_device(
    policy: Any, services: Mapping[str, Service] | None = None, secrets: Any = None
) -> tuple[NodeSpec, ...]:
    """The device's nodes for a policy (and the host's services); empty when nothing is granted."""
    nodes: list[NodeSpec] = []
    from ..network import visible  # the network package's own answer: any network grant at all?

    if visible(policy):
        first = next(c for c in policy.grants if c.domain == "network")
        nodes.append(NodeSpec("http", str(first), "network", make=_network_service(secrets)))
    seen: set[str] = set()
    for cap in policy.grants:
        if cap.domain == "module" and cap.action == "call":
            name = (cap.scope or "").split(".", 1)[0]
            if name and name not in seen:
                seen.add(name)
                nodes.append(NodeSpec(f"call/{name}", str(cap), "module", make=_call_service(name)))
    for name in services or {}:
        if not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name) or name in _RESERVED:
            raise SandboxError(f"service name {name!r} cannot be a device node",
                               hint="use lowercase letters, digits, '_' and '-' (not 'http' or 'call')")
        if not callable(getattr(services[name], "handle", None)):  # type: ignore[index]
            raise SandboxError(f"service {name!r} has no handle(request: bytes) -> bytes method",
                               hint="pass an object with handle(bytes) -> bytes")
    nodes.extend(host_nodes(services or {}))
    if nodes:
        nodes.append(NodeSpec(HELPER_NODE, None, "device", content=HELPER_SOURCE.read_bytes()))
    return tuple(nodes)
