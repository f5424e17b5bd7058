"""Usage against limits, as gauge readings: a fraction, words, and a level.

The notebook's live gauges and every summary of a finished run (its HTML, the final
view) draw the same :class:`Reading`, from the same numbers, so "near the limit" never
means two things.  Levels, and why:

- ``ok`` below 80 % of a limit;
- ``warning`` from 80 % (time to look), and for a CPU share held at its throttle:
  throttling is enforcement, not a violation;
- ``danger`` from 98 % or once the run had a violation of that resource (a refused
  ``memory.grow``, a deadline, an exhausted budget).

Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from ..policy import Limits
from .sizes import human_size

__all__ = ["Reading", "Level", "readings", "level_for", "WARNING_AT", "DANGER_AT", "seconds_text"]

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


def seconds_text(s: float) -> str:
    return f"{s:.1f} s" if s >= 0.1 or s == 0 else f"{s * 1000:.0f} ms"


def _count(n: float) -> str:
    return f"{n:.3g}" if n >= 1000 else f"{int(n)}"


def _clip(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def readings(limits: Limits, *, wall_seconds: float, memory_bytes: int, cpu_seconds: float, cpu_share: float,
             fuel_used: int | None, violated: Mapping[str, int]) -> list[Reading]:
    """The gauges: memory, CPU, wall time, and fuel when there is a budget.

    ``violated`` counts violations per category (``{"memory": 3}``): a gauge whose resource
    was violated is red, and the memory gauge says how many grows were refused."""
    out: list[Reading] = []
    mem_limit = limits.memory_bytes
    refused = violated.get("memory", 0)
    # a refused grow leaves the memory where it was, often far below the cap: say so, in red
    refusals = f" · {refused} grow{'s' if refused > 1 else ''} refused" if refused else ""
    if mem_limit:
        frac = memory_bytes / mem_limit
        out.append(Reading("memory", "memory", _clip(frac),
                           f"{human_size(int(memory_bytes))} of {human_size(int(mem_limit))}{refusals}",
                           level_for(frac, "memory" in violated)))
    else:
        out.append(Reading("memory", "memory", 0.0, f"{human_size(int(memory_bytes))} (no limit)", "ok"))

    if limits.cpu_seconds is not None:
        frac = cpu_seconds / limits.cpu_seconds if limits.cpu_seconds else 1.0
        out.append(Reading("cpu", "CPU", _clip(frac), f"{cpu_seconds:.2f} s of {limits.cpu_seconds:g} s",
                           level_for(frac, "cpu" in violated)))
    elif limits.cpu_share is not None:
        frac = cpu_share / limits.cpu_share
        level: Level = "warning" if frac >= 0.95 else "ok"
        out.append(Reading("cpu", "CPU", _clip(frac),
                           f"{100 * cpu_share:.0f}% (limit {100 * limits.cpu_share:.0f}%)", level))
    else:
        out.append(Reading("cpu", "CPU", _clip(cpu_share), f"{100 * cpu_share:.0f}% of a core", "ok"))

    deadline = limits.wall_seconds
    if deadline:
        frac = wall_seconds / deadline
        out.append(Reading("time", "time", _clip(frac), f"{seconds_text(wall_seconds)} of {deadline:g} s",
                           level_for(frac, "time" in violated)))
    else:
        out.append(Reading("time", "time", 0.0, f"{seconds_text(wall_seconds)} (no deadline)", "ok"))

    if limits.fuel:
        used = fuel_used or 0
        frac = used / limits.fuel
        out.append(Reading("fuel", "fuel", _clip(frac), f"{_count(used)} of {_count(limits.fuel)}",
                           level_for(frac, "fuel" in violated)))
    return out
