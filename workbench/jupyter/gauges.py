"""Gauge readings for a live :class:`~.live.Snapshot`: the runtime's :func:`~workbench.runtime.readings`,
fed from the snapshot, so the live gauges and the summary after the run read the same way."""

from __future__ import annotations

from ..policy import Limits
from ..runtime import Reading, level_for
from ..runtime import readings as _readings
from .live import Snapshot

__all__ = ["Reading", "readings", "level_for"]


def readings(snap: Snapshot, limits: Limits) -> list[Reading]:
    """The gauges for ``snap``: memory, CPU, wall time, and fuel when there is a budget."""
    return _readings(limits, wall_seconds=snap.wall_seconds, memory_bytes=snap.memory_bytes,
                     cpu_seconds=snap.cpu_seconds, cpu_share=snap.cpu_share, fuel_used=snap.fuel_used,
                     violated=snap.violated)
