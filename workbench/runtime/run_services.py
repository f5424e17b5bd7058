"""What the host's services see of a run in progress: its fuel, and one service per device node.

A mixin of ``_Run`` (kept apart so ``run.py`` stays one job).  The services behind the device
folder's nodes and behind the direct host imports (:mod:`.host_imports`) are the same objects,
made at first use and closed when the run ends, so both ways in share one per-run state (the
network service's request cap, its secrets) and record the same.
"""

from __future__ import annotations

from typing import Any

import wasmtime

from ..policy import Limits
from .device import NodeSpec, Service, close_services

__all__ = ["RunServices"]


class RunServices:
    """Mixed into ``_Run``: the fuel accessors a module call charges through, and the run's services."""

    limits: Limits
    _store: wasmtime.Store | None
    _services: dict[str, Service]

    def fuel_left(self) -> int | None:
        """The guest's remaining fuel, or None when the run has no fuel budget."""
        if self.limits.fuel is None or self._store is None:
            return None
        return int(self._store.get_fuel())

    def charge_fuel(self, used: int) -> None:
        """Take ``used`` fuel (a callee's) from the guest's remainder."""
        if self.limits.fuel is not None and self._store is not None and used > 0:
            self._store.set_fuel(max(int(self._store.get_fuel()) - used, 0))

    def service_for(self, node: NodeSpec) -> Service:
        """This run's service behind ``node`` (made at the first request, by the node's factory)."""
        service = self._services.get(node.name)
        if service is None:
            assert node.make is not None, f"{node.name} serves fixed content"
            run: Any = self
            service = self._services[node.name] = node.make(run)
        return service

    def close_services(self) -> None:
        """The run is over: close the services it made."""
        services, self._services = self._services, {}
        close_services(services.values())
