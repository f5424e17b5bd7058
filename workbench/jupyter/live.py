"""What the live view knows about a run in progress: a subscriber that only records.

The event bus calls subscribers on the guest's thread, inside wasmtime's
epoch callback, so :class:`LiveState` does the least possible there: it keeps
the latest samples and the violations under a lock and returns.  The refresh
thread takes a :class:`Snapshot` whenever it wakes and turns it into widget
updates; nothing about widgets ever runs on the guest's thread.

Pure Python (no ipywidgets), so gauges can be computed and tested without a kernel.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Union

from ..events import Event, Sample

__all__ = ["LiveState", "Snapshot", "TimelineEntry"]

#: samples kept for the CPU-share window (at 10/s: the last half second)
_CPU_WINDOW = 5


@dataclass(frozen=True)
class TimelineEntry:
    """One violation, placed in time relative to the run's start."""

    seconds: float
    decision: str
    kind: str
    action: str
    target: str | None
    capability: str | None
    message: str


@dataclass(frozen=True)
class Snapshot:
    """A consistent reading of a run, taken by the refresh thread."""

    wall_seconds: float
    memory_bytes: int
    cpu_seconds: float
    cpu_share: float
    fuel_used: int | None
    violations: tuple[TimelineEntry, ...]
    sampled: bool
    finished: bool = False


class LiveState:
    """Subscriber for ``sandbox.subscribe``: keeps what the gauges and the timeline need."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._samples: deque[Sample] = deque(maxlen=_CPU_WINDOW)
        self._violations: list[TimelineEntry] = []
        self._started_wall = self._clock()
        self._start_ts: float | None = None
        self._final: Snapshot | None = None
        self.changes = 0  # bumped on every item: lets the refresher skip idle ticks

    def __call__(self, item: Union[Event, Sample]) -> None:
        with self._lock:
            self.changes += 1
            if isinstance(item, Sample):
                self._samples.append(item)
                return
            if item.category == "lifecycle" and item.action == "start":
                self._start_ts = item.ts
                self._started_wall = self._clock()
            if item.is_violation:
                start = self._start_ts if self._start_ts is not None else item.ts
                self._violations.append(
                    TimelineEntry(
                        seconds=max(item.ts - start, 0.0),
                        decision=item.decision,
                        kind=item.category,
                        action=item.action,
                        target=item.resolved or item.target,
                        capability=item.capability,
                        message=item.reason or f"{item.category} {item.action}",
                    )
                )

    def finish(self, snapshot: Snapshot) -> None:
        """The exact final numbers (from the RunResult); later snapshots return them."""
        with self._lock:
            self._final = snapshot
            self.changes += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._final is not None:
                return self._final
            violations = tuple(self._violations)
            samples = list(self._samples)
            wall = self._clock() - self._started_wall
        if not samples:
            return Snapshot(wall, 0, 0.0, 0.0, None, violations, sampled=False)
        last = samples[-1]
        share = 0.0
        if len(samples) >= 2:
            first = samples[0]
            span = last.wall_seconds - first.wall_seconds
            if span > 0:
                share = (last.cpu_seconds - first.cpu_seconds) / span
        elif last.wall_seconds > 0:
            share = last.cpu_seconds / last.wall_seconds
        return Snapshot(
            wall_seconds=max(wall, last.wall_seconds),
            memory_bytes=last.memory_bytes,
            cpu_seconds=last.cpu_seconds,
            cpu_share=max(share, 0.0),
            fuel_used=last.fuel_used,
            violations=violations,
            sampled=True,
        )
