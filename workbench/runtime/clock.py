"""Where the enforcers read time: :class:`Clock`, injected so their arithmetic can be tested.

Why a seam: the deadline, the CPU-share pacing and the monitor's sampling are arithmetic on
wall time and the guest thread's CPU time.  Tested against the real clocks, that arithmetic
is at the mercy of a busy machine; given a :class:`ManualClock`, a test sets the times and
checks the answers exactly.  Runs use :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Clock", "SYSTEM_CLOCK", "ManualClock"]


def _wait(event: threading.Event, seconds: float) -> bool:
    return event.wait(seconds)


@dataclass(frozen=True)
class Clock:
    """``wall()``: monotonic seconds; ``cpu()``: CPU seconds of the calling thread;
    ``wait(event, seconds)``: block until ``event`` is set or ``seconds`` pass (True if set)."""

    wall: Callable[[], float] = time.monotonic
    cpu: Callable[[], float] = time.thread_time
    wait: Callable[[threading.Event, float], bool] = _wait


SYSTEM_CLOCK = Clock()


@dataclass
class ManualClock:
    """A clock a test moves by hand: waiting advances wall time (as a real wait would) and, with
    ``cpu_rate``, CPU time too (0 while paused: a paused guest uses no CPU)."""

    now: float = 1000.0
    cpu_now: float = 0.0
    waits: list[float] = field(default_factory=list)

    def advance(self, wall: float, cpu: float = 0.0) -> None:
        """The guest ran: ``wall`` seconds passed, ``cpu`` of them on its thread."""
        self.now += wall
        self.cpu_now += cpu

    def clock(self) -> Clock:
        return Clock(wall=lambda: self.now, cpu=lambda: self.cpu_now, wait=self._wait)

    def _wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.waits.append(seconds)
        self.now += max(seconds, 0.0)
        return False
