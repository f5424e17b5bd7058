"""Gauge readings: a run's usage against its limits, as fractions, words and a level.

Pure Python: the widgets (:mod:`.widgets`) and the HTML summary (:mod:`.display`)
draw the same :class:`Reading`, so a gauge during the run and the summary after
it never disagree about what "near the limit" means.

Levels, and why:

- ``ok`` below 80 % of a limit;
- ``warning`` from 80 % (time to look), and for a CPU share held at its
  throttle: throttling is enforcement, not a violation;
- ``danger`` from 98 % or once the run had a violation of that resource
  (a refused ``memory.grow``, a deadline, an exhausted budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..runtime.result import human_size
from ..policy import Limits
from .live import Snapshot

__all__ = ["Reading", "Level", "readings", "level_for", "WARNING_AT", "DANGER_AT"]

Level = Literal["ok", "warning", "danger"]
WARNING_AT = 0.8
DANGER_AT = 0.98



@dataclass(frozen=True)
class Reading:
    """One gauge: ``fraction`` of its limit (0..1, clipped), ``text`` for people, ``level``."""

    key: str
    label: str
    fraction: float
    text: str
    level: Level


def level_for(fraction: float, violated: bool = False) -> Level:
    if violated or fraction >= DANGER_AT:
        return "danger"
    return "warning" if fraction >= WARNING_AT else "ok"


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s >= 0.1 or s == 0 else f"{s * 1000:.0f} ms"


def _count(n: float) -> str:
    return f"{n:.3g}" if n >= 1000 else f"{int(n)}"


def _clip(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def readings(snap: Snapshot, limits: Limits) -> list[Reading]:
    """The gauges for ``snap``: memory, CPU, wall time, and fuel when there is a budget."""
    violated = {v.kind for v in snap.violations}
    out: list[Reading] = []

    mem_limit = limits.memory_bytes
    refused = sum(1 for v in snap.violations if v.kind == "memory")
    # a refused grow leaves the memory where it was, often far below the cap: say so, in red
    refusals = f" · {refused} grow{'s' if refused > 1 else ''} refused" if refused else ""
    if mem_limit:
        frac = snap.memory_bytes / mem_limit
        out.append(Reading("memory", "memory", _clip(frac),
                           f"{human_size(int(snap.memory_bytes))} of {human_size(int(mem_limit))}{refusals}",
                           level_for(frac, "memory" in violated)))
    else:
        out.append(Reading("memory", "memory", 0.0, f"{human_size(int(snap.memory_bytes))} (no limit)", "ok"))

    if limits.cpu_seconds is not None:
        frac = snap.cpu_seconds / limits.cpu_seconds if limits.cpu_seconds else 1.0
        out.append(Reading("cpu", "CPU", _clip(frac), f"{snap.cpu_seconds:.2f} s of {limits.cpu_seconds:g} s",
                           level_for(frac, "cpu" in violated)))
    elif limits.cpu_share is not None:
        frac = snap.cpu_share / limits.cpu_share
        level: Level = "warning" if frac >= 0.95 else "ok"
        out.append(Reading("cpu", "CPU", _clip(frac),
                           f"{100 * snap.cpu_share:.0f}% (limit {100 * limits.cpu_share:.0f}%)", level))
    else:
        out.append(Reading("cpu", "CPU", _clip(snap.cpu_share), f"{100 * snap.cpu_share:.0f}% of a core", "ok"))

    deadline = limits.wall_seconds
    if deadline:
        frac = snap.wall_seconds / deadline
        out.append(Reading("time", "time", _clip(frac), f"{_seconds(snap.wall_seconds)} of {deadline:g} s",
                           level_for(frac, "time" in violated)))
    else:
        out.append(Reading("time", "time", 0.0, f"{_seconds(snap.wall_seconds)} (no deadline)", "ok"))

    if limits.fuel:
        used = snap.fuel_used or 0
        frac = used / limits.fuel
        out.append(Reading("fuel", "fuel", _clip(frac), f"{_count(used)} of {_count(limits.fuel)}",
                           level_for(frac, "fuel" in violated)))
    return out
